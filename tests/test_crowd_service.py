"""Crowd verification through the Python API (`CrowdService`), on SQLite and PostgreSQL: tasks, gold,
submissions that are all-or-nothing, expiry, blocking and re-queueing, live dynamic consensus."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select, update

from synsetforge.crowd.aggregation import Decision, DynamicConsensus
from synsetforge.crowd.consensus import (
    GoldCounts,
    choose_initial,
    initial_subset,
    load_stats,
    unit_hash,
    votes_calibrated,
)
from synsetforge.crowd.drive import load_truth
from synsetforge.crowd.errors import TaskClosedError, WorkerBlockedError
from synsetforge.crowd.gold import add_gold, gold_from_ground_truth
from synsetforge.crowd.seed import add_synthetic_candidates
from synsetforge.crowd.service import CrowdService
from synsetforge.crowd.settings import CrowdSettings
from synsetforge.errors import InputError, NotFoundError
from synsetforge.store import Project, schema

SQUARE, TRIANGLE = "n13878634", "n13879320"


@pytest.fixture
def project(tmp_path: Path, db_url: str) -> Iterator[Project]:
    with Project.init(tmp_path / "p", db=db_url) as p:
        p.add_synsets([SQUARE, TRIANGLE])
        add_synthetic_candidates(p, [SQUARE, TRIANGLE], 40, precision=0.3, render=False)
        yield p


def votes_of(p: Project) -> list[tuple[int, int, bool, bool, float]]:
    v = schema.Vote
    with p.session() as s:
        return [
            tuple(r) for r in s.execute(select(v.candidate_id, v.worker_id, v.label, v.is_gold, v.weight))
        ]  # type: ignore[misc]


def test_a_task_is_one_synset_with_gold_mixed_in(project: Project) -> None:
    gold_from_ground_truth(project, per_synset=6)
    svc = CrowdService(project, CrowdSettings(grid_size=12, gold_per_task=2, block_min_gold=2), seed=1)
    worker = svc.invite("ann").worker_id
    view = svc.next_task(worker)
    assert view is not None and len(view.items) == 12 and len(set(view.items)) == 12
    with project.session() as s:
        items = s.execute(
            select(schema.TaskItem.candidate_id, schema.TaskItem.is_gold, schema.Candidate.synset_id)
            .join(schema.Candidate, schema.Candidate.id == schema.TaskItem.candidate_id)
            .where(schema.TaskItem.task_id == view.task_id)
        ).all()
        gold = set(s.scalars(select(schema.Gold.candidate_id)))
    assert {sid for *_, sid in items} == {view.synset.id}
    assert sum(is_gold for _, is_gold, _ in items) == 2
    assert {cid for cid, is_gold, _ in items if is_gold} <= gold
    assert view.synset.name in ("square", "triangle") and view.synset.gloss
    # asking again returns the same open task instead of a second one
    assert svc.next_task(worker).task_id == view.task_id  # type: ignore[union-attr]


def test_submit_records_one_vote_per_image_and_counts_gold(project: Project) -> None:
    gold_from_ground_truth(project, per_synset=6)
    settings = CrowdSettings(grid_size=10, gold_per_task=2, calibration="initial", block_min_gold=2)
    svc = CrowdService(project, settings, seed=2)
    truth = load_truth(project)
    worker = svc.invite().worker_id
    view = svc.next_task(worker)
    assert view is not None
    yes = [c for c in view.items if truth[c]]
    result = svc.submit(worker, view.task_id, yes)
    assert result.votes == 10 and not result.blocked and len(result.completion_code) == 10
    votes = votes_of(project)
    assert sorted(c for c, *_ in votes) == sorted(view.items)
    assert all(label == truth[c] for c, _, label, _, _ in votes)
    with project.session() as s:
        w = s.get(schema.Worker, worker)
        assert w is not None and w.gold_total == 2 and w.gold_correct == 2
    with pytest.raises(TaskClosedError, match="already submitted"):
        svc.submit(worker, view.task_id, yes)
    assert len(votes_of(project)) == 10


def test_bad_submissions_change_nothing(project: Project) -> None:
    svc = CrowdService(project, CrowdSettings(grid_size=8, gold_per_task=0))
    ann, bob = svc.invite("ann").worker_id, svc.invite("bob").worker_id
    view = svc.next_task(ann)
    assert view is not None
    with pytest.raises(InputError, match="not in task"):
        svc.submit(ann, view.task_id, [view.items[0], 10**9])
    with pytest.raises(NotFoundError):
        svc.submit(bob, view.task_id, [])  # someone else's task
    with pytest.raises(NotFoundError):
        svc.submit(ann, 10**6, [])
    assert votes_of(project) == []
    assert svc.submit(ann, view.task_id, []).votes == 8  # still open and answerable


def test_never_two_votes_by_one_worker_on_one_image(project: Project) -> None:
    svc = CrowdService(
        project, CrowdSettings(grid_size=8, gold_per_task=0, method="fixed", fixed_votes=3), seed=3
    )
    worker = svc.invite().worker_id
    seen: set[int] = set()
    while (view := svc.next_task(worker)) is not None:
        assert not seen & set(view.items)
        seen |= set(view.items)
        svc.submit(worker, view.task_id, view.items[:2])
    with project.session() as s:
        n_playable = s.scalar(select(func.count()).select_from(schema.Candidate))
    assert len(seen) == n_playable  # one worker saw every image exactly once, then ran out of work
    pairs = [(c, w) for c, w, *_ in votes_of(project)]
    assert len(pairs) == len(set(pairs))


def test_expired_tasks_return_their_images(project: Project) -> None:
    svc = CrowdService(project, CrowdSettings(grid_size=40, gold_per_task=0, method="fixed", fixed_votes=1))
    ann, bob, cat = (svc.invite().worker_id for _ in range(3))
    first, second = svc.next_task(ann), svc.next_task(bob)
    assert first is not None and second is not None and len(first.items) == len(second.items) == 40
    assert first.synset.id != second.synset.id
    assert svc.next_task(cat) is None  # every image is held by an open task
    with project.session() as s:
        s.execute(
            update(schema.Task)
            .where(schema.Task.id == first.task_id)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    again = svc.next_task(cat)
    assert again is not None and set(again.items) == set(first.items)
    with pytest.raises(TaskClosedError, match="expired"):
        svc.submit(ann, first.task_id, [])
    assert votes_of(project) == []


def test_a_worker_failing_gold_is_blocked_and_their_votes_excluded(project: Project) -> None:
    gold_from_ground_truth(project, per_synset=12)
    settings = CrowdSettings(
        grid_size=16, gold_per_task=2, block_min_gold=6, block_threshold=0.6, calibration="initial"
    )
    svc = CrowdService(project, settings, seed=4)
    truth = load_truth(project)
    spammer = svc.invite("spam").worker_id
    view = svc.next_task(spammer)
    assert view is not None
    wrong = [c for c in view.items if not truth[c]]  # says yes exactly where the answer is no
    result = svc.submit(spammer, view.task_id, wrong)
    assert result.blocked
    assert all(weight == 0.0 for *_, weight in votes_of(project))
    with pytest.raises(WorkerBlockedError):
        svc.next_task(spammer)
    with project.session() as s:
        w = s.get(schema.Worker, spammer)
        assert w is not None and w.status == "blocked" and "gold accuracy" in (w.blocked_reason or "")
    # the images they answered are open again, for someone else
    honest = svc.invite("honest").worker_id
    again = svc.next_task(honest)
    assert again is not None and set(again.items) & set(view.items)


def test_block_downweight_policy_and_unblock(project: Project) -> None:
    svc = CrowdService(
        project, CrowdSettings(grid_size=8, gold_per_task=0, blocked_policy="downweight", blocked_weight=0.25)
    )
    worker = svc.invite().worker_id
    view = svc.next_task(worker)
    assert view is not None
    svc.submit(worker, view.task_id, view.items[:3])
    svc.block(worker, "copied answers")
    assert {weight for *_, weight in votes_of(project)} == {0.25}
    svc.unblock(worker)
    assert {weight for *_, weight in votes_of(project)} == {1.0}
    assert svc.next_task(worker) is not None
    with pytest.raises(NotFoundError):
        svc.block(10**6)


def test_fixed_majority_decides_after_k_votes(project: Project) -> None:
    svc = CrowdService(project, CrowdSettings(grid_size=40, gold_per_task=0, method="fixed", fixed_votes=3))
    workers = [svc.invite().worker_id for _ in range(3)]
    answers = {0: "all", 1: "all", 2: "none"}
    for i, w in enumerate(workers):
        for _ in range(2):  # one task per synset
            view = svc.next_task(w)
            assert view is not None and len(view.items) == 40
            svc.submit(w, view.task_id, list(view.items) if answers[i] == "all" else [])
    with project.session() as s:
        rows = s.execute(select(schema.Candidate.decision, schema.Candidate.confidence)).all()
    assert {d for d, _ in rows} == {"accepted"}
    assert all(abs(c - 2 / 3) < 1e-9 for _, c in rows)
    assert svc.next_task(svc.invite().worker_id) is None  # nothing left to vote on


def test_initial_subset_is_stable_and_grows_without_good_images(tmp_path: Path) -> None:
    settings = CrowdSettings(initial_fraction=0.05, initial_min=5, initial_each=2, initial_max=20)
    ids = list(range(1, 201))
    base = initial_subset(ids, settings)
    assert len(base) == max(5, sum(unit_hash(i) < 0.05 for i in ids))
    assert base <= initial_subset([*ids, *range(1000, 1100)], settings) | base  # adding candidates keeps them
    with Project.init(tmp_path / "p") as p:
        p.add_synsets([SQUARE])
        add_synthetic_candidates(p, [SQUARE], 60, precision=0.0, render=False)  # no good image at all
        svc = CrowdService(
            p,
            CrowdSettings(
                grid_size=40, gold_per_task=0, initial_min=5, initial_each=2, initial_max=20, initial_votes=2
            ),
        )
        for _ in range(2):
            w = svc.invite().worker_id
            view = svc.next_task(w)
            assert view is not None
            svc.submit(w, view.task_id, [])
        with p.session() as s:
            stats = load_stats(s, SQUARE)
        grown = choose_initial(stats, svc.settings)
        assert len(grown) > 5  # all-no initial images cannot identify a table: the subset grew


def test_dynamic_consensus_decides_live_and_reaches_the_truth(project: Project) -> None:
    gold_from_ground_truth(project, per_synset=8)
    settings = CrowdSettings(
        grid_size=20,
        gold_per_task=2,
        initial_min=8,
        initial_each=1,
        initial_votes=5,
        block_min_gold=4,
        block_threshold=0.0,
    )
    svc = CrowdService(project, settings, seed=5)
    truth = load_truth(project)
    rng = np.random.default_rng(0)
    workers = [svc.invite().worker_id for _ in range(12)]
    for _ in range(40):
        progressed = False
        for w in workers:
            view = svc.next_task(w)
            if view is None:
                continue
            yes = [c for c in view.items if (rng.random() < 0.95) == truth[c]]  # 95% accurate
            svc.submit(w, view.task_id, yes)
            progressed = True
        if not progressed:
            break
    with project.session() as s:
        rows = s.execute(
            select(schema.Candidate.id, schema.Candidate.decision).where(
                schema.Candidate.id.not_in(select(schema.Gold.candidate_id))
            )
        ).all()
    decided = {c: d for c, d in rows if d in ("accepted", "rejected")}
    assert len(decided) >= 0.9 * len(rows)
    right = sum((d == "accepted") == truth[c] for c, d in decided.items())
    assert right / len(decided) >= 0.95


def test_decisions_follow_the_current_table(project: Project) -> None:
    """A decision is what the current table says about the current votes, whichever table decided first:
    a service that starts afresh (a restart, another process) re-decides a synset with its own table."""
    settings = CrowdSettings(
        grid_size=20, gold_per_task=0, initial_min=8, initial_each=1, initial_votes=5, block_threshold=0.0
    )
    svc = CrowdService(project, settings, seed=5)
    truth = load_truth(project)
    rng = np.random.default_rng(0)
    workers = [svc.invite().worker_id for _ in range(8)]

    def rejected() -> list[tuple[int, str]]:
        c = schema.Candidate
        with project.session() as s:
            return [
                (int(i), str(sid))
                for i, sid in s.execute(select(c.id, c.synset_id).where(c.decision == "rejected"))
            ]

    for _ in range(10):
        for w in workers:
            view = svc.next_task(w)
            if view is not None:
                svc.submit(w, view.task_id, [c for c in view.items if (rng.random() < 0.9) == truth[c]])
        if rejected():
            break
    victim, synset = rejected()[0]
    c = schema.Candidate
    with project.session() as s:  # as if an earlier, looser table had accepted it
        s.execute(update(c).where(c.id == victim).values(decision="accepted", confidence=0.999))
    fresh = CrowdService(project, settings, seed=6)
    w = fresh.invite().worker_id
    view = fresh.next_task(w)
    while view is not None and view.synset.id != synset:  # work until a task of the victim's synset
        fresh.submit(w, view.task_id, [])
        view = fresh.next_task(w)
    assert view is not None
    fresh.submit(w, view.task_id, [])
    with project.session() as s:
        assert s.scalar(select(c.decision).where(c.id == victim)) == "rejected"


def test_votes_calibration_recovers_the_crowd_and_reject_threshold() -> None:
    """The default table model is fitted on every voted image (stopped by their own votes, as live) and
    lands near the simulated crowd; the tallies count only the first `initial_votes` votes of an initial
    image, like `seen`; a separate reject threshold rejects where the mirror would ask for more."""
    rng = np.random.default_rng(3)
    prior, sens, spec = 0.1, 0.8, 0.82

    def votes_of_image(good: bool, n_max: int, stop: bool) -> list[bool]:
        out: list[bool] = []
        while len(out) < n_max:
            out.append(bool(rng.random() < (sens if good else 1 - spec)))
            if stop and abs(2 * sum(out) - len(out)) >= 2:  # an adaptive stopping rule
                break
        return out

    sequences = [votes_of_image(bool(rng.random() < prior), 14, stop=False) for _ in range(60)]
    others = [votes_of_image(bool(rng.random() < prior), 12, stop=True) for _ in range(1500)]
    dc = DynamicConsensus(threshold=0.99, initial_votes=10)
    rows = [(i, j, label) for i, seq in enumerate(sequences) for j, label in enumerate(seq)]
    base = dc.build_table(
        {"task": [r[0] for r in rows], "worker": [r[1] for r in rows], "label": [r[2] for r in rows]}
    )
    counts = np.asarray([(sum(q), len(q) - sum(q)) for q in sequences + others], dtype=float)
    table = votes_calibrated(base, sequences, counts, GoldCounts(), initial_votes=10)
    assert abs(table.prior_good - prior) < 0.03
    assert abs(table.sensitivity - sens) < 0.04 and abs(table.specificity - spec) < 0.02
    assert np.array_equal(table.seen, base.seen)  # the same prefixes: at most 10 votes each
    ys, ns = np.meshgrid(np.arange(table.seen.shape[0]), np.arange(table.seen.shape[0]), indexing="ij")
    assert not table.good[ys + ns > 10].any()

    mirror = DynamicConsensus(threshold=0.997).build_table(
        {"task": [r[0] for r in rows], "worker": [r[1] for r in rows], "label": [r[2] for r in rows]}
    )
    loose = DynamicConsensus(threshold=0.997, reject_threshold=0.05).build_table(
        {"task": [r[0] for r in rows], "worker": [r[1] for r in rows], "label": [r[2] for r in rows]}
    )
    cell = next((0, n) for n in range(1, 10) if 0.003 < mirror.confidence(0, n) <= 0.05)
    assert mirror.decide(*cell) is Decision.NEED_MORE and loose.decide(*cell) is Decision.REJECT
    assert loose.decide(8, 0) is mirror.decide(8, 0) is Decision.ACCEPT
    assert CrowdSettings.from_mapping({"crowd_reject_threshold": "0.02"}).reject_threshold == 0.02
    with pytest.raises(InputError, match="reject_threshold"):
        CrowdSettings(reject_threshold=0.6)
    with pytest.raises(InputError, match="reject_threshold"):
        DynamicConsensus(reject_threshold=0.0)


def test_gold_needs_existing_candidates(project: Project) -> None:
    with pytest.raises(NotFoundError):
        add_gold(project, {10**7: True})
    with pytest.raises(InputError):
        gold_from_ground_truth(project, per_synset=0)


def test_settings_are_validated_and_read_from_the_project(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="grid_size"):
        CrowdSettings(grid_size=1)
    with pytest.raises(InputError, match="unknown crowd setting"):
        CrowdSettings.from_mapping({"crowd_grid": 3})
    with pytest.raises(InputError, match="not a int"):
        CrowdSettings.from_mapping({"crowd_grid_size": "many"})
    assert CrowdSettings.from_mapping({"crowd_grid_size": "12", "other": 1}).grid_size == 12


def test_worker_aware_qualification_is_gold_alone_and_screens_before_any_candidate(
    tmp_path: Path, db_url: str
) -> None:
    """`crowd_worker_qualify`: a worker's first tasks in a synset are gold alone; a worker whose answers
    fall below the spread cut then gets none of its candidates (no paid vote on a real image), a good one
    does; a synset with fewer gold images than the qualification qualifies once they are all answered."""
    from synsetforge.crowd import worker_aware

    settings = CrowdSettings(
        method="worker-aware", grid_size=12, gold_per_task=2, block_min_gold=50, worker_qualify=6,
        worker_min_spread=3.0, worker_min_evidence=6, max_votes=1,
    )  # fmt: skip
    with Project.init(tmp_path / "p", db=db_url) as p:
        p.add_synsets([SQUARE])
        add_synthetic_candidates(p, [SQUARE], 40, precision=0.3, render=False)
        gold_from_ground_truth(p, per_synset=6)
        truth = load_truth(p)
        with p.session() as s:
            gold = set(s.scalars(select(schema.Gold.candidate_id)))
        svc = CrowdService(p, settings, seed=3)
        good, bad, late = (svc.invite(n).worker_id for n in ("good", "bad", "late"))

        def qualify(worker: int, right: bool) -> None:
            view = svc.next_task(worker)
            assert view is not None and set(view.items) == gold  # the whole task is gold, nothing else
            svc.submit(worker, view.task_id, [c for c in view.items if truth[c] == right])

        qualify(good, True)
        view = svc.next_task(good)
        assert view is not None and view.items and not set(view.items) & gold  # gold used up: candidates
        svc.submit(good, view.task_id, [c for c in view.items if truth[c]])
        with p.session() as s:
            worker_aware.refit_group(s, SQUARE, settings)
        qualify(bad, False)
        with p.session() as s:
            assert not worker_aware.takes_tasks(s, bad, SQUARE, settings)
            assert worker_aware.takes_tasks(s, good, SQUARE, settings)
            assert worker_aware.qualification_left(s, bad, SQUARE, settings) == 0
        assert svc.next_task(bad) is None
        assert {cid for cid, w, _, is_gold, _ in votes_of(p) if w == bad and not is_gold} == set()
        # asking for more qualification than there is gold: qualified once every gold image is answered
        svc2 = CrowdService(p, settings.with_(worker_qualify=10), seed=4)
        qualify(late, True)
        with p.session() as s:
            assert worker_aware.qualification_left(s, late, SQUARE, svc2.settings) == 4
            # off for the paper's method, whatever the setting says
            off = CrowdSettings(worker_qualify=10)
            assert worker_aware.qualification_left(s, late, SQUARE, off) == 0
        view = svc2.next_task(late)
        assert view is not None and view.items and not set(view.items) & gold


def test_progress_counts_follow_each_submit_without_reading_back(project: Project) -> None:
    """A submit's `tasks_done` and a new task's progress come from counts taken before the change (the
    task row with its worker's earlier submissions; the worker's state before the lock), plus what the
    call itself did: they must still equal the store's counts after every step."""
    svc = CrowdService(project, CrowdSettings(grid_size=6, gold_per_task=0), seed=5)
    ann, bob = svc.invite("ann").worker_id, svc.invite("bob").worker_id
    images = 0
    for k in range(1, 4):
        view = svc.next_task(ann)
        assert view is not None and (view.tasks_done, view.images_done) == (k - 1, images)
        other = svc.next_task(bob)  # someone else's work counts for nobody else
        assert other is not None
        svc.submit(bob, other.task_id, [])
        result = svc.submit(ann, view.task_id, list(view.items[:2]))
        images += len(view.items)
        assert result.tasks_done == k
        with project.session() as s:
            assert (
                s.scalar(
                    select(func.count())
                    .select_from(schema.Task)
                    .where(schema.Task.worker_id == ann, schema.Task.status == "submitted")
                )
                == k
            )
