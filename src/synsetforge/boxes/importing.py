"""`import_boxes`: boxes a user already has (COCO, VOC, ILSVRC CSV) stored as accepted, imported boxes.

Why: a project whose images came with boxes (a folder of images annotated in LabelImg or CVAT, an ImageNet
subset with its LOC CSV) should not pay a crowd to draw them again. Each box becomes a `BoxRow` with
origin "import", status "good" and ``origin_ref = "<format>:<file>#<record>"``.

Matching, in order: the image's SHA-256 (a name that is one, or a COCO ``sha256`` field), then a candidate
whose source key equals the file's path (a folder source's path below its root), then the file name, then
the file name without extension (ILSVRC ImageIds); a name matching several images is skipped, never guessed.
The category maps to a project synset by ``--map NAME=SYNSET``, the file's synset field, the synset id, its
export-safe name, or a unique lemma. Coordinates go to the original image's pixels (scaled when the file's
image size differs, clipped to the image).

All or nothing: a malformed file is one `InputError` with the place and nothing is stored; otherwise every
matched box is written in one transaction. A box identical to one already on the same image and synset
(any origin but gold) is a duplicate and is not added again, so reruns are idempotent.
"""

from __future__ import annotations

import io
import posixpath
import zipfile
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from synsetforge.boxes.formats import FORMATS, PARSERS, FileImage, RawBox
from synsetforge.errors import InputError, NotFoundError
from synsetforge.hierarchy.model import normalize_lemma
from synsetforge.releases.names import safe_name
from synsetforge.store import schema
from synsetforge.store.project import Project

MAX_IMPORT_BYTES = 64 * 1024 * 1024
"""Largest file (or folder of VOC files, in total) one import reads."""
MAX_VOC_FILES = 50_000
_CHUNK = 500
_REF_LENGTH = 500

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class Skip:
    place: str
    reason: str
    file: str = ""  # the XML file of a VOC folder or zip


@dataclass
class ImportReport:
    """What an import did: per file and record, imported, duplicate or skipped (with why)."""

    source: str
    format: str
    files: int = 0
    records: int = 0
    imported: int = 0
    duplicates: int = 0
    clipped: int = 0
    skipped: list[Skip] = field(default_factory=list)
    dry_run: bool = False
    new_in: Counter[str] = field(default_factory=Counter)  # per VOC file: boxes added
    duplicate_in: Counter[str] = field(default_factory=Counter)  # per VOC file: boxes already there

    def per_file(self) -> dict[str, dict[str, int]]:
        """new / duplicates / skipped per XML file of a VOC import (empty for COCO and CSV)."""
        files = sorted({*self.new_in, *self.duplicate_in, *(s.file for s in self.skipped)} - {""})
        skipped = Counter(s.file for s in self.skipped)
        return {
            f: {"new": self.new_in[f], "duplicates": self.duplicate_in[f], "skipped": skipped[f]}
            for f in files
        }

    def reasons(self) -> Counter[str]:
        return Counter(s.reason.split(" (")[0] for s in self.skipped)

    def as_dict(self) -> dict[str, object]:
        return {
            "source": self.source,
            "format": self.format,
            "files": self.files,
            "records": self.records,
            "imported": self.imported,
            "duplicates": self.duplicates,
            "clipped": self.clipped,
            "skipped": [{"place": s.place, "reason": s.reason} for s in self.skipped],
            "per_file": self.per_file(),
            "dry_run": self.dry_run,
        }


def _clean(text: str) -> str:
    return "".join(ch for ch in text if ch >= " " and ch != "\x7f")


def parse_mapping(pairs: Iterable[str]) -> dict[str, str]:
    """``NAME=SYNSET`` strings (CLI --map) as a dict."""
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, synset = pair.partition("=")
        if not sep or not name.strip() or not synset.strip():
            raise InputError(f"--map {pair!r}: expected NAME=SYNSET")
        out[name.strip()] = synset.strip()
    return out


