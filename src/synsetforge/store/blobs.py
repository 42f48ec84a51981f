"""Content-addressed blob stores: bytes are filed under their SHA-256, so a blob is written once.

Two kinds, one interface (`BlobStorage`), same layout (`<root>/ab/cd/abcd...`):

* `BlobStore(root)`: a local folder (the default, `DIR/blobs`). Writes go to a temporary file that is
  renamed into place, so a crash never leaves a half-written blob under a valid name and concurrent
  writers of the same bytes are harmless.
* `FsspecBlobStore(url)`: any fsspec URL (``s3://bucket/prefix``, ``gcs://...``, ``file:///abs/path``,
  ``memory://name``, ...). Object stores get one ``pipe`` per blob (a PUT is atomic there); filesystems
  with real folders get a temporary name and a move, like the local store.

Writes are idempotent (a blob that exists is not written again), so a rerun continues where a crash
stopped. `open_blob_store(spec, project_root)` picks the kind from the project's `[store] blobs` setting:
a path (relative to the project, or absolute) is a `BlobStore`; anything with ``://`` is an
`FsspecBlobStore` -- ``file://`` included: it files the same bytes at the same places as a `BlobStore`
on that folder (the two are interchangeable) and keeps the fast local paths (`local_path`).

Callers that can use a file on disk (serving, exports) ask `local_path(key)` first and fall back to
`open(key)` (a stream) or `get(key)` (bytes) when it is None.
"""

from __future__ import annotations

import abc
import functools
import hashlib
import itertools
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from synsetforge.errors import NotFoundError, StoreError

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

_KEY = re.compile(r"[0-9a-f]{64}")
_CHUNK = 1 << 20
# protocols whose writes are single atomic PUTs (and whose "move" is a copy): blobs are written in place
_OBJECT_STORES = frozenset(
    {"s3", "s3a", "gcs", "gs", "az", "abfs", "abfss", "adl", "oss", "r2", "memory", "hf", "dbfs"}
)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_key(key: str) -> str:
    """The key itself when it is a blob key (64 lowercase hex digits); NotFoundError otherwise."""
    if not _KEY.fullmatch(key):
        raise NotFoundError(f"not a blob key: {key!r}")
    return key


def relative_key_path(key: str) -> str:
    """Where a blob lives under a store's root: ``ab/cd/abcd...``."""
    check_key(key)
    return f"{key[:2]}/{key[2:4]}/{key}"


