"""Flickr (`flickr.photos.search`, needs an API key): the engine ImageNetV2 used, with upload-date filters
so that no candidate predates (or postdates) a chosen day.

Flickr answers HTTP 200 with `{"stat": "fail", "code": ..., "message": ...}` on errors; code 100 (bad key)
stops the source, codes 105/10 (service unavailable) are retried, others drop the query.
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
)
from synsetforge.errors import InputError

DEFAULT_BASE_URL = "https://api.flickr.com/services/rest/"

# flickr.photos.licenses.getInfo: id -> (SPDX-like id, Flickr's name)
FLICKR_LICENSES: dict[str, tuple[str, str]] = {
    "0": ("all-rights-reserved", "All Rights Reserved"),
    "1": ("CC-BY-NC-SA-2.0", "Attribution-NonCommercial-ShareAlike License"),
    "2": ("CC-BY-NC-2.0", "Attribution-NonCommercial License"),
    "3": ("CC-BY-NC-ND-2.0", "Attribution-NonCommercial-NoDerivs License"),
    "4": ("CC-BY-2.0", "Attribution License"),
    "5": ("CC-BY-SA-2.0", "Attribution-ShareAlike License"),
    "6": ("CC-BY-ND-2.0", "Attribution-NoDerivs License"),
    "7": ("no-known-copyright", "No known copyright restrictions"),
    "8": ("us-government-work", "United States Government Work"),
    "9": ("CC0-1.0", "Public Domain Dedication (CC0)"),
    "10": ("PDM-1.0", "Public Domain Mark"),
    "11": ("CC-BY-4.0", "Attribution 4.0 International"),
    "12": ("CC-BY-SA-4.0", "Attribution-ShareAlike 4.0 International"),
    "13": ("CC-BY-ND-4.0", "Attribution-NoDerivs 4.0 International"),
    "14": ("CC-BY-NC-4.0", "Attribution-NonCommercial 4.0 International"),
    "15": ("CC-BY-NC-SA-4.0", "Attribution-NonCommercial-ShareAlike 4.0 International"),
    "16": ("CC-BY-NC-ND-4.0", "Attribution-NonCommercial-NoDerivs 4.0 International"),
}
OPEN_LICENSE_IDS = "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16"  # everything but "all rights reserved"
FATAL_CODES = frozenset({100, 112, 116})  # invalid key, unknown method, bad URL
RETRY_CODES = frozenset({10, 105})  # search / service temporarily unavailable


class FlickrSource(SearchSource):
    """Candidates from Flickr photo search, photos only, sorted by relevance."""

    name = "flickr"

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        licenses: str | None = OPEN_LICENSE_IDS,  # None: any license, including all rights reserved
        min_upload_date: str | int | None = None,  # unix time or "YYYY-MM-DD"
        max_upload_date: str | int | None = None,
        per_page: int = 100,
        max_per_query: int = 1000,
        sizes: tuple[str, ...] = ("url_l", "url_c", "url_o"),  # preferred image size, first found wins
        safe_search: int = 1,
        queries: QueryFn | None = None,
        min_interval_s: float = 1.0,  # Flickr allows 3600 calls/hour per key
        max_retries: int = 3,
        backoff_base_s: float = 1.0,
        timeout_s: float = 30.0,
        user_agent: str = DEFAULT_USER_AGENT,
        strict: bool = False,
        sleep: Any = None,
    ) -> None:
        key = api_key or os.environ.get("FLICKR_API_KEY") or os.environ.get("SYNSETFORGE_FLICKR_KEY")
        if not key:
            raise InputError("flickr: an API key is needed (api_key= or FLICKR_API_KEY)")
        self.api_key = key
        self.base_url = base_url or os.environ.get("SYNSETFORGE_FLICKR_URL") or DEFAULT_BASE_URL
        self.per_page = min(max(1, per_page), 500)
        self.max_per_query = max_per_query
        self.sizes = sizes
        self.filters: dict[str, Any] = {"safe_search": safe_search, "content_type": 1, "media": "photos"}
        if licenses:
            self.filters["license"] = licenses
        if min_upload_date is not None:
            self.filters["min_upload_date"] = min_upload_date
        if max_upload_date is not None:
            self.filters["max_upload_date"] = max_upload_date
        self.queries = queries
        self.strict = strict
        self.max_retries = max_retries
        self._connect(
            user_agent=user_agent,
            timeout_s=timeout_s,
            max_retries=max_retries,
            backoff_base_s=backoff_base_s,
            min_interval_s=min_interval_s,
            sleep=sleep,
        )

    def _call(self, query: str, page: int) -> dict[str, Any]:
        params = {
            "method": "flickr.photos.search",
            "api_key": self.api_key,
            "text": query,
            "sort": "relevance",
            "extras": "url_o,url_l,url_c,license,owner_name,date_upload",
            "page": page,
            "per_page": self.per_page,
            "format": "json",
            "nojsoncallback": 1,
            **self.filters,
        }
        for attempt in range(self.max_retries + 1):
            if attempt:
                self.client.backoff(attempt - 1)
            data = self.client.get(self.base_url, params)
            if not isinstance(data, dict):
                raise SearchApiError(f"flickr: unexpected response for {query!r} page {page}")
            if data.get("stat") == "ok":
                return data
            try:
                code = int(data.get("code", -1))
            except (TypeError, ValueError):
                code = -1
            message = f"flickr: error {code} for {query!r} page {page}: {data.get('message', 'no message')}"
            if code not in RETRY_CODES:
                raise SearchApiError(message, fatal=code in FATAL_CODES)
        raise SearchApiError(message)

    def pages(self, query: str, cap: int) -> Iterator[list[Hit]]:
        """Pages of hits for one query up to `pages` or `cap` results."""
        page = 1
        seen = 0
        while seen < cap:
            data = self._call(query, page)
            block = data.get("photos")
            if not isinstance(block, dict) or not isinstance(block.get("photo"), list):
                raise SearchApiError(f"flickr: no 'photos.photo' list for {query!r} page {page}")
            photos = [p for p in block["photo"] if isinstance(p, dict)]
            try:
                pages = int(block.get("pages") or 0)
            except (TypeError, ValueError):
                pages = 0
            hits: list[Hit] = []
            for i, photo in enumerate(photos):
                hit = self._hit(photo, (page - 1) * self.per_page + i + 1, query, page)
                if hit is not None:
                    hits.append(hit)
            hits = hits[: max(0, cap - seen)]
            seen += len(photos)
            if hits:
                yield hits
            if not photos or page >= pages:
                return
            page += 1

    def _hit(self, photo: dict[str, Any], rank: int, query: str, page: int) -> Hit | None:
        url = next((photo[s] for s in self.sizes if isinstance(photo.get(s), str) and photo[s]), None)
        if url is None:
            self.report.skip("no_url", f"query {query!r} page {page}", str(photo.get("id", "")))
            return None
        lic_id = str(photo.get("license", "")).strip()
        spdx, lic_name = FLICKR_LICENSES.get(lic_id, (None, None))
        owner = photo.get("owner")
        pid = str(photo.get("id") or url)
        extra: dict[str, Any] = {"license_id": lic_id}
        if photo.get("dateupload"):
            extra["date_upload"] = str(photo["dateupload"])
        if owner:
            extra["owner"] = str(owner)
        return Hit(
            source_id=pid,
            url=url,
            rank=rank,
            page_url=f"https://www.flickr.com/photos/{owner}/{pid}" if owner else None,
            license_raw=lic_name or (lic_id or None),
            license=spdx,
            author=photo.get("ownername") or None,
            title=photo.get("title") or None,
            extra=extra,
        )
