"""Search API sources replayed from recorded responses served on 127.0.0.1 (paging, errors, retries)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from _servers import LoopbackServer
from synsetforge.candidates.sources._search import (
    JsonClient,
    SearchApiError,
    normalize_license,
    query_function,
    strip_html,
    valid_synset_id,
)
from synsetforge.candidates.sources.flickr import FlickrSource
from synsetforge.candidates.sources.openverse import OpenverseSource
from synsetforge.candidates.sources.wikimedia import WikimediaSource
from synsetforge.errors import InputError

RECORDED = Path(__file__).parent / "data" / "recorded"
WHIPPET = "n02091134"


class Replay:
    """Serves recorded JSON by (api, query, page); `script` overrides answers in order, then falls back."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.script: dict[tuple[str, str, int], list[tuple[int, str, dict[str, str]]]] = {}

    def answer(self, api: str, query: str, page: int) -> web.Response:
        queue = self.script.get((api, query, page))
        if queue:
            status, body, headers = queue.pop(0) if len(queue) > 1 else queue[0]
            if body.endswith(".json"):
                body = (RECORDED / api / body).read_text()
            return web.Response(status=status, text=body, headers=headers, content_type="application/json")
        path = RECORDED / api / f"{query.replace(' ', '_')}_p{page}.json"
        if not path.exists():
            return web.json_response({"detail": f"no recording for {api} {query!r} page {page}"}, status=400)
        return web.Response(text=path.read_text(), content_type="application/json")

    def app(self) -> web.Application:
        async def openverse(request: web.Request) -> web.Response:
            self.requests.append(("openverse", dict(request.query)))
            return self.answer("openverse", request.query["q"], int(request.query.get("page", "1")))

        async def wikimedia(request: web.Request) -> web.Response:
            q = dict(request.query)
            self.requests.append(("wikimedia", q))
            query = q["gsrsearch"].removeprefix("filetype:bitmap ")
            page = 1 + int(q.get("gsroffset", "0")) // 3
            return self.answer("wikimedia", query, page)

        async def flickr(request: web.Request) -> web.Response:
            q = dict(request.query)
            self.requests.append(("flickr", q))
            return self.answer("flickr", q["text"], int(q.get("page", "1")))

        app = web.Application()
        app.router.add_get("/v1/images/", openverse)
        app.router.add_get("/w/api.php", wikimedia)
        app.router.add_get("/services/rest/", flickr)
        return app


@pytest.fixture
def replay() -> Iterator[tuple[Replay, str]]:
    rp = Replay()
    with LoopbackServer(rp.app()) as srv:
        yield rp, srv.url


def queries(sid: str) -> list[str]:
    assert sid == WHIPPET
    return ["whippet", "whippet dog"]


def no_wait(sleeps: list[float]) -> Any:
    return sleeps.append


# --- Openverse ----------------------------------------------------------------------------------------
def openverse(url: str, sleeps: list[float], **kw: Any) -> OpenverseSource:
    args: dict[str, Any] = {
        "base_url": url,
        "page_size": 3,
        "queries": queries,
        "min_interval_s": 0,
        "max_retries": 2,
        "sleep": no_wait(sleeps),
    }
    args.update(kw)
    return OpenverseSource(**args)


