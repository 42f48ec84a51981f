"""Downloader against a real loopback server: every bad input gets its reason, the rest of the run is fine."""

from __future__ import annotations

import asyncio
import gzip
import ipaddress
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp import web

from _servers import LoopbackServer, closed_port
from synsetforge.candidates.download import Downloader, fetch_all, read_local
from synsetforge.candidates.netpolicy import FetchPolicy, is_forbidden_ip, parse_retry_after, robots_directive
from synsetforge.candidates.types import CandidateRef, Fetched

CAP = 10_000
JPEG = b"\xff\xd8\xff\xe0" + b"x" * 200


class Recorder:
    """Server-side bookkeeping: hits per path, concurrency high-water mark, request times."""

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.active = 0
        self.max_active = 0
        self.times: list[float] = []


def make_app(rec: Recorder) -> web.Application:
    async def count(request: web.Request, handler):  # type: ignore[no-untyped-def]
        rec.hits[request.path] += 1
        return await handler(request)

    app = web.Application(middlewares=[web.middleware(count)])
    r = app.router

    async def img(request: web.Request) -> web.Response:
        return web.Response(body=JPEG + request.match_info["name"].encode(), content_type="image/jpeg")

    async def empty(request: web.Request) -> web.Response:
        return web.Response(body=b"", content_type="image/jpeg")

    async def html(request: web.Request) -> web.Response:
        return web.Response(body=b"<html><body>not an image</body></html>", content_type="image/jpeg")

    async def loop_a(request: web.Request) -> web.Response:
        raise web.HTTPFound("/loop/b")

    async def loop_b(request: web.Request) -> web.Response:
        raise web.HTTPFound("/loop/a")

    async def chain(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"/chain/{int(request.match_info['n']) + 1}")

    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPMovedPermanently("/img/moved")

    async def to_location(request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["to"])

    async def trickle(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
        await resp.prepare(request)
        for _ in range(300):  # 30 s at most; the client gives up long before
            await resp.write(b"\xff")
            await asyncio.sleep(0.1)
        return resp

    async def big(request: web.Request) -> web.Response:
        return web.Response(body=b"\xff" * (CAP + 1), content_type="image/jpeg")

    async def gzip_bomb(request: web.Request) -> web.Response:
        body = gzip.compress(b"\0" * (CAP * 50))  # ~1 KB on the wire, 50x the cap once inflated
        return web.Response(body=body, headers={"Content-Encoding": "gzip", "Content-Type": "image/jpeg"})

    async def gzip_ok(request: web.Request) -> web.Response:
        body = gzip.compress(JPEG)
        return web.Response(body=body, headers={"Content-Encoding": "gzip", "Content-Type": "image/jpeg"})

    async def exact(request: web.Request) -> web.Response:
        return web.Response(body=b"\xff" * CAP, content_type="image/jpeg")

    async def big_chunked(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for _ in range(10):
            await resp.write(b"\xff" * 4096)
        await resp.write_eof()
        return resp

    async def flaky(request: web.Request) -> web.Response:
        key = request.path
        if rec.hits[key] == 1:
            status = int(request.match_info["status"])
            headers = {"Retry-After": request.query["ra"]} if "ra" in request.query else {}
            return web.Response(status=status, headers=headers, text="try later")
        return web.Response(body=JPEG, content_type="image/jpeg")

    async def status(request: web.Request) -> web.Response:
        return web.Response(status=int(request.match_info["code"]), text="nope")

    async def robots(request: web.Request) -> web.Response:
        resp = web.Response(body=JPEG, content_type="image/jpeg")
        for value in request.query.getall("tag"):
            resp.headers.add("X-Robots-Tag", value)
        return resp

    async def slow(request: web.Request) -> web.Response:
        rec.active += 1
        rec.max_active = max(rec.max_active, rec.active)
        rec.times.append(time.monotonic())
        try:
            await asyncio.sleep(float(request.query.get("s", "0.05")))
        finally:
            rec.active -= 1
        return web.Response(body=JPEG, content_type="image/jpeg")

    async def tiny(request: web.Request) -> web.Response:
        return web.Response(body=b"\xff")

    r.add_get("/img/{name}", img)
    r.add_get("/empty", empty)
    r.add_get("/html", html)
    r.add_get("/loop/a", loop_a)
    r.add_get("/loop/b", loop_b)
    r.add_get("/chain/{n}", chain)
    r.add_get("/moved", moved)
    r.add_get("/to", to_location)
    r.add_get("/trickle", trickle)
    r.add_get("/big", big)
    r.add_get("/exact", exact)
    r.add_get("/gzip-bomb", gzip_bomb)
    r.add_get("/gzip-ok", gzip_ok)
    r.add_get("/big-chunked", big_chunked)
    r.add_get("/flaky/{status}/{key}", flaky)
    r.add_get("/status/{code}", status)
    r.add_get("/robots", robots)
    r.add_get("/slow/{n}", slow)
    r.add_get("/tiny/{n}", tiny)
    return app


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[LoopbackServer, Recorder]]:
    rec = Recorder()
    with LoopbackServer(make_app(rec)) as srv:
        yield srv, rec


def policy(**kw: object) -> FetchPolicy:
    base: dict[str, object] = {
        "allow_private": True,  # the test server is on 127.0.0.1
        "max_bytes": CAP,
        "total_timeout_s": 0.6,
        "connect_timeout_s": 2.0,
        "read_timeout_s": 5.0,
        "max_retries": 2,
        "backoff_base_s": 0.02,
        "per_domain_rate": 0,
        "max_in_flight": 32,
        "per_domain_concurrency": 32,
    }
    base.update(kw)
    return FetchPolicy(**base)  # type: ignore[arg-type]


def ref(url: str, key: str | None = None) -> CandidateRef:
    return CandidateRef(synset_id="n02084071", source="test", url=url, key=key or url)


def run(refs: list[CandidateRef], pol: FetchPolicy) -> dict[str, Fetched]:
    async def go() -> dict[str, Fetched]:
        out: dict[str, Fetched] = {}
        async with Downloader(pol) as dl:
            async for f in dl.fetch_many(refs):
                out[f.ref.key] = f
        return out

    return asyncio.run(go())


def test_mixed_run_each_bad_url_gets_its_reason(server: tuple[LoopbackServer, Recorder]) -> None:
    srv, rec = server
    u = srv.url
    bad = {
        "empty": (f"{u}/empty", "empty_body", False),
        "loop": (f"{u}/loop/a", "redirect_loop", False),
        "chain": (f"{u}/chain/0", "too_many_redirects", False),
        "trickle": (f"{u}/trickle", "timeout", True),
        "big": (f"{u}/big", "too_large", False),
        "big_chunked": (f"{u}/big-chunked", "too_large", False),
        "gzip_bomb": (f"{u}/gzip-bomb", "too_large", False),
        "404": (f"{u}/status/404", "http_404", False),
        "noai": (f"{u}/robots?tag=noai", "robots_noai", False),
        "noimageai_for_us": (f"{u}/robots?tag=synsetforge:%20NoImageAI", "robots_noimageai", False),
        "file": ("file:///etc/hostname", "forbidden_scheme", False),
        "ftp": ("ftp://127.0.0.1/x.jpg", "forbidden_scheme", False),
        "refused": (f"http://127.0.0.1:{closed_port()}/x.jpg", "connection_refused", True),
        "always500": (f"{u}/status/500", "http_500", True),
        "redirect_to_file": (f"{u}/to?to=file:///etc/hostname", "forbidden_scheme", False),
    }
    good = {f"good{i}": f"{u}/img/g{i}" for i in range(20)}
    good.update(
        {
            "html": f"{u}/html",
            "moved": f"{u}/moved",
            "exact": f"{u}/exact",
            "gzip_ok": f"{u}/gzip-ok",
            "otherbot": f"{u}/robots?tag=otherbot:%20noindex&tag=max-image-preview:large",
            "retry429": f"{u}/flaky/429/mixed?ra=1",
            "retry500": f"{u}/flaky/500/mixed",
        }
    )
    refs = [ref(url, key) for key, url in good.items()]
    for i, (key, (url, _, _)) in enumerate(bad.items()):  # interleave the bad among the good
        refs.insert(2 * i + 1, ref(url, key))

    t0 = time.monotonic()
    results = run(refs, policy(allow_files=False))
    elapsed = time.monotonic() - t0

    assert set(results) == set(good) | set(bad)
    for key, (_, reason, transient) in bad.items():
        f = results[key]
        assert f.data is None, key
        assert (f.reason, f.transient) == (reason, transient), (key, f.reason, f.detail)
    for key in good:
        f = results[key]
        assert f.data, (key, f.reason, f.detail)
        assert f.reason is None
        assert f.status == 200
    # content type is recorded, never trusted: HTML labelled image/jpeg passes through untouched
    assert results["html"].data is not None and results["html"].data.startswith(b"<html>")
    assert results["html"].headers["content-type"] == "image/jpeg"
    assert results["moved"].final_url is not None and results["moved"].final_url.endswith("/img/moved")
    assert results["exact"].data is not None and len(results["exact"].data) == CAP
    assert results["gzip_ok"].data == JPEG  # decompressed transparently
    assert results["big"].detail.startswith("Content-Length")  # refused from the header, body not read
    assert "exceeds" in results["big_chunked"].detail
    # transient failures were retried (2 retries), permanent ones were not
    assert results["trickle"].attempts == 3
    assert results["refused"].attempts == 3
    assert results["always500"].attempts == 3
    assert results["404"].attempts == 1
    assert results["noai"].attempts == 1
    assert rec.hits["/status/404"] == 1
    # 429 honoured Retry-After: 1 and succeeded on the second attempt; 500 then success likewise
    assert results["retry429"].attempts == 2 and results["retry429"].elapsed_s >= 0.9
    assert results["retry500"].attempts == 2
    assert rec.hits["/flaky/429/mixed"] == 2 and rec.hits["/flaky/500/mixed"] == 2
    assert results["otherbot"].headers["x-robots-tag"].startswith("otherbot")
    assert elapsed < 8  # trickle is cut by the per-attempt deadline (3 x 0.6 s), not by the server


def test_trickling_server_is_cut_by_total_deadline(server: tuple[LoopbackServer, Recorder]) -> None:
    srv, _ = server
    t0 = time.monotonic()
    f = run([ref(f"{srv.url}/trickle")], policy(total_timeout_s=0.5, max_retries=0, read_timeout_s=30))
    elapsed = time.monotonic() - t0
    f1 = f[f"{srv.url}/trickle"]
    assert (f1.reason, f1.transient, f1.attempts) == ("timeout", True, 1)
    assert 0.4 < elapsed < 2.5  # each byte arrives within the read timeout; only the deadline stops it


def test_robots_opt_out_can_be_disabled(server: tuple[LoopbackServer, Recorder]) -> None:
    srv, _ = server
    url = f"{srv.url}/robots?tag=NOAI,%20noindex"
    assert run([ref(url)], policy())[url].reason == "robots_noai"
    allowed = run([ref(url)], policy(respect_robots_tags=False))[url]
    assert allowed.data is not None and allowed.headers["x-robots-tag"] == "NOAI, noindex"


def test_retry_after_is_honoured_and_counted(server: tuple[LoopbackServer, Recorder]) -> None:
    srv, _ = server
    url = f"{srv.url}/flaky/503/alone?ra=1"
    dl = Downloader(policy(max_retries=1))
    t0 = time.monotonic()
    results = list(dl.iter_sync([ref(url)]))
    assert time.monotonic() - t0 >= 0.95
    assert results[0].data is not None and results[0].attempts == 2
    assert dl.stats.retries == 1 and dl.stats.ok == 1
    # with no retries left the 503 is reported as transient
    url2 = f"{srv.url}/flaky/503/noretry?ra=1"
    f = fetch_all([ref(url2)], policy(max_retries=0))[0]
    assert (f.reason, f.transient, f.status) == ("http_503", True, 503)


def test_private_addresses_blocked_unless_allowed(server: tuple[LoopbackServer, Recorder]) -> None:
    srv, rec = server
    before = rec.hits["/img/secret"]
    urls = [
        f"{srv.url}/img/secret",  # IP literal
        f"http://localhost:{srv.port}/img/secret",  # a name that resolves to loopback
        f"http://[::1]:{srv.port}/img/secret",
    ]
    results = run([ref(u) for u in urls], policy(allow_private=False))
    for u in urls:
        assert (results[u].reason, results[u].transient) == ("forbidden_address", False), results[u].detail
    assert rec.hits["/img/secret"] == before  # nothing reached the server


def test_redirect_hops_are_rechecked(server: tuple[LoopbackServer, Recorder]) -> None:
    srv, _ = server
    # 127.0.0.1 is explicitly allowed; a redirect to another loopback address is not
    pol = policy(allow_private=False, allowed_networks=("127.0.0.1/32",))
    ok = f"{srv.url}/img/allowed"
    hop = f"{srv.url}/to?to=http://127.0.0.2:{srv.port}/img/x"
    results = run([ref(ok), ref(hop)], pol)
    assert results[ok].data is not None
    assert results[hop].reason == "forbidden_address"
    assert results[hop].final_url is not None and "127.0.0.2" in results[hop].final_url


def test_per_domain_concurrency_limit(server: tuple[LoopbackServer, Recorder]) -> None:
    srv, rec = server
    rec.max_active = 0
    refs = [ref(f"{srv.url}/slow/{i}?s=0.05") for i in range(24)]
    results = run(refs, policy(per_domain_concurrency=3, max_in_flight=24))
    assert all(f.data for f in results.values())
    assert rec.max_active == 3


def test_per_domain_rate_limit(server: tuple[LoopbackServer, Recorder]) -> None:
    srv, rec = server
    rec.times.clear()
    refs = [ref(f"{srv.url}/slow/r{i}?s=0") for i in range(10)]
    run(refs, policy(per_domain_rate=20, per_domain_burst=1))
    assert len(rec.times) == 10
    assert max(rec.times) - min(rec.times) >= 0.4  # 9 gaps of 1/20 s


def test_fetch_many_streams_with_bounded_in_flight(server: tuple[LoopbackServer, Recorder]) -> None:
    srv, _ = server
    n, limit = 5000, 16
    produced = 0

    def gen() -> Iterator[CandidateRef]:
        nonlocal produced
        for i in range(n):
            produced += 1
            yield ref(f"{srv.url}/tiny/{i}")

    async def go() -> tuple[int, int, Downloader]:
        received = 0
        max_gap = 0
        dl = Downloader(policy(max_in_flight=limit))
        async for f in dl.fetch_many(gen()):
            assert f.data == b"\xff"
            received += 1
            max_gap = max(max_gap, produced - received)
        return received, max_gap, dl

    received, max_gap, dl = asyncio.run(go())
    assert received == n
    assert dl.stats.max_pending == limit
    assert max_gap < limit  # the generator is pulled only as slots free up
    assert dl.stats.ok == n and dl.stats.bytes == n


def test_iter_sync_from_thread_and_early_close(server: tuple[LoopbackServer, Recorder]) -> None:
    srv, _ = server
    refs = [ref(f"{srv.url}/img/t{i}") for i in range(50)]
    out: list[Fetched] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            it = Downloader(policy(max_in_flight=4)).iter_sync(refs)
            for f in it:
                out.append(f)
                if len(out) == 5:
                    break
            it.close()  # type: ignore[attr-defined]
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=worker)
    t.start()
    t.join(10)
    assert not t.is_alive() and not errors
    assert len(out) == 5 and all(f.data for f in out)


