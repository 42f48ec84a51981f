"""Releases: immutable snapshots, filters, splits without duplicate leaks, diffs, and bad input.

Store-touching tests run on SQLite and PostgreSQL (`db_url`).
"""

from __future__ import annotations

import hashlib
import itertools
import random
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from sqlalchemy import select, update

from _release_fixtures import Builder, build_release_project
from synsetforge.errors import InputError, NotFoundError, StoreError
from synsetforge.releases import (
    SplitSpec,
    check_split_leaks,
    create_release,
    diff_releases,
    export_release,
    get_release,
    list_releases,
)
from synsetforge.releases.manifest import iter_items, read_header, verify_manifest
from synsetforge.releases.splits import UnionFind, assign_splits, count_straddling, near_pairs
from synsetforge.store import schema


def _items(project, name):  # type: ignore[no-untyped-def]
    rel = get_release(project, name)
    return rel, list(iter_items(project.blobs, rel.manifest_sha256))


def _tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_release_freezes_the_accepted_stored_images(tmp_path: Path, db_url: str) -> None:
    project, built = build_release_project(tmp_path / "p", db_url)
    with project:
        rel = create_release(project, "v1")
        rel, items = _items(project, "v1")
        expected = {(img, s) for s, imgs in built.images.items() for img in imgs}
        assert {(it.image_id, it.synset) for it in items} == expected
        assert {it.candidate_id for it in items}.isdisjoint(built.not_accepted)
        assert rel.stats["images"] == len(expected)
        assert rel.stats["distinct_images"] == len({i for i, _ in expected})
        assert sum(rel.stats["splits"].values()) == len(expected)
        # the manifest is content-addressed and its header carries the parameters
        verify_manifest(project.blobs, rel.manifest_sha256)
        header = read_header(project.blobs, rel.manifest_sha256)
        assert header["release"] == "v1" and header["items"] == len(items)
        assert header["params"]["aggregation"]["method"] == rel.method == "recorded-decisions"
        # release_items mirror the manifest
        with project.session() as s:
            rows = s.execute(
                select(
                    schema.ReleaseItem.image_id, schema.ReleaseItem.synset_id, schema.ReleaseItem.split
                ).where(schema.ReleaseItem.release_id == rel.id)
            ).all()
        assert {(r[0], r[1], r[2]) for r in rows} == {(it.image_id, it.synset, it.split) for it in items}
        # provenance and boxes are frozen per item: only good boxes, scaled to the stored image
        by_cand = {it.candidate_id: it for it in items}
        for cid, boxes in built.boxed.items():
            item = by_cand[cid]
            assert len(item.boxes) == len(boxes)
            assert all(
                0 <= b[0] <= b[2] < (item.width or 0) and 0 <= b[1] <= b[3] < (item.height or 0)
                for b in item.boxes
            )
        assert all(it.votes_yes + it.votes_no == 3 for it in items if it.candidate_id in built.boxed)
        assert rel.stats["ground_truth"]["items_with_truth"] == sum(
            1 for it in items if it.candidate_id in {c for cs in built.accepted.values() for c in cs[:10]}
        )


def test_box_on_a_resized_image_is_scaled_to_the_stored_pixels(tmp_path: Path) -> None:
    project, _ = build_release_project(tmp_path / "p")
    with project:
        _, items = _items(project, create_release(project, "v1").name)
        # k == 1 images were stored at half their original size; their box (4, 6, 41, 51) halves
        scaled = [it for it in items if (2, 3, 20, 25) in it.boxes or (0, 0, 4, 4) in it.boxes]
        assert scaled, "expected the downscaled box"
        assert any((2, 3, 20, 25) in it.boxes and (0, 0, 4, 4) in it.boxes for it in scaled)


