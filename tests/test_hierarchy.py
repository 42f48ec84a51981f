"""WordNet 3.0 as shipped in the package: counts, lookups, paths, depth/height, LCA, selection, expansion."""

from __future__ import annotations

import gzip
import itertools
import random
import subprocess
import sys
from collections import deque
from pathlib import Path

import numpy as np
import pytest

from synsetforge.errors import InputError, NotFoundError
from synsetforge.hierarchy import ROOT_ID, Hierarchy, load_hierarchy, load_wordnet, validate_class_list

DOG = "n02084071"
CAT = "n02121620"  # cat, true cat
DOMESTIC_CAT = "n02121808"
CARNIVORE = "n02075296"
DOMESTIC_ANIMAL = "n01317541"
CANINE = "n02083346"
WHIPPET = "n02091134"
GREYHOUND = "n02090827"
PLANE_FIGURE = "n13863186"
DATA_NOUN = Path("/usr/share/wordnet/data.noun")
ROOT = Path(__file__).resolve().parents[1]
CLASSES = Path(__file__).parent / "data" / "taxonomy" / "classes.txt"


@pytest.fixture(scope="module")
def wn() -> Hierarchy:
    return load_wordnet()


_HEIGHTS: dict[str, int] = {}


def brute_height(h: Hierarchy, sid: str) -> int:
    """Longest path down to a leaf, recomputed from children only (memoised: WordNet is big)."""
    if sid not in _HEIGHTS:
        kids = h.children(sid)
        _HEIGHTS[sid] = 0 if not kids else 1 + max(brute_height(h, k) for k in kids)
    return _HEIGHTS[sid]


def brute_ancestors(h: Hierarchy, sid: str) -> set[str]:
    seen = {sid}
    queue = deque([sid])
    while queue:
        for p in h.parents(queue.popleft()):
            if p not in seen:
                seen.add(p)
                queue.append(p)
    return seen


def brute_lca(h: Hierarchy, a: str, b: str) -> str:
    common = brute_ancestors(h, a) & brute_ancestors(h, b)
    return min(common, key=lambda s: (brute_height(h, s), -h.depth(s), s))


def test_counts_and_root(wn: Hierarchy) -> None:
    assert len(wn) == 82115
    assert wn.roots == [ROOT_ID] == ["n00001740"]
    assert wn.get(ROOT_ID).lemmas == ("entity",)
    assert wn.num_descendants(ROOT_ID) == 82114  # every noun reaches entity, instances included
    assert all(s.startswith("n") and len(s) == 9 and s[1:].isdigit() for s in wn.ids[::997])
    assert load_hierarchy() is wn is load_wordnet()


def test_dog(wn: Hierarchy) -> None:
    dog = wn.get(DOG)
    assert dog.lemmas == ("dog", "domestic dog", "Canis familiaris")
    assert dog.gloss.startswith("a member of the genus Canis (probably descended from the common wolf)")
    assert dog.parents == (CANINE, DOMESTIC_ANIMAL)
    assert dog.name == "dog"
    assert WHIPPET not in wn.children(DOG) and GREYHOUND in wn.descendants(DOG)
    assert WHIPPET in wn.descendants(DOG) and wn.subtree(DOG)[0] == DOG
    assert set(wn.ancestors(DOG)) == brute_ancestors(wn, DOG) - {DOG}
    assert wn.ancestors(DOG)[:2] == [CANINE, DOMESTIC_ANIMAL]  # nearest first


def test_instance_hypernyms_count_as_parents(wn: Hierarchy) -> None:
    einstein = [s for s in wn.lookup("Albert Einstein")]
    assert len(einstein) == 1
    assert [wn.name(p) for p in einstein[0].parents] == ["physicist"]
    assert wn.hypernym_paths(einstein[0].id)[0][-1] == ROOT_ID


def test_lookup_is_case_and_underscore_insensitive(wn: Hierarchy) -> None:
    assert [s.id for s in wn.lookup("Domestic_Dog")] == [DOG]
    assert [s.id for s in wn.lookup("  canis   FAMILIARIS ")] == [DOG]
    assert DOG in [s.id for s in wn.lookup("dog")] and len(wn.lookup("dog")) == 7


def test_unknown_lemma_suggests(wn: Hierarchy) -> None:
    with pytest.raises(NotFoundError, match=r"did you mean 'dog'"):
        wn.lookup("dgo")
    with pytest.raises(NotFoundError, match=r"'whippet'"):
        wn.lookup("whipet")
    with pytest.raises(NotFoundError, match=r"did you mean 'Canis familiaris'\?"):
        wn.lookup("canis familaris")


def test_unknown_id_suggests(wn: Hierarchy) -> None:
    with pytest.raises(NotFoundError, match=r"unknown synset id 'n02084072'.*did you mean n02084071 \(dog\)"):
        wn.get("n02084072")
    with pytest.raises(NotFoundError, match=r"did you mean n02084071 \(dog\)"):
        wn.get("dog")  # a lemma where an id was expected
    with pytest.raises(NotFoundError, match=r"neither a synset id nor a lemma.*'whippet'"):
        wn.resolve_all("whipet")
    assert wn.resolve("whippet").id == WHIPPET == wn.resolve(WHIPPET).id
    assert len(wn.resolve_all("dog")) == 7
    with pytest.raises(
        InputError, match=r"'dog' names 7 synsets; use an id: n02084071 \(dog\), n02710044 \(andiron\)"
    ):
        wn.resolve("dog")


