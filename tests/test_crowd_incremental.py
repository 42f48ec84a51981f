"""The incremental live consensus (`crowd.tallies`, `crowd.incremental`) against the recompute from scratch
(`crowd.consensus.load_state`, what `crowd aggregate` runs), on SQLite and PostgreSQL: a recorded campaign
replayed through both gives the same decisions and confidences; tallies and counters equal a recount after
random submits, blocks, unblocks and new gold; a rebuild job killed with SIGKILL half-way is run again
after its lease and leaves the from-scratch decisions."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete, func, insert, select, update

from synsetforge.crowd.consensus import TableCache, load_state, playable
from synsetforge.crowd.dashboard import progress
from synsetforge.crowd.decisions import aggregate
from synsetforge.crowd.drive import load_truth
from synsetforge.crowd.errors import WorkerBlockedError
from synsetforge.crowd.gold import add_gold, gold_from_ground_truth
from synsetforge.crowd.seed import add_synthetic_candidates
from synsetforge.crowd.service import CrowdService
from synsetforge.crowd.settings import CrowdSettings
from synsetforge.crowd.tallies import count_votes, recount
from synsetforge.store import Project, schema

SYNSETS = ["n13878634", "n13879320"]
SETTINGS = CrowdSettings(
    grid_size=12,
    gold_per_task=2,
    initial_min=8,
    initial_each=1,
    initial_votes=4,
    block_min_gold=4,
    block_threshold=0.6,
    examples=0,
)
Decisions = dict[int, tuple[str | None, float | None]]


def _make(root: Path, db_url: str) -> Project:
    p = Project.init(root, db=db_url)
    p.add_synsets(SYNSETS)
    add_synthetic_candidates(p, SYNSETS, 50, precision=0.3, render=False)
    gold_from_ground_truth(p, per_synset=6, seed=0)
    return p


@pytest.fixture
def project(tmp_path: Path, db_url: str) -> Iterator[Project]:
    with _make(tmp_path / "p", db_url) as p:
        yield p


def from_scratch(p: Project, settings: CrowdSettings) -> Decisions:
    """Every playable candidate's decision recomputed from the votes alone (a fresh table cache)."""
    out: Decisions = {}
    with p.session() as s:
        for sid in SYNSETS:
            state = load_state(s, sid, settings, TableCache(), complete=True)
            out.update({cid: state.evaluate(cid) for cid in state.stats})
    return out


def stored(p: Project) -> Decisions:
    c = schema.Candidate
    with p.session() as s:
        return {
            int(cid): (d, conf)
            for cid, d, conf in s.execute(select(c.id, c.decision, c.confidence).where(playable()))
        }


def assert_same(got: Decisions, want: Decisions) -> None:
    assert got.keys() == want.keys()
    differ = [
        (cid, got[cid], want[cid])
        for cid in want
        if got[cid][0] != want[cid][0]
        or (got[cid][1] is None) != (want[cid][1] is None)
        or (got[cid][1] is not None and abs(got[cid][1] - want[cid][1]) > 1e-12)  # type: ignore[operator]
    ]
    assert not differ, differ[:5]


def campaign(
    svc: CrowdService, workers: list[int], truth: dict[int, bool], rng: random.Random, rounds: int
) -> int:
    """Rounds of tasks: honest workers right 85% of the time, worker 0 a spammer (blocked by gold)."""
    tasks = 0
    for _ in range(rounds):
        for i, w in enumerate(workers):
            try:
                view = svc.next_task(w)
            except WorkerBlockedError:
                continue
            if view is None:
                continue
            if i == 0:
                yes = [c for c in view.items if rng.random() < 0.5]
            else:
                yes = [c for c in view.items if (rng.random() < 0.85) == truth[c]]
            svc.submit(w, view.task_id, yes)
            tasks += 1
    return tasks