def test_duplicates_and_shared_images_stay_in_one_split(tmp_path: Path, db_url: str) -> None:
    project, built = build_release_project(tmp_path / "p", db_url)
    with project:
        rel, items = _items(project, create_release(project, "v1", split=SplitSpec(0.3, 0.3)).name)
        split_of = {(it.image_id, it.synset): it.split for it in items}
        groups = {it.image_id: it.group for it in items}
        first = next(iter(built.images))
        for a, b in (built.chain_pair, built.phash_pair):
            assert split_of[(a, first)] == split_of[(b, first)]
            assert groups[a] == groups[b]
        shared = [s for (img, s) in split_of if img == built.shared_image]
        assert len(shared) == 2 and len({split_of[(built.shared_image, s)] for s in shared}) == 1
        dup = rel.stats["duplicates"]
        assert dup["clusters"] == 2 and dup["images_in_clusters"] == 4 and dup["straddling_clusters"] == 0
        assert dup["phash_pairs"] == 1
        assert check_split_leaks(project, rel)["straddling"] == 0


def test_a_later_duplicate_link_across_splits_is_reported_not_applied(tmp_path: Path) -> None:
    project, _ = build_release_project(tmp_path / "p")
    with project:
        rel, items = _items(project, create_release(project, "v1").name)
        train = next(it for it in items if it.split == "train")
        val = next(it for it in items if it.split == "val")
        with project.session() as s:
            s.execute(
                update(schema.Image)
                .where(schema.Image.id == val.image_id)
                .values(duplicate_of=train.image_id)
            )
        leaks = check_split_leaks(project, rel)
        assert leaks["straddling"] == 1
        # the reported cluster holds both (and any pHash neighbour of theirs in the release)
        assert any({train.image_id, val.image_id} <= set(ex) for ex in leaks["examples"])
        again, items_again = _items(project, "v1")
        assert again.manifest_sha256 == rel.manifest_sha256 and items_again == items


def test_votes_after_create_change_neither_the_release_nor_its_exports(tmp_path: Path, db_url: str) -> None:
    project, built = build_release_project(tmp_path / "p", db_url)
    with project:
        rel = create_release(project, "v1")
        _, before = _items(project, "v1")
        export_release(project, "v1", "parquet", tmp_path / "e1")
        export_release(project, "v1", "coco", tmp_path / "c1")
        # the crowd keeps working: new votes, flipped decisions, new boxes, new accepted images
        b = Builder(project)
        late = b.worker("invite", "late")
        first = next(iter(built.accepted))
        flipped = built.accepted[first][1]
        for cid in built.accepted[first]:
            b.vote(cid, late, False)
        with project.session() as s:
            s.execute(
                update(schema.Candidate)
                .where(schema.Candidate.id == flipped)
                .values(decision="rejected", confidence=0.01, license="All rights reserved")
            )
            s.execute(update(schema.BoxRow).values(status="bad"))
        b.box(built.accepted[first][7], (1, 1, 10, 10))
        src = b.source("late-source", "folder")
        b.candidate(first, b.image(), src)
        after_rel, after = _items(project, "v1")
        assert after == before
        assert (after_rel.manifest_sha256, after_rel.stats) == (rel.manifest_sha256, rel.stats)
        export_release(project, "v1", "parquet", tmp_path / "e2")
        export_release(project, "v1", "coco", tmp_path / "c2")
        assert _tree_digest(tmp_path / "e1") == _tree_digest(tmp_path / "e2")
        assert _tree_digest(tmp_path / "c1") == _tree_digest(tmp_path / "c2")
        # a new release sees the changes, and the diff names them
        create_release(project, "v2")
        diff = {d.synset: d for d in diff_releases(project, "v1", "v2")}
        assert list(diff) == [first]
        assert len(diff[first].added) == 1 and len(diff[first].removed) == 1
        removed_sha = next(it.sha256 for it in before if it.candidate_id == flipped)
        assert diff[first].removed == [removed_sha]


