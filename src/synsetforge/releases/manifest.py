"""The release manifest: one JSON line per (image, synset), the release's frozen content.

A release must not change when votes, decisions, boxes or licences change later, so everything an export
needs -- blob key, size, provenance, licence, vote counts, boxes, duplicate cluster -- is written once, at
creation, into a JSON-lines file stored in the blob store under its own SHA-256 (`releases.manifest_sha256`).
Exports read only this file, after checking its hash.

Layout: a header line (``{"synsetforge_manifest": 1, ...}``) then items sorted by split (train, val, test),
then content hash, then synset id; keys sorted, compact separators, so equal content gives equal bytes.
Boxes are ``[xmin, ymin, xmax, ymax]`` (inclusive) in pixels of the stored image (the blob).
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import IO, Any

from synsetforge.errors import NotFoundError, StoreError
from synsetforge.store.blobs import BlobStorage

FORMAT_VERSION = 1
SPLIT_ORDER = {"train": 0, "val": 1, "test": 2}


@dataclass(frozen=True, slots=True)
class Item:
    """One image of a release under one synset, as frozen in the manifest."""

    split: str
    sha256: str
    synset: str
    image_id: int
    blob: str
    width: int | None
    height: int | None
    confidence: float | None
    candidate_id: int
    source: str
    source_kind: str
    query: str | None = None
    url: str | None = None
    page_url: str | None = None
    license: str | None = None
    author: str | None = None
    collected: str | None = None
    votes_yes: int = 0
    votes_no: int = 0
    boxes: tuple[tuple[int, int, int, int], ...] = field(default_factory=tuple)
    group: int = 0

    def sort_key(self) -> tuple[int, str, str]:
        return (SPLIT_ORDER[self.split], self.sha256, self.synset)

    def to_json(self) -> str:
        data = asdict(self)
        data["boxes"] = [list(b) for b in self.boxes]
        return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, line: str) -> Item:
        data: dict[str, Any] = json.loads(line)
        data["boxes"] = tuple(tuple(b) for b in data.get("boxes", ()))
        return cls(**data)


def write_manifest(blobs: BlobStorage, header: dict[str, Any], items: Iterable[Item]) -> tuple[str, int]:
    """Write header + items (already sorted) into the blob store; returns (sha256, item count).

    Streamed through a blob writer (a temporary file hashed while written, then stored under its hash):
    the manifest is never held in memory.
    """
    count = 0
    with blobs.writer() as w:
        head = {"synsetforge_manifest": FORMAT_VERSION, **header}
        w.write((json.dumps(head, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n").encode())
        for item in items:
            w.write((item.to_json() + "\n").encode("utf-8"))
            count += 1
    assert w.key is not None
    return w.key, count


def open_manifest(blobs: BlobStorage, sha256: str) -> IO[bytes]:
    """The stored manifest as a binary stream; StoreError when it is missing."""
    try:
        return blobs.open(sha256)
    except NotFoundError:
        raise StoreError(
            f"the release manifest {sha256} is missing from the blob store {blobs.location}"
        ) from None


def verify_manifest(blobs: BlobStorage, sha256: str) -> None:
    """Raise StoreError unless the stored manifest still hashes to its recorded checksum."""
    digest = hashlib.sha256()
    with open_manifest(blobs, sha256) as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    if digest.hexdigest() != sha256:
        raise StoreError(
            f"the release manifest {sha256} is corrupted (its content no longer matches its hash)"
        )


def _text(blobs: BlobStorage, sha256: str) -> io.TextIOWrapper:
    return io.TextIOWrapper(open_manifest(blobs, sha256), encoding="utf-8")


def read_header(blobs: BlobStorage, sha256: str) -> dict[str, Any]:
    with _text(blobs, sha256) as f:
        header: dict[str, Any] = json.loads(f.readline())
    return header


def iter_items(blobs: BlobStorage, sha256: str, split: str | None = None) -> Iterator[Item]:
    """Stream the manifest's items (optionally of one split), in manifest order."""
    with _text(blobs, sha256) as f:
        f.readline()
        for line in f:
            if split is not None:
                # cheap pre-filter before parsing; items are sorted by split
                if f'"split":"{split}"' not in line:
                    continue
                item = Item.from_json(line)
                if item.split == split:
                    yield item
                continue
            yield Item.from_json(line)
