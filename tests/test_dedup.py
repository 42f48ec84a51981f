"""DuplicateIndex: exact answers (checked against brute force) with far fewer than n^2 comparisons."""

from __future__ import annotations

import random

import pytest

from synsetforge.candidates.dedup import DuplicateIndex, DuplicateMatch, choose_chunks


def flip(h: int, bits: int, rnd: random.Random) -> int:
    """`h` with `bits` distinct random bits flipped."""
    for b in rnd.sample(range(64), bits):
        h ^= 1 << b
    return h


def brute_near(hashes: list[int], query: int, k: int) -> list[tuple[int, int]]:
    found = [(i, (h ^ query).bit_count()) for i, h in enumerate(hashes)]
    return sorted(((i, d) for i, d in found if d <= k), key=lambda x: (x[1], x[0]))


@pytest.mark.parametrize(
    ("k", "chunks"), [(8, None), (0, None), (3, None), (12, None), (8, 3), (8, 9), (5, 4), (2, 1)]
)
def test_near_matches_brute_force_with_planted_duplicates(k: int, chunks: int | None) -> None:
    rnd = random.Random(k * 100 + (chunks or 0))
    hashes = [rnd.getrandbits(64) for _ in range(1500)]
    # plant near copies of some hashes at every distance 0..k+1
    for d in range(k + 2):
        for _ in range(15):
            hashes.append(flip(rnd.choice(hashes[:1500]), d, rnd))
    index = DuplicateIndex(k, chunks=chunks)
    for i, h in enumerate(hashes):
        index.add(i, None, h)
    queries = [flip(rnd.choice(hashes), rnd.randint(0, k + 2), rnd) for _ in range(300)]
    queries += [rnd.getrandbits(64) for _ in range(100)]
    for q in queries:
        assert index.near(q) == brute_near(hashes, q, k)


def test_planted_distances_found_up_to_k_and_not_beyond() -> None:
    rnd = random.Random(5)
    k = 8
    base = [rnd.getrandbits(64) for _ in range(3000)]
    index = DuplicateIndex.from_rows(((f"img{i}", f"sha{i}", h) for i, h in enumerate(base)), k=k)
    for d in range(k + 1):
        for _ in range(20):
            i = rnd.randrange(len(base))
            hit = index.match("unseen-sha", flip(base[i], d, rnd))
            assert hit == DuplicateMatch(f"img{i}", "near", d)
    for _ in range(50):
        i = rnd.randrange(len(base))
        q = flip(base[i], k + 1, rnd)
        assert brute_near(base, q, k) == []  # no random hash is within k by chance
        assert index.find("unseen-sha", q) is None


def test_exact_sha_wins_and_nearest_then_oldest() -> None:
    index = DuplicateIndex(k=6)
    index.add("a", "sha-a", 0b1111)
    index.add("b", "sha-b", 0b0000)
    index.add("c", "sha-c", 0b0011)
    assert index.match("sha-a", 0) == DuplicateMatch("a", "exact", 0)  # exact before a closer pHash
    assert index.match("new", 0b0001) == DuplicateMatch("b", "near", 1)  # b and c both at 1: b is older
    assert index.find("new", 0b0111) == "a"  # a at 1, c at 1 too but a is older
    assert index.match("new", None) is None
    assert index.match(None, 0b0011) == DuplicateMatch("c", "near", 0)
    index.add("a2", "sha-a", None)  # same bytes again: the first id stays
    assert index.find("sha-a", None) == "a"
    assert len(index) == 3


def test_check_and_add_keeps_only_first_copies() -> None:
    rnd = random.Random(9)
    originals = [rnd.getrandbits(64) for _ in range(500)]
    stream = [(f"o{i}", f"s{i}", h) for i, h in enumerate(originals)]
    stream += [(f"d{i}", f"x{i}", flip(h, rnd.randint(0, 4), rnd)) for i, h in enumerate(originals[:200])]
    stream += [(f"e{i}", f"s{i}", rnd.getrandbits(64)) for i in range(200, 260)]  # same bytes, other hash
    rnd.shuffle(stream[500:])
    index = DuplicateIndex(k=6)
    kept = [image_id for image_id, sha, h in stream if index.check_and_add(image_id, sha, h) is None]
    assert kept == [f"o{i}" for i in range(500)]


def test_rebuild_while_growing_keeps_answers_exact() -> None:
    rnd = random.Random(11)
    index = DuplicateIndex(k=10)
    hashes: list[int] = []
    chunk_history = {index.chunks}
    for i in range(20_000):
        h = rnd.getrandbits(64) if i % 50 else flip(rnd.choice(hashes or [0]), rnd.randint(0, 11), rnd)
        hashes.append(h)
        index.add(i, None, h)
        chunk_history.add(index.chunks)
    assert len(chunk_history) > 1  # the layout adapted as the index grew
    for _ in range(200):
        q = flip(rnd.choice(hashes), rnd.randint(0, 12), rnd)
        assert index.near(q) == brute_near(hashes, q, 10)


def test_sub_quadratic_comparisons() -> None:
    """Loading n hashes, querying before each insert, costs far less than brute force's n^2/2 popcounts.

    Work = popcount verifications + table probes. Quadratic work would grow 16x per 4x more hashes.
    """
    rnd = random.Random(2)
    work, pairs = [], []
    for n in (2_000, 8_000, 32_000):
        index = DuplicateIndex(k=8)
        for i in range(n):
            index.check_and_add(i, None, rnd.getrandbits(64))
        work.append(index.comparisons + index.probes)
        pairs.append(n * (n - 1) / 2)
        assert index.comparisons < 0.015 * pairs[-1]
    assert work[1] < 10 * work[0] and work[2] < 10 * work[1]
    assert work[2] < 0.02 * pairs[2]


def test_chunk_choice_grows_chunk_width_with_size() -> None:
    assert choose_chunks(0, 10**6) == 1  # k = 0: one 64-bit key, plain hash lookup
    assert choose_chunks(8, 10**3) >= choose_chunks(8, 10**7)
    assert choose_chunks(8, 10**7) <= 4


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        DuplicateIndex(k=64)
    with pytest.raises(ValueError):
        DuplicateIndex(k=4, chunks=0)
    with pytest.raises(ValueError, match="probes"):
        DuplicateIndex(k=8, chunks=1)  # every 64-bit value within 8 bits: billions of lookups
    index = DuplicateIndex()
    with pytest.raises(ValueError):
        index.add("x", None, -1)
    with pytest.raises(ValueError):
        index.add("x", None, 1 << 64)
