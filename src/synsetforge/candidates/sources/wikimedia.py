"""Wikimedia Commons (no key): MediaWiki `action=query&generator=search` over the File namespace, with
`prop=imageinfo` for the file URL, MIME type and license metadata, paged by `continue`/`gsroffset`.

Wikimedia asks API clients for a descriptive User-Agent with contact details; pass one via `user_agent`.
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
    strip_html,
)

DEFAULT_BASE_URL = "https://commons.wikimedia.org/w/api.php"


class WikimediaSource(SearchSource):
    """Candidates from Wikimedia Commons file search."""

    name = "wikimedia"

    def __init__(
        self,
        *,
        base_url: str | None = None,
        page_size: int = 50,
        max_per_query: int = 500,
        search_prefix: str = "filetype:bitmap",  # raster images only; "" for every file type
        queries: QueryFn | None = None,
        min_interval_s: float = 1.0,
        max_retries: int = 3,
        backoff_base_s: float = 1.0,
        timeout_s: float = 30.0,
        user_agent: str = DEFAULT_USER_AGENT,
        strict: bool = False,
        sleep: Any = None,
    ) -> None:
        self.base_url = base_url or os.environ.get("SYNSETFORGE_WIKIMEDIA_URL") or DEFAULT_BASE_URL
        self.page_size = page_size
        self.max_per_query = max_per_query
        self.search_prefix = search_prefix.strip()
        self.queries = queries
        self.strict = strict
        self._connect(
            user_agent=user_agent,
            timeout_s=timeout_s,
            max_retries=max_retries,
            backoff_base_s=backoff_base_s,
            min_interval_s=min_interval_s,
            sleep=sleep,
        )

    def _params(self, query: str) -> dict[str, Any]:
        search = f"{self.search_prefix} {query}" if self.search_prefix else query
        return {
            "action": "query",
            "format": "json",
            "generator": "search",
            "gsrnamespace": 6,
            "gsrsearch": search,
            "gsrlimit": self.page_size,
            "prop": "imageinfo",
            "iiprop": "url|extmetadata|mime",
        }

    def pages(self, query: str, cap: int) -> Iterator[list[Hit]]:
        """Pages of hits for one query, following `continue` until exhausted or `cap` results seen."""
        cont: dict[str, Any] = {}
        seen = 0
        page_no = 1
        while seen < cap:
            data = self.client.get(self.base_url, {**self._params(query), **cont})
            if not isinstance(data, dict):
                raise SearchApiError(f"wikimedia: unexpected response for {query!r} page {page_no}")
            if "error" in data:
                err = data["error"] if isinstance(data["error"], dict) else {}
                code = str(err.get("code", "unknown"))
                raise SearchApiError(
                    f"wikimedia: API error {code} for {query!r}: {err.get('info', '')}",
                    fatal=code in ("badkey", "mustbeloggedin", "permissiondenied"),
                )
            pages = _pages(data)
            offset = seen
            hits: list[Hit] = []
            for pos, page in enumerate(pages):
                rank = int(page.get("index") or offset + pos + 1)
                hit = self._hit(page, rank, query, page_no)
                if hit is not None:
                    hits.append(hit)
            seen += len(pages)
            if hits:
                yield hits[: max(0, cap - offset)]
            nxt = data.get("continue")
            if not pages or not isinstance(nxt, dict):
                return
            cont = {k: v for k, v in nxt.items() if isinstance(v, str | int)}
            page_no += 1

    def _hit(self, page: dict[str, Any], rank: int, query: str, page_no: int) -> Hit | None:
        infos = page.get("imageinfo")
        where = f"query {query!r} page {page_no}"
        if not isinstance(infos, list) or not infos or not isinstance(infos[0], dict):
            self.report.skip("no_imageinfo", where, str(page.get("title", "")))
            return None
        info = infos[0]
        url = info.get("url")
        if not isinstance(url, str) or not url:
            self.report.skip("no_url", where, str(page.get("title", "")))
            return None
        mime = str(info.get("mime") or "")
        if mime and not mime.startswith("image/"):
            self.report.skip("not_image_mime", where, f"{page.get('title', '')}: {mime}")
            return None
        ext = info.get("extmetadata")
        meta: dict[str, Any] = ext if isinstance(ext, dict) else {}
        short, code, lic_url = (_meta(meta, k) for k in ("LicenseShortName", "License", "LicenseUrl"))
        raw = short or code or lic_url
        lic = next((n for n in map(normalize_license, (lic_url, short, code)) if n and _known(n)), None)
        title = str(page.get("title") or "")
        return Hit(
            source_id=str(page.get("pageid") or title),
            url=url,
            rank=rank,
            page_url=info.get("descriptionurl") or None,
            license_raw=raw,
            license=lic or normalize_license(raw),
            author=strip_html(_meta(meta, "Artist")) or strip_html(_meta(meta, "Credit")),
            title=title.removeprefix("File:") or None,
            extra={"mime": mime} if mime else {},
        )


def _pages(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Result pages in rank order; `pages` is a dict by page id (formatversion 1) or a list (2)."""
    query = data.get("query")
    if not isinstance(query, dict):
        return []
    pages = query.get("pages")
    items = list(pages.values()) if isinstance(pages, dict) else pages if isinstance(pages, list) else []
    items = [p for p in items if isinstance(p, dict)]
    return sorted(items, key=lambda p: int(p.get("index") or 0))


def _meta(meta: dict[str, Any], key: str) -> str | None:
    entry = meta.get(key)
    value = entry.get("value") if isinstance(entry, dict) else None
    return str(value).strip() or None if value is not None else None


def _known(spdx: str) -> bool:
    return spdx.startswith(("CC", "PDM")) or spdx == "public-domain"