def test_search_ranks_exact_then_prefix_then_substring(wn: Hierarchy) -> None:
    hits = wn.search("whippet", limit=5)
    assert hits[0].id == WHIPPET
    groups = []
    for s in wn.search("greyhound", limit=50):
        keys = [lemma.lower() for lemma in s.lemmas if "greyhound" in lemma.lower()]
        best = min(0 if k == "greyhound" else 1 if k.startswith("greyhound") else 2 for k in keys)
        groups.append(best)
    assert groups == sorted(groups) and groups[0] == 0 and 2 in groups
    assert len(wn.search("a", limit=7)) == 7
    with pytest.raises(InputError):
        wn.search("  ")


def test_multiple_hypernym_paths(wn: Hierarchy) -> None:
    paths = wn.hypernym_paths(DOG)
    assert len(paths) == 2
    assert [p[1] for p in paths] == [CANINE, DOMESTIC_ANIMAL]
    for path in paths:
        assert path[0] == DOG and path[-1] == ROOT_ID
        for child, parent in itertools.pairwise(path):
            assert parent in wn.parents(child)
    assert CARNIVORE in paths[0] and CARNIVORE not in paths[1]


def test_depth_and_height(wn: Hierarchy) -> None:
    assert wn.depth(ROOT_ID) == 0 and wn.max_depth(ROOT_ID) == 0
    paths = wn.hypernym_paths(DOG)
    assert wn.depth(DOG) == min(len(p) for p in paths) - 1 == 8
    assert wn.max_depth(DOG) == max(len(p) for p in paths) - 1 == 13
    assert wn.height(WHIPPET) == 0 and wn.is_leaf(WHIPPET) and not wn.is_leaf(DOG)
    assert wn.height(DOG) == brute_height(wn, DOG) == 5
    assert wn.height(CARNIVORE) == brute_height(wn, CARNIVORE) == 7
    assert wn.height(ROOT_ID) == wn.max_height == brute_height(wn, ROOT_ID) == 19
    assert all(wn.height(s) == brute_height(wn, s) for s in random.Random(1).sample(wn.ids, 500))


def test_lca(wn: Hierarchy) -> None:
    assert wn.lca(DOG, CAT) == (CARNIVORE, 7)
    # domestic cat is also a domestic animal, whose height (6) is lower than carnivore's (7)
    assert wn.lca(DOG, DOMESTIC_CAT) == (DOMESTIC_ANIMAL, wn.height(DOMESTIC_ANIMAL))
    assert wn.height(DOMESTIC_ANIMAL) < wn.height(CARNIVORE)
    assert wn.lca(WHIPPET, WHIPPET) == (WHIPPET, 0)
    assert wn.lca(WHIPPET, DOG) == (DOG, 5)
    assert wn.lca(DOG, ROOT_ID) == (ROOT_ID, wn.max_height)
    rng = random.Random(7)
    for _ in range(30):
        a, b = rng.choice(wn.ids), rng.choice(wn.ids)
        found = wn.lca(a, b)
        assert found is not None and found[0] == brute_lca(wn, a, b)
    with pytest.raises(NotFoundError):
        wn.lca(DOG, "n00000000")


def test_lca_batch_matches_lca(wn: Hierarchy) -> None:
    rng = random.Random(3)
    a = [rng.choice(wn.ids) for _ in range(3000)] + [DOG, WHIPPET]
    b = [rng.choice(wn.ids) for _ in range(3000)] + [CAT, WHIPPET]
    ids, heights = wn.lca_batch(a, b)
    expected = [wn.lca(x, y) for x, y in zip(a, b, strict=True)]
    assert list(zip(ids, heights.tolist(), strict=True)) == expected
    assert ids[-2:] == [CARNIVORE, WHIPPET]
    assert wn.lca_batch([], []) == ([], pytest.approx(np.array([])))
    with pytest.raises(InputError):
        wn.lca_indexes([1, 2], [3])
    with pytest.raises(NotFoundError, match="n99999999"):
        wn.lca_batch([DOG], ["n99999999"])


def test_hierarchical_cost_matrix(wn: Hierarchy) -> None:
    classes = [WHIPPET, CAT, DOMESTIC_CAT, "n01440764", DOG]
    m = wn.hierarchical_cost_matrix(classes)
    assert m.shape == (5, 5) and (m == m.T).all() and (np.diag(m) == 0).all()
    for i, a in enumerate(classes):
        for j, b in enumerate(classes):
            if i != j:
                found = wn.lca(a, b)
                assert found is not None and m[i, j] == found[1]
    assert m[0, 1] == 7 and m[0, 4] == 5


