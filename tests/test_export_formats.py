"""ImageFolder, WebDataset, Parquet, COCO, PASCAL VOC and datasheet exports, each read back by the tool that
defines the format (webdataset's loader, pyarrow, pycocotools; VOC with torchvision's parse_voc_xml logic),
plus the rules every export follows: byte-identical repeats, output-folder safety, sanitized names."""

from __future__ import annotations

import collections
import hashlib
import io
import json
import tarfile
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import webdataset as wds
from PIL import Image
from pycocotools.coco import COCO
from sqlalchemy import delete, select

from _release_fixtures import Builder, build_release_project
from synsetforge.errors import InputError
from synsetforge.releases import (
    FORMATS,
    SplitSpec,
    create_audit,
    create_release,
    export_release,
    record_audit_answers,
)
from synsetforge.releases.manifest import Item, iter_items
from synsetforge.releases.names import check_member, safe_name
from synsetforge.store import Project, schema


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): _sha(p.read_bytes()) for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def rel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("formats")
    project, built = build_release_project(root / "p")
    with project:
        release = create_release(project, "v1")
        items = list(iter_items(project.blobs, release.manifest_sha256))
        yield {"project": project, "release": release, "items": items, "root": root, "built": built}


def _export(rel: dict[str, Any], fmt: str, name: str | None = None, **kw: Any) -> Path:
    out = rel["root"] / (name or fmt)
    export_release(rel["project"], "v1", fmt, out, **kw)
    return out


def test_imagefolder_layout(rel: dict[str, Any]) -> None:
    out = _export(rel, "imagefolder")
    items: list[Item] = rel["items"]
    files = sorted(
        p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and p.name != "release.json"
    )
    assert files == sorted(f"{it.split}/{it.synset}/{it.synset}_{it.image_id}.jpg" for it in items)
    for it in items:
        path = out / it.split / it.synset / f"{it.synset}_{it.image_id}.jpg"
        assert _sha(path.read_bytes()) == it.blob
        with Image.open(path) as img:
            assert img.size == (it.width, it.height)
    marker = json.loads((out / "release.json").read_text())
    assert (
        marker["synsetforge_export"] == "imagefolder"
        and marker["manifest_sha256"] == rel["release"].manifest_sha256
    )
    assert [c["wnid"] for c in marker["classes"]] == sorted({it.synset for it in items})


def test_webdataset_shards_read_by_webdataset(rel: dict[str, Any]) -> None:
    target = 8 * 1024
    out = _export(rel, "webdataset", shard_size=target)
    items: list[Item] = rel["items"]
    index = json.loads((out / "index.json").read_text())
    classes = sorted({it.synset for it in items})
    for split in ("train", "val", "test"):
        expected = [it for it in items if it.split == split]
        shards = [str(out / s["name"]) for s in index["splits"][split]["shards"]]
        assert len(shards) > 1, "small target size: several shards"
        for s in index["splits"][split]["shards"]:
            size = (out / s["name"]).stat().st_size
            # a shard only exceeds the target by the tar trailer, or when it holds a single sample
            assert size <= target + 10240 or s["samples"] == 1
        ds = (
            wds.WebDataset(shards, shardshuffle=False).decode("pil").to_tuple("__key__", "jpg", "cls", "json")
        )
        samples = list(ds)
        assert len(samples) == len(expected) == index["splits"][split]["samples"]
        for (key, img, cls, meta), it in zip(samples, expected, strict=True):
            assert key == f"{it.synset}_{it.image_id}"
            assert img.size == (it.width, it.height)
            assert cls == classes.index(it.synset) == meta["label"]
            assert meta["sha256"] == it.sha256 and meta["boxes"] == [list(b) for b in it.boxes]
            assert meta["license"] == it.license and meta["source"] == it.source
    # raw bytes survive: the image member is the blob itself
    first = index["splits"]["train"]["shards"][0]["name"]
    with tarfile.open(out / first) as tar:
        jpg = next(m for m in tar.getmembers() if m.name.endswith(".jpg"))
        data = tar.extractfile(jpg).read()  # type: ignore[union-attr]
        assert _sha(data) in {it.blob for it in items}
        assert {(m.mtime, m.uid, m.uname) for m in tar.getmembers()} == {(rel["release"].epoch, 0, "")}


