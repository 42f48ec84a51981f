"""Reading box files other tools write: COCO detection JSON, PASCAL VOC XML, ILSVRC's LOC CSV.

Why a separate module: parsing knows nothing about the project. Each reader turns one file's bytes into
`RawBox` records (the image as the file names it, the category as the file spells it, and the box as
continuous pixel edges in the file's own image) or raises a one-line `InputError` naming the place (file,
line/column, JSON path or object number). `boxes.importing` then matches images and categories and stores.

Coordinate conventions, all mapped to edges ``[x1, x2) x [y1, y2)`` (pixel i covers [i, i + 1)):

* COCO ``bbox = [x, y, w, h]`` floats: edges ``x, x + w``;
* VOC ``xmin..xmax`` 1-based inclusive: edges ``xmin - 1, xmax``;
* ILSVRC CSV ``synset x1 y1 x2 y2`` 0-based inclusive (as the store and LOC_*_solution.csv): ``x1, x2 + 1``.
"""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

from synsetforge.errors import InputError

MAX_RECORDS = 200_000
"""Boxes one import may hold (a larger file is refused before anything is stored)."""

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True, slots=True)
class FileImage:
    """An image as a box file names it."""

    ref: str  # file name, path or ImageId as written in the file
    sha256: str | None = None
    size: tuple[int, int] | None = None  # (width, height) the file's coordinates refer to


@dataclass(frozen=True, slots=True)
class RawBox:
    """One box record of a file, before it is matched to the project."""

    place: str  # where in the file: "annotation 17", "object 2", "line 5 box 2"
    image: FileImage
    category: str
    edges: tuple[float, float, float, float]  # x1, y1, x2, y2 as continuous edges in the file's pixels
    hint: str | None = None  # a synset id the file states beside the category name (our own exports)
    skip: str | None = None  # a reason to skip known from the file alone
    note: str = ""  # kept in origin_ref (e.g. "difficult")
    file: str = ""  # the XML file of a VOC record (a folder holds many)

    @property
    def where(self) -> str:
        """The place as reports show it: file and record."""
        return f"{self.file} {self.place}" if self.file else self.place


def sha256_of(ref: str) -> str | None:
    """The content hash a name carries: ``<64 hex>`` or ``<64 hex>.<ext>`` (how exports name images)."""
    stem = ref.replace("\\", "/").rsplit("/", 1)[-1].split(".", 1)[0].lower()
    return stem if _SHA256.match(stem) else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    v = float(value)
    return v if math.isfinite(v) else None


def _check_count(name: str, n: int) -> None:
    if n > MAX_RECORDS:
        raise InputError(f"{name}: more than {MAX_RECORDS:,} boxes; split the file")


