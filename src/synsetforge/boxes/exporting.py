"""`export_boxes`: the project's accepted boxes, as they are now, as COCO JSON, VOC XML or an ILSVRC CSV.

Why beside the release exports: a release freezes its boxes (and exports them with its images); this is the
live view for people who annotate and want their boxes back in their own tools. It writes annotations only,
in pixels of the ORIGINAL image (the files the user has), and names each image by its folder-source path when
it came from a folder (so the files line up with theirs) and otherwise by ``<sha256>.<ext>`` (which
`boxes import` matches in any project holding the same bytes).

Accepted = crowd boxes whose status is "good", plus imported and synthetic boxes not marked "bad", on
candidates whose decision is "accepted"; gold boxes (known answers for checking workers) never.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import or_, select

from synsetforge.boxes.formats import CSV_HEADER, FORMATS
from synsetforge.errors import InputError
from synsetforge.releases.exports.voc import voc_xml
from synsetforge.releases.names import check_member, safe_name
from synsetforge.store import schema
from synsetforge.store.project import Project

TRUSTED = ("synthetic", "import")
_EXT = {"JPEG": "jpg", "PNG": "png", "GIF": "gif", "BMP": "bmp", "TIFF": "tif", "WEBP": "webp"}


@dataclass
class LiveImage:
    """One image with its accepted boxes, per synset, in original-image pixels."""

    image_id: int
    sha256: str
    file_name: str
    width: int
    height: int
    boxes: dict[str, list[tuple[int, int, int, int]]] = field(default_factory=dict)


def accepted_boxes(project: Project) -> tuple[list[LiveImage], dict[str, list[str]]]:
    """The images with accepted boxes (image id order) and the synsets' lemmas (for category words)."""
    B, C, IMG, SRC = schema.BoxRow, schema.Candidate, schema.Image, schema.Source
    stmt = (
        select(
            IMG.id,
            IMG.sha256,
            IMG.orig_width,
            IMG.orig_height,
            IMG.width,
            IMG.height,
            IMG.orig_format,
            C.synset_id,
            C.key,
            SRC.kind,
            B.x1,
            B.y1,
            B.x2,
            B.y2,
        )
        .join(C, C.id == B.candidate_id)
        .join(IMG, IMG.id == C.image_id)
        .join(SRC, SRC.id == C.source_id)
        .where(
            C.decision == "accepted",
            B.origin != "gold",
            or_(B.status == "good", B.origin.in_(TRUSTED) & (B.status != "bad")),
        )
        .order_by(IMG.id, C.synset_id, B.y1, B.x1, B.y2, B.x2)
    )
    images: dict[int, LiveImage] = {}
    folder_name: dict[int, str] = {}
    with project.session() as s:
        for row in s.execute(stmt).yield_per(2000):
            iid = int(row.id)
            img = images.get(iid)
            if img is None:
                ext = _EXT.get((row.orig_format or "").upper(), (row.orig_format or "jpg").lower())
                img = images[iid] = LiveImage(
                    iid,
                    row.sha256,
                    f"{row.sha256}.{ext}",
                    int(row.orig_width or row.width or 0),
                    int(row.orig_height or row.height or 0),
                )
            if row.kind == "folder" and iid not in folder_name and row.key:
                folder_name[iid] = row.key
            box = (int(row.x1), int(row.y1), int(row.x2), int(row.y2))
            synset_boxes = img.boxes.setdefault(row.synset_id, [])
            if box not in synset_boxes:
                synset_boxes.append(box)
        synsets = {sid for img in images.values() for sid in img.boxes}
        lemmas = {
            sid: list(lem or [])
            for sid, lem in s.execute(select(schema.Synset.id, schema.Synset.lemmas))
            if sid in synsets
        }
    # a folder image keeps its own path when no other exported image has the same one
    taken: dict[str, int] = defaultdict(int)
    for name in folder_name.values():
        taken[name] += 1
    for iid, name in folder_name.items():
        if taken[name] == 1:
            images[iid].file_name = name
    return [images[k] for k in sorted(images)], lemmas


def _classes(lemmas: dict[str, list[str]]) -> list[str]:
    return sorted(lemmas, key=safe_name)


def _words(lemmas: list[str], synset: str) -> str:
    return ", ".join(str(x).replace("_", " ") for x in lemmas) or synset


