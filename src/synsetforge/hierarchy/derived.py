"""What a hierarchy derives from its edges, precomputed so that a fresh process need not derive it.

Computing WordNet's depths, heights, LCA ranks, descendant counts and child lists takes about half a second;
``synsetforge taxonomy show`` needs them at once. ``scripts/build_wordnet.py`` therefore writes them next to
the shipped data file, and :func:`synsetforge.hierarchy.wordnet.load_wordnet` reads them (a few ms) when the
file's checksum matches the data file's; a missing or stale file is rebuilt from the data (and rewritten when
the folder is writable).

File format: gzip (fixed mtime, so the bytes are reproducible) of ``MAGIC``, the SHA-256 of the data file it
was derived from, ``n`` and the number of parent links (little-endian uint32), then little-endian int32
arrays: depth, max_depth, height, by_rank, ndesc (``n`` each), parent_ptr (``n + 1``), parent_flat (links),
child_ptr (``n + 1``), child_flat (links).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import struct
import sys
import tempfile
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, overload

if TYPE_CHECKING:
    from synsetforge.hierarchy.model import Hierarchy

MAGIC = b"synsetforge derived hierarchy v1\n"
_COUNTS = struct.Struct("<II")


@dataclass(frozen=True, slots=True)
class Derived:
    """Per-synset derived values (int32 arrays indexed like the hierarchy's ids) and both edge lists."""

    depth: array[int]
    max_depth: array[int]
    height: array[int]
    by_rank: array[int]
    ndesc: array[int]
    parents: CsrRows
    children: CsrRows


class CsrRows(Sequence[tuple[int, ...]]):
    """Rows of ints stored flat (compressed sparse rows): ``rows[i]`` is a tuple, built on access."""

    __slots__ = ("_flat", "_ptr")

    def __init__(self, ptr: array[int], flat: array[int]) -> None:
        self._ptr = ptr
        self._flat = flat

    def __len__(self) -> int:
        return len(self._ptr) - 1

    @overload
    def __getitem__(self, i: int) -> tuple[int, ...]: ...
    @overload
    def __getitem__(self, i: slice) -> list[tuple[int, ...]]: ...
    def __getitem__(self, i: int | slice) -> tuple[int, ...] | list[tuple[int, ...]]:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        return tuple(self._flat[self._ptr[i] : self._ptr[i + 1]])

    def __iter__(self) -> Iterator[tuple[int, ...]]:
        ptr, flat = self._ptr, self._flat
        for k in range(len(ptr) - 1):
            yield tuple(flat[ptr[k] : ptr[k + 1]])


def checksum(source: bytes) -> bytes:
    """The SHA-256 that ties a derived file to the exact data file it came from."""
    return hashlib.sha256(source).digest()


def _int32(values: Sequence[int] | Iterator[int]) -> array[int]:
    return array("i", values)


def _csr(rows: Sequence[tuple[int, ...]]) -> tuple[array[int], array[int]]:
    ptr = array("i", [0])
    flat = array("i")
    for row in rows:
        flat.extend(row)
        ptr.append(len(flat))
    return ptr, flat


def encode(h: Hierarchy, source: bytes) -> bytes:
    """The derived file for hierarchy ``h`` parsed from the data file bytes ``source`` (reproducible)."""
    ids = h.ids
    parent_ptr, parent_flat = _csr([tuple(h.index_of(p) for p in h.parents(s)) for s in ids])
    child_ptr, child_flat = _csr([tuple(h.index_of(c) for c in h.children(s)) for s in ids])
    _, by_rank = h._ranks()
    arrays = [
        _int32(h.depth(s) for s in ids),
        _int32(h.max_depth(s) for s in ids),
        _int32(h.height(s) for s in ids),
        _int32(by_rank.tolist()),
        _int32(h.num_descendants(s) for s in ids),
        parent_ptr,
        parent_flat,
        child_ptr,
        child_flat,
    ]
    body = io.BytesIO()
    body.write(MAGIC + checksum(source) + _COUNTS.pack(len(ids), len(parent_flat)))
    for values in arrays:
        if sys.byteorder != "little":
            values = array("i", values)
            values.byteswap()
        body.write(values.tobytes())
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, compresslevel=9, mtime=0) as gz:
        gz.write(body.getvalue())
    return out.getvalue()


def decode(blob: bytes, source: bytes) -> Derived | None:
    """The derived values in ``blob`` if it was made from exactly ``source``; ``None`` if stale or damaged."""
    try:
        raw = gzip.decompress(blob)
    except (OSError, EOFError):
        return None
    head = len(MAGIC) + 32
    if raw[: len(MAGIC)] != MAGIC or raw[len(MAGIC) : head] != checksum(source):
        return None
    n, links = _COUNTS.unpack_from(raw, head)
    sizes = [n, n, n, n, n, n + 1, links, n + 1, links]
    if len(raw) != head + _COUNTS.size + 4 * sum(sizes):
        return None
    arrays: list[array[int]] = []
    offset = head + _COUNTS.size
    for size in sizes:
        values = array("i")
        values.frombytes(raw[offset : offset + 4 * size])
        if sys.byteorder != "little":
            values.byteswap()
        arrays.append(values)
        offset += 4 * size
    depth, max_depth, height, by_rank, ndesc, parent_ptr, parent_flat, child_ptr, child_flat = arrays
    return Derived(
        depth,
        max_depth,
        height,
        by_rank,
        ndesc,
        CsrRows(parent_ptr, parent_flat),
        CsrRows(child_ptr, child_flat),
    )


def write_atomically(path: Path, blob: bytes) -> bool:
    """Replace ``path`` with ``blob`` via a temporary file; ``False`` (nothing written) if not allowed."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    except OSError:
        return False
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600: other users of a shared install must read it too
        os.replace(tmp, path)
    except OSError:
        Path(tmp).unlink(missing_ok=True)
        return False
    return True