def _text(name: str, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{name} byte {exc.start}: not UTF-8 text") from None


# -- COCO -------------------------------------------------------------------------------------------


def _no_constants(token: str) -> Any:
    raise ValueError(f"{token} is not a number JSON allows")


def _coco_list(name: str, doc: dict[str, Any], key: str) -> list[Any]:
    value = doc.get(key)
    if not isinstance(value, list):
        raise InputError(
            f"{name}: {key}: expected a list (COCO detection files have images, annotations, categories)"
        )
    return value


def _coco_int(name: str, path: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{name}: {path}: expected an integer, got {json.dumps(value)[:40]}")
    return value


def parse_coco(name: str, data: bytes) -> list[RawBox]:
    """The boxes of a COCO detection file (``instances_*.json``)."""
    text = _text(name, data)
    try:
        doc = json.loads(text, parse_constant=_no_constants)
    except json.JSONDecodeError as exc:
        raise InputError(f"{name} line {exc.lineno} column {exc.colno}: invalid JSON: {exc.msg}") from None
    except (ValueError, RecursionError) as exc:
        raise InputError(f"{name}: invalid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise InputError(f"{name}: $: expected a JSON object with images, annotations and categories")
    categories: dict[int, tuple[str, str | None]] = {}
    for i, cat in enumerate(_coco_list(name, doc, "categories")):
        path = f"categories[{i}]"
        if not isinstance(cat, dict):
            raise InputError(f"{name}: {path}: expected an object")
        cid = _coco_int(name, f"{path}.id", cat.get("id"))
        cname = cat.get("name")
        if not isinstance(cname, str) or not cname.strip():
            raise InputError(f"{name}: {path}.name: expected a non-empty string")
        if cid in categories:
            raise InputError(f"{name}: {path}.id: category id {cid} appears twice")
        hint = cat.get("synset")
        categories[cid] = (cname.strip(), hint if isinstance(hint, str) and hint else None)
    images: dict[int, FileImage] = {}
    for i, img in enumerate(_coco_list(name, doc, "images")):
        path = f"images[{i}]"
        if not isinstance(img, dict):
            raise InputError(f"{name}: {path}: expected an object")
        iid = _coco_int(name, f"{path}.id", img.get("id"))
        file_name = img.get("file_name")
        if not isinstance(file_name, str) or not file_name.strip():
            raise InputError(f"{name}: {path}.file_name: expected a non-empty string")
        if iid in images:
            raise InputError(f"{name}: {path}.id: image id {iid} appears twice")
        w, h = img.get("width"), img.get("height")
        size = None
        if w is not None or h is not None:
            w, h = _coco_int(name, f"{path}.width", w), _coco_int(name, f"{path}.height", h)
            if w <= 0 or h <= 0:
                raise InputError(f"{name}: {path}: width and height must be positive, got {w}x{h}")
            size = (w, h)
        sha = img.get("sha256")
        sha = sha.lower() if isinstance(sha, str) and _SHA256.match(sha.lower()) else sha256_of(file_name)
        images[iid] = FileImage(file_name.strip(), sha, size)
    annotations = _coco_list(name, doc, "annotations")
    _check_count(name, len(annotations))
    out: list[RawBox] = []
    for i, ann in enumerate(annotations):
        path = f"annotations[{i}]"
        if not isinstance(ann, dict):
            raise InputError(f"{name}: {path}: expected an object")
        aid = ann.get("id")
        label = f"annotation {aid}" if isinstance(aid, int) and not isinstance(aid, bool) else path
        image_id = _coco_int(name, f"{path}.image_id", ann.get("image_id"))
        if image_id not in images:
            raise InputError(f"{name}: {path}.image_id: no image with id {image_id} in the file")
        cat_id = _coco_int(name, f"{path}.category_id", ann.get("category_id"))
        if cat_id not in categories:
            raise InputError(f"{name}: {path}.category_id: no category with id {cat_id} in the file")
        bbox = ann.get("bbox")
        values = [_number(v) for v in bbox] if isinstance(bbox, list) else []
        if len(values) != 4 or any(v is None for v in values):
            raise InputError(f"{name}: {path}.bbox: expected [x, y, width, height], four finite numbers")
        x, y, w, h = (float(v) for v in values if v is not None)
        skip = None
        if ann.get("iscrowd") in (1, True):
            skip = "a crowd region (iscrowd=1), not one instance"
        elif w <= 0 or h <= 0:
            skip = "zero or negative size"
        cname, hint = categories[cat_id]
        out.append(RawBox(label, images[image_id], cname, (x, y, x + w, y + h), hint=hint, skip=skip))
    return out


# -- PASCAL VOC -------------------------------------------------------------------------------------


def _voc_number(name: str, where: str, node: ET.Element | None, tag: str) -> float:
    child = node.find(tag) if node is not None else None
    if child is None or child.text is None:
        raise InputError(f"{name}: {where}/{tag}: missing")
    try:
        value = float(child.text.strip())
    except ValueError:
        raise InputError(f"{name}: {where}/{tag}: not a number: {child.text.strip()[:40]!r}") from None
    if not math.isfinite(value):
        raise InputError(f"{name}: {where}/{tag}: not a finite number")
    return value


def parse_voc(name: str, data: bytes) -> list[RawBox]:
    """The boxes of one PASCAL VOC annotation XML (as LabelImg, CVAT or the VOC devkit write it)."""
    head = data[:4096].lower()
    if b"<!doctype" in head or b"<!entity" in data.lower():
        raise InputError(f"{name}: DTDs and entity declarations are not accepted in VOC files")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        line, column = exc.position
        message = str(exc).split(":")[0]
        raise InputError(f"{name} line {line} column {column + 1}: malformed XML: {message}") from None
    if root.tag != "annotation":
        raise InputError(f"{name}: /{root.tag}: expected a VOC <annotation> element")
    filename = (root.findtext("filename") or "").strip()
    if not filename:
        raise InputError(f"{name}: /annotation/filename: missing")
    size = None
    size_node = root.find("size")
    if size_node is not None:
        w = _voc_number(name, "/annotation/size", size_node, "width")
        h = _voc_number(name, "/annotation/size", size_node, "height")
        if w > 0 and h > 0:  # LabelImg writes 0 x 0 when it could not read the image: size unknown
            size = (round(w), round(h))
    folder = (root.findtext("folder") or "").strip().strip("/\\")
    # LabelImg writes the image's folder name: folder/filename then matches a folder source's path first
    ref = f"{folder}/{filename}" if folder and "/" not in filename and "\\" not in filename else filename
    image = FileImage(ref, sha256_of(filename), size)
    out: list[RawBox] = []
    for k, obj in enumerate(root.findall("object"), start=1):
        where = f"/annotation/object[{k}]"
        cname = (obj.findtext("name") or "").strip()
        if not cname:
            raise InputError(f"{name}: {where}/name: missing")
        box = obj.find("bndbox")
        if box is None:
            raise InputError(f"{name}: {where}/bndbox: missing")
        x1, y1, x2, y2 = (
            _voc_number(name, f"{where}/bndbox", box, t) for t in ("xmin", "ymin", "xmax", "ymax")
        )
        notes = [t for t in ("difficult", "truncated") if (obj.findtext(t) or "").strip() in ("1", "true")]
        skip = "zero or negative size" if x2 < x1 or y2 < y1 else None
        out.append(
            RawBox(f"object {k}", image, cname, (x1 - 1, y1 - 1, x2, y2), skip=skip, note=",".join(notes))
        )
        _check_count(name, len(out))
    return out


# -- ILSVRC LOC CSV ---------------------------------------------------------------------------------

CSV_HEADER = "ImageId,PredictionString"


def parse_ilsvrc_csv(name: str, data: bytes) -> list[RawBox]:
    """The boxes of a ``LOC_train_solution.csv``-style file: ``ImageId,PredictionString`` with
    ``synset x1 y1 x2 y2`` repeated (0-based inclusive corners of the original image)."""
    lines = _text(name, data).splitlines()
    if not lines or lines[0].strip() != CSV_HEADER:
        raise InputError(f"{name} line 1: expected the header {CSV_HEADER!r}")
    out: list[RawBox] = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        image_id, sep, prediction = line.partition(",")
        image_id = image_id.strip()
        if not sep or not image_id:
            raise InputError(f"{name} line {number}: expected 'ImageId,PredictionString'")
        if "," in prediction:
            raise InputError(f"{name} line {number}: more than two columns")
        tokens = prediction.split()
        if len(tokens) % 5:
            raise InputError(
                f"{name} line {number}: PredictionString has {len(tokens)} values; expected groups of 5 "
                "(synset x1 y1 x2 y2)"
            )
        image = FileImage(image_id, sha256_of(image_id), None)
        for k in range(0, len(tokens), 5):
            synset, *numbers = tokens[k : k + 5]
            try:
                x1, y1, x2, y2 = (float(v) for v in numbers)
            except ValueError:
                raise InputError(
                    f"{name} line {number} box {k // 5 + 1}: coordinates must be numbers, got {' '.join(numbers)[:60]!r}"
                ) from None
            if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
                raise InputError(f"{name} line {number} box {k // 5 + 1}: coordinates must be finite")
            skip = "zero or negative size" if x2 < x1 or y2 < y1 else None
            out.append(
                RawBox(f"line {number} box {k // 5 + 1}", image, synset, (x1, y1, x2 + 1, y2 + 1), skip=skip)
            )
        _check_count(name, len(out))
    return out


PARSERS = {"coco": parse_coco, "voc": parse_voc, "ilsvrc-csv": parse_ilsvrc_csv}
FORMATS = tuple(PARSERS)