def read_records(path: Path, fmt: str, *, max_bytes: int = MAX_IMPORT_BYTES) -> tuple[list[RawBox], int]:
    """Parse a file (or, for VOC, a folder of XML files); returns the records and how many files."""
    if fmt not in PARSERS:
        raise InputError(f"unknown box format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if not path.exists():
        raise NotFoundError(f"{path} does not exist")
    if path.is_dir():
        if fmt != "voc":
            raise InputError(f"{path} is a folder; only --format voc reads a folder (of XML files)")
        files = sorted(p for p in path.rglob("*.xml") if p.is_file())
        if not files:
            raise InputError(f"{path} holds no .xml files")
        if len(files) > MAX_VOC_FILES:
            raise InputError(f"{path} holds more than {MAX_VOC_FILES:,} XML files; import it in parts")
        total = 0
        records: list[RawBox] = []
        for f in files:
            total += f.stat().st_size
            if total > max_bytes:
                raise InputError(f"{path}: the XML files exceed the import limit of {max_bytes:,} bytes")
            name = f.relative_to(path).as_posix()
            records.extend(_with_file(PARSERS[fmt](name, f.read_bytes()), name))
        return records, len(files)
    size = path.stat().st_size
    if size > max_bytes:
        raise InputError(f"{path.name}: {size:,} bytes is over the import limit of {max_bytes:,} bytes")
    return parse_bytes(path.name, path.read_bytes(), fmt), 1


def parse_bytes(name: str, data: bytes, fmt: str, *, max_bytes: int = MAX_IMPORT_BYTES) -> list[RawBox]:
    """Parse one file's bytes (an HTTP upload, or a file read by `read_records`)."""
    if fmt not in PARSERS:
        raise InputError(f"unknown box format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if len(data) > max_bytes:
        raise InputError(f"{name}: {len(data):,} bytes is over the import limit of {max_bytes:,} bytes")
    records = PARSERS[fmt](name, data)
    return _with_file(records, name) if fmt == "voc" else records


def _with_file(records: list[RawBox], name: str) -> list[RawBox]:
    """VOC places name their XML file (a folder holds many)."""
    return [RawBox(r.place, r.image, r.category, r.edges, r.hint, r.skip, r.note, name) for r in records]


def import_boxes(
    project: Project,
    path: Path,
    fmt: str,
    *,
    mapping: Mapping[str, str] | None = None,
    dry_run: bool = False,
    max_bytes: int = MAX_IMPORT_BYTES,
) -> ImportReport:
    """Import the boxes of a file (or a folder of VOC XML files) into the project."""
    records, files = read_records(path, fmt, max_bytes=max_bytes)
    return store_records(
        project, records, fmt, path.name, files=files, mapping=mapping, dry_run=dry_run, folder=path.is_dir()
    )


def import_upload(
    project: Project,
    name: str,
    data: bytes,
    fmt: str,
    *,
    mapping: Mapping[str, str] | None = None,
    dry_run: bool = False,
    max_bytes: int = MAX_IMPORT_BYTES,
) -> ImportReport:
    """Import the boxes of an uploaded file's bytes (`name` is what origin_ref records); for VOC the bytes
    may be a zip of XML files (the HTTP stand-in for a folder)."""
    name = posixpath.basename(_clean(name).replace("\\", "/")) or "upload"
    if fmt == "voc" and data[:4] == b"PK\x03\x04":
        records, files = _voc_zip(name, data, max_bytes)
        return store_records(
            project, records, fmt, name, files=files, mapping=mapping, dry_run=dry_run, folder=True
        )
    records = parse_bytes(name, data, fmt, max_bytes=max_bytes)
    return store_records(project, records, fmt, name, files=1, mapping=mapping, dry_run=dry_run)


def _voc_zip(name: str, data: bytes, max_bytes: int) -> tuple[list[RawBox], int]:
    """The records of every ``*.xml`` member of a zip, with the same limits as a folder."""
    if len(data) > max_bytes:
        raise InputError(f"{name}: {len(data):,} bytes is over the import limit of {max_bytes:,} bytes")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = sorted(
            (i for i in archive.infolist() if not i.is_dir() and i.filename.lower().endswith(".xml")),
            key=lambda i: i.filename,
        )
    except (zipfile.BadZipFile, ValueError) as exc:
        raise InputError(f"{name}: not a readable zip archive: {exc}") from None
    if not members:
        raise InputError(f"{name}: the zip holds no .xml files")
    if len(members) > MAX_VOC_FILES:
        raise InputError(f"{name}: more than {MAX_VOC_FILES:,} XML files; import it in parts")
    if sum(i.file_size for i in members) > max_bytes:
        raise InputError(f"{name}: the XML files unpack to more than the import limit of {max_bytes:,} bytes")
    records: list[RawBox] = []
    with archive:
        for info in members:
            member = _clean(info.filename)
            try:
                with archive.open(info) as f:
                    content = f.read(info.file_size + 1)
            except (zipfile.BadZipFile, OSError, RuntimeError) as exc:
                raise InputError(f"{name}: {member}: cannot be read from the zip: {exc}") from None
            if len(content) > info.file_size:
                raise InputError(f"{name}: {member}: larger than the zip says")
            records.extend(_with_file(PARSERS["voc"](f"{name}/{member}", content), member))
    return records, len(members)


# -- matching ---------------------------------------------------------------------------------------


def _norm(ref: str) -> str:
    parts = [p for p in ref.replace("\\", "/").split("/") if p not in ("", ".")]
    return "/".join(parts)


def _base(ref: str) -> str:
    return _norm(ref).rsplit("/", 1)[-1]


def _stem(ref: str) -> str:
    base = _base(ref)
    return base.rsplit(".", 1)[0] if "." in base else base


def _url_base(url: str) -> str:
    try:
        return _base(unquote(urlsplit(url).path))
    except ValueError:
        return ""


class _Images:
    """File references resolved to project image ids (only the names the file uses are indexed)."""

    def __init__(self, s: Session, images: Iterable[FileImage]) -> None:
        wanted = {im.ref for im in images}
        shas = {im.sha256 for im in images if im.sha256}
        self.by_sha: dict[str, int] = {}
        for chunk in _chunks(sorted(shas)):
            for iid, sha in s.execute(
                select(schema.Image.id, schema.Image.sha256).where(schema.Image.sha256.in_(chunk))
            ):
                self.by_sha[sha] = int(iid)
        paths = {_norm(r) for r in wanted}
        bases = {_base(r) for r in wanted}
        stems = {r for r in wanted if "." not in _base(r)} | {_stem(r) for r in wanted}
        self.by_key: dict[str, set[int]] = defaultdict(set)
        self.by_base: dict[str, set[int]] = defaultdict(set)
        self.by_stem: dict[str, set[int]] = defaultdict(set)
        C = schema.Candidate
        stmt = select(C.key, C.url, C.image_id).where(C.image_id.is_not(None))
        for key, url, found in s.execute(stmt).yield_per(5000):
            iid = int(found or 0)
            key_n = _norm(key or "")
            if key_n in paths:
                self.by_key[key_n].add(iid)
            for base in {_base(key or ""), _url_base(url or "")}:
                if base in bases:
                    self.by_base[base].add(iid)
                stem = base.rsplit(".", 1)[0] if "." in base else base
                if stem in stems:
                    self.by_stem[stem].add(iid)

    def resolve(self, image: FileImage) -> tuple[int | None, str]:
        if image.sha256 and image.sha256 in self.by_sha:
            return self.by_sha[image.sha256], ""
        for found, how in (
            (self.by_key.get(_norm(image.ref)), "path"),
            (self.by_base.get(_base(image.ref)), "file name"),
            (self.by_stem.get(_stem(image.ref)) if "." not in _base(image.ref) else None, "name"),
        ):
            if found:
                if len(found) == 1:
                    return next(iter(found)), ""
                return None, f"the {how} matches {len(found)} images of the project; use a path or SHA-256"
        return None, "no image of the project has this file name, path or SHA-256"


class _Categories:
    """A file's category names mapped to project synsets."""

    def __init__(self, s: Session, mapping: Mapping[str, str] | None) -> None:
        rows = list(s.execute(select(schema.Synset.id, schema.Synset.lemmas)))
        self.ids = {sid for sid, _ in rows}
        self.safe = {safe_name(sid): sid for sid, _ in rows}
        lemmas: dict[str, set[str]] = defaultdict(set)
        for sid, names in rows:
            for lemma in names or ():
                lemmas[normalize_lemma(str(lemma))].add(sid)
        self.lemmas = lemmas
        self.mapping = dict(mapping or {})
        for name, target in self.mapping.items():
            if target not in self.ids:
                raise NotFoundError(f"--map {name}={target}: synset {target!r} is not in the project")

    def resolve(self, name: str, hint: str | None) -> tuple[str | None, str]:
        if name in self.mapping:
            return self.mapping[name], ""
        for guess in (hint, name):
            if guess and guess in self.ids:
                return guess, ""
            if guess and guess in self.safe:
                return self.safe[guess], ""
        found = self.lemmas.get(normalize_lemma(name), set())
        if len(found) == 1:
            return next(iter(found)), ""
        shown = _clean(name)[:60]
        if found:
            return None, f"category {shown!r} names {len(found)} project synsets; use --map {shown}=SYNSET"
        return None, f"category {shown!r} maps to no project synset (use --map {shown}=SYNSET)"


def _chunks(values: Sequence[object]) -> Iterable[Sequence[object]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


def to_pixels(
    edges: tuple[float, float, float, float], file_size: tuple[int, int] | None, orig: tuple[int, int]
) -> tuple[Box | None, bool]:
    """Continuous edges in the file's image -> inclusive corners in the original image, clipped.

    Returns (box or None when nothing of it lies in the image, whether it was clipped)."""
    x1, y1, x2, y2 = edges
    ow, oh = orig
    if file_size is not None and file_size != orig:
        sx, sy = ow / file_size[0], oh / file_size[1]
        x1, x2, y1, y2 = x1 * sx, x2 * sx, y1 * sy, y2 * sy
    a, b = round(x1), round(y1)
    c, d = round(x2) - 1, round(y2) - 1
    ca, cb = max(0, a), max(0, b)
    cc, cd = min(ow - 1, c), min(oh - 1, d)
    if ca > cc or cb > cd:
        return None, False
    return (ca, cb, cc, cd), (ca, cb, cc, cd) != (a, b, c, d)


def _skip(report: ImportReport, r: RawBox, reason: str) -> None:
    report.skipped.append(Skip(r.where, reason, r.file))


def store_records(
    project: Project,
    records: list[RawBox],
    fmt: str,
    source: str,
    *,
    files: int = 1,
    mapping: Mapping[str, str] | None = None,
    dry_run: bool = False,
    folder: bool = False,
) -> ImportReport:
    """Match parsed records to the project and store the new boxes in one transaction.

    origin_ref is ``<format>:<file>#<record>``; for a folder of VOC files ``voc:<folder>/<xml file>#...``."""
    report = ImportReport(
        source=_clean(source), format=fmt, files=files, records=len(records), dry_run=dry_run
    )
    C, B, IMG = schema.Candidate, schema.BoxRow, schema.Image
    with project.session() as s:
        categories = _Categories(s, mapping)
        images = _Images(s, [r.image for r in records])
        matched: list[tuple[RawBox, int, str]] = []
        for r in records:
            if r.skip:
                _skip(report, r, r.skip)
                continue
            image_id, why = images.resolve(r.image)
            if image_id is None:
                _skip(report, r, f"{why} ({_clean(r.image.ref)[:120]})")
                continue
            synset, why = categories.resolve(r.category, r.hint)
            if synset is None:
                _skip(report, r, why)
                continue
            matched.append((r, image_id, synset))
        ids = sorted({m[1] for m in matched})
        sizes: dict[int, tuple[int | None, int | None, int | None, int | None]] = {}
        cands: dict[tuple[int, str], list[tuple[bool, int]]] = defaultdict(list)
        existing: set[tuple[int, str, Box]] = set()
        for chunk in _chunks(ids):
            for iid, ow, oh, w, h in s.execute(
                select(IMG.id, IMG.orig_width, IMG.orig_height, IMG.width, IMG.height).where(
                    IMG.id.in_(chunk)
                )
            ):
                sizes[int(iid)] = (ow, oh, w, h)
            for cid, cand_image, synset, decision in s.execute(
                select(C.id, C.image_id, C.synset_id, C.decision).where(C.image_id.in_(chunk))
            ):
                cands[(int(cand_image or 0), synset)].append((decision != "accepted", int(cid)))
            for box_image, synset, x1, y1, x2, y2 in s.execute(
                select(C.image_id, C.synset_id, B.x1, B.y1, B.x2, B.y2)
                .join(C, C.id == B.candidate_id)
                .where(C.image_id.in_(chunk), B.origin != "gold")
            ):
                existing.add((int(box_image or 0), synset, (x1, y1, x2, y2)))
        rows: list[dict[str, object]] = []
        ref_name = _clean(source)[:200]
        for r, image_id, synset in matched:
            options = sorted(cands.get((image_id, synset), ()))
            if not options:
                _skip(report, r, f"image {image_id} is not a candidate of synset {synset!r}")
                continue
            ow, oh, w, h = sizes[image_id]
            orig = (ow or w, oh or h)
            if not orig[0] or not orig[1]:
                _skip(report, r, f"image {image_id} has no known size")
                continue
            box, clipped = to_pixels(r.edges, r.image.size, (int(orig[0]), int(orig[1])))
            if box is None:
                _skip(report, r, "the box lies outside the image (or is under a pixel)")
                continue
            key = (image_id, synset, box)
            if key in existing:
                report.duplicates += 1
                report.duplicate_in[r.file] += 1
                continue
            existing.add(key)
            report.clipped += int(clipped)
            report.new_in[r.file] += 1
            place = f"{r.place} ({r.note})" if r.note else r.place
            file_ref = f"{ref_name}/{_clean(r.file)}" if folder and r.file else _clean(r.file) or ref_name
            rows.append(
                {
                    "candidate_id": options[0][1],
                    "x1": box[0],
                    "y1": box[1],
                    "x2": box[2],
                    "y2": box[3],
                    "origin": "import",
                    "origin_ref": f"{fmt}:{file_ref}#{_clean(place)}"[:_REF_LENGTH],
                    "status": "good",
                    "confidence": None,
                }
            )
        report.imported = len(rows)
        if not dry_run:
            for start in range(0, len(rows), 2000):
                s.execute(insert(B), rows[start : start + 2000])
    return report