def test_filters_min_confidence_synsets_and_min_images(tmp_path: Path, db_url: str) -> None:
    project, built = build_release_project(tmp_path / "p", db_url)
    with project:
        rel, items = _items(project, create_release(project, "conf", min_confidence=0.9).name)
        assert not {it.candidate_id for it in items} & set(built.low_confidence)
        assert rel.params["min_confidence"] == 0.9
        two = sorted(built.accepted)[:2]
        rel2, items2 = _items(project, create_release(project, "two", synsets=two).name)
        assert {it.synset for it in items2} == set(two) and rel2.params["synsets"] == two
        # the first synset has 14 items, the others 10 or 11
        rel3 = create_release(project, "big", min_images=12)
        assert rel3.synset_ids == [sorted(built.accepted)[0]]
        assert {d["synset"] for d in rel3.stats["dropped_synsets"]} == set(sorted(built.accepted)[1:])
        assert [r.name for r in list_releases(project)] == ["conf", "two", "big"]


def test_splits_follow_the_spec_and_the_seed(tmp_path: Path) -> None:
    project, built = build_release_project(tmp_path / "p")
    with project:
        _, a = _items(project, create_release(project, "a", split=SplitSpec(2, 3), seed=5).name)
        _, b = _items(project, create_release(project, "b", split=SplitSpec(2, 3), seed=5).name)
        _, c = _items(project, create_release(project, "c", split=SplitSpec(2, 3), seed=6).name)
        assert [(i.sha256, i.synset, i.split) for i in a] == [(i.sha256, i.synset, i.split) for i in b]
        assert [(i.sha256, i.synset, i.split) for i in a] != [(i.sha256, i.synset, i.split) for i in c]
        counts: dict[str, Counter[str]] = defaultdict(Counter)
        for it in a:
            counts[it.synset][it.split] += 1
        for synset, got in counts.items():
            assert (got["val"], got["test"]) == (2, 3), synset
            assert got["train"] == len(built.images[synset]) - 5


def test_bad_input_is_refused_with_clear_errors(tmp_path: Path, db_url: str) -> None:
    project, _ = build_release_project(tmp_path / "p", db_url)
    with project:
        create_release(project, "v1")
        with pytest.raises(InputError, match="already exists"):
            create_release(project, "v1")
        with pytest.raises(NotFoundError, match=r"no release named 'v2'.*v1"):
            get_release(project, "v2")
        with pytest.raises(NotFoundError, match="no release named"):
            export_release(project, "nope", "parquet", tmp_path / "x")
        for bad in (-0.1, 1.5):
            with pytest.raises(InputError, match="min-confidence"):
                create_release(project, "v3", min_confidence=bad)
        with pytest.raises(InputError, match="empty selection"):
            create_release(project, "v3", min_confidence=0.9999)
        with pytest.raises(NotFoundError, match="not in the project"):
            create_release(project, "v3", synsets=["n99999999"])
        with pytest.raises(InputError, match="bad release name"):
            create_release(project, "../etc")
        with pytest.raises(InputError, match="min-images"):
            create_release(project, "v3", min_images=-1)
        with pytest.raises(InputError, match="empty selection"):
            create_release(project, "v3", min_images=1000)
        assert [r.name for r in list_releases(project)] == ["v1"]


def test_an_empty_project_has_nothing_to_release(tmp_path: Path) -> None:
    from synsetforge.store import Project

    with Project.init(tmp_path / "p") as project, pytest.raises(InputError, match="empty selection"):
        create_release(project, "v1")


# --- the split machinery on its own ---------------------------------------------------------------------


