"""Asynchronous downloader: `CandidateRef`s in, `Fetched` results out, politely and in bounded memory.

One aiohttp session (pooled connections) serves a whole run. `fetch_many` keeps at most
`policy.max_in_flight` refs in progress and pulls the next ref only when one finishes, so a list of ten
million URLs costs no more memory than a list of ten. Each host has its own concurrency slots, token
bucket and Retry-After pause; only transient failures (timeouts, connection errors, 429, 5xx) are retried.
The downloader never judges the payload: Content-Type is recorded, not trusted, and the image pipeline
sniffs the bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import queue
import random
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
)
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

import aiohttp
from yarl import URL

from synsetforge.candidates.netpolicy import (
    FetchPolicy,
    ForbiddenAddressError,
    GuardedResolver,
    is_forbidden_ip,
    literal_ip,
    parse_retry_after,
    pick_headers,
    robots_directive,
)
from synsetforge.candidates.types import CandidateRef, Fetched

log = logging.getLogger(__name__)

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
RETRY_AFTER_STATUSES = frozenset({429, 503})
_CHUNK = 64 * 1024
_PRUNE_DOMAINS_ABOVE = 4096


def is_transient_status(status: int) -> bool:
    """Statuses worth retrying: the server may answer differently later."""
    return status >= 500 or status in (408, 425, 429)


@dataclass
class DownloadStats:
    """Counters for one downloader; `failed` is keyed by reason. Safe to read while a run is going on."""

    requested: int = 0
    ok: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    transient_failed: int = 0
    retries: int = 0
    bytes: int = 0
    max_pending: int = 0  # most refs in flight at once during fetch_many

    def as_dict(self) -> dict[str, Any]:
        return {
            "requested": self.requested,
            "ok": self.ok,
            "failed": dict(self.failed),
            "transient_failed": self.transient_failed,
            "retries": self.retries,
            "bytes": self.bytes,
            "max_pending": self.max_pending,
        }


@dataclass
class _Outcome:
    """What one attempt produced; becomes a `Fetched` once retries are settled."""

    data: bytes | None = None
    reason: str | None = None
    transient: bool = False
    status: int | None = None
    final_url: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    retry_after: float | None = None
    detail: str = ""


class _DomainGate:
    """Per-host concurrency slots, a token bucket, and a pause set by Retry-After."""

    def __init__(self, concurrency: int, rate: float, burst: int) -> None:
        self._sem = asyncio.Semaphore(concurrency)
        self._lock = asyncio.Lock()
        self._rate = rate
        self._burst = max(1, burst)
        self._tokens = float(self._burst)
        self._updated = time.monotonic()
        self.blocked_until = 0.0
        self.users = 0

    async def __aenter__(self) -> _DomainGate:
        self.users += 1
        try:
            await self._sem.acquire()
            try:
                await self._take_token()
            except BaseException:
                self._sem.release()
                raise
        except BaseException:
            self.users -= 1
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._sem.release()
        self.users -= 1

    async def _take_token(self) -> None:
        async with self._lock:
            while True:
                now = time.monotonic()
                if self.blocked_until > now:
                    await asyncio.sleep(self.blocked_until - now)
                    continue
                if self._rate <= 0:
                    return
                self._tokens = min(self._burst, self._tokens + (now - self._updated) * self._rate)
                self._updated = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                await asyncio.sleep((1 - self._tokens) / self._rate)

    def pause(self, seconds: float) -> None:
        self.blocked_until = max(self.blocked_until, time.monotonic() + seconds)

    def idle(self, now: float) -> bool:
        """Nobody uses it and forgetting it would lose no state (bucket full, no pause)."""
        full = self._rate <= 0 or self._tokens + (now - self._updated) * self._rate >= self._burst
        return self.users == 0 and self.blocked_until <= now and full


def _fail(ref: CandidateRef, reason: str, *, detail: str = "", elapsed: float = 0.0) -> Fetched:
    return Fetched(ref=ref, data=None, reason=reason, detail=detail, elapsed_s=elapsed)


def read_local(ref: CandidateRef, policy: FetchPolicy) -> Fetched:
    """Read a `file://` ref from disk under the same rules as a download (allowed, inside roots, byte cap)."""
    start = time.monotonic()

    def fail(reason: str, detail: str = "") -> Fetched:
        return _fail(ref, reason, detail=detail, elapsed=time.monotonic() - start)

    parts = urlsplit(ref.url)
    if parts.scheme.lower() != "file" or not policy.allow_files:
        return fail("forbidden_scheme", f"scheme {parts.scheme!r} not allowed")
    if parts.netloc not in ("", "localhost"):
        return fail("invalid_url", f"file URL with host {parts.netloc!r}")
    path = Path(url2pathname(unquote(parts.path)))
    try:
        resolved = path.resolve(strict=True)
    except FileNotFoundError:
        return fail("not_found", str(path))
    except (OSError, RuntimeError) as exc:  # RuntimeError: symlink loop
        return fail("read_error", f"{path}: {exc}")
    if policy.file_roots and not any(resolved.is_relative_to(r.resolve()) for r in policy.file_roots):
        return fail("forbidden_path", f"{path} resolves outside the allowed folders")
    try:
        if not resolved.is_file():
            return fail("not_a_file", str(path))
        size = resolved.stat().st_size
        if size > policy.max_bytes:
            return fail("too_large", f"{size} bytes > {policy.max_bytes}")
        with resolved.open("rb") as fh:
            data = fh.read(policy.max_bytes + 1)
    except OSError as exc:
        return fail("read_error", f"{path}: {exc}")
    if len(data) > policy.max_bytes:
        return fail("too_large", f"more than {policy.max_bytes} bytes")
    if not data:
        return fail("empty_body", str(path))
    return Fetched(
        ref=ref, data=data, final_url=resolved.as_uri(), elapsed_s=time.monotonic() - start, headers={}
    )


class Downloader:
    """Fetch candidate refs over HTTP(S) (and `file://` when the policy allows) under a `FetchPolicy`.

    Use as `async with Downloader(policy) as dl: async for f in dl.fetch_many(refs): ...`, or from
    synchronous code (a worker process or thread) as `for f in Downloader(policy).iter_sync(refs): ...`.
    Results come in completion order, not input order; each carries its ref.
    """

    def __init__(self, policy: FetchPolicy | None = None) -> None:
        self.policy = policy or FetchPolicy()
        self.stats = DownloadStats()
        self._session: aiohttp.ClientSession | None = None
        self._gates: dict[str, _DomainGate] = {}

    # -- session -------------------------------------------------------------------------------------
    def _new_session(self) -> aiohttp.ClientSession:
        p = self.policy
        connector = aiohttp.TCPConnector(
            limit=p.max_connections,
            limit_per_host=p.per_domain_concurrency,
            resolver=GuardedResolver(p),
            ttl_dns_cache=300,
        )
        timeout = aiohttp.ClientTimeout(total=None, connect=p.connect_timeout_s, sock_read=p.read_timeout_s)
        headers = {"User-Agent": p.user_agent, "Accept": "image/*,*/*;q=0.8", **p.extra_headers}
        return aiohttp.ClientSession(
            connector=connector,
            timeout=timeout,
            headers=headers,
            cookie_jar=aiohttp.DummyCookieJar(),  # cookies would grow with the number of hosts
            trust_env=False,
        )

    async def __aenter__(self) -> Downloader:
        if self._session is None:
            self._session = self._new_session()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        self._gates.clear()

    @asynccontextmanager
    async def _session_scope(self) -> AsyncIterator[aiohttp.ClientSession]:
        if self._session is not None:
            yield self._session
            return
        self._session = self._new_session()
        try:
            yield self._session
        finally:
            await self.aclose()

    # -- per-domain state ----------------------------------------------------------------------------
    def _gate(self, host: str) -> _DomainGate:
        gate = self._gates.get(host)
        if gate is None:
            if len(self._gates) > _PRUNE_DOMAINS_ABOVE:
                now = time.monotonic()
                for h in [h for h, g in self._gates.items() if g.idle(now)]:
                    del self._gates[h]
            p = self.policy
            gate = _DomainGate(p.per_domain_concurrency, p.per_domain_rate, p.per_domain_burst)
            self._gates[host] = gate
        return gate

    # -- public API ----------------------------------------------------------------------------------
    async def fetch_many(
        self, refs: Iterable[CandidateRef] | AsyncIterable[CandidateRef], *, ordered: bool = False
    ) -> AsyncGenerator[Fetched, None]:
        """Fetch every ref with at most `max_in_flight` pending, pulling refs only as slots free up.

        Results come as they complete; with `ordered=True` they come in input order instead (a slow ref
        then holds back the ones after it, since the window of started refs cannot grow past the limit).
        """
        async with self._session_scope():
            pending: set[asyncio.Task[Fetched]] = set()  # started and not yet yielded
            order: deque[asyncio.Task[Fetched]] = deque()  # ordered mode: the same tasks, input order
            finished: asyncio.Queue[asyncio.Task[Fetched]] = asyncio.Queue()  # completion order, O(1)
            next_ref = _ref_puller(refs)
            exhausted = False
            try:
                while True:
                    while not exhausted and len(pending) < self.policy.max_in_flight:
                        ref = await next_ref()
                        if ref is None:
                            exhausted = True
                            break
                        task = asyncio.create_task(self.fetch(ref))
                        if ordered:
                            order.append(task)
                        else:
                            task.add_done_callback(finished.put_nowait)
                        pending.add(task)
                        self.stats.max_pending = max(self.stats.max_pending, len(pending))
                    if not pending:
                        return
                    if ordered:
                        task = order.popleft()
                        await asyncio.wait((task,))
                    else:
                        task = await finished.get()
                    pending.discard(task)
                    yield task.result()
            finally:
                for task in pending:
                    task.cancel()
                if pending:
                    await asyncio.gather(*pending, return_exceptions=True)

    async def fetch(self, ref: CandidateRef) -> Fetched:
        """Fetch one ref, retrying transient failures; never raises for network or policy problems."""
        self.stats.requested += 1
        try:
            if self._session is not None:
                result = await self._fetch(ref)
            else:
                async with self._session_scope():  # a standalone call gets a session of its own
                    result = await self._fetch(ref)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug must not end a ten-million-URL run; it is logged and counted
            log.exception("unexpected error fetching %s", ref.url)
            result = _fail(ref, "unexpected_error", detail=f"{type(exc).__name__}: {exc}")
        if result.data is not None:
            self.stats.ok += 1
            self.stats.bytes += len(result.data)
        else:
            self.stats.failed[result.reason or "unknown"] += 1
            self.stats.transient_failed += int(result.transient)
        return result

    def iter_sync(self, refs: Iterable[CandidateRef], *, ordered: bool = False) -> Iterator[Fetched]:
        """Blocking iterator over `fetch_many(refs, ordered=...)`, for worker processes and threads.

        The event loop runs in a private thread and hands results over a bounded queue, so downloads go on
        while the caller processes a result. Closing the iterator early cancels what is in flight.
        """
        results: queue.Queue[Any] = queue.Queue(maxsize=self.policy.max_in_flight)
        stop = threading.Event()
        done = object()
        running: list[tuple[asyncio.AbstractEventLoop, asyncio.Task[Any]]] = []

        async def pump() -> None:
            task = asyncio.current_task()
            assert task is not None
            running.append((asyncio.get_running_loop(), task))
            if stop.is_set():
                return

            async def put(item: object) -> bool:
                while not stop.is_set():
                    try:
                        results.put_nowait(item)
                        return True
                    except queue.Full:
                        await asyncio.sleep(0.005)
                return False

            try:
                agen = self.fetch_many(refs, ordered=ordered)
                try:
                    async for fetched in agen:
                        if not await put(fetched):
                            break
                finally:
                    await agen.aclose()
            except BaseException as exc:
                await put(_Raised(exc))
            finally:
                await put(done)

        thread = threading.Thread(target=asyncio.run, args=(pump(),), name="sf-download", daemon=True)
        thread.start()
        try:
            while True:
                item = results.get()
                if item is done:
                    break
                if isinstance(item, _Raised):
                    raise item.exc
                yield item
        finally:
            stop.set()
            if running and thread.is_alive():  # closed early: cancel in-flight work now, not at its timeout
                loop, task = running[0]
                with contextlib.suppress(RuntimeError):  # the loop may have just finished
                    loop.call_soon_threadsafe(task.cancel)
            thread.join()

    # -- internals -----------------------------------------------------------------------------------
    async def _fetch(self, ref: CandidateRef) -> Fetched:
        start = time.monotonic()
        scheme = urlsplit(ref.url).scheme.lower()
        if scheme == "file":
            return await asyncio.to_thread(read_local, ref, self.policy)
        if scheme not in self.policy.schemes():
            return _fail(ref, "forbidden_scheme", detail=f"scheme {scheme!r} not allowed")
        attempts = 0
        while True:
            attempts += 1
            outcome = await self._attempt(ref)
            if outcome.data is not None or not outcome.transient or attempts > self.policy.max_retries:
                break
            self.stats.retries += 1
            delay = outcome.retry_after
            if delay is None:
                p = self.policy
                delay = min(p.backoff_max_s, p.backoff_base_s * 2 ** (attempts - 1))
                delay *= random.uniform(0.5, 1.5)  # jitter: retries from many tasks do not line up
            log.debug("retry %d of %s in %.2fs after %s", attempts, ref.url, delay, outcome.reason)
            await asyncio.sleep(delay)
        return Fetched(
            ref=ref,
            data=outcome.data,
            reason=outcome.reason,
            transient=outcome.transient,
            status=outcome.status,
            final_url=outcome.final_url,
            elapsed_s=time.monotonic() - start,
            headers=outcome.headers,
            attempts=attempts,
            detail=outcome.detail,
        )

    def _check_hop(self, url: URL) -> _Outcome | None:
        scheme = (url.scheme or "").lower()
        if scheme not in self.policy.allowed_schemes:
            return _Outcome(reason="forbidden_scheme", final_url=str(url), detail=f"scheme {scheme!r}")
        if not url.host:
            return _Outcome(reason="invalid_url", final_url=str(url), detail="no host")
        ip = literal_ip(url.host)
        if ip is not None and is_forbidden_ip(ip, self.policy):
            return _Outcome(reason="forbidden_address", final_url=str(url), detail=f"address {ip}")
        return None

    async def _attempt(self, ref: CandidateRef) -> _Outcome:
        """One try: follow redirects by hand (each hop re-checked), then read the body under the cap."""
        try:
            url = URL(ref.url)
        except (ValueError, TypeError) as exc:
            return _Outcome(reason="invalid_url", detail=str(exc))
        seen = {str(url)}
        budget = self.policy.total_timeout_s
        hops = 0
        while True:
            bad = self._check_hop(url)
            if bad is not None:
                return bad
            assert url.host is not None
            gate = self._gate(url.host.lower())
            async with gate:
                started = time.monotonic()
                try:
                    async with asyncio.timeout(max(budget, 0.0)):
                        outcome, location = await self._request(url)
                except TimeoutError:
                    return _Outcome(
                        reason="timeout", transient=True, final_url=str(url), detail="deadline exceeded"
                    )
                except aiohttp.ClientError as exc:
                    return _client_error_outcome(exc, url)
                except (ValueError, UnicodeError) as exc:
                    return _Outcome(reason="invalid_url", final_url=str(url), detail=str(exc))
                budget -= time.monotonic() - started
                if outcome.retry_after is not None and outcome.status in RETRY_AFTER_STATUSES:
                    gate.pause(outcome.retry_after)  # the whole host waits, not just this ref
            if location is None:
                return outcome
            try:
                nxt = url.join(URL(location))
            except (ValueError, TypeError) as exc:
                return _Outcome(
                    reason="invalid_redirect", status=outcome.status, final_url=str(url), detail=str(exc)
                )
            hops += 1
            if str(nxt) in seen:
                return _Outcome(reason="redirect_loop", status=outcome.status, final_url=str(nxt))
            if hops > self.policy.max_redirects:
                return _Outcome(
                    reason="too_many_redirects",
                    status=outcome.status,
                    final_url=str(nxt),
                    detail=f"more than {self.policy.max_redirects}",
                )
            seen.add(str(nxt))
            url = nxt

    async def _request(self, url: URL) -> tuple[_Outcome, str | None]:
        """GET one hop. Returns the outcome and, for a redirect, the Location to follow."""
        assert self._session is not None, "use fetch_many, iter_sync or `async with Downloader(...)`"
        p = self.policy
        async with self._session.get(url, allow_redirects=False) as resp:
            status = resp.status
            headers = pick_headers(resp.headers, p.recorded_headers)
            base = _Outcome(status=status, final_url=str(resp.url), headers=headers)
            location = resp.headers.get("Location")
            if status in REDIRECT_STATUSES and location:
                return base, location
            if not 200 <= status < 300:
                base.reason = f"http_{status}"
                base.transient = is_transient_status(status)
                if status in RETRY_AFTER_STATUSES:
                    base.retry_after = parse_retry_after(resp.headers.get("Retry-After"), p.retry_after_cap_s)
                return base, None
            if p.respect_robots_tags:
                directive = robots_directive(
                    resp.headers.getall("X-Robots-Tag", []), p.user_agent_tokens, p.disallowed_directives
                )
                if directive is not None:
                    base.reason = f"robots_{directive}"
                    base.detail = headers.get("x-robots-tag", "")
                    return base, None
            length = resp.content_length
            if length is not None and length > p.max_bytes:
                base.reason, base.detail = "too_large", f"Content-Length {length} > {p.max_bytes}"
                return base, None
            encoding = resp.headers.get("Content-Encoding", "").strip().lower()
            if length is not None and encoding in ("", "identity"):
                # size known, within the cap and not compressed: one read, no chunk loop. A compressed
                # body goes through the loop below, which caps what decompression produces.
                data = await resp.read()
                if not data:
                    base.reason = "empty_body"
                    return base, None
                base.data = data
                return base, None
            buf = bytearray()
            async for chunk in resp.content.iter_chunked(_CHUNK):
                buf += chunk
                if len(buf) > p.max_bytes:
                    base.reason, base.detail = "too_large", f"body exceeds {p.max_bytes} bytes"
                    return base, None
            if not buf:
                base.reason = "empty_body"
                return base, None
            base.data = bytes(buf)
            return base, None


@dataclass
class _Raised:
    exc: BaseException


def _ref_puller(refs: Iterable[CandidateRef] | AsyncIterable[CandidateRef]) -> Callable[[], Awaitable[Any]]:
    """One awaitable `next()` over a sync or async iterable of refs; None when it is exhausted."""
    if isinstance(refs, AsyncIterable):
        aiter_refs = aiter(refs)

        async def next_async() -> CandidateRef | None:
            try:
                return await anext(aiter_refs)
            except StopAsyncIteration:
                return None

        return next_async
    sync_iter = iter(refs)

    async def next_sync() -> CandidateRef | None:
        return next(sync_iter, None)

    return next_sync


def _client_error_outcome(exc: aiohttp.ClientError, url: URL) -> _Outcome:
    """Map an aiohttp exception to a short reason; connection trouble is transient, policy refusals not."""
    final = str(url)
    detail = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        cause = exc.os_error if isinstance(exc.os_error, ForbiddenAddressError) else exc.__cause__
        if isinstance(cause, ForbiddenAddressError):
            return _Outcome(reason="forbidden_address", final_url=final, detail=str(cause))
        transient = getattr(exc.os_error, "errno", None) == socket.EAI_AGAIN
        return _Outcome(reason="dns_error", transient=transient, final_url=final, detail=detail)
    if isinstance(exc, aiohttp.ClientSSLError):
        return _Outcome(reason="tls_error", final_url=final, detail=detail)
    if isinstance(exc, aiohttp.ClientConnectorError):
        refused = exc.os_error.errno == errno.ECONNREFUSED
        reason = "connection_refused" if refused else "connection_error"
        return _Outcome(reason=reason, transient=True, final_url=final, detail=detail)
    if isinstance(exc, aiohttp.ClientPayloadError):
        return _Outcome(reason="incomplete_body", transient=True, final_url=final, detail=detail)
    if isinstance(exc, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError):
        return _Outcome(reason="invalid_url", final_url=final, detail=detail)
    if isinstance(exc, aiohttp.ClientConnectionError):
        return _Outcome(reason="connection_error", transient=True, final_url=final, detail=detail)
    if isinstance(exc, aiohttp.ClientResponseError):
        return _Outcome(reason="bad_response", final_url=final, detail=detail)
    return _Outcome(reason="client_error", final_url=final, detail=detail)


def fetch_all(
    refs: Iterable[CandidateRef], policy: FetchPolicy | None = None, *, ordered: bool = True
) -> list[Fetched]:
    """Convenience for small lists: fetch everything and return the results (input order by default)."""
    return list(Downloader(policy).iter_sync(refs, ordered=ordered))