def test_local_files(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "a.jpg").write_bytes(JPEG)
    (root / "huge.jpg").write_bytes(b"\xff" * (CAP + 5))
    (root / "zero.jpg").write_bytes(b"")
    outside = tmp_path / "secret.jpg"
    outside.write_bytes(JPEG)
    os.symlink(outside, root / "escape.jpg")
    pol = policy(allow_files=True, file_roots=(root,))
    names = ["a.jpg", "huge.jpg", "zero.jpg", "escape.jpg", "missing.jpg"]
    urls = {name: (root / name).as_uri() for name in names}
    results = {f.ref.key: f for f in fetch_all([ref(u, k) for k, u in urls.items()], pol)}
    assert results["a.jpg"].data == JPEG
    assert results["huge.jpg"].reason == "too_large"
    assert results["zero.jpg"].reason == "empty_body"
    assert results["escape.jpg"].reason == "forbidden_path"
    assert results["missing.jpg"].reason == "not_found"
    # without allow_files the same refs are refused
    assert read_local(ref(urls["a.jpg"]), policy()).reason == "forbidden_scheme"


def test_retry_after_parsing() -> None:
    now = datetime(2015, 10, 21, 7, 27, 30, tzinfo=UTC)
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 60, now) == 30
    assert parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", 60, now) == 0  # in the past
    assert parse_retry_after("3600", 60) == 60  # capped
    assert parse_retry_after("2", 60) == 2
    assert parse_retry_after("soon", 60) is None
    assert parse_retry_after(None, 60) is None


