"""64-bit perceptual hashes in a signed BIGINT column.

Both SQLite and PostgreSQL store signed 64-bit integers; a pHash is unsigned. We store the two's-complement
view, so every hash round-trips and equality lookups stay index-friendly.
"""

from __future__ import annotations

_TOP = 1 << 63
_SPAN = 1 << 64


def phash_to_db(h: int) -> int:
    if not 0 <= h < _SPAN:
        raise ValueError(f"not a 64-bit hash: {h}")
    return h - _SPAN if h >= _TOP else h


def phash_from_db(v: int | None) -> int | None:
    if v is None:
        return None
    return v + _SPAN if v < 0 else v
