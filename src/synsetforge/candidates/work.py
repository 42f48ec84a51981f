"""What a collection worker runs: render (synthetic refs), decode, validate, normalise, hash, store the blob.

A module of its own so worker processes import only the image code (Pillow, simplejpeg, numpy), not the
database layer: the forkserver preloads this module, and a worker forked from it starts in milliseconds.

Downloads: with `fetch_process_chunk` the worker also downloads its chunk (img2dataset's shape: each
worker downloads, decodes, resizes and writes), through one `Downloader` per worker process whose event
loop runs in a thread of that process and keeps its connection pool across chunks. Downloads of a chunk
overlap with the processing of its first results; raw bytes never cross a process boundary.

Blobs: when the caller names a local blob folder, each worker files the normalised JPEG itself
(content-addressed, idempotent, see `synsetforge.store.blobs`) and hands back only its key, so the JPEG bytes
never travel back to the main process and the main process (downloads, deduplication, database rows) has less
to do. The main process removes the blob of an image that turns out to be a near duplicate.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import dataclasses
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from synsetforge.candidates.process import ImagePolicy, process_image
from synsetforge.candidates.types import CandidateRef, Fetched, ProcessedImage, Rejected
from synsetforge.store.blobs import BlobStore

if TYPE_CHECKING:
    from synsetforge.candidates.download import Downloader
    from synsetforge.candidates.netpolicy import FetchPolicy

Result = ProcessedImage | Rejected | Fetched  # Fetched only for a failed download (its data is None)

_STORES: dict[str, BlobStore] = {}  # one per folder and process: it remembers the fan-out folders it made


def render_synthetic(url: str) -> bytes:
    from synsetforge.candidates.sources.synthetic import render_url

    return render_url(url)


def local_blob_store(root: str) -> BlobStore:
    store = _STORES.get(root)
    if store is None:
        store = _STORES[root] = BlobStore(Path(root))
    return store


def _finish(result: ProcessedImage | Rejected, store: BlobStore | None) -> ProcessedImage | Rejected:
    if store is not None and isinstance(result, ProcessedImage):
        return dataclasses.replace(result, blob=store.put(result.data), data=b"")
    return result


def process_chunk(
    items: Sequence[tuple[int, str, bytes | None]], policy: ImagePolicy, blob_root: str | None = None
) -> list[tuple[int, Result]]:
    """Decode, validate, normalise and hash a chunk of images; synthetic ones are rendered here first.

    With `blob_root`, every normalised image is written to that local blob folder and comes back with its
    `blob` key and empty `data`.
    """
    store = local_blob_store(blob_root) if blob_root is not None else None
    out: list[tuple[int, Result]] = []
    for cid, url, data in items:
        if data is None:
            data = render_synthetic(url)
        out.append((cid, _finish(process_image(data, policy), store)))
    return out


class _WorkerFetcher:
    """A `Downloader` whose event loop runs in a daemon thread of this process, kept across chunks."""

    def __init__(self, policy: FetchPolicy) -> None:
        from synsetforge.candidates.download import Downloader

        self.policy = policy
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="sf-worker-download", daemon=True)
        self.thread.start()
        self.downloader: Downloader = Downloader(policy)
        asyncio.run_coroutine_threadsafe(self.downloader.__aenter__(), self.loop).result()

    def fetch(self, refs: Sequence[CandidateRef]) -> list[concurrent.futures.Future[Fetched]]:
        return [asyncio.run_coroutine_threadsafe(self.downloader.fetch(ref), self.loop) for ref in refs]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self.downloader.aclose(), self.loop).result(timeout=5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)


_FETCHER: _WorkerFetcher | None = None
_FETCHER_LOCK = threading.Lock()


def _fetcher(policy: FetchPolicy) -> _WorkerFetcher:
    global _FETCHER
    with _FETCHER_LOCK:
        if _FETCHER is None or _FETCHER.policy != policy:
            if _FETCHER is not None:
                _FETCHER.close()
            else:
                atexit.register(close_fetcher)
            _FETCHER = _WorkerFetcher(policy)
        return _FETCHER


def close_fetcher() -> None:
    """Close this process's downloader (thread and inline engines call it when a run ends)."""
    global _FETCHER
    with _FETCHER_LOCK:
        if _FETCHER is not None:
            _FETCHER.close()
            _FETCHER = None


def fetch_process_chunk(
    refs: Sequence[tuple[int, CandidateRef]],
    fetch_policy: FetchPolicy,
    policy: ImagePolicy,
    blob_root: str | None = None,
) -> list[tuple[int, Result]]:
    """Download a chunk of refs concurrently and process each payload as it arrives; results in input order.

    A failed download comes back as its `Fetched` (reason, transient) without the ref's bytes.
    """
    store = local_blob_store(blob_root) if blob_root is not None else None
    futures = _fetcher(fetch_policy).fetch([ref for _, ref in refs])
    index = {fut: i for i, fut in enumerate(futures)}
    out: list[tuple[int, Result] | None] = [None] * len(refs)
    for fut in concurrent.futures.as_completed(futures):
        i = index[fut]
        fetched = fut.result()
        result: Result
        if fetched.data is None:
            result = fetched
        else:
            result = _finish(process_image(fetched.data, policy), store)
        out[i] = (refs[i][0], result)
    return [item for item in out if item is not None]
