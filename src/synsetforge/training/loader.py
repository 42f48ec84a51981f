"""Feed a network from a release's blobs: decode once in worker processes, then serve batches from memory.

The FFCV lesson (SPEC section 7): at small resolutions the network is cheap and the loader is the bottleneck,
so decoding must not be repeated every epoch. `DecodedImages` decodes every image of a sample list once, in
worker processes (reduced-size JPEG decoding, see `decode`), straight into a uint8 memory-mapped file
``[N, S, S, 3]`` under the project's cache folder; later epochs, later runs on the same release, `predict` and
`embed` read that file at memory speed. A status byte per image makes filling resumable after a kill, and a
blob that cannot be decoded is marked, counted and left out, so one corrupt file never stops training.

When the decoded file would be too large (`max_bytes`), `DecodedImages` decodes each batch on the fly
instead, in the same worker pool, several batches ahead. Augmentation is not done here: batches leave as
uint8 NHWC arrays and `augment` transforms them on the training device, batched.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import json
import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from synsetforge.store.blobs import BlobStorage
from synsetforge.training.decode import decode_into

PENDING, DECODED, FAILED = 0, 1, 2
DEFAULT_MAX_BYTES = 24 * 1024**3
_CHUNK = 64  # images per worker job

_worker_files: dict[str, np.memmap] = {}


def _open_rows(path: str, n: int, size: int) -> np.memmap:
    arr = _worker_files.get(path)
    if arr is None:
        arr = _worker_files[path] = np.memmap(path, dtype=np.uint8, mode="r+", shape=(n, size, size, 3))
    return arr


def _decode_to_file(
    path: str, n: int, size: int, fit: str, sources: list[tuple[int, str | bytes]]
) -> list[tuple[int, str]]:
    """Worker job: decode rows into the shared file; the pixels never travel through a pipe."""
    return decode_into(_open_rows(path, n, size), sources, size, fit)


def _decode_to_array(
    size: int, fit: str, sources: list[tuple[int, str | bytes]]
) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """Worker job for streaming mode: decode rows into a fresh array that is sent back."""
    out = np.zeros((len(sources), size, size, 3), dtype=np.uint8)
    failed = decode_into(out, [(k, src) for k, (_, src) in enumerate(sources)], size, fit)
    return out, [(sources[k][0], why) for k, why in failed]


def _worker_init(parent_pid: int) -> None:
    from synsetforge.lifeline import exit_with_parent

    exit_with_parent(parent_pid)


def usable_cores() -> int:
    """Cores this process may run on, divided among the local processes of a torchrun job."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(1, cores // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))


def cache_dir(project_root: Path) -> Path:
    """Where decoded images are kept for a project (deleting it only costs a new decode)."""
    return project_root / "cache" / "decoded"


@contextlib.contextmanager
def decoding_pool(workers: int | None) -> Iterator[concurrent.futures.ProcessPoolExecutor | None]:
    """Decoding processes for a block (default one per core, at most 8; 0: decode in this process)."""
    n = workers if workers is not None else min(8, usable_cores())
    pool = worker_pool(n) if n > 0 else None
    try:
        yield pool
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)