class BlobStorage(abc.ABC):
    """What every blob store offers; callers should not care which kind they have.

    Keys are the hex SHA-256 of the content. A key that is not one raises NotFoundError, as does a missing
    blob; a store that cannot be reached or written raises StoreError.
    """

    @property
    @abc.abstractmethod
    def location(self) -> str:
        """Where the blobs are, for messages (a folder or a URL; no secrets)."""

    @abc.abstractmethod
    def put(self, data: bytes) -> str:
        """Store bytes under their SHA-256 and return it; a no-op when the blob already exists."""

    @abc.abstractmethod
    def get(self, key: str) -> bytes:
        """The blob's bytes."""

    @abc.abstractmethod
    def open(self, key: str) -> IO[bytes]:
        """The blob as a readable (and seekable) binary stream; close it after use."""

    @abc.abstractmethod
    def exists(self, key: str) -> bool: ...

    @abc.abstractmethod
    def size(self, key: str) -> int:
        """The blob's length in bytes."""

    @abc.abstractmethod
    def keys(self) -> Iterator[str]:
        """Every stored key (in no particular order)."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove a blob (no error when it is not there). Only for blobs nothing refers to."""

    def local_path(self, key: str) -> Path | None:
        """The blob's file on this machine (it may not exist), or None when the store is not local."""
        check_key(key)
        return None

    def prepare(self) -> None:  # noqa: B027 - optional hook
        """Create what the store needs before its first write (a folder); nothing for object stores."""

    def verify(self, key: str) -> bool:
        """True when the stored bytes still hash to their key (detects corruption); streamed."""
        digest = hashlib.sha256()
        with self.open(key) as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
        return digest.hexdigest() == key

    def writer(self) -> BlobWriter:
        """A blob too big for memory, written in pieces: ``with store.writer() as w: w.write(...)``.

        The bytes are hashed as they go to a local temporary file; on leaving the block they are stored
        under their key (`w.key`), unless the block raised: then nothing is stored.
        """
        return BlobWriter(self, self._temp_dir())

    def _temp_dir(self) -> Path | None:
        """Where `writer` keeps its temporary file (None: the system's temporary folder)."""
        return None

    @abc.abstractmethod
    def _adopt(self, tmp: Path, key: str) -> None:
        """Store the local file `tmp` (whose SHA-256 is `key`) as a blob; `tmp` is gone afterwards."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.location!r})"


class BlobWriter:
    """A blob being written in pieces (see `BlobStorage.writer`)."""

    def __init__(self, store: BlobStorage, tmp_dir: Path | None):
        self._store = store
        if tmp_dir is not None:
            tmp_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=tmp_dir, prefix=".tmp-write-")
        self._tmp = Path(name)
        self._file: IO[bytes] = os.fdopen(fd, "wb")
        self._digest = hashlib.sha256()
        self.size = 0
        self.key: str | None = None

    def write(self, data: bytes) -> int:
        self._digest.update(data)
        self._file.write(data)
        self.size += len(data)
        return len(data)

    def commit(self) -> str:
        """Store what was written; returns the key."""
        if self.key is None:
            self._file.close()
            key = self._digest.hexdigest()
            try:
                self._store._adopt(self._tmp, key)
            finally:
                self._tmp.unlink(missing_ok=True)
            self.key = key
        return self.key

    def abort(self) -> None:
        self._file.close()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if kind is None:
            self.commit()
        else:
            self.abort()


class BlobStore(BlobStorage):
    """Blobs in a local folder, keyed by the hex SHA-256 of their content."""

    def __init__(self, root: Path | str):
        self.root = Path(root)
        self._made: set[Path] = set()  # fan-out folders known to exist: saves a mkdir per write
        self._tmp = itertools.count()

    @property
    def location(self) -> str:
        return str(self.root)

    def path(self, key: str) -> Path:
        if not _KEY.fullmatch(key):
            raise NotFoundError(f"not a blob key: {key!r}")
        return self.root / key[:2] / key[2:4] / key

    def local_path(self, key: str) -> Path:
        return self.path(key)

    def prepare(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

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

    def open(self, key: str) -> IO[bytes]:
        try:
            return open(self.path(key), "rb")
        except FileNotFoundError:
            raise NotFoundError(f"blob {key} is not in {self.root}") from None

    def exists(self, key: str) -> bool:
        return self.path(key).exists()

    def size(self, key: str) -> int:
        try:
            return self.path(key).stat().st_size
        except FileNotFoundError:
            raise NotFoundError(f"blob {key} is not in {self.root}") from None

    def keys(self) -> Iterator[str]:
        for p in self.root.glob("??/??/*"):
            if not p.name.startswith(".tmp-"):
                yield p.name

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def _temp_dir(self) -> Path:
        return self.root  # same filesystem as the blobs: adopting is a rename

    def _adopt(self, tmp: Path, key: str) -> None:
        target = self.path(key)
        if target.exists():
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, target)


def _redact_url(url: str) -> str:
    """The URL with any password in it hidden."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _filesystem(url: str, options: dict[str, Any]) -> tuple[AbstractFileSystem, str]:
    """fsspec's filesystem and root path for a URL; StoreError for an unknown protocol or a missing driver."""
    import fsspec
    from fsspec.core import url_to_fs
    from fsspec.registry import known_implementations

    shown = _redact_url(url)
    protocol = url.split("://", 1)[0].lower()
    try:
        return url_to_fs(url, **options)
    except ImportError as exc:
        impl = known_implementations.get(protocol, {})
        package = str(impl.get("class", "")).split(".", 1)[0]
        if package and package != "fsspec":
            raise StoreError(
                f"the blob store {shown} needs the {package} package, which is not installed: "
                f"pip install {package}"
            ) from None
        raise StoreError(f"the blob store {shown} needs a driver that is not installed: {exc}") from None
    except ValueError as exc:
        if protocol not in fsspec.available_protocols():
            raise StoreError(
                f"unknown blob store protocol {protocol!r} in {shown}: use a folder or an fsspec URL "
                "such as s3://bucket/prefix, gcs://bucket/prefix, file:///abs/path or memory://name"
            ) from None
        raise StoreError(f"not a usable blob store URL {shown}: {exc}") from None
    except OSError as exc:
        raise StoreError(f"cannot open the blob store {shown}: {exc}") from None


