"""What every non-synthetic source shares: a report of what was skipped, license and HTML clean-up, the
synset -> queries step, a polite JSON client, and the query-interleaving loop of the search APIs.

Search engines return mostly wrong images (Deng 2009: ~10% good), so sources gather many candidates per
synset from several queries. Pages of the synset's queries are taken in turn (page 1 of every query, then
page 2, ...) so that a per-synset cap keeps a mix of queries rather than the first query's whole list.
"""

from __future__ import annotations

import hashlib
import html
import logging
import random
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

import httpx

from synsetforge.candidates.netpolicy import parse_retry_after
from synsetforge.candidates.types import CandidateRef
from synsetforge.errors import InputError, SynsetforgeError

log = logging.getLogger(__name__)

WNID_RE = re.compile(r"n\d{8}")
DEFAULT_USER_AGENT = "synsetforge/0.1 (dataset builder; +https://github.com/synsetforge/synsetforge)"

QueryFn = Callable[[str], list[str]]


def valid_synset_id(text: str) -> bool:
    """Synset id syntax: a WordNet id (`n` + 8 digits) or, for custom taxonomies, any short printable text
    without whitespace. Something that looks like a wnid but is not one (`n0208407`) is refused."""
    if not text or len(text) > 200 or any(ch.isspace() or not ch.isprintable() for ch in text):
        return False
    if re.fullmatch(r"n\d+", text):
        return WNID_RE.fullmatch(text) is not None
    return True


def known_to(hierarchy: Any) -> Callable[[str], bool]:
    """Membership test in `hierarchy` (anything with `in`), or accept-all without one."""
    if hierarchy is not None and hasattr(hierarchy, "__contains__"):
        return lambda sid: sid in hierarchy
    return lambda sid: True


# --- reports ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Problem:
    """One skipped row/item or failed request: where (file:line, query/page), why, and a detail."""

    where: str
    reason: str
    detail: str = ""


@dataclass
class SourceReport:
    """What a source yielded and what it skipped. Counts are exact; `problems` keeps the first few."""

    source: str
    yielded: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    warnings: Counter[str] = field(default_factory=Counter)  # noted, but the item was still yielded
    problems: list[Problem] = field(default_factory=list)
    requests: int = 0
    max_problems: int = 100

    def skip(self, reason: str, where: str, detail: str = "") -> None:
        self.skipped[reason] += 1
        if len(self.problems) < self.max_problems:
            self.problems.append(Problem(where, reason, detail))

    def warn(self, reason: str, where: str, detail: str = "") -> None:
        self.warnings[reason] += 1
        if len(self.problems) < self.max_problems:
            self.problems.append(Problem(where, reason, detail))

    @property
    def total_skipped(self) -> int:
        return sum(self.skipped.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "yielded": self.yielded,
            "skipped": dict(self.skipped),
            "warnings": dict(self.warnings),
            "requests": self.requests,
            "problems": [p.__dict__ for p in self.problems],
        }


