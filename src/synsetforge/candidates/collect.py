"""`synsetforge collect`: source -> register -> fetch -> decode/validate/resize/hash -> dedup -> store.

Shaped like img2dataset's reader -> downloader -> resizer -> writer, with the project store as the ledger:

1. **register**: every ref a source names becomes a `candidates` row (status `pending`) with its provenance.
   Inserts ignore conflicts on (source, synset, key), so a rerun registers nothing twice.
2. **fetch**: pending rows are read back page by page and fetched by the asynchronous downloader (HTTP and
   `file://`); synthetic refs are rendered inside the workers instead.
3. **process**: decoding, validation, resizing and hashing run in a process pool (or on Ray) in chunks.
4. **write**: the main process deduplicates (exact SHA-256, then pHash within `near_distance`) and writes
   each batch in one transaction: blobs first (content-addressed, idempotent), then image rows, then the
   candidates' new status. A crash (even kill -9) leaves every candidate either `pending` or finished, so a
   rerun continues where it stopped with nothing lost or duplicated.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import queue
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import and_, bindparam, or_, select, update

from synsetforge.candidates.dedup import DuplicateIndex
from synsetforge.candidates.download import Downloader
from synsetforge.candidates.netpolicy import FetchPolicy
from synsetforge.candidates.process import ImagePolicy
from synsetforge.candidates.sources._search import Problem, SourceReport
from synsetforge.candidates.types import CandidateRef, Fetched, ProcessedImage, Rejected
from synsetforge.candidates.work import close_fetcher, fetch_process_chunk, process_chunk
from synsetforge.errors import InputError
from synsetforge.lifeline import exit_with_parent
from synsetforge.store import schema
from synsetforge.store.blobs import BlobStore
from synsetforge.store.bulk import insert_ignore
from synsetforge.store.hashes import phash_from_db, phash_to_db
from synsetforge.store.project import Project

SYNTHETIC_SCHEME = "synthetic"
ENGINES = ("process", "thread", "ray", "inline")
TRANSIENT_REASONS_NOTE = "timeouts, connection errors, HTTP 429 and 5xx"


@dataclass
class CollectOptions:
    """How a collection run behaves. Defaults: all cores, shorter side kept <= 500, near-dups within 4 bits."""

    per_synset: int | None = None
    engine: str = "process"
    workers: int | None = None
    ray_address: str | None = None
    image_policy: ImagePolicy = field(default_factory=ImagePolicy)
    fetch_policy: FetchPolicy = field(default_factory=FetchPolicy)
    near_distance: int = 4
    retry_failed: bool = False
    batch_size: int = 256
    chunk_size: int = 16
    page_size: int = 2000
    background_writer: bool = True  # blob files and database rows written by a thread of their own
    fetch_in_workers: bool = False  # workers download their own chunks (see `candidates.work`)

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise InputError(f"engine must be one of {', '.join(ENGINES)}, got {self.engine!r}")
        if self.workers is not None and self.workers < 1:
            raise InputError("workers must be at least 1")
        if not 0 <= self.near_distance <= 16:
            raise InputError("near-duplicate distance must be between 0 and 16 bits")


@dataclass
class CollectSummary:
    """What a run did, per synset: fetched, stored, duplicate, rejected:<reason>, failed:<reason>; and
    what the source skipped before registering anything (`skipped`: reason -> rows; `problems`: the first
    of them with where (file:line or root-relative path), why and a detail, from the source's report)."""

    per_synset: dict[str, Counter[str]] = field(default_factory=dict)
    registered: int = 0
    processed: int = 0
    elapsed_s: float = 0.0
    skipped: Counter[str] = field(default_factory=Counter)
    problems: list[Problem] = field(default_factory=list)

    def count(self, synset_id: str, key: str) -> None:
        self.per_synset.setdefault(synset_id, Counter())[key] += 1

    def totals(self) -> Counter[str]:
        out: Counter[str] = Counter()
        for c in self.per_synset.values():
            out.update(c)
        return out


ProgressHook = Callable[[int, int], None]  # (done, total)


# --- registering refs ----------------------------------------------------------------------------


def source_row(project: Project, kind: str, name: str, config: dict[str, Any] | None = None) -> int:
    """The id of the `sources` row named `name`, created on first use."""
    with project.session() as s:
        sid = s.scalar(select(schema.Source.id).where(schema.Source.name == name))
        if sid is None:
            row = schema.Source(kind=kind, name=name, config=config or {})
            s.add(row)
            s.flush()
            sid = row.id
        return sid


def _domain(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme in ("http", "https"):
        return (parts.hostname or "").lower() or None
    return parts.scheme or None


class LazyHierarchy:
    """The project's hierarchy, loaded only when a source needs more than "is this a known synset?".

    Why: loading WordNet takes 0.3-2 s, and URL lists and folders only check the synset ids of their rows;
    an id that is one of the project's synsets is known without it (they were checked when added).
    """

    def __init__(self, project: Project) -> None:
        self._project = project
        self._ids: frozenset[str] | None = None

    def __contains__(self, synset_id: object) -> bool:
        if self._ids is None:
            self._ids = frozenset(self._project.synset_ids())
        return synset_id in self._ids or synset_id in self._project.hierarchy

    def __getattr__(self, name: str) -> Any:
        return getattr(self._project.hierarchy, name)


def _is_positive(project: Project, ref: CandidateRef) -> bool:
    if "positive" in ref.extra:
        return bool(ref.extra["positive"])
    if ref.truth_synset is None:
        return False
    h = project.hierarchy
    return ref.truth_synset == ref.synset_id or ref.synset_id in h.ancestors(ref.truth_synset)


def register_refs(project: Project, source_id: int, refs: Iterable[CandidateRef], batch: int = 1000) -> int:
    """Insert a `pending` candidate (and any known ground truth) per ref; existing ones are left alone."""
    n = 0
    buf: list[CandidateRef] = []

    def flush() -> None:
        rows = [
            {
                "synset_id": r.synset_id,
                "source_id": source_id,
                "key": r.key,
                "url": r.url,
                "query": r.query,
                "rank": r.rank,
                "page_url": r.page_url,
                "license": r.license,
                "author": r.author,
                "caption": r.caption,
                "domain": _domain(r.url),
                "status": "pending",
                "transient": False,
                "attempts": 0,
                "created_at": schema.utcnow(),
                "updated_at": schema.utcnow(),
            }
            for r in buf
        ]
        known = [r for r in buf if r.truth_synset is not None or "positive" in r.extra]
        with project.session() as s:
            insert_ignore(s, schema.Candidate.__table__, rows, ["source_id", "synset_id", "key"])  # type: ignore[arg-type]
            if known:
                c = schema.Candidate
                keys = sorted({r.key for r in known})
                ids = {
                    (sid, key): cid
                    for sid, key, cid in s.execute(
                        select(c.synset_id, c.key, c.id).where(c.source_id == source_id, c.key.in_(keys))
                    )
                }
                truth = [
                    {
                        "candidate_id": ids[(r.synset_id, r.key)],
                        "positive": _is_positive(project, r),
                        "true_synset": r.truth_synset,
                        "boxes": [[b.xmin, b.ymin, b.xmax, b.ymax] for b in r.boxes],
                    }
                    for r in known
                    if (r.synset_id, r.key) in ids
                ]
                insert_ignore(s, schema.GroundTruth.__table__, truth, ["candidate_id"])  # type: ignore[arg-type]
        buf.clear()

    for ref in refs:
        buf.append(ref)
        n += 1
        if len(buf) >= batch:
            flush()
    if buf:
        flush()
    return n


# --- reading work back ---------------------------------------------------------------------------


def _work_filter(
    source_id: int | None, synset_ids: Sequence[str] | None, retry_failed: bool, synthetic: bool | None = None
) -> list[Any]:
    c = schema.Candidate
    conds: list[Any] = []
    if synthetic is not None:
        is_synthetic = c.url.like(f"{SYNTHETIC_SCHEME}://%")
        conds.append(is_synthetic if synthetic else ~is_synthetic)
    if source_id is not None:
        conds.append(c.source_id == source_id)
    if synset_ids:
        conds.append(c.synset_id.in_(list(synset_ids)))
    if retry_failed:
        conds.append(or_(c.status == "pending", and_(c.status == "failed", c.transient.is_(True))))
    else:
        conds.append(c.status == "pending")
    return conds


def count_work(project: Project, source_id: int | None, synset_ids: Sequence[str] | None, retry: bool) -> int:
    from sqlalchemy import func

    with project.session() as s:
        q = (
            select(func.count())
            .select_from(schema.Candidate)
            .where(*_work_filter(source_id, synset_ids, retry))
        )
        return int(s.scalar(q) or 0)


def pending_refs(
    project: Project,
    source_id: int | None,
    synset_ids: Sequence[str] | None,
    retry: bool,
    page: int,
    synthetic: bool | None = None,
) -> Iterator[CandidateRef]:
    """Candidates still to do, as refs, streamed in id order one page at a time (memory stays flat)."""
    c = schema.Candidate
    last = 0
    while True:
        with project.session() as s:
            rows = s.execute(
                select(c.id, c.synset_id, c.url, c.key)
                .where(c.id > last, *_work_filter(source_id, synset_ids, retry, synthetic))
                .order_by(c.id)
                .limit(page)
            ).all()
        if not rows:
            return
        for cid, synset_id, url, key in rows:
            yield CandidateRef(synset_id=synset_id, source="", url=url, key=key, extra={"candidate_id": cid})
        last = rows[-1][0]


# --- the engine ----------------------------------------------------------------------------------


def _forkserver() -> Any:
    """The forkserver context, started now (it imports the pipeline while the caller does other work).

    forkserver: the downloader runs an event loop in a thread, and forking a threaded process is unsafe. The
    server imports the worker module (`candidates.work`: image code only, no database layer) once and every
    worker forks with it loaded instead of importing it again. Workers exit when this process dies, even by
    `kill -9` (`synsetforge.lifeline`); the forkserver and the resource tracker follow them.
    """
    import multiprocessing
    import multiprocessing.forkserver

    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["synsetforge.candidates.work", "synsetforge.lifeline"])
    multiprocessing.forkserver.ensure_running()
    return ctx


def make_executor(options: CollectOptions) -> Executor:
    workers = options.workers or os.cpu_count() or 1
    if options.engine == "process":
        return ProcessPoolExecutor(
            workers, mp_context=_forkserver(), initializer=exit_with_parent, initargs=(os.getpid(),)
        )
    if options.engine == "thread":
        return ThreadPoolExecutor(workers)
    if options.engine == "ray":
        from synsetforge.candidates.ray_engine import RayExecutor

        return RayExecutor(options.ray_address, workers)
    return _InlineExecutor()


class _InlineExecutor(Executor):
    """Runs each call at submit time: for debugging and for tiny runs where a pool costs more than it saves."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        fut: Future[Any] = Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            fut.set_exception(exc)
        return fut


_c = schema.Candidate.__table__.c
_STATUS_UPDATE = (
    update(schema.Candidate.__table__)  # type: ignore[arg-type]
    .where(_c.id == bindparam("b_id"))
    .values(
        status=bindparam("b_status"),
        reject_reason=bindparam("b_reason"),
        transient=bindparam("b_transient"),
        image_id=bindparam("b_image"),
        attempts=_c.attempts + 1,
        updated_at=bindparam("b_now"),
    )
)


_Result = tuple[int, str, ProcessedImage | Rejected | Fetched]


class _Writer:
    """Deduplicates finished images and writes them in batches, one transaction per batch.

    With `background=True` a single writer thread deduplicates and writes each batch (blob files, then one
    transaction) while the main thread keeps the worker pool fed: blob files and SQLite cost system time
    that would otherwise stall the pipeline. One thread, batches in order: dedup decisions and the crash
    guarantees are those of the synchronous writer. At most `_BACKLOG` batches wait, so memory stays flat.
    """

    _BACKLOG = 2

    def __init__(
        self, project: Project, options: CollectOptions, summary: CollectSummary, background: bool = False
    ):
        self.project = project
        self.options = options
        self.summary = summary
        self.index = DuplicateIndex(options.near_distance)
        self.results: list[_Result] = []
        self.lock = threading.Lock()  # guards `summary` (the main thread counts fetches)
        self._queue: queue.Queue[list[_Result] | None] | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._load_index()
        if background:
            self._queue = queue.Queue(maxsize=self._BACKLOG)
            self._thread = threading.Thread(target=self._run, name="sf-writer", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        assert self._queue is not None
        while True:
            batch = self._queue.get()
            if batch is None:
                return
            if self._error is not None:
                continue  # drain without writing: the main thread raises at its next call
            try:
                self._write(batch)
            except BaseException as exc:
                self._error = exc

    def _check(self) -> None:
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        """Write what is left and wait for the writer thread; re-raises its error, if any."""
        self.flush()
        if self._thread is not None:
            assert self._queue is not None
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        self._check()

    def abort(self) -> None:
        """Stop the writer thread after the batch it is writing (the rest stays pending for a rerun)."""
        if self._thread is not None:
            assert self._queue is not None
            self._error = self._error or RuntimeError("collection aborted")
            with contextlib.suppress(queue.Empty):
                while True:
                    self._queue.get_nowait()
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    def _load_index(self) -> None:
        """Resume: every canonical image already stored takes part in deduplication."""
        im = schema.Image
        with self.project.session() as s:
            rows = s.execute(
                select(im.sha256, im.phash).where(im.duplicate_of.is_(None), im.blob.is_not(None))
            )
            self.index.add_many((sha, sha, phash_from_db(ph)) for sha, ph in rows)

    def add(self, cid: int, synset_id: str, result: ProcessedImage | Rejected | Fetched) -> None:
        self.results.append((cid, synset_id, result))
        if len(self.results) >= self.options.batch_size:
            self.flush()

    def flush(self) -> None:
        """Hand the collected results over: written now, or queued for the writer thread."""
        self._check()
        if not self.results:
            return
        batch, self.results = self.results, []
        if self._queue is None:
            self._write(batch)
        else:
            self._queue.put(batch)

    def _count(self, synset_id: str, key: str) -> None:
        with self.lock:
            self.summary.count(synset_id, key)

    def _write(self, batch: list[_Result]) -> None:
        now = schema.utcnow()
        updates: list[dict[str, Any]] = []
        new_images: dict[str, dict[str, Any]] = {}
        links: list[tuple[int, str, str]] = []  # (candidate, synset, canonical sha)
        new_blobs: set[str] = set()
        dropped: list[str] = []  # blobs of duplicates that workers already wrote
        for cid, synset_id, res in batch:
            if isinstance(res, Fetched):  # download failed
                updates.append(self._status(cid, "failed", res.reason, res.transient, now))
                self._count(synset_id, f"failed:{res.reason}")
            elif isinstance(res, Rejected):
                updates.append(self._status(cid, "rejected", res.reason, False, now))
                self._count(synset_id, f"rejected:{res.reason}")
            else:
                hit = self.index.match(res.sha256, res.phash)
                if hit is None:
                    self.index.add(res.sha256, res.sha256, res.phash)
                    key = res.blob or self.project.blobs.put(res.data)
                    new_images[res.sha256] = self._image_row(res, key, None, None, now)
                    new_blobs.add(key)
                    links.append((cid, synset_id, res.sha256))
                else:
                    canonical = str(hit.image_id)
                    if canonical != res.sha256 and res.sha256 not in new_images:
                        # keep the near-duplicate's provenance, not its bytes
                        new_images[res.sha256] = self._image_row(res, None, canonical, hit.distance, now)
                    links.append((cid, synset_id, canonical))
                    if res.blob is not None:
                        dropped.append(res.blob)  # a worker filed it before the duplicate was known
        with self.project.session() as s:
            im = schema.Image
            canon_rows = [r for r in new_images.values() if r["_dup_sha"] is None]
            insert_ignore(s, im.__table__, [self._strip(r) for r in canon_rows], ["sha256"])  # type: ignore[arg-type]
            shas = {sha for _, _, sha in links} | {
                r["_dup_sha"] for r in new_images.values() if r["_dup_sha"]
            }
            ids = dict(s.execute(select(im.sha256, im.id).where(im.sha256.in_(shas))).all()) if shas else {}
            dup_rows = []
            for r in new_images.values():
                if r["_dup_sha"] is not None:
                    r = dict(r, duplicate_of=ids[r["_dup_sha"]])
                    dup_rows.append(self._strip(r))
            insert_ignore(s, im.__table__, dup_rows, ["sha256"])  # type: ignore[arg-type]
            # an image already holding a finished candidate for the same synset makes this one a duplicate
            image_ids = {ids[sha] for _, _, sha in links}
            taken: set[tuple[int | None, str]] = set()
            if image_ids:
                c = schema.Candidate
                rows = s.execute(
                    select(c.image_id, c.synset_id).where(c.image_id.in_(image_ids), c.status == "stored")
                )
                taken = {(iid, syn) for iid, syn in rows}
            for cid, synset_id, sha in links:
                iid = ids[sha]
                status = "duplicate" if (iid, synset_id) in taken else "stored"
                taken.add((iid, synset_id))
                updates.append(self._status(cid, status, None, False, now, image_id=iid))
                self._count(synset_id, status)
            if updates:
                s.execute(_STATUS_UPDATE, updates)
            drop = self._unreferenced(s, set(dropped) - new_blobs)
        for key in drop:  # after the commit: a crash before it leaves the file, and the rerun removes it
            self.project.blobs.delete(key)
        with self.lock:
            self.summary.processed += len(batch)

    @staticmethod
    def _unreferenced(session: Any, keys: set[str]) -> list[str]:
        """The blob keys no stored image uses (two different originals can normalise to the same bytes)."""
        if not keys:
            return []
        im = schema.Image
        used = set(session.scalars(select(im.blob).where(im.blob.in_(sorted(keys)))))
        return sorted(keys - used)

    @staticmethod
    def _status(
        cid: int, status: str, reason: str | None, transient: bool, now: Any, image_id: int | None = None
    ) -> dict[str, Any]:
        return {
            "b_id": cid,
            "b_status": status,
            "b_reason": reason,
            "b_transient": transient,
            "b_image": image_id,
            "b_now": now,
        }

    @staticmethod
    def _image_row(
        res: ProcessedImage, blob: str | None, dup_sha: str | None, distance: int | None, now: Any
    ) -> dict[str, Any]:
        return {
            "sha256": res.sha256,
            "blob": blob,
            "width": res.width,
            "height": res.height,
            "orig_width": res.orig_width,
            "orig_height": res.orig_height,
            "orig_bytes": res.orig_bytes,
            "orig_format": res.orig_format,
            "phash": phash_to_db(res.phash),
            "duplicate_of": None,
            "duplicate_distance": distance,
            "created_at": now,
            "_dup_sha": dup_sha,
        }

    @staticmethod
    def _strip(row: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in row.items() if not k.startswith("_")}


def fetch_stream(
    refs: Iterator[CandidateRef], policy: FetchPolicy, synthetic: bool
) -> Iterator[tuple[CandidateRef, Fetched | None]]:
    """Synthetic refs pass straight through (the workers render them); the rest stream through one downloader."""
    if synthetic:
        for ref in refs:
            yield ref, None
        return
    for fetched in Downloader(policy).iter_sync(refs, ordered=True):  # input order: deterministic dedup
        yield fetched.ref, fetched


def worker_blob_root(project: Project, options: CollectOptions) -> str | None:
    """The folder workers file blobs in themselves, or None when the main process writes them: Ray workers
    may run on other machines, and only a local folder store can be shared this way."""
    if options.engine == "ray" or type(project.blobs) is not BlobStore:
        return None
    return str(project.blobs.root)


def worker_fetch_policy(policy: FetchPolicy, workers: int) -> FetchPolicy:
    """Each of `workers` downloading workers gets its share of the run's limits, so that together they stay
    within the per-domain concurrency and rate (and the in-flight total) that the policy allows."""
    return dataclasses.replace(
        policy,
        max_in_flight=max(1, policy.max_in_flight // workers),
        max_connections=max(1, policy.max_connections // workers),
        per_domain_concurrency=max(1, policy.per_domain_concurrency // workers),
        per_domain_rate=policy.per_domain_rate / workers,
        per_domain_burst=max(1, policy.per_domain_burst // workers),
    )


def run_pipeline(
    project: Project,
    stream: Iterator[tuple[CandidateRef, Fetched | None]],
    total: int,
    options: CollectOptions,
    summary: CollectSummary,
    progress: ProgressHook | None = None,
    fetch_in_workers: bool = False,
) -> None:
    """Process and write fetched refs (each carrying its candidate id in `extra`).

    With `fetch_in_workers` the stream carries refs only (no `Fetched`) and each worker downloads its chunk.
    """
    first = next(stream, None)
    if first is None:
        return  # nothing to do: don't start a worker pool
    stream = itertools.chain([first], stream)
    writer = _Writer(project, options, summary, background=options.background_writer)
    blob_root = worker_blob_root(project, options)
    synset_of: dict[int, str] = {}
    chunk: list[Any] = []
    in_flight: deque[Future[list[tuple[int, Any]]]] = deque()
    workers = options.workers or os.cpu_count() or 1
    max_in_flight = max(2, workers * 4)
    chunk_size = options.chunk_size
    if fetch_in_workers:
        fetch_policy = worker_fetch_policy(options.fetch_policy, workers)
        chunk_size = max(chunk_size, fetch_policy.max_in_flight)  # enough downloads in flight per worker
        max_in_flight = max(2, workers * 2)
    done = 0

    def submit(items: list[Any]) -> None:
        if fetch_in_workers:
            fut = pool.submit(fetch_process_chunk, items, fetch_policy, options.image_policy, blob_root)
        else:
            fut = pool.submit(process_chunk, items, options.image_policy, blob_root)
        in_flight.append(fut)

    def drain(block_until: int) -> None:
        nonlocal done
        while len(in_flight) > block_until:
            for cid, res in in_flight.popleft().result():
                synset_id = synset_of.pop(cid)
                if fetch_in_workers and not isinstance(res, Fetched):
                    with writer.lock:
                        summary.count(synset_id, "fetched")
                writer.add(cid, synset_id, res)
                done += 1
            if progress:
                progress(done, total)

    try:
        with make_executor(options) as pool:
            for ref, fetched in stream:
                cid = int(ref.extra["candidate_id"])
                if fetched is not None and fetched.data is None:
                    writer.add(cid, ref.synset_id, fetched)
                    done += 1
                    continue
                synset_of[cid] = ref.synset_id
                if fetch_in_workers:
                    chunk.append((cid, ref))
                else:
                    with writer.lock:
                        summary.count(ref.synset_id, "fetched")
                    chunk.append((cid, ref.url, None if fetched is None else fetched.data))
                if len(chunk) >= chunk_size:
                    submit(chunk)
                    chunk = []
                    drain(max_in_flight)
            if chunk:
                submit(chunk)
            drain(0)
        writer.close()
    except BaseException:
        writer.abort()
        raise
    finally:
        if fetch_in_workers and options.engine in ("thread", "inline"):
            close_fetcher()  # the downloader lived in this process
    if progress:
        progress(done, total)


def collect(
    project: Project,
    source: Any,
    synset_ids: Sequence[str],
    options: CollectOptions | None = None,
    *,
    kind: str | None = None,
    progress: ProgressHook | None = None,
    on_total: Callable[[int], None] | None = None,
) -> CollectSummary:
    """Register the source's refs for `synset_ids`, then fetch, process and store every pending one.

    With `options.retry_failed`, nothing is asked of the source: only candidates that failed with a
    transient reason (and any still pending) are fetched again.
    """
    options = options or CollectOptions()
    start = time.perf_counter()
    summary = CollectSummary()
    unknown = sorted(set(synset_ids) - set(project.synset_ids()))
    if unknown:
        raise InputError(
            f"{len(unknown)} synsets are not in the project (first: {unknown[0]}); add them with `synsetforge synsets add`"
        )
    if options.engine == "process":
        _forkserver()  # starts importing in its own process while the refs are registered
    source_id = source_row(project, kind or getattr(source, "kind", source.name), source.name)
    if not options.retry_failed:
        summary.registered = register_refs(
            project, source_id, source.refs(synset_ids, options.per_synset, LazyHierarchy(project))
        )
        report = getattr(source, "report", None)  # sources that read files count the rows they skip
        if isinstance(report, SourceReport):
            summary.skipped.update(report.skipped)
            summary.problems.extend(report.problems)
    total = count_work(project, source_id, synset_ids, options.retry_failed)
    if on_total:
        on_total(total)
    done = 0

    def progress_all(n: int, _total: int) -> None:
        if progress:
            progress(done + n, total)

    for synthetic in (True, False):  # each pass is homogeneous: rendered locally, or downloaded
        refs = pending_refs(
            project, source_id, synset_ids, options.retry_failed, options.page_size, synthetic
        )
        in_workers = options.fetch_in_workers and not synthetic
        stream = (
            ((ref, None) for ref in refs)
            if in_workers
            else fetch_stream(refs, options.fetch_policy, synthetic)
        )
        before = summary.processed
        run_pipeline(project, stream, total, options, summary, progress_all, fetch_in_workers=in_workers)
        done += summary.processed - before
    summary.elapsed_s = time.perf_counter() - start
    return summary
