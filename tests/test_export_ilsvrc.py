"""The ILSVRC-2012 export, read back the way torchvision's ``datasets.ImageNet`` reads it.

torchvision cannot be imported next to this project's torch build, so `_torchvision_parse` below replicates
``torchvision/datasets/imagenet.py`` (pytorch/vision): ``parse_devkit_archive`` (extract the devkit into a
temporary folder, ``scipy.io.loadmat(ILSVRC2012_devkit_t12/data/meta.mat, squeeze_me=True)['synsets']``,
``nums_children = list(zip(*meta))[4]``, keep the synsets with ``num_children == 0``, ``idcs, wnids, classes =
list(zip(*meta))[:3]``, ``classes = [tuple(clss.split(', ')) ...]``, val ids = ``int(line)`` per line of
``ILSVRC2012_validation_ground_truth.txt``), ``parse_train_archive`` (extract ``ILSVRC2012_img_train.tar``
into ``train/``, then every inner archive into ``os.path.splitext(archive)[0]``) and ``parse_val_archive``
(extract ``ILSVRC2012_img_val.tar`` into ``val/``, ``sorted`` the files, ``mkdir`` one folder per wnid and
move file i into the folder of val wnid i); then ``datasets.ImageFolder`` (``folder.py``: classes = sorted
sub-folder names, files walked in sorted order, extensions matched case-insensitively). The one step left
out is the MD5 check against the official archives' sums, which no custom release can pass (the export's
``MD5SUMS`` is what a user registers instead, see the README).
"""

from __future__ import annotations

import csv
import hashlib
import os
import shutil
import tarfile
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import scipy.io

from _release_fixtures import build_release_project
from synsetforge.errors import InputError
from synsetforge.releases import create_release, export_release, get_release
from synsetforge.releases.exports.ilsvrc import META_FIELDS
from synsetforge.releases.manifest import Item, iter_items

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def _extract(archive: str, to: str, remove_finished: bool = False) -> None:
    with tarfile.open(archive) as tar:
        tar.extractall(to, filter="data")
    if remove_finished:
        os.remove(archive)


def _torchvision_parse(root: str) -> dict[str, Any]:
    # parse_devkit_archive
    with tempfile.TemporaryDirectory() as tmp_dir:
        _extract(os.path.join(root, "ILSVRC2012_devkit_t12.tar.gz"), tmp_dir)
        devkit_root = os.path.join(tmp_dir, "ILSVRC2012_devkit_t12")
        meta = scipy.io.loadmat(os.path.join(devkit_root, "data", "meta.mat"), squeeze_me=True)["synsets"]
        nums_children = list(zip(*meta, strict=True))[4]
        meta = [meta[idx] for idx, num_children in enumerate(nums_children) if num_children == 0]
        idcs, wnids, classes = list(zip(*meta, strict=True))[:3]
        classes = [tuple(clss.split(", ")) for clss in classes]
        idx_to_wnid = dict(zip(idcs, wnids, strict=True))
        wnid_to_classes = dict(zip(wnids, classes, strict=True))
        with open(os.path.join(devkit_root, "data", "ILSVRC2012_validation_ground_truth.txt")) as txtfh:
            val_idcs = [int(val_idx) for val_idx in txtfh.readlines()]
        val_wnids = [idx_to_wnid[idx] for idx in val_idcs]
    # parse_train_archive
    train_root = os.path.join(root, "train")
    _extract(os.path.join(root, "ILSVRC2012_img_train.tar"), train_root)
    for archive in [os.path.join(train_root, a) for a in os.listdir(train_root)]:
        _extract(archive, os.path.splitext(archive)[0], remove_finished=True)
    # parse_val_archive
    val_root = os.path.join(root, "val")
    _extract(os.path.join(root, "ILSVRC2012_img_val.tar"), val_root)
    images = sorted(os.path.join(val_root, image) for image in os.listdir(val_root))
    for wnid in set(val_wnids):
        os.mkdir(os.path.join(val_root, wnid))
    for wnid, img_file in zip(val_wnids, images, strict=False):
        shutil.move(img_file, os.path.join(val_root, wnid, os.path.basename(img_file)))
    return {"wnid_to_classes": wnid_to_classes, "val_wnids": val_wnids, "idx_to_wnid": idx_to_wnid}


