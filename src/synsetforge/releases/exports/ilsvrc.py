"""The ILSVRC-2012 layout, as torchvision's ``datasets.ImageNet`` parses it.

Written files (SPEC 5):

* ``ILSVRC2012_devkit_t12.tar.gz``: ``ILSVRC2012_devkit_t12/data/meta.mat`` -- struct array ``synsets`` with
  fields ILSVRC2012_ID, WNID, words, gloss, num_children, children, wordnet_height, num_train_images, in
  that order (torchvision reads field 4 as num_children and fields 0..2 as id, wnid, words); the classes
  ("low level synsets", ``num_children == 0``) first with ids 1..K, then their ancestors -- and
  ``ILSVRC2012_devkit_t12/data/ILSVRC2012_validation_ground_truth.txt`` (one class id per val image, in
  file-name order);
* ``ILSVRC2012_img_train.tar``: one ``<wnid>.tar`` per class holding ``<wnid>_<image id>.JPEG``;
* ``ILSVRC2012_img_val.tar``: ``ILSVRC2012_val_00000001.JPEG`` ... in the manifest's (content hash) order,
  which says nothing about the class; ``ILSVRC2012_img_test.tar`` likewise for the test split (no labels);
* ``LOC_synset_mapping.txt`` and, when the release has boxes, ``LOC_train_solution.csv``,
  ``LOC_val_solution.csv`` and the VOC-XML box archives ``ILSVRC2012_bbox_train_v2.tar.gz`` and
  ``ILSVRC2012_bbox_val_v3.tgz``;
* ``MD5SUMS``: torchvision checks each archive against the official ImageNet MD5s, so a custom release needs
  ``torchvision.datasets.imagenet.ARCHIVE_META`` pointed at these sums (see the README).

Class ids follow the sorted-wnid order by default, so ILSVRC2012_ID - 1 equals torchvision's class index; a
class list can impose another order.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from array import array
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io
from sqlalchemy import select

from synsetforge.errors import InputError, SynsetforgeError
from synsetforge.hierarchy.model import Hierarchy
from synsetforge.releases.exports.common import Context
from synsetforge.releases.exports.tarout import TarOut
from synsetforge.releases.exports.voc import image_depth, voc_xml
from synsetforge.releases.names import safe_name
from synsetforge.store import schema

DEVKIT = "ILSVRC2012_devkit_t12.tar.gz"
TRAIN = "ILSVRC2012_img_train.tar"
VAL = "ILSVRC2012_img_val.tar"
TEST = "ILSVRC2012_img_test.tar"
BBOX_TRAIN = "ILSVRC2012_bbox_train_v2.tar.gz"
BBOX_VAL = "ILSVRC2012_bbox_val_v3.tgz"
META_FIELDS = (
    "ILSVRC2012_ID",
    "WNID",
    "words",
    "gloss",
    "num_children",
    "children",
    "wordnet_height",
    "num_train_images",
)
MAT_HEADER = b"MATLAB 5.0 MAT-file, written by synsetforge"


def _hierarchy(ctx: Context) -> Hierarchy | None:
    try:
        return ctx.project.hierarchy
    except SynsetforgeError:
        return None


def class_order(ctx: Context, classes: Sequence[str] | None) -> list[str]:
    """The ILSVRC classes in id order: the given list, or every release synset in sorted-wnid order."""
    if classes is None:
        order = list(ctx.classes)
    else:
        order = list(dict.fromkeys(classes))
        missing = [c for c in order if c not in ctx.label]
        if missing:
            raise InputError(f"class {missing[0]!r} has no images in release {ctx.release.name!r}")
    h = _hierarchy(ctx)
    if h is not None:
        pairs = h.overlapping_pairs([c for c in order if c in h])
        if pairs:
            a, b = pairs[0]
            raise InputError(
                f"ILSVRC classes must not overlap, but {a} is an ancestor of {b} "
                f"({len(pairs)} such pairs); pass a class list of non-overlapping synsets"
            )
    return order


def meta_records(ctx: Context, order: Sequence[str], train_counts: dict[str, int]) -> list[dict[str, Any]]:
    """The meta.mat synsets: classes (ids 1..K) then every ancestor of a class in the hierarchy."""
    h = _hierarchy(ctx)
    class_set = set(order)
    ancestors: set[str] = set()
    if h is not None:
        for c in order:
            if c in h:
                ancestors.update(a for a in h.ancestors(c) if a not in class_set)
    internal = sorted(ancestors, key=safe_name)
    ids = {s: i + 1 for i, s in enumerate([*order, *internal])}
    records = []
    for s in [*order, *internal]:
        is_class = s in class_set
        if is_class:
            children: list[int] = []
            words, gloss = ctx.words(s), str(ctx.synset_facts(s).get("gloss", ""))
        else:
            assert h is not None
            children = [ids[c] for c in h.children(s) if c in ids]
            node = h.get(s)
            words, gloss = ", ".join(x.replace("_", " ") for x in node.lemmas) or s, node.gloss
        height = h.height(s) if h is not None and s in h else 0
        records.append(
            {
                "ILSVRC2012_ID": ids[s],
                "WNID": safe_name(s),
                "words": words,
                "gloss": gloss,
                "num_children": len(children),
                "children": children,
                "wordnet_height": height,
                "num_train_images": train_counts.get(s, 0) if is_class else 0,
            }
        )
    return records


def meta_mat(records: Sequence[dict[str, Any]]) -> bytes:
    """meta.mat bytes with a fixed header (scipy writes the current time there, which we overwrite)."""
    arr = np.empty((len(records),), dtype=[(f, "O") for f in META_FIELDS])
    for i, r in enumerate(records):
        children = np.array(r["children"], dtype=np.int32).reshape(1, -1)
        if not r["children"]:
            children = np.zeros((0, 0), dtype=np.int32)
        arr[i] = (
            np.int32(r["ILSVRC2012_ID"]),
            r["WNID"],
            r["words"],
            r["gloss"],
            np.int32(r["num_children"]),
            children,
            np.int32(r["wordnet_height"]),
            np.int32(r["num_train_images"]),
        )
    buf = io.BytesIO()
    scipy.io.savemat(buf, {"synsets": arr}, format="5", oned_as="column")
    raw = bytearray(buf.getvalue())
    raw[:116] = MAT_HEADER.ljust(116, b" ")
    return bytes(raw)


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _box_string(wnid: str, boxes: Sequence[tuple[int, int, int, int]]) -> str:
    return " ".join(f"{wnid} {x1} {y1} {x2} {y2}" for x1, y1, x2, y2 in boxes)


def _write_train(ctx: Context, order: Sequence[str]) -> dict[str, int]:
    """The train archive: a tar of per-class tars, each built in a temporary file then copied in."""
    RI, IMG = schema.ReleaseItem, schema.Image
    counts: dict[str, int] = {}
    epoch = ctx.release.epoch
    with TarOut(ctx.path(TRAIN), mtime=epoch) as outer:
        for synset in sorted(order, key=lambda s: ctx.wnid[s]):
            wnid = ctx.wnid[synset]
            stmt = (
                select(RI.image_id, IMG.blob)
                .join(IMG, IMG.id == RI.image_id)
                .where(RI.release_id == ctx.release.id, RI.split == "train", RI.synset_id == synset)
                .order_by(RI.sha256)
            )
            fd, tmp_name = tempfile.mkstemp(dir=ctx.out, prefix=".tmp-", suffix=".tar")
            tmp = Path(tmp_name)
            try:
                os.close(fd)
                n = 0
                with TarOut(tmp, mtime=epoch) as inner, ctx.project.session() as s:
                    for image_id, blob in s.execute(stmt).yield_per(1000):
                        assert blob is not None  # a release only holds stored images
                        ctx.blob(blob).add_to(inner, f"{wnid}_{image_id}.JPEG")
                        n += 1
                outer.add_file(f"{wnid}.tar", tmp)
                counts[synset] = n
            finally:
                tmp.unlink(missing_ok=True)
    return counts


def export_ilsvrc(ctx: Context, classes: Sequence[str] | None = None) -> dict[str, Any]:
    """Write the ILSVRC-2012 files into ctx.out; returns counts per split and whether boxes were written."""
    order = class_order(ctx, classes)
    class_id = {s: i + 1 for i, s in enumerate(order)}
    epoch = ctx.release.epoch
    has_boxes = int(ctx.release.stats.get("boxes", {}).get("boxes", 0)) > 0
    train_counts = _write_train(ctx, order)

    # train boxes: Kaggle's CSV and ILSVRC's per-image XML
    if has_boxes:
        with (
            open(ctx.path("LOC_train_solution.csv"), "w", encoding="utf-8", newline="\n") as csv,
            TarOut(ctx.path(BBOX_TRAIN), mtime=epoch, gz=True) as bbox,
        ):
            csv.write("ImageId,PredictionString\n")
            for item in ctx.items("train"):
                if not item.boxes or item.synset not in class_id:
                    continue
                wnid = ctx.wnid[item.synset]
                name = f"{wnid}_{item.image_id}"
                csv.write(f"{name},{_box_string(wnid, item.boxes)}\n")
                bbox.add_bytes(f"{wnid}/{name}.xml", _box_xml(ctx, item, wnid, wnid, name))

    # val (labels in the devkit) and test (no labels)
    truth = array("i")
    with ExitStack() as stack:
        val = stack.enter_context(TarOut(ctx.path(VAL), mtime=epoch))
        val_csv = None
        val_bbox = None
        if has_boxes:
            val_csv = stack.enter_context(
                open(ctx.path("LOC_val_solution.csv"), "w", encoding="utf-8", newline="\n")
            )
            val_csv.write("ImageId,PredictionString\n")
            val_bbox = stack.enter_context(TarOut(ctx.path(BBOX_VAL), mtime=epoch, gz=True))
        for item in ctx.items("val"):
            if item.synset not in class_id:
                continue
            name = f"ILSVRC2012_val_{len(truth) + 1:08d}"
            ctx.blob(item.blob).add_to(val, f"{name}.JPEG")
            truth.append(class_id[item.synset])
            if item.boxes and val_csv is not None and val_bbox is not None:
                wnid = ctx.wnid[item.synset]
                val_csv.write(f"{name},{_box_string(wnid, item.boxes)}\n")
                val_bbox.add_bytes(f"val/{name}.xml", _box_xml(ctx, item, wnid, "val", name))
    tests = 0
    if int(ctx.release.stats.get("splits", {}).get("test", 0)):
        with TarOut(ctx.path(TEST), mtime=epoch) as test:
            for item in ctx.items("test"):
                if item.synset in class_id:
                    tests += 1
                    ctx.blob(item.blob).add_to(test, f"ILSVRC2012_test_{tests:08d}.JPEG")

    # devkit
    records = meta_records(ctx, order, train_counts)
    readme = (
        f"synsetforge release {ctx.release.name} in the ILSVRC-2012 devkit layout.\n"
        f"manifest sha256: {ctx.release.manifest_sha256}\n"
        f"{len(order)} classes (ILSVRC2012_ID 1..{len(order)}), {len(records) - len(order)} ancestor synsets;\n"
        f"{sum(train_counts.values())} train, {len(truth)} val, {tests} test images.\n"
        "data/meta.mat: struct array `synsets` (ILSVRC2012_ID, WNID, words, gloss, num_children, children,\n"
        "wordnet_height, num_train_images); data/ILSVRC2012_validation_ground_truth.txt: one ILSVRC2012_ID\n"
        "per validation image, in file-name order.\n"
    )
    with TarOut(ctx.path(DEVKIT), mtime=epoch, gz=True) as devkit:
        devkit.add_dir("ILSVRC2012_devkit_t12")
        devkit.add_dir("ILSVRC2012_devkit_t12/data")
        devkit.add_bytes("ILSVRC2012_devkit_t12/readme.txt", readme.encode("utf-8"))
        devkit.add_bytes("ILSVRC2012_devkit_t12/data/meta.mat", meta_mat(records))
        devkit.add_bytes(
            "ILSVRC2012_devkit_t12/data/ILSVRC2012_validation_ground_truth.txt",
            "".join(f"{i}\n" for i in truth).encode("ascii"),
        )
    ctx.write_bytes(
        "LOC_synset_mapping.txt", "".join(f"{ctx.wnid[s]} {ctx.words(s)}\n" for s in order).encode("utf-8")
    )
    archives = (
        [DEVKIT, TRAIN, VAL] + ([TEST] if tests else []) + ([BBOX_TRAIN, BBOX_VAL] if has_boxes else [])
    )
    ctx.write_bytes("MD5SUMS", "".join(f"{_md5(ctx.out / a)}  {a}\n" for a in sorted(archives)).encode())
    return {
        "classes": len(order),
        "train": sum(train_counts.values()),
        "val": len(truth),
        "test": tests,
        "boxes": has_boxes,
    }


def _box_xml(ctx: Context, item: Any, wnid: str, folder: str, name: str) -> bytes:
    """The PASCAL VOC annotation ILSVRC ships for one image's boxes."""
    return voc_xml(
        folder=folder,
        filename=name,
        width=item.width or 0,
        height=item.height or 0,
        depth=image_depth(ctx.blob(item.blob)),
        objects=[(wnid, b) for b in item.boxes],
        database="ILSVRC_2012",
    )
