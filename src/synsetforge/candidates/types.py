"""Plain data types that flow through candidate collection.

A source yields `CandidateRef`s (where an image can be had and why we think it shows a synset); the
downloader turns each into a `Fetched` (raw bytes or a failure); the image pipeline turns bytes into a
`ProcessedImage` (normalized JPEG + hashes) or a rejection. The store writes rows from these; stages never
share anything richer than these types.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Box:
    """An object box in pixels of the image as served, ILSVRC/VOC style (inclusive corners)."""

    xmin: int
    ymin: int
    xmax: int
    ymax: int
    synset_id: str | None = None


@dataclass(frozen=True)
class CandidateRef:
    """One candidate image for one synset, as a source found it.

    `url` is an http(s) URL, a `file://` path (folder source) or a `synthetic://` key. `key` is a stable
    identifier of this candidate within its source (used to make writes idempotent on rerun).
    `truth_synset` / `boxes` are only set by sources that know the answer (the synthetic one).
    """

    synset_id: str
    source: str
    url: str
    key: str
    query: str | None = None
    rank: int | None = None
    page_url: str | None = None
    license: str | None = None
    author: str | None = None
    caption: str | None = None
    truth_synset: str | None = None
    boxes: tuple[Box, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Fetched:
    """Result of fetching a `CandidateRef`: bytes on success, else a reject reason."""

    ref: CandidateRef
    data: bytes | None
    reason: str | None = None  # e.g. "http_404", "timeout", "too_large", "robots_noai", "redirect_loop"
    transient: bool = False  # worth retrying later (timeouts, 429/5xx, connection errors)
    status: int | None = None
    final_url: str | None = None
    elapsed_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)  # recorded subset, lower-case names
    attempts: int = 1  # 1 + retries spent on this ref
    detail: str = ""  # human-readable detail of `reason`


@dataclass(frozen=True)
class ProcessedImage:
    """A decoded, validated, normalized image ready to store."""

    sha256: str  # of the original bytes, hex
    data: bytes  # normalized JPEG bytes
    width: int  # of the normalized image
    height: int
    orig_width: int
    orig_height: int
    orig_bytes: int
    orig_format: str
    phash: int  # 64-bit perceptual hash, unsigned
    blob: str | None = None  # set when a worker already filed `data` in the blob store (then `data` is b"")


@dataclass(frozen=True)
class Rejected:
    """An image payload that failed validation, with a machine-readable reason and detail."""

    reason: str  # e.g. "corrupt", "truncated", "too_small", "aspect_ratio", "not_image", "decompression_bomb"
    detail: str = ""
