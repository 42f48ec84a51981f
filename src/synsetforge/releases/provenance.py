"""Provenance as the public may see it: where a released image was found, without the server's file system.

A folder source's candidates point at `file:///srv/data/photos/n01440764/a.jpg`, and the CLI names such a
source `folder:/srv/data/photos`. The public explorer shows the path below the source root instead
(`n01440764/a.jpg`) and the root by its last folder name only (`folder:photos`); web URLs are unchanged.
Works on live candidate rows and on release manifest items alike (both have `source`, `url`, `page_url`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit


def _file_path(url: str | None) -> PurePosixPath | None:
    """The local path of a `file:` URL (None for any other URL)."""
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme.lower() != "file":
        return None
    return PurePosixPath(unquote(parts.path))


def _root_of(source: str) -> tuple[str, PurePosixPath] | None:
    """(label, root) of a source named `label:/absolute/root` (how `collect --source folder` names it)."""
    label, sep, rest = source.partition(":")
    if not sep or not rest.startswith("/"):
        return None
    return label, PurePosixPath(rest)


def public_location(url: str | None, source: str) -> str | None:
    """A web URL as it is; a local file as its path relative to the source root, else its file name."""
    path = _file_path(url)
    if path is None:
        return url
    named = _root_of(source)
    if named is not None and path.is_relative_to(named[1]):
        return path.relative_to(named[1]).as_posix()
    return path.name


def public_source(source: str, url: str | None) -> str:
    """The source name without an absolute server path (`folder:/srv/data/photos` -> `folder:photos`)."""
    named = _root_of(source)
    if named is None or _file_path(url) is None:
        return source
    return f"{named[0]}:{named[1].name}"


def public_candidate(candidate: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a candidate (or manifest item) dict with `source`, `url` and `page_url` made public."""
    out = dict(candidate)
    source = str(candidate.get("source") or "")
    url = candidate.get("url")
    out["url"] = public_location(url, source)
    if "page_url" in candidate:
        out["page_url"] = public_location(candidate.get("page_url"), source)
    if "source" in candidate:
        out["source"] = public_source(source, url)
    return out
