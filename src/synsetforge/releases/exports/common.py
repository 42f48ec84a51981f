"""What every exporter shares: the output folder rules, the class order, and streaming the frozen items.

Class order: synsets sorted by their safe folder name, which is the order torchvision's ImageFolder (and so
``datasets.ImageNet``) gives class indices; every format that stores an integer label uses it.
"""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from synsetforge.errors import InputError, NotFoundError, StoreError
from synsetforge.releases.exports.tarout import TarOut
from synsetforge.releases.manifest import Item, iter_items, read_header, verify_manifest
from synsetforge.releases.names import check_member, safe_name
from synsetforge.releases.release import Release
from synsetforge.store.blobs import BlobStorage
from synsetforge.store.project import Project

MARKER = "release.json"

_MAGIC = (
    (b"\xff\xd8\xff", "jpg"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"BM", "bmp"),
    (b"II*\x00", "tif"),
    (b"MM\x00*", "tif"),
)


def image_ext(src: Path | BlobRef) -> str:
    """The file extension for an image's bytes (by magic number, not by any stored name)."""
    with open(src, "rb") if isinstance(src, Path) else src.open() as f:
        return ext_of(f.read(16))


def ext_of(head: bytes) -> str:
    """The file extension for bytes starting with `head` (at least 12 bytes)."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    for magic, ext in _MAGIC:
        if head.startswith(magic):
            return ext
    return "bin"


@dataclass(slots=True)
class BlobRef:
    """One blob an export copies: the file itself for a local store (fast paths), else a stream."""

    store: BlobStorage
    key: str
    path: Path | None  # the blob's file when the store is local
    release: str  # for the message when the blob is missing

    def missing(self) -> StoreError:
        return StoreError(
            f"image {self.key} of release {self.release!r} is missing from the blob store {self.store.location}"
        )

    def open(self) -> IO[bytes]:
        try:
            if self.path is not None:
                return open(self.path, "rb")
            return self.store.open(self.key)
        except (FileNotFoundError, NotFoundError):
            raise self.missing() from None

    def read(self) -> bytes:
        try:
            if self.path is not None:
                return self.path.read_bytes()
            return self.store.get(self.key)
        except (FileNotFoundError, NotFoundError):
            raise self.missing() from None

    def copy_to(self, target: Path) -> None:
        """Write the blob to a local file."""
        if self.path is not None:
            try:
                shutil.copyfile(self.path, target)
            except FileNotFoundError:
                if not self.path.exists():
                    raise self.missing() from None
                raise
            return
        with self.open() as f, open(target, "wb") as out:
            shutil.copyfileobj(f, out, 1 << 20)

    def add_to(self, tar: TarOut, name: str) -> int:
        """Copy the blob into a tar as `name`, in chunks; returns its size."""
        if self.path is not None:
            try:
                return tar.add_file(name, self.path)
            except FileNotFoundError:
                raise self.missing() from None
        with self.open() as f:
            size = f.seek(0, io.SEEK_END)
            f.seek(0)
            tar.add_stream(name, f, size)
        return size


def prepare_out(out: Path, *, force: bool) -> None:
    """Create `out`; a non-empty folder needs `force` and must hold a previous synsetforge export."""
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} exists and is not a folder")
    if out.exists() and any(out.iterdir()):
        if not force:
            raise InputError(f"{out} is not empty; pass --force to replace a previous export there")
        marker = out / MARKER
        try:
            is_export = "synsetforge_export" in json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            is_export = False
        if not is_export:
            raise InputError(f"refusing to clear {out}: it does not hold a synsetforge export (no {MARKER})")
        for child in out.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    out.mkdir(parents=True, exist_ok=True)


def dumps(data: Any) -> bytes:
    """Deterministic JSON bytes (sorted keys, fixed separators, trailing newline)."""
    return (json.dumps(data, sort_keys=True, indent=1, ensure_ascii=False) + "\n").encode("utf-8")


@dataclass
class Context:
    """A release opened for export: its frozen synset facts, class order and item stream."""

    project: Project
    release: Release
    out: Path
    header: dict[str, Any] = field(default_factory=dict)
    classes: list[str] = field(default_factory=list)  # synset ids in label order
    wnid: dict[str, str] = field(default_factory=dict)  # synset id -> safe folder name
    label: dict[str, int] = field(default_factory=dict)  # synset id -> 0-based class index
    _words: dict[str, str] = field(default_factory=dict)

    @classmethod
    def open(cls, project: Project, release: Release, out: Path) -> Context:
        verify_manifest(project.blobs, release.manifest_sha256)
        header = read_header(project.blobs, release.manifest_sha256)
        synsets = sorted(header.get("synsets", {}))
        wnid = {s: safe_name(s) for s in synsets}
        if len(set(wnid.values())) != len(wnid):
            raise InputError("two synset ids map to the same folder name; rename one in the taxonomy")
        classes = sorted(synsets, key=lambda s: wnid[s])
        return cls(
            project=project,
            release=release,
            out=out,
            header=header,
            classes=classes,
            wnid=wnid,
            label={s: i for i, s in enumerate(classes)},
        )

    def items(self, split: str | None = None) -> Iterator[Item]:
        return iter_items(self.project.blobs, self.release.manifest_sha256, split)

    def blob(self, key: str) -> BlobRef:
        """A release image's stored bytes; StoreError (now, or when first read) when they are missing."""
        blobs = self.project.blobs
        ref = BlobRef(blobs, key, blobs.local_path(key), self.release.name)
        if ref.path is not None and not ref.path.exists():
            raise ref.missing()
        return ref

    def copy_image(self, key: str, stem: str) -> tuple[Path, str]:
        """Copy a release image to ``<stem>.<ext>`` in the output folder, ext by magic number (one read of
        a remote blob); returns the written path and the extension."""
        ref = self.blob(key)
        if ref.path is not None:
            ext = image_ext(ref.path)
            dest = self.path(f"{stem}.{ext}")
            ref.copy_to(dest)
            return dest, ext
        data = ref.read()
        ext = ext_of(data[:16])
        dest = self.path(f"{stem}.{ext}")
        dest.write_bytes(data)
        return dest, ext

    def synset_facts(self, synset: str) -> dict[str, Any]:
        facts: dict[str, Any] = self.header.get("synsets", {}).get(synset, {})
        return facts

    def words(self, synset: str) -> str:
        """ImageNet's `words`: the lemmas joined by ", " (underscores as spaces)."""
        cached = self._words.get(synset)
        if cached is None:
            lemmas = self.synset_facts(synset).get("lemmas") or [synset]
            cached = self._words[synset] = ", ".join(str(lemma).replace("_", " ") for lemma in lemmas)
        return cached

    def path(self, relative: str) -> Path:
        """A path inside the output folder (checked: no escaping it)."""
        return self.out / check_member(relative)

    def write_bytes(self, relative: str, data: bytes) -> Path:
        target = self.path(relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        return target

    def marker(self, fmt: str, extra: dict[str, Any] | None = None) -> None:
        r = self.release
        data = {
            "synsetforge_export": fmt,
            "release": r.name,
            "created_at": r.created_at.isoformat(timespec="seconds"),
            "manifest_sha256": r.manifest_sha256,
            "method": r.method,
            "params": r.params,
            "splits": r.stats.get("splits", {}),
            "classes": [
                {"label": self.label[s], "synset": s, "wnid": self.wnid[s], "words": self.words(s)}
                for s in self.classes
            ],
            **(extra or {}),
        }
        self.write_bytes(MARKER, dumps(data))