def test_robots_directive_reading() -> None:
    tokens, dis = ("synsetforge",), ("noai", "noimageai", "noindex", "noimageindex")
    assert robots_directive(["noai"], tokens, dis) == "noai"
    assert robots_directive(["NoImageIndex , nofollow"], tokens, dis) == "noimageindex"
    assert robots_directive(["otherbot: noindex"], tokens, dis) is None
    assert robots_directive(["SynsetForge: noindex"], tokens, dis) == "noindex"
    assert robots_directive(["unavailable_after: 25 Jun 2010 15:00:00 PST"], tokens, dis) is None
    assert robots_directive(["nofollow", "noarchive"], tokens, dis) is None
    assert robots_directive(["noai"], tokens, ()) is None


@pytest.mark.parametrize(
    ("addr", "forbidden"),
    [
        ("10.1.2.3", True),
        ("192.168.0.1", True),
        ("172.16.5.4", True),
        ("169.254.169.254", True),  # cloud metadata endpoint
        ("127.0.0.1", True),
        ("0.0.0.0", True),
        ("100.64.0.1", True),  # carrier-grade NAT
        ("224.0.0.1", True),
        ("::1", True),
        ("fe80::1", True),
        ("fc00::1", True),
        ("::ffff:127.0.0.1", True),
        ("8.8.8.8", False),
        ("2606:4700:4700::1111", False),
    ],
)
def test_forbidden_addresses(addr: str, forbidden: bool) -> None:
    ip = ipaddress.ip_address(addr)
    assert is_forbidden_ip(ip, FetchPolicy()) is forbidden
    assert is_forbidden_ip(ip, FetchPolicy(allow_private=True)) is False