def worker_pool(workers: int) -> concurrent.futures.ProcessPoolExecutor:
    """Processes that import only the decoding code (forkserver: safe beside torch's threads)."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["synsetforge.training.decode", "synsetforge.lifeline"])
    return concurrent.futures.ProcessPoolExecutor(
        max(1, workers), mp_context=ctx, initializer=_worker_init, initargs=(os.getpid(),)
    )


@dataclass
class DecodeReport:
    """What decoding found: how many images were decoded now, were already decoded, or failed (and why)."""

    decoded: int = 0
    reused: int = 0
    failed: dict[int, str] = field(default_factory=dict)


def cache_key(blobs: Sequence[str], size: int, fit: str) -> str:
    digest = hashlib.sha256(f"v1 {size} {fit}\n".encode())
    for key in blobs:
        digest.update(key.encode() + b"\n")
    return digest.hexdigest()[:24]


class DecodedImages:
    """The images of a sample list (blob keys), decoded to uint8 [S, S, 3] with `fit`, by row.

    `cache_dir` None or a set larger than `max_bytes`: decode on the fly (`streaming`).
    """

    def __init__(
        self,
        store: BlobStorage,
        blobs: Sequence[str],
        size: int,
        fit: str,
        *,
        cache_dir: Path | None,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self.store = store
        self.blobs = list(blobs)
        self.size = size
        self.fit = fit
        self.n = len(self.blobs)
        nbytes = self.n * size * size * 3
        self.streaming = cache_dir is None or nbytes > max_bytes
        self.path: Path | None = None
        self._rows: np.memmap | None = None
        self._status: np.memmap | None = None
        if not self.streaming:
            assert cache_dir is not None
            cache_dir.mkdir(parents=True, exist_ok=True)
            stem = cache_dir / f"{cache_key(self.blobs, size, fit)}-{size}px"
            self.path = stem.with_suffix(".u8")
            status_path = stem.with_suffix(".status")
            mode: Literal["r+", "w+"] = "r+" if self.path.exists() and status_path.exists() else "w+"
            self._rows = np.memmap(
                self.path, dtype=np.uint8, mode=mode, shape=(max(self.n, 1), size, size, 3)
            )
            self._status = np.memmap(status_path, dtype=np.uint8, mode=mode, shape=(max(self.n, 1),))
            meta = stem.with_suffix(".json")
            if not meta.exists():
                meta.write_text(json.dumps({"size": size, "fit": fit, "images": self.n}) + "\n")

    def _source(self, row: int) -> str | bytes:
        local = self.store.local_path(self.blobs[row])
        if local is not None:
            return str(local)
        try:
            return self.store.get(self.blobs[row])
        except Exception:  # missing or unreachable: let the worker report it as a failed image
            return b""

    # -- cached mode ---------------------------------------------------------------------------------
    def fill(
        self,
        pool: concurrent.futures.Executor | None,
        rows: Sequence[int] | np.ndarray | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> DecodeReport:
        """Decode every pending row (of `rows`, default all) into the cache file; resumable."""
        assert self._status is not None and self.path is not None
        report = DecodeReport()
        wanted = np.arange(self.n) if rows is None else np.asarray(rows, dtype=np.int64)
        status = np.asarray(self._status[: self.n])
        todo = [int(r) for r in wanted if status[r] == PENDING]
        report.reused = int((status[wanted] == DECODED).sum())
        for r in wanted[status[wanted] == FAILED]:
            report.failed[int(r)] = "could not be decoded (an earlier pass found it)"
        chunks = [todo[i : i + _CHUNK] for i in range(0, len(todo), _CHUNK)]
        args = [(str(self.path), max(self.n, 1), self.size, self.fit) for _ in chunks]

        def finish(chunk: list[int], failed: list[tuple[int, str]]) -> None:
            bad = dict(failed)
            assert self._status is not None
            for r in chunk:
                self._status[r] = FAILED if r in bad else DECODED
            report.failed.update(bad)
            report.decoded += len(chunk) - len(bad)
            if progress:
                progress(len(chunk))

        if pool is None:
            rows_file = self._rows
            assert rows_file is not None
            for chunk in chunks:
                srcs = [(r, self._source(r)) for r in chunk]
                finish(chunk, decode_into(rows_file, srcs, self.size, self.fit))
        else:
            pending: deque[tuple[list[int], concurrent.futures.Future[list[tuple[int, str]]]]] = deque()
            it = iter(zip(chunks, args, strict=True))
            depth = 4 * max(1, getattr(pool, "_max_workers", 2))
            while True:
                while len(pending) < depth:
                    nxt = next(it, None)
                    if nxt is None:
                        break
                    chunk, (path, n, size, fit) = nxt
                    srcs = [(r, self._source(r)) for r in chunk]
                    pending.append((chunk, pool.submit(_decode_to_file, path, n, size, fit, srcs)))
                if not pending:
                    break
                chunk, fut = pending.popleft()
                finish(chunk, fut.result())
        self._status.flush()
        return report

    def ok_rows(self) -> np.ndarray:
        """Rows decoded without error (cached mode)."""
        assert self._status is not None
        return np.flatnonzero(np.asarray(self._status[: self.n]) == DECODED)

    def batch(self, rows: np.ndarray) -> np.ndarray:
        """uint8 [len(rows), S, S, 3] from the cache file, in the order of `rows`."""
        assert self._rows is not None
        order = np.argsort(rows, kind="stable")
        out = np.empty((len(rows), self.size, self.size, 3), dtype=np.uint8)
        out[order] = self._rows[rows[order]]
        return out

    # -- streaming mode ------------------------------------------------------------------------------
    def stream(
        self, pool: concurrent.futures.Executor | None, batches: Sequence[np.ndarray], ahead: int = 4
    ) -> Iterator[tuple[np.ndarray, np.ndarray, dict[int, str]]]:
        """Yield (rows kept, uint8 images, failures) per batch, decoding `ahead` batches in advance.

        Cached mode serves from the file; streaming mode decodes in the pool; rows that fail are dropped
        from their batch and reported.
        """
        if not self.streaming:
            for rows in batches:
                yield rows, self.batch(rows), {}
            return

        def submit(rows: np.ndarray) -> list[concurrent.futures.Future[Any]]:
            srcs = [(int(r), self._source(int(r))) for r in rows]
            parts = [srcs[i : i + _CHUNK] for i in range(0, len(srcs), _CHUNK)]
            if pool is None:
                done: concurrent.futures.Future[Any] = concurrent.futures.Future()
                done.set_result(_decode_to_array(self.size, self.fit, srcs))
                return [done]
            return [pool.submit(_decode_to_array, self.size, self.fit, p) for p in parts]

        queue: deque[tuple[np.ndarray, list[concurrent.futures.Future[Any]]]] = deque()
        it = iter(batches)
        exhausted = False
        while True:
            while len(queue) < ahead and not exhausted:
                try:
                    rows = next(it)
                except StopIteration:
                    exhausted = True
                    break
                queue.append((rows, submit(rows)))
            if not queue:
                return
            rows, futs = queue.popleft()
            parts = [f.result() for f in futs]
            images = np.concatenate([p[0] for p in parts]) if parts else np.empty((0,))
            failed = {r: why for p in parts for r, why in p[1]}
            if failed:
                keep = np.asarray([int(r) not in failed for r in rows])
                rows, images = rows[keep], images[keep]
            yield rows, images, failed

    def close(self) -> None:
        for arr in (self._rows, self._status):
            if arr is not None:
                arr.flush()
        self._rows = self._status = None
