"""Deterministic, streaming tar writing.

Repeated exports must be byte-identical, so every member gets the same mtime (the release's creation time),
uid/gid 0, empty user/group names and fixed modes; gzip streams get ``mtime=0`` and no file name. Members
are copied from files (blob store paths) in chunks, so memory does not grow with the data.

The bytes are exactly what ``tarfile`` writes in its default POSIX (pax) format -- a test compares them --
but headers of plain short ASCII names are built directly: ``TarFile.addfile`` spends most of an export's
time copying each TarInfo and probing it for pax records, and it keeps every TarInfo in memory. Names that
need a pax record (long or non-ASCII) still go through ``TarInfo.tobuf``.
"""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path
from types import TracebackType
from typing import IO, cast

from synsetforge.releases.names import check_member

FILE_MODE = 0o644
DIR_MODE = 0o755
BLOCK = tarfile.BLOCKSIZE  # 512
RECORD = tarfile.RECORDSIZE  # 20 blocks: tarfile pads the archive to a whole record
_MAX_OCTAL_11 = 8**11  # the largest size or mtime a plain ustar header field holds


def _octal(n: int, digits: int) -> bytes:
    return b"%0*o\0" % (digits - 1, n)


def _fast_header(name: bytes, mode: int, size: int, mtime: int, typeflag: bytes) -> bytes:
    """tarfile's POSIX header for a name of at most 100 ASCII bytes, uid/gid 0, empty user and group."""
    head = b"".join(
        (
            name.ljust(100, b"\0"),
            _octal(mode, 8),
            _octal(0, 8),
            _octal(0, 8),
            _octal(size, 12),
            _octal(mtime, 12),
            b"        ",  # checksum placeholder
            typeflag,
            b"\0" * 100,  # linkname
            b"ustar\x0000",
            b"\0" * 64,  # uname, gname
            b"\0" * 16,  # devmajor, devminor: empty for non-device members (as tarfile writes them)
            b"\0" * 155,  # prefix
        )
    ).ljust(BLOCK, b"\0")
    checksum = sum(head)
    return head[:148] + b"%06o\0" % checksum + head[155:]


class TarOut:
    """A tar (optionally gzip'd) being written with fixed metadata."""

    def __init__(self, path: Path, *, mtime: int, gz: bool = False):
        self.path = path
        self.mtime = mtime
        self._raw: IO[bytes] = open(path, "wb")  # noqa: SIM115 - closed in close()
        self._gz: gzip.GzipFile | None = None
        self._out: IO[bytes] = self._raw
        if gz:
            self._gz = gzip.GzipFile(filename="", mode="wb", fileobj=self._raw, mtime=0, compresslevel=6)
            self._out = cast(IO[bytes], self._gz)
        self.offset = 0
        self.members = 0
        self.data_bytes = 0
        self._closed = False

    def _header(self, name: str, size: int, *, directory: bool = False) -> bytes:
        check_member(name.rstrip("/") if directory else name)
        if directory and not name.endswith("/"):
            name += "/"
        raw = name.encode("utf-8")
        mode = DIR_MODE if directory else FILE_MODE
        typeflag = tarfile.DIRTYPE if directory else tarfile.REGTYPE
        if len(raw) <= 100 and name.isascii() and size < _MAX_OCTAL_11 and 0 <= self.mtime < _MAX_OCTAL_11:
            return _fast_header(raw, mode, size, self.mtime, typeflag)
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode, info.type = size, self.mtime, mode, typeflag
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")

    def _write(self, data: bytes) -> None:
        self._out.write(data)
        self.offset += len(data)

    def _pad(self, size: int) -> None:
        rest = size % BLOCK
        if rest:
            self._write(b"\0" * (BLOCK - rest))

    def add_dir(self, name: str) -> None:
        self._write(self._header(name, 0, directory=True))
        self.members += 1

    def add_bytes(self, name: str, data: bytes) -> None:
        self._write(self._header(name, len(data)))
        self._write(data)
        self._pad(len(data))
        self.members += 1
        self.data_bytes += len(data)

    def add_file(self, name: str, source: Path) -> int:
        """Copy a file into the archive in chunks; returns its size."""
        with open(source, "rb") as f:
            size = f.seek(0, io.SEEK_END)
            f.seek(0)
            self.add_stream(name, f, size)
        return size

    def add_stream(self, name: str, f: IO[bytes], size: int) -> None:
        """Copy exactly `size` bytes from an open file (positioned at its start) into the archive."""
        self._write(self._header(name, size))
        left = size
        while left:
            chunk = f.read(min(left, 1 << 20))
            if not chunk:
                raise OSError(f"{name}: file shrank while being archived")
            self._write(chunk)
            left -= len(chunk)
        self._pad(size)
        self.members += 1
        self.data_bytes += size

    def close(self) -> None:
        """End-of-archive blocks and record padding, as tarfile writes them."""
        if self._closed:
            return
        self._closed = True
        try:
            self._write(b"\0" * (2 * BLOCK))
            rest = self.offset % RECORD
            if rest:
                self._write(b"\0" * (RECORD - rest))
        finally:
            if self._gz is not None:
                self._gz.close()
            self._raw.close()

    def __enter__(self) -> TarOut:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def member_size(size: int) -> int:
    """Bytes a regular member of `size` bytes takes in a tar: header plus data padded to 512."""
    return BLOCK + (size + BLOCK - 1) // BLOCK * BLOCK