def test_openverse_pages_interleaves_queries_and_survives_an_error_page(replay: tuple[Replay, str]) -> None:
    rp, url = replay
    rp.script[("openverse", "whippet dog", 2)] = [(500, '{"detail": "boom"}', {})]
    sleeps: list[float] = []
    src = openverse(url, sleeps)
    refs = list(src.refs([WHIPPET]))

    assert [(r.query, r.rank) for r in refs] == [
        ("whippet", 1),
        ("whippet", 2),
        ("whippet", 3),
        ("whippet dog", 1),
        ("whippet dog", 3),  # rank 2 is the same image as whippet #1
        ("whippet", 4),
    ]
    first = refs[0]
    assert first.synset_id == WHIPPET and first.source == "openverse"
    assert first.key == f"{WHIPPET}/4bc43a04-ef46-4544-a0c1-63c63f56e276"
    assert first.url == "https://live.staticflickr.com/65535/51234567890_1a2b3c4d5e_b.jpg"
    assert first.page_url == "https://www.flickr.com/photos/12345678@N00/51234567890"
    assert (first.license, first.extra["license_raw"]) == ("CC-BY-SA-2.0", "by-sa 2.0")
    assert first.author == "Jan Kowalski" and first.caption == "Whippet running"
    assert [r.license for r in refs] == [
        "CC-BY-SA-2.0",
        "CC-BY-4.0",
        "CC0-1.0",
        "CC-BY-NC-SA-2.0",
        "PDM-1.0",
        "CC-BY-NC-ND-2.0",
    ]

    rep = src.report
    assert rep.yielded == 6
    assert rep.skipped == {"duplicate_url": 1, "no_url": 1, "api_error": 1}
    assert any("HTTP 500" in p.detail for p in rep.problems)
    # the failing page was tried 1 + max_retries times, with backoff sleeps in between
    dog_p2 = [q for api, q in rp.requests if q["q"] == "whippet dog" and q["page"] == "2"]
    assert len(dog_p2) == 3 and len(sleeps) == 2
    assert rep.requests == len(rp.requests) == 6
    assert all(q["page_size"] == "3" and q["mature"] == "false" for _, q in rp.requests)


def test_openverse_per_synset_cap_stops_requests(replay: tuple[Replay, str]) -> None:
    rp, url = replay
    src = openverse(url, [])
    refs = list(src.refs([WHIPPET], per_synset=4))
    assert len(refs) == 4
    assert [r.query for r in refs] == ["whippet"] * 3 + ["whippet dog"]
    assert len(rp.requests) == 2  # nothing fetched beyond what the cap needed


def test_openverse_retry_after_and_malformed_json(replay: tuple[Replay, str]) -> None:
    rp, url = replay
    rp.script[("openverse", "whippet", 1)] = [
        (429, '{"detail": "slow down"}', {"Retry-After": "7"}),
        (200, "<html>proxy error</html>", {}),
        (200, "whippet_p1.json", {}),
    ]
    sleeps: list[float] = []
    src = openverse(url, sleeps, queries=lambda sid: ["whippet"], max_retries=3)
    refs = list(src.refs([WHIPPET]))
    assert len(refs) == 4
    assert sleeps[0] == 7.0  # Retry-After honoured
    assert len(sleeps) == 2  # then one backoff after the malformed body
    assert src.report.skipped.get("api_error", 0) == 0


def test_openverse_fatal_error_stops_the_source(replay: tuple[Replay, str]) -> None:
    rp, url = replay
    rp.script[("openverse", "whippet", 1)] = [(401, "error_401.json", {})]
    src = openverse(url, [])
    with pytest.raises(SearchApiError) as info:
        list(src.refs([WHIPPET]))
    assert info.value.fatal and info.value.status == 401
    assert "page_size may not exceed 20" in str(info.value)


def test_openverse_anonymous_page_size_is_clamped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENVERSE_TOKEN", raising=False)
    assert OpenverseSource(page_size=100).page_size == 20
    assert OpenverseSource(page_size=100, token="t0k").page_size == 100


# --- Wikimedia Commons --------------------------------------------------------------------------------
def wikimedia(url: str, **kw: Any) -> WikimediaSource:
    args: dict[str, Any] = {
        "base_url": f"{url}/w/api.php",
        "page_size": 3,
        "queries": lambda sid: ["whippet"],
        "min_interval_s": 0,
        "max_retries": 1,
        "sleep": lambda s: None,
    }
    args.update(kw)
    return WikimediaSource(**args)


def test_wikimedia_continue_paging_and_metadata(replay: tuple[Replay, str]) -> None:
    rp, url = replay
    src = wikimedia(url)
    refs = list(src.refs([WHIPPET]))

    assert [(r.caption, r.rank) for r in refs] == [
        ("Whippet head.jpg", 1),
        ("Whippet in field.jpg", 2),
        ("Old whippet print.png", 4),
        ("Whippet puppy.jpg", 5),
    ]
    assert [r.license for r in refs] == ["CC-BY-SA-3.0-DE", "CC-BY-SA-4.0", "public-domain", "CC0-1.0"]
    assert [r.author for r in refs] == ["Hans Müller", "Example", "Unknown author", "puppy & co from Oslo"]
    assert refs[0].page_url == "https://commons.wikimedia.org/wiki/File:Whippet_head.jpg"
    assert refs[0].key == f"{WHIPPET}/51234" and refs[0].extra["license_raw"] == "CC BY-SA 3.0 de"
    assert src.report.skipped == {"not_image_mime": 1}

    first, second = (q for _, q in rp.requests)
    assert first["generator"] == "search" and first["gsrnamespace"] == "6" and first["prop"] == "imageinfo"
    assert set(first["iiprop"].split("|")) == {"url", "extmetadata", "mime"}
    assert first["gsrsearch"] == "filetype:bitmap whippet" and "gsroffset" not in first
    assert second["gsroffset"] == "3" and second["continue"] == "gsroffset||"


