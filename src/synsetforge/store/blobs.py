"""Content-addressed blob store: bytes are filed under their SHA-256, so a blob is written once.

Local folder by default (`blobs/ab/cd/abcd...`); writes go to a temporary file and are renamed into place,
so a crash never leaves a half-written blob under a valid name and concurrent writers of the same bytes
are harmless.
"""

from __future__ import annotations

import hashlib
import itertools
import os
from collections.abc import Iterator
from pathlib import Path

from synsetforge.errors import NotFoundError


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class BlobStore:
    """Blobs in a local folder, keyed by the hex SHA-256 of their content."""

    def __init__(self, root: Path | str):
        self.root = Path(root)
        self._made: set[Path] = set()  # fan-out folders known to exist: saves a mkdir per write
        self._tmp = itertools.count()

    def path(self, key: str) -> Path:
        if len(key) != 64 or any(c not in "0123456789abcdef" for c in key):
            raise NotFoundError(f"not a blob key: {key!r}")
        return self.root / key[:2] / key[2:4] / key

    def put(self, data: bytes) -> str:
        key = sha256_hex(data)
        target = self.path(key)
        if target.exists():
            return key
        if target.parent not in self._made:
            target.parent.mkdir(parents=True, exist_ok=True)
            self._made.add(target.parent)
        # a name unique to this process and call (threads included); O_EXCL refuses any leftover
        tmp = target.parent / f".tmp-{os.getpid()}-{next(self._tmp)}-{key[:8]}"
        try:
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileNotFoundError:  # the folder was removed behind our back: make it again
                target.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return key

    def get(self, key: str) -> bytes:
        try:
            return self.path(key).read_bytes()
        except FileNotFoundError:
            raise NotFoundError(f"blob {key} is not in {self.root}") from None

    def exists(self, key: str) -> bool:
        return self.path(key).exists()

    def keys(self) -> Iterator[str]:
        for p in self.root.glob("??/??/*"):
            if not p.name.startswith(".tmp-"):
                yield p.name

    def verify(self, key: str) -> bool:
        """True when the stored bytes still hash to their key (detects corruption on disk)."""
        return sha256_hex(self.get(key)) == key