def test_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        FetchPolicy(max_bytes=0)
    with pytest.raises(ValueError):
        FetchPolicy(allowed_networks=("not a network",))


def test_standalone_fetch_opens_its_own_session(server: tuple[LoopbackServer, Recorder]) -> None:
    srv, _ = server
    dl = Downloader(policy())
    f = asyncio.run(dl.fetch(ref(f"{srv.url}/img/solo")))
    assert f.data is not None and f.data.endswith(b"solo") and f.attempts == 1
    assert f.headers["content-type"] == "image/jpeg" and f.elapsed_s > 0
    assert dl.stats.requested == 1 and dl.stats.ok == 1


def test_iter_sync_reraises_errors_from_the_ref_stream(server: tuple[LoopbackServer, Recorder]) -> None:
    from synsetforge.errors import InputError

    srv, _ = server

    def refs() -> Iterator[CandidateRef]:
        yield ref(f"{srv.url}/img/before")
        raise InputError("list.csv: unreadable")

    got: list[Fetched] = []
    with pytest.raises(InputError, match="unreadable"):
        for f in Downloader(policy()).iter_sync(refs()):
            got.append(f)
    assert len(got) <= 1


def test_ordered_mode_keeps_input_order_with_bounded_window(server: tuple[LoopbackServer, Recorder]) -> None:
    srv, _ = server
    # early refs are slow, late ones fast: completion order differs from input order
    urls = [f"{srv.url}/slow/o{i}?s={0.02 * (10 - i):.2f}" for i in range(10)]
    dl = Downloader(policy(max_in_flight=4))
    got = [f.ref.url for f in dl.iter_sync([ref(u) for u in urls], ordered=True)]
    assert got == urls
    assert dl.stats.max_pending == 4
    unordered = [f.ref.url for f in Downloader(policy(max_in_flight=10)).iter_sync([ref(u) for u in urls])]
    assert sorted(unordered) == sorted(urls) and unordered != urls


def test_closing_iter_sync_early_cancels_slow_downloads(server: tuple[LoopbackServer, Recorder]) -> None:
    srv, _ = server
    refs = [ref(f"{srv.url}/img/quick")] + [ref(f"{srv.url}/trickle", f"t{i}") for i in range(3)]
    it = Downloader(policy(total_timeout_s=20, read_timeout_s=20, max_retries=0)).iter_sync(
        refs, ordered=True
    )
    first = next(it)
    assert first.data is not None
    t0 = time.monotonic()
    it.close()  # type: ignore[attr-defined]
    assert time.monotonic() - t0 < 2  # not the 20 s the trickling downloads would take
