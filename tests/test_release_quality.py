"""Expert audits of a release and the precision estimate with Wilson intervals."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from scipy.stats import binomtest
from sqlalchemy import select

from _release_fixtures import Builder, build_release_project
from synsetforge.errors import InputError, NotFoundError
from synsetforge.releases import (
    create_audit,
    create_release,
    estimate_precision,
    get_release,
    record_audit_answers,
    wilson,
)
from synsetforge.releases.manifest import iter_items
from synsetforge.store import schema


@pytest.mark.parametrize(("k", "n"), [(50, 50), (0, 10), (7, 10), (299, 300), (1, 3)])
def test_wilson_matches_scipy(k: int, n: int) -> None:
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    lo, hi = wilson(k, n)
    assert lo == pytest.approx(ci.low, abs=1e-9) and hi == pytest.approx(ci.high, abs=1e-9)
    assert lo <= k / n <= hi


def _truth(project, release_name):  # type: ignore[no-untyped-def]
    """candidate id -> ground truth for the release's representative candidates."""
    rel = get_release(project, release_name)
    with project.session() as s:
        gt = {
            c: p for c, p in s.execute(select(schema.GroundTruth.candidate_id, schema.GroundTruth.positive))
        }
    return {
        it.candidate_id: gt.get(it.candidate_id, True)
        for it in iter_items(project.blobs, rel.manifest_sha256)
    }


def _audit_tasks(project):  # type: ignore[no-untyped-def]
    with project.session() as s:
        tasks = list(
            s.scalars(select(schema.Task).where(schema.Task.kind == "audit").order_by(schema.Task.id))
        )
        items = {
            t.id: [
                (ti.candidate_id, ti.is_gold)
                for ti in s.scalars(
                    select(schema.TaskItem)
                    .where(schema.TaskItem.task_id == t.id)
                    .order_by(schema.TaskItem.position)
                )
            ]
            for t in tasks
        }
    return tasks, items


def test_audit_samples_per_synset_and_estimates_precision(tmp_path: Path, db_url: str) -> None:
    project, built = build_release_project(tmp_path / "p", db_url)
    with project:
        rel = create_release(project, "v1")
        assert estimate_precision(project, rel).estimate is None  # nothing audited yet
        plan = create_audit(project, "v1", per_synset=6, seed=1)
        assert plan.sampled == 6 * 4 and plan.synsets == 4 and len(plan.tasks) == 4
        tasks, items = _audit_tasks(project)
        assert all(t.worker_id == built.expert and t.status == "open" for t in tasks)
        truth = _truth(project, "v1")
        by_synset = {it.candidate_id: it.synset for it in iter_items(project.blobs, rel.manifest_sha256)}
        for t in tasks:
            assert len(items[t.id]) == 6 and {by_synset[c] for c, _ in items[t.id]} == {t.synset_id}
            # the expert answers the truth
            record_audit_answers(project, t.id, {c: truth[c] for c, _ in items[t.id]})
        report = estimate_precision(project, "v1")
        assert report.audited == 24 and report.disputed == 0
        expected_correct = sum(truth[c] for t in tasks for c, _ in items[t.id])
        assert report.correct == expected_correct
        for row in report.synsets:
            assert row.audited == 6
            assert row.low is not None and row.high is not None and row.precision is not None
            assert row.low <= row.precision <= row.high
        assert report.estimate is not None and report.low is not None and report.high is not None
        assert report.low <= report.estimate <= report.high
        # the stratified estimate weighs synsets by size
        sizes = {r.synset: r.images for r in report.synsets}
        total = sum(sizes.values())
        assert report.estimate == pytest.approx(
            sum(sizes[r.synset] / total * (r.correct / r.audited) for r in report.synsets)
        )
        assert report.audited_share == 1.0
        # a second audit samples images not audited yet
        create_audit(project, "v1", per_synset=2, seed=1)
        tasks2, items2 = _audit_tasks(project)
        first = {c for t in tasks for c, _ in items[t.id]}
        second = {c for t in tasks2 if t.id not in items for c, _ in items2[t.id]}
        assert len(second) == 8 and not first & second