def test_non_overlapping(wn: Hierarchy) -> None:
    chosen = [DOG, WHIPPET, CARNIVORE, CAT, WHIPPET]
    assert wn.non_overlapping(chosen) == [WHIPPET, CAT]
    assert wn.overlapping_pairs(chosen) == sorted(
        [(DOG, WHIPPET), (CARNIVORE, DOG), (CARNIVORE, WHIPPET), (CARNIVORE, CAT)]
    )
    assert wn.overlapping_pairs([WHIPPET, CAT]) == []


def test_select_plane_figure_leaves(wn: Hierarchy) -> None:
    leaves = wn.select(PLANE_FIGURE, leaves=True)
    below = set(wn.descendants(PLANE_FIGURE))
    expected = sorted(s for s in below if not wn.children(s))
    assert leaves == expected and len(leaves) > 20
    assert all(PLANE_FIGURE in wn.ancestors(s) for s in leaves)
    assert wn.non_overlapping(leaves) == leaves
    everything = wn.select(PLANE_FIGURE, leaves=False)
    assert everything == sorted([PLANE_FIGURE, *below])
    five = wn.select(PLANE_FIGURE, max_n=5, seed=1)
    assert len(five) == 5 and set(five) <= set(leaves) and five == sorted(five)
    assert five == wn.select(PLANE_FIGURE, max_n=5, seed=1)
    assert {tuple(wn.select(PLANE_FIGURE, max_n=5, seed=s)) for s in range(5)} != {tuple(five)}
    assert wn.select(PLANE_FIGURE, leaves=False, non_overlapping=True) == leaves
    with pytest.raises(InputError):
        wn.select(PLANE_FIGURE, max_n=0)


def test_expand_whippet(wn: Hierarchy) -> None:
    assert wn.expand(WHIPPET) == ["whippet", "whippet dog", "whippet greyhound"]
    assert wn.expand(WHIPPET, mode="parents") == ["whippet", "whippet greyhound"]
    tench = wn.expand("n01440764")
    assert tench[:2] == ["tench", "Tinca tinca"] and "tench fish" in tench
    dog_parents = wn.expand(DOG, mode="parents")
    assert dog_parents[:3] == ["dog", "domestic dog", "Canis familiaris"]
    assert "dog canine" in dog_parents and "Canis familiaris domestic animal" in dog_parents
    assert len(dog_parents) == len({q.lower() for q in dog_parents})
    with pytest.raises(InputError, match="unknown expansion mode"):
        wn.expand(WHIPPET, mode="children")


def test_validate_class_list(wn: Hierarchy) -> None:
    report = validate_class_list(wn, CLASSES)
    assert report.ids == [WHIPPET, CAT, DOG, "n13865904"]
    assert report.unknown == [(6, "n99999999")]
    assert report.duplicates == [(7, WHIPPET, 2)]
    assert report.overlapping == [(DOG, WHIPPET)]
    assert not report.ok
    problems = report.problems()
    assert f"{CLASSES}:6: unknown synset id 'n99999999'" in problems
    assert any(
        p.startswith(f"{CLASSES}:2: 'n02091134' is a descendant of 'n02084071' (line 5)") for p in problems
    )
    good = validate_class_list(wn, ["# header", "", "n01440764 tench, Tinca tinca", WHIPPET])
    assert good.ok and good.ids == ["n01440764", WHIPPET] and good.problems() == []
    assert not validate_class_list(wn, ["# only a comment"]).ok
    with pytest.raises(NotFoundError):
        validate_class_list(wn, CLASSES.with_name("missing.txt"))


def test_load_is_fast_in_a_fresh_process() -> None:
    code = (
        "import time; t = time.perf_counter(); from synsetforge.hierarchy import load_wordnet; "
        "h = load_wordnet(); print(time.perf_counter() - t, len(h))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    seconds, count = out.stdout.split()
    assert int(count) == 82115
    assert float(seconds) < 3.0  # about 0.3 s here; generous for busy CI machines


@pytest.mark.skipif(not DATA_NOUN.is_file(), reason="needs Debian's wordnet-base (CI installs it)")
def test_build_script_reproduces_shipped_data(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import build_wordnet
    finally:
        sys.path.pop(0)
    out, count = build_wordnet.build(DATA_NOUN, tmp_path)
    assert count == 82115
    shipped = ROOT / "src" / "synsetforge" / "hierarchy" / "data"
    # compare the content, not the gzip stream: another zlib build may compress the same text differently
    assert gzip.decompress(out.read_bytes()) == gzip.decompress(
        (shipped / build_wordnet.DATA_FILE).read_bytes()
    )
    assert gzip.decompress((tmp_path / build_wordnet.DERIVED_FILE).read_bytes()) == gzip.decompress(
        (shipped / build_wordnet.DERIVED_FILE).read_bytes()
    )
    assert (tmp_path / "WORDNET-LICENSE.txt").read_bytes() == (shipped / "WORDNET-LICENSE.txt").read_bytes()
    assert (
        "WordNet 3.0 Copyright 2006 by Princeton University" in (shipped / "WORDNET-LICENSE.txt").read_text()
    )
