"""Train/val/test splits: stratified per synset, deterministic for a seed, duplicate-safe.

Near-duplicates must never sit in two splits (a model would be tested on what it trained on), so images are
first grouped into duplicate clusters -- `images.duplicate_of` chains plus any two images of the release whose
64-bit pHashes differ in at most `phash_distance` bits -- and whole clusters are assigned. An image labelled
with several synsets is one node too, so it lands in the same split for all of them.

Assignment: every cluster gets a pseudo-random rank, ``sha256(seed:smallest content hash)``; in rank order
a cluster joins val, else test, when each of its synsets still has room there, else train. Singleton
clusters -- the usual case -- fill the held-out targets exactly, held-out splits never overshoot, and the rank
of an image does not depend on the others, so the next release (a few images added or removed) keeps almost
every image in the split it had.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from synsetforge.errors import InputError

SPLITS = ("train", "val", "test")
DEFAULT_PHASH_DISTANCE = 8  # bits of 64; re-encoded or resized copies are usually within 0..6


@dataclass(frozen=True)
class SplitSpec:
    """Held-out sizes per synset: an int is a count, a float in (0, 1) a fraction; train gets the rest.

    Counts that would leave fewer than half of a synset's images for training are scaled down so that train
    keeps half (the synset is then reported as short).
    """

    val: int | float = 0.1
    test: int | float = 0.1

    def __post_init__(self) -> None:
        for name, v in (("val", self.val), ("test", self.test)):
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise InputError(f"{name} size must be a count or a fraction, not {v!r}")
            if isinstance(v, float) and not 0.0 <= v < 1.0:
                raise InputError(f"{name} fraction must be in [0, 1), got {v}")
            if isinstance(v, int) and v < 0:
                raise InputError(f"{name} count must be >= 0, got {v}")
        if isinstance(self.val, float) and isinstance(self.test, float) and self.val + self.test >= 1.0:
            raise InputError(f"val + test fractions must leave room for train ({self.val} + {self.test})")

    @staticmethod
    def parse_size(text: str, name: str) -> int | float:
        """``50`` (a count), ``0.1`` or ``10%`` (fractions)."""
        t = text.strip()
        try:
            if t.endswith("%"):
                return float(t[:-1]) / 100.0
            if re.fullmatch(r"\d+", t):
                return int(t)
            return float(t)
        except ValueError:
            raise InputError(
                f"{name} size {text!r} is neither a count (50) nor a fraction (0.1, 10%)"
            ) from None

    def targets(self, n: int) -> tuple[tuple[int, int, int], bool]:
        """(train, val, test) counts for a synset of `n` images, and whether counts had to shrink."""
        val = self.val * n if isinstance(self.val, float) else float(self.val)
        test = self.test * n if isinstance(self.test, float) else float(self.test)
        short = False
        has_count = isinstance(self.val, int) or isinstance(self.test, int)
        if has_count and val + test > n // 2:
            short = True
            room = n // 2
            total = val + test
            val, test = val * room / total, test * room / total
        shares = [n - val - test, val, test]
        counts = [math.floor(x + 1e-9) for x in shares]
        # largest remainder; ties go to train, then val, then test
        order = sorted(range(3), key=lambda k: (-(shares[k] - counts[k]), k))
        for k in order[: n - sum(counts)]:
            counts[k] += 1
        return (counts[0], counts[1], counts[2]), short


class UnionFind:
    """Disjoint sets over hashable keys (image ids)."""

    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, x: int) -> int:
        parent = self.parent
        root = x
        while parent.get(root, root) != root:
            root = parent[root]
        while x != root:  # path compression
            nxt = parent.get(x, x)
            parent[x] = root
            x = nxt
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            # the smaller id becomes the root, so cluster ids do not depend on insertion order
            if rb < ra:
                ra, rb = rb, ra
            self.parent[rb] = ra


def near_pairs(ids: Sequence[int], hashes: Sequence[int], max_distance: int) -> list[tuple[int, int]]:
    """Pairs of ids whose 64-bit hashes differ in at most `max_distance` bits.

    Pigeonhole: cut the hash into ``max_distance + 1`` blocks; two hashes within the distance agree exactly on
    at least one block, so only hashes sharing a block value are compared (with a vectorised popcount).
    Identical hashes are collapsed first so a flood of equal hashes costs nothing.
    """
    if max_distance < 0 or len(ids) < 2:
        return []
    values = np.array([h & 0xFFFFFFFFFFFFFFFF for h in hashes], dtype=np.uint64)
    id_arr = np.asarray(ids, dtype=np.int64)
    pairs: set[tuple[int, int]] = set()
    uniq, first, inverse = np.unique(values, return_index=True, return_inverse=True)
    # equal hashes: link every image to the first one with the same hash
    for k in np.nonzero(np.bincount(inverse) > 1)[0]:
        members = id_arr[inverse == k]
        a = int(members.min())
        pairs.update((a, int(b)) for b in members if int(b) != a)
    if len(uniq) < 2:
        return sorted(pairs)
    rep = id_arr[first]
    blocks = min(max_distance + 1, 64)
    width = 64 // blocks
    close: set[tuple[int, int]] = set()
    for b in range(blocks):
        shift = b * width
        bits = 64 - shift if b == blocks - 1 else width
        key = (uniq >> np.uint64(shift)) & np.uint64((1 << bits) - 1)
        order = np.argsort(key, kind="stable")
        sk = key[order]
        # compare each position with the following ones of its run of equal block values
        starts = np.flatnonzero(np.r_[True, sk[1:] != sk[:-1]])
        run_end = np.repeat(np.r_[starts[1:], len(sk)], np.diff(np.r_[starts, len(sk)]))
        pos = np.arange(len(sk))
        active = pos[run_end - pos > 1]
        d = 1
        while active.size:
            i = order[active]
            j = order[active + d]
            ok = np.bitwise_count(uniq[i] ^ uniq[j]) <= max_distance
            for x, y in zip(i[ok].tolist(), j[ok].tolist(), strict=True):
                close.add((x, y) if x < y else (y, x))
            d += 1
            active = active[run_end[active] - active > d]
    for x, y in close:
        a, b = int(rep[x]), int(rep[y])
        pairs.add((a, b) if a < b else (b, a))
    return sorted(pairs)


@dataclass
class Assignment:
    """The split of every (image, synset) item, and how the duplicate clusters came out."""

    split_of: dict[tuple[int, str], str]
    group_of: dict[int, int]  # image id -> cluster id (smallest image id of its cluster)
    short_synsets: list[str]
    groups: int
    multi_groups: int
    images_in_multi_groups: int
    largest_group: int
    straddling_groups: int


def assign_splits(
    items: Sequence[tuple[int, str, str]],
    duplicate_links: Iterable[tuple[int, int]],
    spec: SplitSpec,
    seed: int,
) -> Assignment:
    """Assign (image_id, synset, sha256) items to splits; images linked by `duplicate_links` stay together."""
    uf = UnionFind()
    for a, b in duplicate_links:
        uf.union(a, b)
    image_sha: dict[int, str] = {}
    for image_id, _, sha in items:
        image_sha[image_id] = sha
    group_of = {img: uf.find(img) for img in image_sha}
    members: dict[int, list[tuple[int, str]]] = defaultdict(list)
    per_synset: dict[str, int] = defaultdict(int)
    for image_id, synset, _ in items:
        members[group_of[image_id]].append((image_id, synset))
        per_synset[synset] += 1

    target: dict[str, list[int]] = {}
    short: list[str] = []
    for synset, n in per_synset.items():
        sizes, was_short = spec.targets(n)
        target[synset] = list(sizes)
        if was_short:
            short.append(synset)
    have: dict[str, list[int]] = {s: [0, 0, 0] for s in per_synset}

    # each cluster gets a seeded pseudo-random rank from its smallest content hash; in rank order a cluster
    # joins val, else test, if every synset in it still has room there, else train. Holdouts never overshoot,
    # and adding or removing an image moves at most a couple of others (a later release stays comparable).
    rank = {
        g: hashlib.sha256(f"{seed}:{min(image_sha[i] for i, _ in members[g])}".encode()).digest()
        for g in members
    }
    split_of: dict[tuple[int, str], str] = {}
    for g in sorted(members, key=rank.__getitem__):
        group = members[g]
        per = Counter(synset for _, synset in group)
        best = 0
        for k in (1, 2):
            if all(have[s][k] + c <= target[s][k] for s, c in per.items()):
                best = k
                break
        for image_id, synset in group:
            have[synset][best] += 1
            split_of[(image_id, synset)] = SPLITS[best]

    images_per_group: dict[int, set[int]] = defaultdict(set)
    for image_id, g in group_of.items():
        images_per_group[g].add(image_id)
    straddling = count_straddling(split_of, group_of)
    return Assignment(
        split_of=split_of,
        group_of=group_of,
        short_synsets=sorted(short),
        groups=len(members),
        multi_groups=sum(1 for v in images_per_group.values() if len(v) > 1),
        images_in_multi_groups=sum(len(v) for v in images_per_group.values() if len(v) > 1),
        largest_group=max((len(v) for v in images_per_group.values()), default=0),
        straddling_groups=straddling,
    )


def count_straddling(split_of: dict[tuple[int, str], str], group_of: dict[int, int]) -> int:
    """How many clusters have images in more than one split (0 for a correct assignment)."""
    seen: dict[int, set[str]] = defaultdict(set)
    for (image_id, _), split in split_of.items():
        seen[group_of.get(image_id, image_id)].add(split)
    return sum(1 for s in seen.values() if len(s) > 1)
