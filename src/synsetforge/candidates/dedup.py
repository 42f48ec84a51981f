"""Exact and near-duplicate detection: SHA-256 for identical files, pHash Hamming distance for near copies.

Near duplicates use multi-index hashing (Norouzi, Punjani & Fleet 2012): the 64 hash bits are cut into `m`
chunks, each with its own dict from chunk value to entries. If two hashes differ in at most `k` bits, then by
pigeonhole at least one chunk differs in at most ``r = k // m`` bits, so probing every chunk value within
``r`` bits of the query's finds every match; candidates are then verified with a popcount. `m` is chosen from
a cost model (probes plus expected verifications of random hashes) for the current size, and the index
rebuilds itself with a better `m` each time it doubles, so the cost per query stays sub-linear (about
``n ** H(k/64)`` for the binary entropy H) and loading n hashes is sub-quadratic.

Not thread-safe: guard an index shared between threads with a lock.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from itertools import combinations

from synsetforge.candidates.phash import HASH_BITS

MAX_PROBES = 100_000  # per query; layouts needing more are refused (they would be slower than a scan)
DEFAULT_MAX_DISTANCE = 8  # bits out of 64; pHash of a re-encoded/resized copy is usually within 0..6


@dataclass(frozen=True)
class DuplicateMatch:
    """The image an incoming one duplicates: `kind` is "exact" (same bytes) or "near" (pHash distance)."""

    image_id: Hashable
    kind: str
    distance: int


def _chunk_layout(m: int) -> list[tuple[int, int]]:
    """(shift, width) of each of `m` nearly equal chunks covering the 64 bits."""
    base, extra = divmod(HASH_BITS, m)
    out, shift = [], 0
    for i in range(m):
        width = base + (1 if i < extra else 0)
        out.append((shift, width))
        shift += width
    return out


def _masks(width: int, radius: int) -> list[int]:
    """Every XOR mask of `width` bits with at most `radius` bits set, zero first."""
    masks = [0]
    for r in range(1, min(radius, width) + 1):
        for bits in combinations(range(width), r):
            masks.append(sum(1 << b for b in bits))
    return masks


def _probes(m: int, k: int) -> int:
    """Dict lookups per query with `m` chunks: every value within k // m bits of each chunk."""
    return sum(_count(width, k // m) for _, width in _chunk_layout(m))


def _count(width: int, radius: int) -> int:
    return sum(math.comb(width, i) for i in range(min(radius, width) + 1))


def _cost(m: int, k: int, n: int) -> float:
    """Expected work of one query with `m` chunks among `n` random hashes: probes + verifications."""
    return _probes(m, k) * (1.0 + n / 2.0 ** (HASH_BITS // m))


def choose_chunks(k: int, n: int) -> int:
    """The number of chunks that minimises the expected query cost for `n` stored hashes."""
    best_m, best = k + 1, math.inf
    for m in range(1, min(k + 1, HASH_BITS) + 1):
        c = _cost(m, k, n)
        if c < best:
            best_m, best = m, c
    return best_m


class DuplicateIndex:
    """Finds, for an incoming image, an already indexed image with the same bytes or a pHash within `k` bits.

    `find` checks the SHA-256 first, then returns the nearest near-duplicate (ties: the earliest added).
    `comparisons` and `probes` count the popcount verifications and table lookups, for tests and tuning. `chunks` fixes the number
    of chunks (default: chosen and adapted automatically).
    """

    def __init__(self, k: int = DEFAULT_MAX_DISTANCE, chunks: int | None = None) -> None:
        if not 0 <= k < HASH_BITS:
            raise ValueError(f"max distance k must be in 0..{HASH_BITS - 1}, got {k}")
        if chunks is not None and not 1 <= chunks <= HASH_BITS:
            raise ValueError(f"chunks must be in 1..{HASH_BITS}, got {chunks}")
        if chunks is not None and _probes(chunks, k) > MAX_PROBES:
            raise ValueError(
                f"{chunks} chunks for k={k} need {_probes(chunks, k)} probes per query; use more"
            )
        self.k = k
        self._fixed_chunks = chunks
        self._by_sha: dict[str, Hashable] = {}
        self._ids: list[Hashable] = []
        self._hashes: list[int] = []
        self.comparisons = 0  # popcount verifications done by queries
        self.probes = 0  # chunk-table lookups done by queries
        self._build(chunks if chunks is not None else choose_chunks(k, 1536), capacity=1024)

    # ------------------------------------------------------------------ building
    def _build(self, m: int, capacity: int) -> None:
        self.chunks = m
        self._capacity = capacity
        self._layout = _chunk_layout(m)
        radius = self.k // m
        self._probe_masks = [_masks(width, radius) for _, width in self._layout]
        self._tables: list[dict[int, list[int]]] = [{} for _ in self._layout]
        for pos, h in enumerate(self._hashes):
            self._insert(pos, h)

    def _insert(self, pos: int, h: int) -> None:
        for (shift, width), table in zip(self._layout, self._tables, strict=True):
            key = (h >> shift) & ((1 << width) - 1)
            bucket = table.get(key)
            if bucket is None:
                table[key] = [pos]
            else:
                bucket.append(pos)

    def _maybe_grow(self) -> None:
        if self._fixed_chunks is None and len(self._hashes) > 2 * self._capacity:
            capacity = 2 * self._capacity
            m = choose_chunks(self.k, capacity * 3 // 2)  # sized for the middle of [capacity, 2 * capacity]
            if m != self.chunks:
                self._build(m, capacity)
            else:
                self._capacity = capacity

    def add(self, image_id: Hashable, sha256: str | None, phash: int | None) -> None:
        """Index one image. A hash of None (unknown) is simply not indexed; the first id per SHA wins."""
        if sha256 is not None:
            self._by_sha.setdefault(sha256, image_id)
        if phash is None:
            return
        if not 0 <= phash < 1 << HASH_BITS:
            raise ValueError(f"phash must be an unsigned 64-bit int, got {phash}")
        pos = len(self._hashes)
        self._ids.append(image_id)
        self._hashes.append(phash)
        self._insert(pos, phash)
        self._maybe_grow()

    def add_many(self, rows: Iterable[tuple[Hashable, str | None, int | None]]) -> None:
        """Bulk load `(image_id, sha256, phash)` rows, e.g. from the store when resuming."""
        for image_id, sha256, phash in rows:
            self.add(image_id, sha256, phash)

    @classmethod
    def from_rows(
        cls, rows: Iterable[tuple[Hashable, str | None, int | None]], k: int = DEFAULT_MAX_DISTANCE
    ) -> DuplicateIndex:
        """An index holding `rows` (see `add_many`)."""
        index = cls(k)
        index.add_many(rows)
        return index

    def __len__(self) -> int:
        """Number of indexed pHashes."""
        return len(self._hashes)

    # ------------------------------------------------------------------ queries
    def near(self, phash: int) -> list[tuple[Hashable, int]]:
        """Every indexed image within `k` bits of `phash`, as (id, distance), nearest first then oldest."""
        found: dict[int, int] = {}
        hashes = self._hashes
        k = self.k
        checked: set[int] = set()
        for (shift, width), table, masks in zip(self._layout, self._tables, self._probe_masks, strict=True):
            key = (phash >> shift) & ((1 << width) - 1)
            for mask in masks:
                bucket = table.get(key ^ mask)
                if bucket is None:
                    continue
                for pos in bucket:
                    if pos in checked:
                        continue
                    checked.add(pos)
                    d = (hashes[pos] ^ phash).bit_count()
                    if d <= k:
                        found[pos] = d
        self.comparisons += len(checked)
        self.probes += sum(len(masks) for masks in self._probe_masks)
        return [(self._ids[pos], d) for pos, d in sorted(found.items(), key=lambda item: (item[1], item[0]))]

    def match(self, sha256: str | None, phash: int | None) -> DuplicateMatch | None:
        """The image this one duplicates, exact (SHA-256) before near (nearest pHash), or None."""
        if sha256 is not None:
            hit = self._by_sha.get(sha256)
            if hit is not None:
                return DuplicateMatch(hit, "exact", 0)
        if phash is None:
            return None
        near = self.near(phash)
        if not near:
            return None
        image_id, distance = near[0]
        return DuplicateMatch(image_id, "near", distance)

    def find(self, sha256: str | None, phash: int | None) -> Hashable | None:
        """The id of the image this one duplicates, or None (see `match`)."""
        hit = self.match(sha256, phash)
        return None if hit is None else hit.image_id

    def check_and_add(
        self, image_id: Hashable, sha256: str | None, phash: int | None
    ) -> DuplicateMatch | None:
        """`match`, then index the image when it is not a duplicate: the one-pass dedup loop."""
        hit = self.match(sha256, phash)
        if hit is None:
            self.add(image_id, sha256, phash)
        return hit
