"""Openverse (openly licensed images, no key needed): `GET /v1/images/?q=...&page=N&page_size=M`.

Anonymous clients may ask for 20 results a page and see at most the first 240 results of a query (the
response's `page_count` says how far); a token (`OPENVERSE_TOKEN`) allows larger pages, not deeper ones.
Anonymous rate limits are low, hence a slow default pace.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from synsetforge.candidates.sources._search import (
    DEFAULT_USER_AGENT,
    Hit,
    QueryFn,
    SearchApiError,
    SearchSource,
    normalize_license,
)

DEFAULT_BASE_URL = "https://api.openverse.org"
ANONYMOUS_MAX_PAGE_SIZE = 20


class OpenverseSource(SearchSource):
    """Candidates from Openverse image search, one query per expanded synset name."""

    name = "openverse"

    def __init__(
        self,
        *,
        base_url: str | None = None,
        token: str | None = None,
        page_size: int = 20,
        max_per_query: int = 240,
        licenses: str | None = None,  # e.g. "by,by-sa,cc0"; None = every license Openverse has
        license_type: str | None = None,  # "commercial" / "modification"
        mature: bool = False,
        queries: QueryFn | None = None,
        min_interval_s: float = 3.0,
        max_retries: int = 3,
        backoff_base_s: float = 1.0,
        timeout_s: float = 30.0,
        user_agent: str = DEFAULT_USER_AGENT,
        strict: bool = False,
        sleep: Any = None,
    ) -> None:
        self.base_url = (base_url or os.environ.get("SYNSETFORGE_OPENVERSE_URL") or DEFAULT_BASE_URL).rstrip(
            "/"
        )
        self.token = token or os.environ.get("OPENVERSE_TOKEN")
        self.page_size = page_size if self.token else min(page_size, ANONYMOUS_MAX_PAGE_SIZE)
        self.max_per_query = max_per_query
        self.filters: dict[str, str] = {"mature": "true" if mature else "false"}
        if licenses:
            self.filters["license"] = licenses
        if license_type:
            self.filters["license_type"] = license_type
        self.queries = queries
        self.strict = strict
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        self._connect(
            user_agent=user_agent,
            timeout_s=timeout_s,
            max_retries=max_retries,
            backoff_base_s=backoff_base_s,
            min_interval_s=min_interval_s,
            headers=headers,
            sleep=sleep,
        )

    def pages(self, query: str, cap: int) -> Iterator[list[Hit]]:
        """Pages of hits for one query, stopping at `page_count`, an empty page or `cap` results."""
        page = 1
        seen = 0
        while seen < cap:
            params = {"q": query, "page": page, "page_size": self.page_size, **self.filters}
            data = self.client.get(f"{self.base_url}/v1/images/", params)
            results, page_count = _parse_page(data, query, page)
            hits: list[Hit] = []
            for i, item in enumerate(results):
                rank = (page - 1) * self.page_size + i + 1
                hit = _hit(item, rank)
                if hit is None:
                    self.report.skip("no_url", f"query {query!r} page {page}", str(item.get("id", "")))
                    continue
                hits.append(hit)
            hits = hits[: cap - seen]
            seen += len(results)
            if hits:
                yield hits
            if not results or page >= page_count:
                return
            page += 1


def _parse_page(data: Any, query: str, page: int) -> tuple[list[dict[str, Any]], int]:
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        raise SearchApiError(f"openverse: unexpected response for {query!r} page {page}: no 'results' list")
    results = [r for r in data["results"] if isinstance(r, dict)]
    try:
        page_count = int(data.get("page_count") or 0)
    except (TypeError, ValueError):
        page_count = 0
    return results, page_count


def _hit(item: dict[str, Any], rank: int) -> Hit | None:
    url = item.get("url")
    if not isinstance(url, str) or not url:
        return None
    raw = item.get("license")
    version = item.get("license_version")
    raw_s = f"{raw} {version}".strip() if raw and version else (str(raw) if raw else None)
    return Hit(
        source_id=str(item.get("id") or url),
        url=url,
        rank=rank,
        page_url=item.get("foreign_landing_url") or None,
        license_raw=raw_s,
        license=normalize_license(str(raw), str(version) if version else None) if raw else None,
        author=item.get("creator") or None,
        title=item.get("title") or None,
        extra={
            k: item[k]
            for k in ("provider", "source", "filetype", "width", "height", "license_url")
            if item.get(k) is not None
        },
    )