def test_parquet_read_by_pyarrow(rel: dict[str, Any]) -> None:
    out = _export(rel, "parquet", row_group_rows=4)
    items: list[Item] = rel["items"]
    for split in ("train", "val", "test"):
        expected = [it for it in items if it.split == split]
        f = pq.ParquetFile(out / f"{split}.parquet")
        assert f.metadata.num_rows == len(expected)
        assert f.metadata.num_row_groups == -(-len(expected) // 4)
        assert all(f.metadata.row_group(i).num_rows <= 4 for i in range(f.metadata.num_row_groups))
        meta = json.loads(f.schema_arrow.metadata[b"synsetforge"])
        assert meta["release"] == "v1" and meta["manifest_sha256"] == rel["release"].manifest_sha256
        rows = []
        for batch in f.iter_batches(batch_size=3):  # streaming read
            rows += batch.to_pylist()
        assert [r["sha256"] for r in rows] == [it.sha256 for it in expected]
        for r, it in zip(rows, expected, strict=True):
            assert _sha(r["image"]) == it.blob and r["format"] == "jpg"
            assert (
                Image.open(io.BytesIO(r["image"])).size == (r["width"], r["height"]) == (it.width, it.height)
            )
            assert r["label"] == meta["classes"].index(it.synset)
            assert r["boxes"] == [list(b) for b in it.boxes] and r["confidence"] == it.confidence
        col = f.metadata.row_group(0).column(0)
        assert col.path_in_schema == "image" and col.compression == "UNCOMPRESSED"
    table = pq.read_table(out / "train.parquet", columns=["synset", "label"])
    assert table.num_rows == sum(1 for it in items if it.split == "train")


def test_coco_read_by_pycocotools(rel: dict[str, Any]) -> None:
    out = _export(rel, "coco")
    items: list[Item] = rel["items"]
    for split in ("train", "val", "test"):
        boxed = [it for it in items if it.split == split and it.boxes]
        coco = COCO(str(out / "annotations" / f"instances_{split}.json"))
        assert len(coco.getImgIds()) == len(boxed)
        assert len(coco.getAnnIds()) == sum(len(it.boxes) for it in boxed)
        cats = {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())}
        assert sorted(cats.values()) == sorted({it.synset for it in items})
        for img_id, it in zip(sorted(coco.getImgIds()), boxed, strict=True):
            info = coco.loadImgs(img_id)[0]
            assert (info["width"], info["height"]) == (it.width, it.height)
            assert _sha((out / split / info["file_name"]).read_bytes()) == it.blob
            anns = coco.loadAnns(coco.getAnnIds(imgIds=img_id))
            got = sorted(tuple(a["bbox"]) for a in anns)
            assert got == sorted((x1, y1, x2 - x1 + 1, y2 - y1 + 1) for x1, y1, x2, y2 in it.boxes)
            assert all(
                a["area"] == a["bbox"][2] * a["bbox"][3] and cats[a["category_id"]] == it.synset for a in anns
            )
            lic = {lic["id"]: lic["name"] for lic in coco.dataset["licenses"]}
            assert lic[info["license"]] == (it.license or "unknown")


def _parse_voc_xml(node: ET.Element) -> dict[str, Any]:
    """torchvision.datasets.VOCDetection.parse_voc_xml (pytorch/vision torchvision/datasets/voc.py)."""
    voc_dict: dict[str, Any] = {}
    children = list(node)
    if children:
        def_dic: dict[str, list[Any]] = collections.defaultdict(list)
        for dc in map(_parse_voc_xml, children):
            for ind, v in dc.items():
                def_dic[ind].append(v)
        voc_dict = {node.tag: {ind: v[0] if len(v) == 1 else v for ind, v in def_dic.items()}}
    if node.text:
        text = node.text.strip()
        if not children:
            voc_dict[node.tag] = text
    return voc_dict