def test_wikimedia_api_error_is_reported_and_other_queries_go_on(replay: tuple[Replay, str]) -> None:
    rp, url = replay
    rp.script[("wikimedia", "broken", 1)] = [(200, "error_badvalue.json", {})]
    src = wikimedia(url, queries=lambda sid: ["broken", "whippet"])
    refs = list(src.refs([WHIPPET]))
    assert len(refs) == 4 and {r.query for r in refs} == {"whippet"}
    assert src.report.skipped["api_error"] == 1
    assert "badvalue" in src.report.problems[0].detail
    strict = wikimedia(url, queries=lambda sid: ["broken", "whippet"], strict=True)
    with pytest.raises(SearchApiError, match="badvalue"):
        list(strict.refs([WHIPPET]))


# --- Flickr -------------------------------------------------------------------------------------------
def flickr(url: str, **kw: Any) -> FlickrSource:
    args: dict[str, Any] = {
        "api_key": "k3y",
        "base_url": f"{url}/services/rest/",
        "per_page": 3,
        "queries": lambda sid: ["whippet"],
        "min_interval_s": 0,
        "max_retries": 2,
        "sleep": lambda s: None,
        "min_upload_date": "2019-01-01",
    }
    args.update(kw)
    return FlickrSource(**args)


def test_flickr_pages_sizes_and_licenses(replay: tuple[Replay, str]) -> None:
    rp, url = replay
    src = flickr(url)
    refs = list(src.refs([WHIPPET]))
    assert [r.url.rsplit("_", 1)[1] for r in refs] == ["l.jpg", "c.jpg", "o.jpg", "l.jpg"]
    assert [r.rank for r in refs] == [1, 2, 3, 4]
    assert [r.license for r in refs] == ["CC-BY-2.0", "CC-BY-SA-2.0", "PDM-1.0", "CC0-1.0"]
    assert refs[0].extra["license_raw"] == "Attribution License"
    assert refs[0].page_url == "https://www.flickr.com/photos/12345678@N02/49512345671"
    assert refs[0].author == "Jan K" and refs[0].key == f"{WHIPPET}/49512345671"
    assert src.report.skipped == {"no_url": 1}
    q = rp.requests[0][1]
    assert q["method"] == "flickr.photos.search" and q["api_key"] == "k3y" and q["text"] == "whippet"
    assert q["format"] == "json" and q["nojsoncallback"] == "1" and q["min_upload_date"] == "2019-01-01"
    assert set(q["extras"].split(",")) >= {"url_o", "url_l", "url_c", "license", "owner_name", "date_upload"}
    assert "0" not in q["license"].split(",")  # "all rights reserved" excluded by default
    assert [r[1]["page"] for r in rp.requests] == ["1", "2"]


def test_flickr_invalid_key_is_fatal_and_unavailable_is_retried(replay: tuple[Replay, str]) -> None:
    rp, url = replay
    rp.script[("flickr", "whippet", 1)] = [(200, "error_invalid_key.json", {})]
    with pytest.raises(SearchApiError, match="Invalid API Key") as info:
        list(flickr(url).refs([WHIPPET]))
    assert info.value.fatal

    rp.script[("flickr", "whippet", 1)] = [(200, "error_unavailable.json", {}), (200, "whippet_p1.json", {})]
    sleeps: list[float] = []
    src = flickr(url, sleep=sleeps.append)
    assert len(list(src.refs([WHIPPET]))) == 4
    assert len(sleeps) == 1  # backed off once before asking again


def test_flickr_needs_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLICKR_API_KEY", raising=False)
    monkeypatch.delenv("SYNSETFORGE_FLICKR_KEY", raising=False)
    with pytest.raises(InputError, match="API key"):
        FlickrSource()