def test_live_decisions_equal_the_recompute_from_scratch_and_a_replay(project: Project) -> None:
    svc = CrowdService(project, SETTINGS, seed=3)
    truth = load_truth(project)
    rng = random.Random(7)
    workers = [svc.invite(f"w{i}").worker_id for i in range(9)]
    for phase in range(3):
        tasks = campaign(svc, workers, truth, rng, rounds=2)
        assert tasks > 0 or phase > 0
        svc.run_jobs(settle=True)  # no votes coming: every table exactly current
        assert_same(stored(project), from_scratch(project, SETTINGS))
        assert aggregate(svc, "imagenet").changed == 0  # the batch recompute agrees: nothing to change
    live = stored(project)
    assert sum(d in ("accepted", "rejected") for d, _ in live.values()) > 20  # decisions were made
    with project.session() as s:
        assert s.scalar(select(func.count()).where(schema.Worker.status == "blocked")) >= 1
        v = schema.Vote
        recorded = s.execute(
            select(
                v.candidate_id, v.worker_id, v.task_id, v.label, v.is_gold, v.weight, v.created_at
            ).order_by(v.id)
        ).all()

    # replay the recorded votes, four tasks at a time, into the same project emptied of its votes and decisions
    # (the path imports take: `reevaluate` on the touched images, then the queued jobs)
    with svc.write() as s:
        s.execute(delete(schema.Vote))
        s.execute(update(schema.Candidate).values(decision=None, confidence=None))
    replay = CrowdService(project, SETTINGS, seed=3)
    replay.refresh()
    assert all(d is None for d, _ in stored(project).values())
    by_task: dict[int | None, list[tuple[object, ...]]] = {}
    for row in recorded:
        by_task.setdefault(row[2], []).append(tuple(row))
    tasks = list(by_task.values())
    for rows in ([r for chunk in tasks[i : i + 4] for r in chunk] for i in range(0, len(tasks), 4)):
        with replay.write() as s:
            s.execute(
                insert(schema.Vote),
                [
                    {"candidate_id": c, "worker_id": w, "task_id": t, "label": lab, "is_gold": g, "weight": wt,
                     "created_at": at}
                    for c, w, t, lab, g, wt, at in rows
                ],
            )  # fmt: skip
            touched: dict[str, set[int]] = {}
            for cid, sid in s.execute(
                select(schema.Candidate.id, schema.Candidate.synset_id).where(
                    schema.Candidate.id.in_([r[0] for r in rows])
                )
            ):
                touched.setdefault(str(sid), set()).add(int(cid))
            replay.reevaluate(s, touched)
        replay.run_jobs()
    replay.run_jobs(settle=True)
    assert_same(stored(project), live)
    assert_same(stored(project), from_scratch(project, SETTINGS))


def check_tallies(p: Project, settings: CrowdSettings) -> None:
    """Every live row equals a recount from the votes; counters equal counts; rows = playable candidates."""
    ci, cs, c = schema.CrowdImage, schema.CrowdSynset, schema.Candidate
    with p.session() as s:
        rows = {r.candidate_id: r for r in s.scalars(select(ci))}
        decisions = dict(s.execute(select(c.id, c.decision).where(playable())).all())
        assert set(rows) == set(decisions)
        fresh = recount(s, rows)
        for cid, r in rows.items():
            st = fresh[cid]
            got = (r.n_full, r.n_counted, r.n_all, r.yes_w, r.no_w, r.id_sum)
            assert got == (st.n_full, st.n_counted, st.n_all, st.yes_w, st.no_w, st.id_sum), cid
            assert (r.cell is None) == (decisions[cid] is not None), cid
            if r.cell is not None:
                assert r.cell == st.counts[0] * 1000 + st.counts[1]
        for syn in s.scalars(select(cs)):
            members = [r for r in rows.values() if r.synset_id == syn.synset_id]
            assert syn.n_playable == len(members)
            assert syn.n_open == sum(r.cell is not None for r in members)
            assert (syn.n_votes, syn.n_gold_votes) == count_votes(s, syn.synset_id)


def test_tallies_equal_a_recount_after_random_submits_blocks_unblocks_and_gold(project: Project) -> None:
    settings = SETTINGS.with_(blocked_policy="downweight", blocked_weight=0.5)
    svc = CrowdService(project, settings, seed=11)
    truth = load_truth(project)
    rng = random.Random(5)
    workers = [svc.invite(f"w{i}").worker_id for i in range(6)]
    for step in range(40):
        w = rng.choice(workers)
        roll = rng.random()
        with project.session() as s:
            status = s.get(schema.Worker, w).status  # type: ignore[union-attr]
        if roll < 0.1 and status == "active":
            svc.block(w, "random block")
        elif roll < 0.2 and status == "blocked":
            svc.unblock(w)
        elif status == "active":
            view = svc.next_task(w)
            if view is not None:
                svc.submit(w, view.task_id, [c for c in view.items if (rng.random() < 0.8) == truth[c]])
        if step == 20:  # an expert adds gold mid-campaign: those images leave the live state
            with project.session() as s:
                fresh = s.scalars(
                    select(schema.CrowdImage.candidate_id).where(schema.CrowdImage.n_all == 0).limit(3)
                ).all()
            add_gold(project, {int(cid): truth[int(cid)] for cid in fresh})
            svc.run_jobs()
            check_tallies(project, settings)
    check_tallies(project, settings)
    svc.run_jobs(settle=True)
    check_tallies(project, settings)
    assert_same(stored(project), from_scratch(project, settings))