def test_voc_layout_read_like_torchvision(rel: dict[str, Any]) -> None:
    out = _export(rel, "voc")
    items: list[Item] = rel["items"]
    for image_set in ("train", "val", "trainval", "test"):
        splits = ("train", "val") if image_set == "trainval" else (image_set,)
        expected = [it for it in items if it.split in splits and it.boxes]
        names = [
            x.strip() for x in (out / "ImageSets" / "Main" / f"{image_set}.txt").read_text().splitlines()
        ]
        assert names == [f"{it.synset}_{it.image_id}" for it in expected]
        for name, it in zip(names, expected, strict=True):
            assert _sha((out / "JPEGImages" / f"{name}.jpg").read_bytes()) == it.blob
            target = _parse_voc_xml(ET.parse(out / "Annotations" / f"{name}.xml").getroot())["annotation"]
            assert target["filename"] == f"{name}.jpg"
            assert (int(target["size"]["width"]), int(target["size"]["height"])) == (it.width, it.height)
            assert target["size"]["depth"] == "3"
            objects = target["object"] if isinstance(target["object"], list) else [target["object"]]
            boxes = sorted(
                tuple(int(o["bndbox"][k]) for k in ("xmin", "ymin", "xmax", "ymax")) for o in objects
            )
            # PASCAL VOC pixels are 1-based
            assert boxes == sorted((x1 + 1, y1 + 1, x2 + 1, y2 + 1) for x1, y1, x2, y2 in it.boxes)
            assert {o["name"] for o in objects} == {it.synset}


def test_datasheet_is_filled_from_the_release(rel: dict[str, Any]) -> None:
    project: Project = rel["project"]
    st = rel["release"].stats
    text = (_export(rel, "datasheet") / "DATASHEET.md").read_text()
    assert text.startswith("# Datasheet: v1")
    assert rel["release"].manifest_sha256 in text
    assert f"{st['images']:,} labelled images" in text and f"over {st['synsets']:,} synsets" in text
    for lic in st["licenses"]:
        assert f"| {lic['license']} | {lic['images']:,} |" in text
    assert "| synthetic-1 | synthetic |" in text and "recorded-decisions" in text
    assert "No expert audit yet" in text
    assert "images have no recorded licence" in text  # the fixture leaves some licences empty
    assert "true precision 90.0%" in text  # ground truth: one negative in ten per synset
    # after an audit, the measured precision appears, with its interval
    create_audit(project, "v1", per_synset=3)
    with project.session() as s:
        tasks = list(s.scalars(select(schema.Task.id).where(schema.Task.kind == "audit")))
        items = {
            t: list(s.scalars(select(schema.TaskItem.candidate_id).where(schema.TaskItem.task_id == t)))
            for t in tasks
        }
    for t, cands in items.items():
        record_audit_answers(project, t, dict.fromkeys(cands, True))
    text = (_export(rel, "datasheet", "datasheet2") / "DATASHEET.md").read_text()
    assert (
        "Estimated precision **100.0%**, 95% interval" in text and "Expert audit of 12 sampled images" in text
    )


def test_every_export_is_byte_identical_when_repeated(rel: dict[str, Any]) -> None:
    for fmt in FORMATS:
        if fmt == "ilsvrc":
            continue  # covered in test_export_ilsvrc
        a = _export(rel, fmt, f"{fmt}-a", shard_size=16 * 1024)
        b = _export(rel, fmt, f"{fmt}-b", shard_size=16 * 1024)
        assert _digest(a) == _digest(b), fmt
        assert not [p for p in a.rglob(".tmp-*")], fmt  # no temporary files left behind