class FsspecBlobStore(BlobStorage):
    """Blobs under any fsspec URL, in the same ``ab/cd/<sha256>`` layout as a local `BlobStore`.

    `storage_options` go to the fsspec filesystem (credentials, endpoint...); most drivers also read
    their usual environment variables and config files. The store pickles as its URL and options, so it
    can be handed to worker processes (a ``memory://`` store is per process, though).
    """

    def __init__(self, url: str, **storage_options: Any):
        if "://" not in url:
            raise StoreError(f"not an fsspec URL: {url!r} (expected PROTOCOL://...)")
        self.url = url
        self._options = storage_options
        self.fs, root = _filesystem(url, storage_options)
        self._root = root.rstrip("/")
        protocols = self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,)
        self._local: Path | None = Path(self._root or "/") if "file" in protocols else None
        self._in_place = any(p in _OBJECT_STORES for p in protocols)  # else: temporary name + move
        self._made: set[str] = set()
        self._location = _redact_url(url)

    def __reduce__(self) -> tuple[Any, ...]:
        return (functools.partial(FsspecBlobStore, **self._options), (self.url,))

    @property
    def location(self) -> str:
        return self._location

    def fs_path(self, key: str) -> str:
        """The blob's path on the fsspec filesystem (no protocol)."""
        return f"{self._root}/{relative_key_path(key)}"

    def local_path(self, key: str) -> Path | None:
        rel = relative_key_path(key)
        return None if self._local is None else self._local / rel

    def prepare(self) -> None:
        if not self._in_place:
            try:
                self.fs.makedirs(self._root, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the blob store {self.location}: {exc}") from None

    def _missing(self, key: str) -> NotFoundError:
        return NotFoundError(f"blob {key} is not in {self.location}")

    def put(self, data: bytes) -> str:
        key = sha256_hex(data)
        target = self.fs_path(key)
        try:
            if not self.fs.exists(target):
                self._store(target, key, lambda path: self.fs.pipe_file(path, data))
        except OSError as exc:
            raise StoreError(f"cannot write blob {key} to {self.location}: {exc}") from None
        return key

    def _store(self, target: str, key: str, write: Callable[[str], object]) -> None:
        """`write(path)` the blob straight to `target` on object stores (one request is atomic there), else
        to a temporary name next to it, then move it into place."""
        if self._in_place:
            write(target)
            return
        tmp = self._temp_name(target, key)
        try:
            write(tmp)
            self.fs.mv(tmp, target)
        except BaseException:
            self._discard(tmp)
            raise

    def _temp_name(self, target: str, key: str) -> str:
        parent = target.rsplit("/", 1)[0]
        if parent not in self._made:
            self.fs.makedirs(parent, exist_ok=True)
            self._made.add(parent)
        return f"{parent}/.tmp-{os.getpid()}-{uuid.uuid4().hex[:12]}-{key[:8]}"

    def _discard(self, path: str) -> None:
        try:
            if self.fs.exists(path):
                self.fs.rm_file(path)
        except OSError:
            pass

    def get(self, key: str) -> bytes:
        path = self.fs_path(key)
        try:
            data: bytes = self.fs.cat_file(path)
        except FileNotFoundError:
            raise self._missing(key) from None
        except OSError as exc:
            raise StoreError(f"cannot read blob {key} from {self.location}: {exc}") from None
        return data

    def open(self, key: str) -> IO[bytes]:
        path = self.fs_path(key)
        try:
            f: IO[bytes] = self.fs.open(path, "rb")
        except FileNotFoundError:
            raise self._missing(key) from None
        except OSError as exc:
            raise StoreError(f"cannot read blob {key} from {self.location}: {exc}") from None
        return f

    def exists(self, key: str) -> bool:
        path = self.fs_path(key)
        try:
            return bool(self.fs.exists(path))
        except OSError as exc:
            raise StoreError(f"cannot reach the blob store {self.location}: {exc}") from None

    def size(self, key: str) -> int:
        path = self.fs_path(key)
        try:
            return int(self.fs.size(path))
        except FileNotFoundError:
            raise self._missing(key) from None

    def keys(self) -> Iterator[str]:
        try:
            found = self.fs.find(self._root)
        except FileNotFoundError:
            return
        for path in found:
            parts = str(path).rstrip("/").rsplit("/", 3)
            if len(parts) < 4:
                continue
            _, a, b, name = parts
            if _KEY.fullmatch(name) and a == name[:2] and b == name[2:4]:
                yield name

    def delete(self, key: str) -> None:
        path = self.fs_path(key)
        try:
            self.fs.rm_file(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StoreError(f"cannot delete blob {key} from {self.location}: {exc}") from None

    def _temp_dir(self) -> Path | None:
        return self._local  # local: next to the blobs, so adopting is a rename

    def _adopt(self, tmp: Path, key: str) -> None:
        target = self.fs_path(key)
        try:
            if self.fs.exists(target):
                return
            if self._local is not None:
                self.fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
                os.replace(tmp, target)
            else:
                self._store(target, key, lambda path: self.fs.put_file(str(tmp), path))
        except OSError as exc:
            raise StoreError(f"cannot write blob {key} to {self.location}: {exc}") from None


def open_blob_store(spec: str, project_root: Path) -> BlobStorage:
    """The blob store a project's ``[store] blobs`` setting names.

    A path -- relative (to the project folder) or absolute, ``~`` expanded -- is a local `BlobStore`;
    anything with ``://`` (``s3://``, ``gcs://``, ``memory://``, ``file://``...) is an `FsspecBlobStore`.
    """
    spec = spec.strip()
    if not spec:
        raise StoreError("the blob store setting is empty: use a folder or an fsspec URL")
    if "://" in spec:
        return FsspecBlobStore(spec)
    path = Path(spec).expanduser()
    return BlobStore(path if path.is_absolute() else project_root / path)


def copy_blob(store: BlobStorage, key: str, target: Path) -> None:
    """Copy a blob into a local file: a file copy for local stores, a stream otherwise."""
    src = store.local_path(key)
    if src is not None:
        try:
            shutil.copyfile(src, target)
        except FileNotFoundError:
            if not src.exists():
                raise NotFoundError(f"blob {key} is not in {store.location}") from None
            raise
        return
    with store.open(key) as f, open(target, "wb") as out:
        shutil.copyfileobj(f, out, _CHUNK)


__all__ = [
    "BlobStorage",
    "BlobStore",
    "BlobWriter",
    "FsspecBlobStore",
    "check_key",
    "copy_blob",
    "open_blob_store",
    "sha256_hex",
]