_CHILD = """
import sys, time
from datetime import timedelta
from synsetforge.benchmark.worker import process_one
from synsetforge.crowd.incremental import rebuild
from synsetforge.crowd.service import CrowdService
from synsetforge.crowd.settings import CrowdSettings
from synsetforge.crowd.tallies import REFRESH_KIND
from synsetforge.store import Project

settings = CrowdSettings(**eval(sys.argv[2]))
with Project.open(sys.argv[1]) as p:
    svc = CrowdService(p, settings)

    def slow(last):
        print("batch", last, flush=True)
        time.sleep(0.3)

    def handle(project, job):
        rebuild(project, job.payload["synset_id"], settings, svc.stored, svc.write, batch=4, on_batch=slow)
        return lambda s: None

    process_one(p, "doomed", handlers={REFRESH_KIND: handle}, lease=timedelta(seconds=1))
    print("finished", flush=True)
"""


def test_a_rebuild_killed_half_way_is_run_again_and_leaves_consistent_decisions(
    project: Project, tmp_path: Path
) -> None:
    svc = CrowdService(project, SETTINGS, seed=3)
    truth = load_truth(project)
    workers = [svc.invite(f"w{i}").worker_id for i in range(9)]
    campaign(svc, workers, truth, random.Random(2), rounds=4)
    svc.run_jobs(settle=True)
    before = stored(project)
    # other settings (a stricter threshold): every synset's table and many decisions must change
    stricter = SETTINGS.with_(threshold=0.999, reject_threshold=0.001)
    want = from_scratch(project, stricter)
    assert sum(before[c][0] != want[c][0] for c in want) >= 5
    restarted = CrowdService(project, stricter, seed=4)
    from synsetforge.crowd import incremental

    assert incremental.check_members(restarted.write, project, stricter) == len(SYNSETS)  # rebuilds queued
    fields = {k: getattr(stricter, k) for k in ("grid_size", "gold_per_task", "initial_min", "initial_each",
              "initial_votes", "block_min_gold", "block_threshold", "examples", "threshold", "reject_threshold")}  # fmt: skip
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(project.root), repr(fields)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert child.stdout is not None
    seen = 0
    deadline = time.monotonic() + 120
    while seen < 3 and time.monotonic() < deadline:
        line = child.stdout.readline()
        if not line:
            break
        seen += line.startswith("batch")
    assert seen == 3, child.stderr.read() if child.stderr else ""
    os.kill(child.pid, signal.SIGKILL)
    child.wait(30)
    assert child.returncode == -signal.SIGKILL
    # half-way: the job is still "running" under the dead runner, the synset says it is being refreshed
    with project.session() as s:
        jobs = s.execute(select(schema.Job.status, schema.Job.locked_by)).all()
        assert ("running", "doomed") in jobs
        refreshing = [r.synset_id for r in progress(s) if r.refreshing]
    assert refreshing
    half = stored(project)
    assert half != want  # not finished
    time.sleep(1.2)  # the dead runner's lease runs out
    assert restarted.run_jobs(lease_s=1.0) >= 1
    with project.session() as s:
        assert {st for st, _ in s.execute(select(schema.Job.status, schema.Job.locked_by))} == {"done"}
        assert not [r for r in progress(s) if r.refreshing]
    assert_same(stored(project), want)
    check_tallies(project, stricter)
    # and it keeps serving: the next task comes from the rebuilt state
    w = restarted.invite("after").worker_id
    assert restarted.next_task(w) is not None


def test_a_server_runs_the_jobs_in_its_own_thread(project: Project) -> None:
    """`background=True` (what `synsetforge serve` uses): requests only queue; the runner thread rebuilds."""
    svc = CrowdService(project, SETTINGS, seed=3, background=True)
    try:
        truth = load_truth(project)
        workers = [svc.invite(f"w{i}").worker_id for i in range(9)]
        campaign(svc, workers, truth, random.Random(4), rounds=3)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with project.session() as s:
                busy = s.scalar(select(func.count()).where(schema.Job.status.in_(["queued", "running"])))
            if not busy:
                break
            time.sleep(0.1)
        assert not busy
        with project.session() as s:
            assert s.scalar(select(func.count()).where(schema.Job.status == "done")) >= 2
            versions = s.scalars(select(schema.CrowdSynset.table_version)).all()
        assert max(versions) >= 2  # tables were rebuilt as votes came, by the thread
    finally:
        svc.close()
    svc.run_jobs(settle=True)
    assert_same(stored(project), from_scratch(project, SETTINGS))


def test_stale_rows_are_healed_by_a_rebuild(project: Project) -> None:
    """A project whose live rows were lost or never made (bulk-loaded votes, an old backup) is rebuilt."""
    svc = CrowdService(project, SETTINGS, seed=3)
    truth = load_truth(project)
    workers = [svc.invite(f"w{i}").worker_id for i in range(9)]
    campaign(svc, workers, truth, random.Random(9), rounds=2)
    with svc.write() as s:
        s.execute(update(schema.CrowdImage).values(n_all=0, n_full=0, yes_w=0.0, no_w=0.0, cell=0))
    assert svc.refresh() >= 0
    check_tallies(project, SETTINGS)
    assert_same(stored(project), from_scratch(project, SETTINGS))