def test_output_folder_rules(rel: dict[str, Any], tmp_path: Path) -> None:
    project = rel["project"]
    out = tmp_path / "out"
    export_release(project, "v1", "imagefolder", out)
    with pytest.raises(InputError, match=r"not empty.*--force"):
        export_release(project, "v1", "webdataset", out)
    result = export_release(project, "v1", "webdataset", out, force=True)
    assert not (out / "train").exists() and (out / "index.json").exists() and result.files > 1
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    with pytest.raises(InputError, match="refusing to clear"):
        export_release(project, "v1", "parquet", foreign, force=True)
    assert (foreign / "thesis.tex").read_text() == "precious"
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="not a folder"):
        export_release(project, "v1", "parquet", tmp_path / "file")
    with pytest.raises(InputError, match="unknown export format"):
        export_release(project, "v1", "tfrecord", tmp_path / "t")
    with pytest.raises(InputError, match="shard-size"):
        export_release(project, "v1", "webdataset", tmp_path / "w", shard_size=10)


def test_formats_needing_boxes_refuse_a_release_without_boxes(tmp_path: Path) -> None:
    project, _ = build_release_project(tmp_path / "p", per_synset=2, wnids=("n01440764", "n02102040"))
    with project:
        create_release(project, "nobox", box_statuses=("none",))
        with project.session() as s:
            s.execute(delete(schema.BoxRow))
        create_release(project, "empty")
        for fmt in ("coco", "voc"):
            with pytest.raises(InputError, match="has no boxes"):
                export_release(project, "empty", fmt, tmp_path / fmt)
        out = tmp_path / "ilsvrc"
        export_release(project, "empty", "ilsvrc", out)
        assert not (out / "LOC_val_solution.csv").exists() and (out / "LOC_synset_mapping.txt").exists()


TAXONOMY = """\
- id: root
- id: ../../escape
  parents: root
- id: a/b
  parents: root
- id: /abs.olute
  parents: root
- id: plain
  parents: root
"""


def test_archive_and_file_names_cannot_escape_the_output(tmp_path: Path) -> None:
    tax = tmp_path / "tax.yaml"
    tax.write_text(TAXONOMY)
    ids = ["../../escape", "a/b", "/abs.olute", "plain"]
    with Project.init(tmp_path / "p", taxonomy=tax) as project:
        project.add_synsets(ids)
        b = Builder(project)
        src = b.source("s", "folder")
        for sid in ids:
            for _ in range(4):
                cid = b.candidate(sid, b.image(), src, license="../../etc/passwd")
                b.box(cid, (1, 1, 8, 8))
        create_release(project, "v1", split=SplitSpec(1, 1))
        names = {safe_name(s) for s in ids}
        assert all("/" not in n and ".." not in n and not n.startswith((".", "-")) for n in names)
        assert len(names) == 4 and "plain" in names
        for fmt in FORMATS:
            out = tmp_path / "exports" / fmt
            export_release(project, "v1", fmt, out)
            for p in out.rglob("*"):
                assert p.resolve().is_relative_to(out.resolve()), p
                assert ".." not in p.relative_to(out).parts
            for archive in [*out.rglob("*.tar"), *out.rglob("*.tar.gz"), *out.rglob("*.tgz")]:
                with tarfile.open(archive) as tar:
                    for m in tar.getmembers():
                        check_member(m.name)
                        assert m.isfile() or m.isdir()
                        if m.name.endswith(".tar"):
                            with tarfile.open(fileobj=tar.extractfile(m)) as inner:  # type: ignore[arg-type]
                                for n in inner.getnames():
                                    check_member(n)
                                    assert "/" not in n
        tree = sorted(p.name for p in (tmp_path / "exports" / "imagefolder" / "train").iterdir())
        assert tree == sorted(names)
        # the original ids survive where they are data, not paths
        meta = json.loads((tmp_path / "exports" / "imagefolder" / "release.json").read_text())
        assert sorted(c["synset"] for c in meta["classes"]) == sorted(ids)
    for bad in ("../x", "/abs", "a/../b", "a//b", "", "a\\b", "./a"):
        with pytest.raises(InputError):
            check_member(bad)
