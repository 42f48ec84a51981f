"""The job queue and the worker: exclusive claims, leases, fencing, retries, and dead workers.

Claims must be exclusive with any number of workers on PostgreSQL (SKIP LOCKED) and atomic on SQLite; a
job whose worker died is claimed again once its lease expires; a worker that lost its lease cannot write.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from _challenge_fixtures import World, build_world, make_challenge, oracle_file, team_with_accounts
from synsetforge.benchmark.queue import JobInfo, claim, enqueue, exhausted, fence, get_job
from synsetforge.benchmark.standings import team_submissions
from synsetforge.benchmark.submissions import submit, usage
from synsetforge.benchmark.worker import Apply, _give_up, process_one, run_worker
from synsetforge.errors import InputError
from synsetforge.store import Project, schema


@pytest.fixture
def project(tmp_path: Path, db_url: str) -> Iterator[Project]:
    with Project.init(tmp_path / "q", db=db_url) as p:
        yield p


@pytest.fixture
def world(tmp_path: Path, db_url: str) -> Iterator[World]:
    w = build_world(tmp_path / "proj", db_url, n_train=1, n_val=0, n_test=4, extras=False)
    yield w
    w.close()


def _enqueue(project: Project, n: int, kind: str = "noop") -> list[int]:
    with project.session() as s:
        return [enqueue(s, kind, {"n": k}) for k in range(n)]


def test_claims_are_oldest_first_and_exclusive(project: Project) -> None:
    ids = _enqueue(project, 3)
    a = claim(project, "w1")
    b = claim(project, "w2")
    assert a is not None and b is not None
    assert (a.id, b.id) == (ids[0], ids[1]) and a.attempts == 1
    with project.session() as s:
        assert fence(s, a.id, "w1", status="done")
    with project.session() as s:
        assert not fence(s, b.id, "w1", status="done")  # not w1's lease
    c = claim(project, "w1", kinds=["other"])
    assert c is None
    c = claim(project, "w1")
    assert c is not None and c.id == ids[2]
    assert claim(project, "w3") is None  # b and c are running with fresh leases


def test_an_expired_lease_is_claimed_again_and_the_old_worker_is_fenced_off(project: Project) -> None:
    (job_id,) = _enqueue(project, 1)
    first = claim(project, "dead", lease=timedelta(seconds=60))
    assert first is not None
    assert claim(project, "alive", lease=timedelta(seconds=60)) is None
    time.sleep(0.3)
    second = claim(project, "alive", lease=timedelta(seconds=0.2))
    assert second is not None and second.id == job_id and second.attempts == 2
    with project.session() as s:  # the dead worker wakes up: its result must not be written
        assert not fence(s, job_id, "dead", status="done")
    with project.session() as s:
        assert fence(s, job_id, "alive", status="done")
    info = get_job(project, job_id)
    assert info is not None and info.locked_by == "alive"


def test_transient_errors_are_retried_then_given_up(project: Project) -> None:
    (job_id,) = _enqueue(project, 1, "flaky")
    calls: list[int] = []

    def flaky(_p: Project, job: JobInfo) -> Apply:
        calls.append(job.attempts)
        raise RuntimeError("disk hiccup")

    outcomes = [process_one(project, "w", handlers={"flaky": flaky}, max_attempts=3) for _ in range(4)]
    assert [o.status if o else None for o in outcomes] == ["retry", "retry", "failed", None]
    assert calls == [1, 2, 3]
    with project.session() as s:
        job = s.get(schema.Job, job_id)
        assert job is not None and job.status == "failed" and "RuntimeError: disk hiccup" in (job.error or "")


def test_user_errors_fail_at_once(project: Project) -> None:
    _enqueue(project, 1, "bad")

    def bad(_p: Project, _job: JobInfo) -> Apply:
        raise InputError("no such thing")

    outcome = process_one(project, "w", handlers={"bad": bad})
    assert outcome is not None and outcome.status == "failed" and "no such thing" in outcome.message


def test_a_job_that_kills_every_worker_stops_and_its_submission_does_not_count(world: World) -> None:
    make_challenge(world, daily_limit=1)
    ((acct, _),) = team_with_accounts(world, "alpha")
    receipt = submit(world.project, "shapes", acct, oracle_file(world, "shapes"))
    lease = timedelta(seconds=0.1)
    for attempt in range(1, 4):  # three workers claim it and die
        job = claim(world.project, f"w{attempt}", lease=lease)
        assert job is not None and job.attempts == attempt
        time.sleep(0.15)
    assert claim(world.project, "w4", lease=lease) is None  # out of attempts: not claimable
    assert exhausted(world.project, lease=lease, give_up=_give_up) == [receipt.job_id]
    (view,) = team_submissions(world.project, "shapes", acct.team_id)
    assert (
        view.status == "failed" and not view.counts_against_limit and "internal error" in (view.error or "")
    )
    assert usage(world.project, "shapes", acct.team_id).used == 0


def test_run_worker_once_drains_the_queue(world: World) -> None:
    make_challenge(world)
    ((acct, _),) = team_with_accounts(world, "alpha")
    for _ in range(3):
        submit(world.project, "shapes", acct, oracle_file(world, "shapes"))
    seen: list[str] = []
    assert run_worker(world.project, once=True, on_outcome=lambda o: seen.append(o.status)) == 3
    assert seen == ["done"] * 3
    assert all(v.status == "scored" for v in team_submissions(world.project, "shapes", acct.team_id))
    with pytest.raises(InputError, match="--poll must be positive"):
        run_worker(world.project, poll=0)
    stop = threading.Event()
    t = threading.Thread(target=run_worker, args=(world.project,), kwargs={"poll": 0.05, "stop": stop})
    t.start()
    submit(world.project, "shapes", acct, oracle_file(world, "shapes"))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if team_submissions(world.project, "shapes", acct.team_id)[0].status == "scored":
            break
        time.sleep(0.05)
    stop.set()
    t.join(10)
    assert not t.is_alive()
    assert team_submissions(world.project, "shapes", acct.team_id)[0].status == "scored"


def test_concurrent_workers_never_run_the_same_job(project: Project) -> None:
    """Four workers on one queue: every job runs exactly once (SKIP LOCKED on PostgreSQL)."""
    n_jobs = 60 if project.dialect == "postgresql" else 24
    _enqueue(project, n_jobs)
    claimed: list[int] = []
    ran: list[tuple[int, str]] = []
    lock = threading.Lock()

    def noop(_p: Project, job: JobInfo) -> Apply:
        with lock:
            claimed.append(job.id)
        time.sleep(0.002)

        def write(s: object) -> None:
            with lock:
                ran.append((job.id, str(job.locked_by)))

        return write  # type: ignore[return-value]

    def work(name: str) -> None:
        while process_one(project, name, handlers={"noop": noop}) is not None:
            pass

    threads = [threading.Thread(target=work, args=(f"w{k}",)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(claimed) == sorted(set(claimed))  # no job was handed to two workers
    counts = Counter(job_id for job_id, _ in ran)
    assert len(counts) == n_jobs and set(counts.values()) == {1}
    assert len({w for _, w in ran}) >= 2  # the work was actually shared
    with project.session() as s:
        statuses = Counter(s.scalars(select(schema.Job.status)))
    assert statuses == {"done": n_jobs}


@pytest.mark.postgres
def test_two_workers_score_real_submissions_on_postgresql(tmp_path: Path, pg_url: str) -> None:
    w = build_world(tmp_path / "proj", pg_url, n_train=1, n_val=0, n_test=4, extras=False)
    try:
        make_challenge(w, daily_limit=20)
        ((acct, _),) = team_with_accounts(w, "alpha")
        for k in range(8):
            submit(w.project, "shapes", acct, oracle_file(w, "shapes", wrong=k % 4, seed=k))
        outcomes: list[str] = []

        def work(name: str) -> None:
            while (o := process_one(w.project, name)) is not None:
                outcomes.append(o.status)

        threads = [threading.Thread(target=work, args=(f"w{k}",)) for k in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert outcomes == ["done"] * 8
        views = team_submissions(w.project, "shapes", acct.team_id)
        assert [v.status for v in views] == ["scored"] * 8
        with w.project.session() as s:
            assert all(j.attempts == 1 for j in s.scalars(select(schema.Job)))
    finally:
        w.close()


_DYING_WORKER = """
import sys, time
from datetime import timedelta
from synsetforge.store import Project
from synsetforge.benchmark.queue import claim
project = Project.open(sys.argv[1])
job = claim(project, "doomed", lease=timedelta(seconds=1))
print(job.id if job else "none", flush=True)
time.sleep(600)  # "scoring": killed with SIGKILL before it finishes
"""


@pytest.mark.postgres
def test_a_killed_worker_s_job_is_picked_up_again(tmp_path: Path, pg_url: str) -> None:
    w = build_world(tmp_path / "proj", pg_url, n_train=1, n_val=0, n_test=4, extras=False)
    try:
        make_challenge(w)
        ((acct, _),) = team_with_accounts(w, "alpha")
        receipt = submit(w.project, "shapes", acct, oracle_file(w, "shapes", wrong=1))
        env = {k: v for k, v in os.environ.items() if k != "SYNSETFORGE_PROJECT"}
        proc = subprocess.Popen(
            [sys.executable, "-c", _DYING_WORKER, str(w.project.root)],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == str(receipt.job_id)
            assert process_one(w.project, "survivor", lease=timedelta(seconds=1)) is None  # lease still fresh
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
        with w.project.session() as s:
            job = s.get(schema.Job, receipt.job_id)
            assert job is not None and job.status == "running" and job.locked_by == "doomed"
        time.sleep(1.1)
        outcome = process_one(w.project, "survivor", lease=timedelta(seconds=1))
        assert outcome is not None and outcome.job_id == receipt.job_id and outcome.status == "done"
        with w.project.session() as s:
            job = s.get(schema.Job, receipt.job_id)
            assert job is not None and job.attempts == 2 and job.locked_by == "survivor"
        (view,) = team_submissions(w.project, "shapes", acct.team_id)
        assert view.status == "scored"
    finally:
        w.close()