def _image_folder(directory: str) -> tuple[list[str], list[tuple[str, int]]]:
    classes = sorted(entry.name for entry in os.scandir(directory) if entry.is_dir())
    samples = []
    for index, target_class in enumerate(classes):
        for root, _, fnames in sorted(os.walk(os.path.join(directory, target_class), followlinks=True)):
            for fname in sorted(fnames):
                if fname.lower().endswith(IMG_EXTENSIONS):
                    samples.append((os.path.join(root, fname), index))
    return classes, samples


def _sha(path: Path | str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("ilsvrc")
    project, _ = build_release_project(root / "p")
    with project:
        rel = create_release(project, "v1")
        export_release(project, "v1", "ilsvrc", root / "out")
        items = list(iter_items(project.blobs, rel.manifest_sha256))
        yield {"project": project, "release": rel, "items": items, "out": root / "out", "root": root}


def test_archives_and_files_are_named_as_ilsvrc(exported: dict[str, Any]) -> None:
    names = sorted(p.name for p in exported["out"].iterdir())
    assert names == sorted(
        [
            "ILSVRC2012_devkit_t12.tar.gz",
            "ILSVRC2012_img_train.tar",
            "ILSVRC2012_img_val.tar",
            "ILSVRC2012_img_test.tar",
            "ILSVRC2012_bbox_train_v2.tar.gz",
            "ILSVRC2012_bbox_val_v3.tgz",
            "LOC_synset_mapping.txt",
            "LOC_train_solution.csv",
            "LOC_val_solution.csv",
            "MD5SUMS",
            "release.json",
        ]
    )
    with tarfile.open(exported["out"] / "ILSVRC2012_img_train.tar") as tar:
        members = tar.getmembers()
        assert all(m.isfile() and m.name.endswith(".tar") and "/" not in m.name for m in members)
        assert {(m.mtime, m.uid, m.gid, m.uname, m.gname) for m in members} == {
            (exported["release"].epoch, 0, 0, "", "")
        }
    with tarfile.open(exported["out"] / "ILSVRC2012_img_val.tar") as tar:
        names = tar.getnames()
    assert names == [f"ILSVRC2012_val_{i:08d}.JPEG" for i in range(1, len(names) + 1)]
    with tarfile.open(exported["out"] / "ILSVRC2012_img_test.tar") as tar:
        tests = tar.getnames()
    assert tests == [f"ILSVRC2012_test_{i:08d}.JPEG" for i in range(1, len(tests) + 1)]
    assert len(tests) == sum(1 for it in exported["items"] if it.split == "test")
    for line in (exported["out"] / "MD5SUMS").read_text().splitlines():
        digest, name = line.split("  ")
        assert hashlib.md5((exported["out"] / name).read_bytes(), usedforsecurity=False).hexdigest() == digest


def test_torchvision_imagenet_parses_the_export(exported: dict[str, Any], tmp_path: Path) -> None:
    root = tmp_path / "imagenet"
    shutil.copytree(exported["out"], root)
    parsed = _torchvision_parse(str(root))
    items: list[Item] = exported["items"]
    wnids = sorted({it.synset for it in items})  # WordNet ids are their own safe names
    assert sorted(parsed["wnid_to_classes"]) == wnids
    assert parsed["wnid_to_classes"]["n01440764"] == ("tench", "Tinca tinca")
    # train: ImageFolder over train/ finds every train item under its class, bytes intact
    classes, samples = _image_folder(str(root / "train"))
    assert classes == wnids
    want = sorted((it.synset, it.blob) for it in items if it.split == "train")
    got = sorted((classes[label], _sha(path)) for path, label in samples)
    assert got == want
    assert all(Path(p).name == f"{classes[t]}_{Path(p).stem.split('_')[1]}.JPEG" for p, t in samples)
    # val: files moved into the folder of their ground-truth class
    classes_v, samples_v = _image_folder(str(root / "val"))
    got_v = sorted((classes_v[label], _sha(path)) for path, label in samples_v)
    assert got_v == sorted((it.synset, it.blob) for it in items if it.split == "val")
    # the val order is the manifest order (content hash), not grouped by class
    assert parsed["val_wnids"] == [it.synset for it in items if it.split == "val"]
    # class index (sorted wnid) == ILSVRC2012_ID - 1 by default
    assert {wnid: idx - 1 for idx, wnid in parsed["idx_to_wnid"].items()} == {
        w: i for i, w in enumerate(wnids)
    }


def test_meta_mat_fields_read_back_with_scipy(exported: dict[str, Any], tmp_path: Path) -> None:
    with tarfile.open(exported["out"] / "ILSVRC2012_devkit_t12.tar.gz") as tar:
        tar.extractall(tmp_path, filter="data")
        names = tar.getnames()
    assert "ILSVRC2012_devkit_t12/data/meta.mat" in names
    mat = scipy.io.loadmat(tmp_path / "ILSVRC2012_devkit_t12/data/meta.mat", squeeze_me=True)
    synsets = mat["synsets"]
    assert synsets.dtype.names == META_FIELDS
    assert mat["__header__"].startswith(b"MATLAB 5.0 MAT-file, written by synsetforge")
    rel = exported["release"]
    h = exported["project"].hierarchy
    leaves = [s for s in synsets if s["num_children"] == 0]
    internal = [s for s in synsets if s["num_children"] > 0]
    k = len(rel.synset_ids)
    assert [int(s["ILSVRC2012_ID"]) for s in synsets[:k]] == list(range(1, k + 1))
    assert [s["WNID"] for s in leaves] == sorted(rel.synset_ids)  # leaves first, sorted wnid
    assert {s["WNID"] for s in internal} == {a for c in rel.synset_ids for a in h.ancestors(c)}
    ids = {int(s["ILSVRC2012_ID"]): s["WNID"] for s in synsets}
    train_counts = {row["synset"]: row["train"] for row in rel.stats["per_synset"]}
    for s in synsets:
        wnid = str(s["WNID"])
        assert int(s["wordnet_height"]) == h.height(wnid)
        children = [
            int(c) for c in (s["children"].ravel() if hasattr(s["children"], "ravel") else [s["children"]])
        ]
        assert int(s["num_children"]) == len(children)
        assert sorted(ids[c] for c in children) == sorted(c for c in h.children(wnid) if c in ids.values())
        assert int(s["num_train_images"]) == train_counts.get(wnid, 0)
        assert s["words"] == ", ".join(x.replace("_", " ") for x in h.get(wnid).lemmas)
    assert "n00001740" in {s["WNID"] for s in internal}  # entity, the root
    truth = (
        (tmp_path / "ILSVRC2012_devkit_t12/data/ILSVRC2012_validation_ground_truth.txt").read_text().split()
    )
    val_items = [it for it in exported["items"] if it.split == "val"]
    assert [ids[int(x)] for x in truth] == [it.synset for it in val_items]


def test_kaggle_loc_files_and_bbox_xml(exported: dict[str, Any], tmp_path: Path) -> None:
    out: Path = exported["out"]
    items: list[Item] = exported["items"]
    rel = exported["release"]
    mapping = (out / "LOC_synset_mapping.txt").read_text().splitlines()
    assert mapping[0] == "n01440764 tench, Tinca tinca"
    assert [line.split(" ", 1)[0] for line in mapping] == sorted(rel.synset_ids)
    train_boxes = {f"{it.synset}_{it.image_id}": it for it in items if it.split == "train" and it.boxes}
    val_items = [it for it in items if it.split == "val"]
    val_boxes = {f"ILSVRC2012_val_{i:08d}": it for i, it in enumerate(val_items, 1) if it.boxes}
    assert train_boxes and val_boxes, "the fixture should put boxed images in train and val"
    for name, expected in (("LOC_train_solution.csv", train_boxes), ("LOC_val_solution.csv", val_boxes)):
        with open(out / name, newline="") as f:
            rows = list(csv.DictReader(f))
        assert list(rows[0]) == ["ImageId", "PredictionString"]
        got = {}
        for row in rows:
            parts = row["PredictionString"].split()
            boxes = [tuple(int(v) for v in parts[i + 1 : i + 5]) for i in range(0, len(parts), 5)]
            assert {parts[i] for i in range(0, len(parts), 5)} == {expected[row["ImageId"]].synset}
            got[row["ImageId"]] = sorted(boxes)
        assert got == {k: sorted(v.boxes) for k, v in expected.items()}
    # VOC-style XML per image, as in ILSVRC's bbox archives
    with tarfile.open(out / "ILSVRC2012_bbox_val_v3.tgz") as tar:
        tar.extractall(tmp_path / "bbox_val", filter="data")
    for name, it in val_boxes.items():
        root = ET.parse(tmp_path / "bbox_val" / "val" / f"{name}.xml").getroot()
        assert root.findtext("filename") == name
        assert int(root.findtext("size/width") or 0) == it.width
        objects = sorted(
            tuple(int(o.findtext(f"bndbox/{k}") or -1) for k in ("xmin", "ymin", "xmax", "ymax"))
            for o in root.findall("object")
        )
        assert objects == sorted(it.boxes) and {o.findtext("name") for o in root.findall("object")} == {
            it.synset
        }
    with tarfile.open(out / "ILSVRC2012_bbox_train_v2.tar.gz") as tar:
        assert sorted(tar.getnames()) == sorted(f"{it.synset}/{name}.xml" for name, it in train_boxes.items())


def test_repeated_export_is_byte_identical(exported: dict[str, Any]) -> None:
    again = exported["root"] / "again"
    export_release(exported["project"], "v1", "ilsvrc", again)
    for path in sorted(exported["out"].iterdir()):
        assert (again / path.name).read_bytes() == path.read_bytes(), path.name


def test_a_class_list_sets_the_ilsvrc_ids(exported: dict[str, Any], tmp_path: Path) -> None:
    rel = exported["release"]
    order = list(reversed(rel.synset_ids))
    export_release(exported["project"], "v1", "ilsvrc", tmp_path / "o", classes=order)
    parsed = _torchvision_parse(str(tmp_path / "o"))
    assert [parsed["idx_to_wnid"][i] for i in range(1, len(order) + 1)] == order
    assert parsed["val_wnids"] == [it.synset for it in exported["items"] if it.split == "val"]
    with pytest.raises(InputError, match="has no images"):
        export_release(exported["project"], "v1", "ilsvrc", tmp_path / "o2", classes=["n02084071"])


def test_overlapping_classes_are_refused(tmp_path: Path) -> None:
    # dog (n02084071) is an ancestor of English springer (n02102040)
    project, _ = build_release_project(tmp_path / "p", per_synset=3, wnids=("n02084071", "n02102040"))
    with project:
        create_release(project, "v1")
        with pytest.raises(InputError, match=r"must not overlap.*n02084071 is an ancestor of n02102040"):
            export_release(project, "v1", "ilsvrc", tmp_path / "out")
        # the other formats have no such rule
        export_release(project, "v1", "imagefolder", tmp_path / "folder")
        assert get_release(project, "v1").stats["synsets"] == 2