# --- small text helpers -------------------------------------------------------------------------------
class _TextOnly(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def strip_html(text: str | None) -> str | None:
    """Plain text of an HTML fragment (Commons' Artist field), whitespace collapsed; None if empty."""
    if text is None:
        return None
    parser = _TextOnly()
    parser.feed(text)
    parser.close()
    out = " ".join(html.unescape("".join(parser.parts)).split())
    return out or None


def stable_key(*parts: str) -> str:
    """Short stable hash of the parts, for keys of candidates that have no id of their own."""
    return hashlib.sha256("\n".join(parts).encode("utf-8", "surrogatepass")).hexdigest()[:24]


_CC_URL = re.compile(
    r"creativecommons\.org/(?:licenses/(?P<kind>[a-z\-+]+)/(?P<ver>\d\.\d)(?:/(?P<port>[a-z]{2,3}))?"
    r"|publicdomain/(?P<pd>zero|mark)/(?P<pdver>\d\.\d))",
    re.I,
)
_CC_TEXT = re.compile(
    r"^(?:cc[\s\-_]*)?(?P<kind>by(?:[\s\-_]*(?:nc|sa|nd))*)[\s\-_]*(?P<ver>\d(?:\.\d)?)?(?:[\s\-_]+(?P<port>[a-z]{2,3}))?$",
    re.I,
)
_SIMPLE_LICENSES = {
    "cc0": "CC0-1.0",
    "cc-zero": "CC0-1.0",
    "cc0 1.0": "CC0-1.0",
    "cc0-1.0": "CC0-1.0",
    "pdm": "PDM-1.0",
    "pdm-1.0": "PDM-1.0",
    "public domain mark": "PDM-1.0",
    "public domain": "public-domain",
    "pd": "public-domain",
    "no restrictions": "public-domain",
    "gfdl": "GFDL-1.2-or-later",
}


def normalize_license(raw: str | None, version: str | None = None) -> str | None:
    """SPDX-like id ("CC-BY-SA-4.0", "CC0-1.0", "PDM-1.0") from the many ways sources spell licenses.

    Accepts Openverse codes ("by-sa" + version), Commons short names ("CC BY-SA 3.0 de"), dashed codes
    ("cc-by-4.0") and creativecommons.org URLs. Anything unrecognised is returned stripped, unchanged.
    """
    if raw is None:
        return None
    text = raw.strip()
    if not text:
        return None
    m = _CC_URL.search(text)
    if m:
        if m["pd"]:
            return f"CC0-{m['pdver']}" if m["pd"].lower() == "zero" else f"PDM-{m['pdver']}"
        spdx = f"CC-{m['kind'].upper()}-{m['ver']}"
        return f"{spdx}-{m['port'].upper()}" if m["port"] else spdx
    low = " ".join(text.lower().split())
    if version and low in ("cc0", "pdm"):
        return f"{low.upper()}-{version}"
    if low in _SIMPLE_LICENSES:
        return _SIMPLE_LICENSES[low]
    m = _CC_TEXT.match(low)
    if m:
        kind = "-".join(re.findall(r"by|nc|sa|nd", m["kind"])).upper()
        ver = m["ver"] or version
        if ver and "." not in ver:
            ver += ".0"
        spdx = f"CC-{kind}-{ver}" if ver else f"CC-{kind}"
        return f"{spdx}-{m['port'].upper()}" if m["port"] else spdx
    return text


# --- synset -> queries --------------------------------------------------------------------------------
def query_function(hierarchy: Any = None, queries: QueryFn | None = None, source: str = "search") -> QueryFn:
    """How a search source turns a synset id into query strings.

    An explicit `queries` callable wins; else the hierarchy's `.expand(id)` (query expansion), else its
    `.get(id).lemmas` (plain synonyms). Without either the source cannot run.
    """
    if queries is not None:
        return queries
    if hierarchy is not None and callable(getattr(hierarchy, "expand", None)):
        return lambda sid: list(hierarchy.expand(sid))
    if hierarchy is not None and callable(getattr(hierarchy, "get", None)):
        return lambda sid: [str(lemma).replace("_", " ") for lemma in hierarchy.get(sid).lemmas]
    raise InputError(f"{source}: no queries for synsets; pass a hierarchy (with .expand) or queries=")


def dedupe_queries(qs: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for q in qs:
        q = " ".join(str(q).replace("_", " ").split())
        if q and q.lower() not in seen:
            seen.add(q.lower())
            out.append(q)
    return out


# --- HTTP ---------------------------------------------------------------------------------------------
class SearchApiError(SynsetforgeError):
    """A search API refused or failed a request. `fatal` errors (bad key, wrong URL) stop the source."""

    def __init__(self, message: str, *, status: int | None = None, fatal: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.fatal = fatal


FATAL_STATUSES = frozenset({401, 403, 404, 405, 410})
TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


class JsonClient:
    """GET JSON politely: a minimum interval between requests, retries with backoff + jitter for transient
    failures (connection errors, timeouts, 429/5xx, a cut-off body), Retry-After honoured up to a cap."""

    def __init__(
        self,
        name: str,
        *,
        user_agent: str = DEFAULT_USER_AGENT,
        timeout_s: float = 30.0,
        max_retries: int = 3,
        backoff_base_s: float = 1.0,
        retry_after_cap_s: float = 120.0,
        min_interval_s: float = 1.0,
        headers: Mapping[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        report: SourceReport | None = None,
    ) -> None:
        self.name = name
        self.max_retries = max_retries
        self.backoff_base_s = backoff_base_s
        self.retry_after_cap_s = retry_after_cap_s
        self.min_interval_s = min_interval_s
        self._sleep = sleep
        self._last = -float("inf")
        self.report = report
        self._client = httpx.Client(
            timeout=timeout_s,
            headers={"User-Agent": user_agent, "Accept": "application/json", **(headers or {})},
            follow_redirects=True,
            trust_env=False,
        )

    def close(self) -> None:
        self._client.close()

    def _pace(self) -> None:
        wait = self._last + self.min_interval_s - time.monotonic()
        if wait > 0:
            self._sleep(wait)
        self._last = time.monotonic()

    def backoff(self, attempt: int, retry_after: float | None = None) -> None:
        """Wait before retry number `attempt + 1`: Retry-After when given, else exponential with jitter."""
        delay = retry_after
        if delay is None:
            delay = self.backoff_base_s * 2**attempt * random.uniform(0.5, 1.5)
        self._sleep(delay)

    def get(self, url: str, params: Mapping[str, Any]) -> Any:
        """Parsed JSON of `url?params`; raises `SearchApiError` when retries are spent or not worth it."""
        last = ""
        for attempt in range(self.max_retries + 1):
            self._pace()
            if self.report is not None:
                self.report.requests += 1
            retry_after: float | None = None
            try:
                resp = self._client.get(url, params=dict(params))
            except httpx.TimeoutException as exc:
                last = f"timeout ({type(exc).__name__})"
            except httpx.TransportError as exc:
                last = f"connection error ({type(exc).__name__}: {exc})"
            else:
                status = resp.status_code
                if status in TRANSIENT_STATUSES:
                    last = f"HTTP {status}"
                    retry_after = parse_retry_after(resp.headers.get("Retry-After"), self.retry_after_cap_s)
                elif status >= 400:
                    raise SearchApiError(
                        f"{self.name}: HTTP {status} from {url}: {_excerpt(resp.text)}",
                        status=status,
                        fatal=status in FATAL_STATUSES,
                    )
                else:
                    try:
                        return resp.json()
                    except ValueError:
                        last = f"malformed JSON ({_excerpt(resp.text)!r})"
            if attempt < self.max_retries:
                log.info("%s: %s; retrying", self.name, last)
                self.backoff(attempt, retry_after)
        raise SearchApiError(f"{self.name}: {url} failed after {self.max_retries + 1} attempts: {last}")


def _excerpt(text: str, n: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[:n] + "..."


# --- the shared search loop ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Hit:
    """One search result, before it becomes a `CandidateRef`. `rank` is 1-based within its query."""

    source_id: str
    url: str
    rank: int
    page_url: str | None = None
    license_raw: str | None = None
    license: str | None = None
    author: str | None = None
    title: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


PageFn = Callable[[str, int], Iterator[list[Hit]]]  # (query, cap) -> pages of hits


def search_refs(
    *,
    source: str,
    synset_ids: Iterable[str],
    per_synset: int | None,
    queries_for: QueryFn,
    pages: PageFn,
    max_per_query: int,
    report: SourceReport,
    strict: bool = False,
) -> Iterator[CandidateRef]:
    """Run each synset's queries, interleaving their pages, and yield deduplicated candidates.

    A failed query is recorded in the report and dropped (the others go on) unless `strict`; a fatal
    error (bad key, wrong base URL) always propagates, since every other query would fail the same way.
    """
    for sid in synset_ids:
        if not valid_synset_id(sid):
            raise InputError(f"{source}: {sid!r} is not a valid synset id")
        qs = dedupe_queries(queries_for(sid))
        if not qs:
            report.skip("no_queries", sid)
            continue
        live: list[tuple[str, Iterator[list[Hit]]]] = [(q, pages(q, max_per_query)) for q in qs]
        seen_urls: set[str] = set()
        count = 0
        while live and (per_synset is None or count < per_synset):
            still: list[tuple[str, Iterator[list[Hit]]]] = []
            for q, it in live:
                if per_synset is not None and count >= per_synset:
                    break
                try:
                    page = next(it)
                except StopIteration:
                    continue
                except SearchApiError as exc:
                    if exc.fatal or strict:
                        raise
                    report.skip("api_error", f"{sid} query {q!r}", str(exc))
                    continue
                still.append((q, it))
                for hit in page:
                    if per_synset is not None and count >= per_synset:
                        break
                    if hit.url in seen_urls:
                        report.skipped["duplicate_url"] += 1
                        continue
                    seen_urls.add(hit.url)
                    count += 1
                    report.yielded += 1
                    yield CandidateRef(
                        synset_id=sid,
                        source=source,
                        url=hit.url,
                        key=f"{sid}/{hit.source_id}",
                        query=q,
                        rank=hit.rank,
                        page_url=hit.page_url,
                        license=hit.license,
                        author=hit.author,
                        caption=hit.title,
                        extra={"source_id": hit.source_id, "license_raw": hit.license_raw, **hit.extra},
                    )
            live = still


class SearchSource:
    """What the search-API sources share: a JSON client, a report, and interleaved paging over queries.

    Subclasses set `name`, `queries`, `max_per_query`, `strict`, `report` and `client`, and implement
    `pages(query, cap)`.
    """

    name: str
    queries: QueryFn | None
    max_per_query: int
    strict: bool
    report: SourceReport
    client: JsonClient

    def pages(self, query: str, cap: int) -> Iterator[list[Hit]]:
        raise NotImplementedError

    def _connect(self, *, sleep: Any = None, **client_options: Any) -> None:
        """Create the report and the JSON client (timeouts, retries, pacing, headers) for this source."""
        self.report = SourceReport(self.name)
        if sleep is not None:
            client_options["sleep"] = sleep
        self.client = JsonClient(self.name, report=self.report, **client_options)

    def close(self) -> None:
        """Release the HTTP connection pool."""
        self.client.close()

    def refs(
        self, synset_ids: Iterable[str], per_synset: int | None = None, hierarchy: Any = None
    ) -> Iterator[CandidateRef]:
        """Candidates for each synset, interleaving the pages of its queries, up to `per_synset` each."""
        return search_refs(
            source=self.name,
            synset_ids=synset_ids,
            per_synset=per_synset,
            queries_for=query_function(hierarchy, self.queries, self.name),
            pages=self.pages,
            max_per_query=self.max_per_query,
            report=self.report,
            strict=self.strict,
        )