def coco_json(images: list[LiveImage], lemmas: dict[str, list[str]]) -> dict[str, Any]:
    """A COCO detection document (bbox = [x1, y1, x2 - x1 + 1, y2 - y1 + 1] in original pixels)."""
    classes = _classes(lemmas)
    cat = {s: i + 1 for i, s in enumerate(classes)}
    out_images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for n, img in enumerate(images, start=1):
        out_images.append(
            {
                "id": n,
                "file_name": img.file_name,
                "width": img.width,
                "height": img.height,
                "sha256": img.sha256,
                "synsetforge_image_id": img.image_id,
            }
        )
        for synset in sorted(img.boxes):
            for x1, y1, x2, y2 in img.boxes[synset]:
                w, h = x2 - x1 + 1, y2 - y1 + 1
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": n,
                        "category_id": cat[synset],
                        "bbox": [x1, y1, w, h],
                        "area": w * h,
                        "iscrowd": 0,
                        "segmentation": [],
                    }
                )
    return {
        "info": {
            "description": "synsetforge live box export (not a release: boxes as accepted now)",
            "date_created": datetime.now(UTC).isoformat(timespec="seconds"),
        },
        "licenses": [],
        "images": out_images,
        "annotations": annotations,
        "categories": [
            {
                "id": cat[s],
                "name": safe_name(s),
                "synset": s,
                "supercategory": "",
                "words": _words(lemmas[s], s),
            }
            for s in classes
        ],
    }


def csv_text(images: list[LiveImage]) -> str:
    """``LOC_*_solution.csv`` layout: one row per image, ``wnid x1 y1 x2 y2`` per box (0-based inclusive)."""
    lines = [CSV_HEADER]
    for img in images:
        image_id = img.file_name.rsplit("/", 1)[-1].rsplit(".", 1)[0]
        parts = [
            f"{safe_name(sy)} {x1} {y1} {x2} {y2}"
            for sy in sorted(img.boxes)
            for x1, y1, x2, y2 in img.boxes[sy]
        ]
        lines.append(f"{_csv_id(image_id, img)},{' '.join(parts)}")
    return "\n".join(lines) + "\n"


def _csv_id(image_id: str, img: LiveImage) -> str:
    """An ImageId that survives the CSV (no comma, no spaces); else the content hash."""
    return image_id if image_id and not any(ch in image_id for ch in ', \t\r\n"') else img.sha256


def voc_files(images: list[LiveImage]) -> list[tuple[str, bytes]]:
    """(member name, VOC XML) per image, 1-based inclusive coordinates like the VOC devkit."""
    out = []
    used: set[str] = set()
    for img in images:
        name = _xml_name(img)
        name = img.sha256 if name in used else name  # a.jpg and a.png: the second by its hash
        used.add(name)
        objects = [(safe_name(sy), box) for sy in sorted(img.boxes) for box in img.boxes[sy]]
        folder, _, filename = img.file_name.rpartition("/")
        xml = voc_xml(
            folder=folder or "images",
            filename=filename,
            width=img.width,
            height=img.height,
            depth=3,
            objects=objects,
            database="synsetforge live box export",
            offset=1,
        )
        out.append((f"Annotations/{name}.xml", xml))
    return out


def _xml_name(img: LiveImage) -> str:
    """The image's own path without its extension (folder sources), else its content hash."""
    stem = img.file_name.rsplit(".", 1)[0]
    try:
        return check_member(stem) if stem != img.sha256 and stem.isprintable() else img.sha256
    except InputError:
        return img.sha256


@dataclass(frozen=True)
class ExportResult:
    format: str
    path: Path | None
    images: int
    boxes: int


def export_bytes(project: Project, fmt: str) -> tuple[bytes, str, int, int]:
    """(file bytes, media type, images, boxes): COCO JSON, the CSV, or a zip of VOC XML files."""
    if fmt not in FORMATS:
        raise InputError(f"unknown box format {fmt!r}; choose one of {', '.join(FORMATS)}")
    images, lemmas = accepted_boxes(project)
    data, media = _render(fmt, images, lemmas)
    return data, media, len(images), sum(len(b) for img in images for b in img.boxes.values())


def _render(fmt: str, images: list[LiveImage], lemmas: dict[str, list[str]]) -> tuple[bytes, str]:
    if fmt == "coco":
        data = (json.dumps(coco_json(images, lemmas), indent=1, ensure_ascii=False) + "\n").encode("utf-8")
        return data, "application/json"
    if fmt == "ilsvrc-csv":
        return csv_text(images).encode("utf-8"), "text/csv"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, xml in voc_files(images):
            zf.writestr(check_member(name), xml)
    return buf.getvalue(), "application/zip"


def export_boxes(project: Project, fmt: str, out: Path, *, force: bool = False) -> ExportResult:
    """Write the accepted boxes: a JSON (coco) or CSV (ilsvrc-csv) file, or a folder of XML files (voc)."""
    if fmt not in FORMATS:
        raise InputError(f"unknown box format {fmt!r}; choose one of {', '.join(FORMATS)}")
    images, lemmas = accepted_boxes(project)
    boxes = sum(len(b) for img in images for b in img.boxes.values())
    if fmt == "voc":
        if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not force)):
            raise InputError(f"{out} must be an empty folder (or pass --force to write into it)")
        for name, xml in voc_files(images):
            target = out / check_member(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(xml)
        return ExportResult(fmt, out, len(images), boxes)
    if out.exists() and (out.is_dir() or not force):
        raise InputError(f"{out} exists; pass --force to replace the file")
    data, _ = _render(fmt, images, lemmas)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    return ExportResult(fmt, out, len(images), boxes)