def test_split_spec_targets_and_parsing() -> None:
    assert SplitSpec(0.1, 0.1).targets(10) == ((8, 1, 1), False)
    assert SplitSpec(0.1, 0.1).targets(7) == ((5, 1, 1), False)
    assert SplitSpec(50, 100).targets(1450) == ((1300, 50, 100), False)
    assert SplitSpec(50, 50).targets(101) == ((51, 25, 25), True)
    for n in range(0, 60):
        for spec in (SplitSpec(0.2, 0.15), SplitSpec(3, 0.1), SplitSpec(5, 5)):
            sizes, _ = spec.targets(n)
            assert sum(sizes) == n and min(sizes) >= 0
    assert SplitSpec.parse_size("50", "val") == 50
    assert SplitSpec.parse_size("10%", "val") == pytest.approx(0.1)
    assert SplitSpec.parse_size("0.25", "val") == 0.25
    for bad in ("ten", "1e"):
        with pytest.raises(InputError):
            SplitSpec.parse_size(bad, "val")
    with pytest.raises(InputError):
        SplitSpec(0.6, 0.5)
    with pytest.raises(InputError):
        SplitSpec(-1, 2)
    with pytest.raises(InputError):
        SplitSpec(1.5, 0.1)


def test_near_pairs_match_brute_force() -> None:
    rng = random.Random(3)
    hashes = [rng.getrandbits(64) for _ in range(400)]
    for k in range(0, 120, 2):  # plant close pairs at 1..10 bits
        flips = rng.sample(range(64), rng.randint(1, 10))
        hashes[k + 1] = hashes[k] ^ sum(1 << f for f in flips)
    hashes[300] = hashes[301]
    ids = list(range(1, 401))
    for d in (0, 3, 8):
        brute = sorted(
            (a + 1, b + 1)
            for a, b in itertools.combinations(range(400), 2)
            if (hashes[a] ^ hashes[b]).bit_count() <= d
        )
        assert near_pairs(ids, hashes, d) == brute
    assert near_pairs(ids, hashes, -1) == []


def test_assign_splits_never_straddles_random_clusters() -> None:
    rng = random.Random(11)
    items = [(i, f"s{i % 5}", f"{i:064x}") for i in range(1, 501)]
    items += [(i, "s0", f"{i:064x}") for i in range(1, 40)]  # images under two synsets
    links = [(rng.randint(1, 500), rng.randint(1, 500)) for _ in range(120)]
    result = assign_splits(items, links, SplitSpec(0.2, 0.2), seed=1)
    assert result.straddling_groups == 0
    assert count_straddling(result.split_of, result.group_of) == 0
    uf = UnionFind()
    for a, b in links:
        uf.union(a, b)
    splits_of_cluster: dict[int, set[str]] = defaultdict(set)
    for (img, _), split in result.split_of.items():
        splits_of_cluster[uf.find(img)].add(split)
    assert all(len(v) == 1 for v in splits_of_cluster.values())
    assert any(len([i for i in range(1, 501) if uf.find(i) == root]) > 1 for root in splits_of_cluster)
    # without links, every synset gets its exact targets
    plain = assign_splits([(i, "s", f"{i:064x}") for i in range(100)], [], SplitSpec(0.2, 0.1), seed=2)
    assert Counter(plain.split_of.values()) == {"train": 70, "val": 20, "test": 10}


def test_lost_blobs_and_a_corrupted_manifest_are_store_errors(tmp_path: Path) -> None:
    project, built = build_release_project(tmp_path / "p")
    with project:
        first = sorted(built.images)[0]
        lost = built.images[first][2]
        with project.session() as s:
            key = s.scalar(select(schema.Image.blob).where(schema.Image.id == lost))
        assert key is not None
        project.blobs.path(key).unlink()
        rel, items = _items(project, create_release(project, "v1").name)
        assert lost not in {it.image_id for it in items} and rel.stats["missing_blobs"] == 1
        # bytes lost after the release: the export says so instead of failing half-way with a traceback
        gone = items[0]
        project.blobs.path(gone.blob).unlink()
        with pytest.raises(StoreError, match="missing from the blob store"):
            export_release(project, "v1", "imagefolder", tmp_path / "out")
        manifest = project.blobs.path(rel.manifest_sha256)
        manifest.write_bytes(manifest.read_bytes().replace(b'"split":"train"', b'"split":"test"', 1))
        with pytest.raises(StoreError, match="corrupted"):
            export_release(project, "v1", "parquet", tmp_path / "out2")