# --- shared helpers -----------------------------------------------------------------------------------
def test_json_client_gives_up_on_connection_refused() -> None:
    from _servers import closed_port

    sleeps: list[float] = []
    client = JsonClient("t", min_interval_s=0, max_retries=2, backoff_base_s=0.01, sleep=sleeps.append)
    with pytest.raises(SearchApiError, match="3 attempts: connection error") as info:
        client.get(f"http://127.0.0.1:{closed_port()}/x", {})
    assert not info.value.fatal and len(sleeps) == 2


def test_queries_from_hierarchy_duck_types() -> None:
    class Expanding:
        def expand(self, sid: str) -> list[str]:
            return ["whippet", "whippet dog"]

    class Syn:
        lemmas = ("whippet", "Italian_greyhound")

    class Plain:
        def get(self, sid: str) -> Syn:
            return Syn()

    assert query_function(Expanding())(WHIPPET) == ["whippet", "whippet dog"]
    assert query_function(Plain())(WHIPPET) == ["whippet", "Italian greyhound"]
    assert query_function(Plain(), queries=lambda s: ["x"])(WHIPPET) == ["x"]
    with pytest.raises(InputError, match="no queries"):
        query_function(None)


def test_search_source_rejects_bad_synset_ids(replay: tuple[Replay, str]) -> None:
    _, url = replay
    with pytest.raises(InputError, match="not a valid synset id"):
        list(openverse(url, []).refs(["n0209113"]))


@pytest.mark.parametrize(
    ("raw", "version", "expected"),
    [
        ("by-sa", "2.0", "CC-BY-SA-2.0"),
        ("cc0", "1.0", "CC0-1.0"),
        ("pdm", "1.0", "PDM-1.0"),
        ("by-nc-nd", "4.0", "CC-BY-NC-ND-4.0"),
        ("CC BY-SA 3.0 de", None, "CC-BY-SA-3.0-DE"),
        ("CC BY 2.5", None, "CC-BY-2.5"),
        ("cc-by-sa-4.0", None, "CC-BY-SA-4.0"),
        ("CC-BY-4.0", None, "CC-BY-4.0"),
        ("https://creativecommons.org/licenses/by-nc/2.0/", None, "CC-BY-NC-2.0"),
        ("http://creativecommons.org/publicdomain/zero/1.0/deed.en", None, "CC0-1.0"),
        ("https://creativecommons.org/publicdomain/mark/1.0/", None, "PDM-1.0"),
        ("Public domain", None, "public-domain"),
        ("GFDL", None, "GFDL-1.2-or-later"),
        ("Some custom license", None, "Some custom license"),
        ("  ", None, None),
        (None, None, None),
    ],
)
def test_normalize_license(raw: str | None, version: str | None, expected: str | None) -> None:
    assert normalize_license(raw, version) == expected


def test_strip_html_and_synset_syntax() -> None:
    assert strip_html('<a href="x">Jo &amp; <b>Al</b></a>\n  ok') == "Jo & Al ok"
    assert strip_html("<span></span>") is None
    assert valid_synset_id("n02084071") and valid_synset_id("race_car")
    assert not valid_synset_id("n0208407") and not valid_synset_id("two words") and not valid_synset_id("")


def test_recorded_fixtures_are_valid_json() -> None:
    files = sorted(RECORDED.rglob("*.json"))
    assert len(files) >= 10
    for f in files:
        json.loads(f.read_text())


def test_sources_follow_the_source_protocol(tmp_path: Path) -> None:
    from synsetforge.candidates.sources import Source
    from synsetforge.candidates.sources.folder import FolderSource
    from synsetforge.candidates.sources.urls import UrlListSource

    (tmp_path / "l.txt").write_text("https://a.example/x.jpg\n")
    sources = [
        OpenverseSource(),
        WikimediaSource(),
        FlickrSource(api_key="k"),
        UrlListSource(tmp_path / "l.txt", default_synset=WHIPPET),
        FolderSource(tmp_path),
    ]
    assert [s.name for s in sources] == ["openverse", "wikimedia", "flickr", "urls", "folder"]
    assert all(isinstance(s, Source) for s in sources)
    for s in sources[:3]:
        s.close()  # type: ignore[attr-defined]