def test_audit_sample_is_the_seeded_hash_order(tmp_path: Path) -> None:
    """The sample is the N items with the smallest sha256("seed:synset:sha256"): reproducible anywhere."""
    project, _ = build_release_project(tmp_path / "p")
    with project:
        rel = create_release(project, "v1")
        create_audit(project, "v1", per_synset=3, seed=42)
        tasks, items = _audit_tasks(project)
        got = {c for t in tasks for c, _ in items[t.id]}
        expected: set[int] = set()
        by_synset: dict[str, list[tuple[str, int]]] = {}
        for it in iter_items(project.blobs, rel.manifest_sha256):
            key = hashlib.sha256(f"42:{it.synset}:{it.sha256}".encode()).hexdigest()
            by_synset.setdefault(it.synset, []).append((key, it.candidate_id))
        for pairs in by_synset.values():
            expected.update(c for _, c in sorted(pairs)[:3])
        assert got == expected and len(got) == 12


def test_disagreeing_experts_gold_and_expert_accuracy(tmp_path: Path) -> None:
    project, built = build_release_project(tmp_path / "p")
    with project:
        b = Builder(project)
        second = b.worker("expert", "expert-2")
        first_synset = sorted(built.accepted)[0]
        # a gold candidate (a known negative) to mix into the audit tasks
        src = b.source("gold-source", "synthetic")
        gold_cid = b.candidate(first_synset, b.image(), src, decision="rejected")
        b.gold(gold_cid, False)
        create_release(project, "v1")
        plan = create_audit(
            project, "v1", per_synset=4, redundancy=2, gold_per_task=1, synsets=[first_synset]
        )
        assert len(plan.tasks) == 2 and {t["worker_id"] for t in plan.tasks} == {built.expert, second}
        tasks, items = _audit_tasks(project)
        sampled = [c for c, g in items[tasks[0].id] if not g]
        assert sorted(sampled) == sorted(c for c, g in items[tasks[1].id] if not g)
        assert all((gold_cid, True) in items[t.id] for t in tasks)
        disputed = sampled[0]
        for t in tasks:
            answers = {c: True for c, _ in items[t.id]}
            if t.worker_id == second:
                answers[disputed] = False  # a tie: one yes, one no
                answers[gold_cid] = True  # wrong on gold
            else:
                answers[gold_cid] = False
            record_audit_answers(project, t.id, answers)
        report = estimate_precision(project, "v1")
        row = next(r for r in report.synsets if r.synset == first_synset)
        assert (row.audited, row.correct, row.disputed) == (3, 3, 1)
        assert report.audited_share < 1.0
        assert {e["worker"]: e["accuracy"] for e in report.experts} == {built.expert: 1.0, second: 0.0}
        with project.session() as s:
            w = s.get(schema.Worker, second)
            assert w is not None and (w.gold_correct, w.gold_total) == (0, 1)


def test_audit_bad_input(tmp_path: Path) -> None:
    project, built = build_release_project(tmp_path / "p")
    with project:
        create_release(project, "v1")
        with pytest.raises(InputError, match="per-synset"):
            create_audit(project, "v1", per_synset=0)
        with pytest.raises(InputError, match="expert"):
            create_audit(project, "v1", per_synset=2, workers=[built.workers[0]])
        with pytest.raises(NotFoundError, match="no worker"):
            create_audit(project, "v1", per_synset=2, workers=[9999])
        with pytest.raises(InputError, match="redundancy"):
            create_audit(project, "v1", per_synset=2, redundancy=2)
        with pytest.raises(NotFoundError, match="no release"):
            create_audit(project, "v9", per_synset=2)
        with pytest.raises(NotFoundError, match="not in release"):
            create_audit(project, "v1", per_synset=2, synsets=["n00000000"])
        create_audit(project, "v1", per_synset=2)
        tasks, items = _audit_tasks(project)
        t = tasks[0]
        cands = [c for c, _ in items[t.id]]
        with pytest.raises(InputError, match="unanswered"):
            record_audit_answers(project, t.id, {cands[0]: True})
        with pytest.raises(InputError, match="not part of"):
            record_audit_answers(project, t.id, {**dict.fromkeys(cands, True), 999999: True})
        with pytest.raises(NotFoundError, match="no audit task"):
            record_audit_answers(project, 424242, {})
        record_audit_answers(project, t.id, dict.fromkeys(cands, True))
        with pytest.raises(InputError, match="submitted"):
            record_audit_answers(project, t.id, dict.fromkeys(cands, True))


def test_no_experts_no_audit(tmp_path: Path) -> None:
    project, built = build_release_project(tmp_path / "p")
    with project:
        create_release(project, "v1")
        with project.session() as s:
            w = s.get(schema.Worker, built.expert)
            assert w is not None
            w.status = "blocked"
        with pytest.raises(InputError, match="no active expert"):
            create_audit(project, "v1", per_synset=2)
