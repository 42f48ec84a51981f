"""Benchmark: claiming jobs from the PostgreSQL queue with several workers, SKIP LOCKED against the peer.

The peer is the textbook queue without SKIP LOCKED: `SELECT ... FOR UPDATE` on the oldest queued job, so
concurrent workers (separate processes) queue up on the same row lock. Both sides run the same claim
statement and the same fenced finish (two transactions per job, like the worker). Timing starts once
every worker process has started and opened the project; jobs do nothing, so the figure is the queue's
own overhead. Each run uses a fresh schema in the PostgreSQL database of the tests (SYNSETFORGE_TEST_PG,
default postgresql://127.0.0.1:5432/test), dropped afterwards.

    python bench/job_queue.py                     # 2,000 jobs, 4 workers
    python bench/job_queue.py --jobs 300 --workers 2
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import delete, select, update

from synsetforge.benchmark import queue
from synsetforge.benchmark.challenge import now_utc
from synsetforge.store import Project, schema

DSN = os.environ.get("SYNSETFORGE_TEST_PG", "postgresql://127.0.0.1:5432/test")


def blocking_claim(project: Project, worker: str) -> int | None:
    """The peer: the same statement, FOR UPDATE without SKIP LOCKED."""
    j = schema.Job
    now = now_utc()
    claimable = queue._claimable(now - queue.DEFAULT_LEASE, queue.MAX_ATTEMPTS)
    inner = select(j.id).where(claimable).order_by(j.id).limit(1).with_for_update()
    stmt = (
        update(j)
        .where(j.id == inner.scalar_subquery(), claimable)
        .values(status="running", locked_by=worker, locked_at=now, attempts=j.attempts + 1)
        .returning(j.id)
        .execution_options(synchronize_session=False)
    )
    with project.session() as s:
        row = s.execute(stmt).first()
    return None if row is None else int(row[0])


def _work(root: str, name: str, skip_locked: bool, out: Any, go: Any) -> None:
    """One worker process: claim and finish jobs until none is left; reports (jobs, empty claims)."""
    done = empty = 0
    with Project.open(root) as project:
        out.put("ready")
        go.wait()
        while True:
            if skip_locked:
                job = queue.claim(project, name)
                job_id = None if job is None else job.id
            else:
                job_id = blocking_claim(project, name)
            if job_id is None:
                with project.session() as s:
                    left = s.scalar(select(schema.Job.id).where(schema.Job.status == "queued").limit(1))
                if left is None:
                    break
                empty += 1
                continue
            with project.session() as s:
                assert queue.fence(s, job_id, name, status="done")
            done += 1
    out.put((done, empty))


def run(project: Project, n_jobs: int, n_workers: int, skip_locked: bool) -> tuple[float, int, int]:
    with project.session() as s:
        s.execute(delete(schema.Job))  # every run starts from the same table
        first = None
        for k in range(n_jobs):
            job_id = queue.enqueue(s, "noop", {"k": k})
            first = job_id if first is None else first
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    go = ctx.Event()
    procs = [
        ctx.Process(target=_work, args=(str(project.root), f"w{k}", skip_locked, out, go))
        for k in range(n_workers)
    ]
    for p in procs:
        p.start()
    for _ in procs:
        assert out.get(timeout=120) == "ready"
    t0 = time.perf_counter()
    go.set()
    results = [out.get(timeout=600) for _ in procs]
    for p in procs:
        p.join()
    elapsed = time.perf_counter() - t0
    with project.session() as s:
        attempts = list(s.scalars(select(schema.Job.attempts).where(schema.Job.id >= (first or 0))))
    assert sum(r[0] for r in results) == n_jobs and set(attempts) == {1}, "a job ran twice or was lost"
    return elapsed, n_jobs, sum(r[1] for r in results)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=2000)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=2, help="runs per side; the fastest is reported")
    args = ap.parse_args()
    name = "bench_" + uuid.uuid4().hex[:10]
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{name}"')
    try:
        with tempfile.TemporaryDirectory() as tmp:
            url = f"{DSN}?options=-csearch_path%3D{name}"
            with Project.init(Path(tmp) / "q", db=url) as project:
                engine_pool = project.engine.pool.size()  # type: ignore[attr-defined]
                runs: dict[bool, list[tuple[float, int, int]]] = {True: [], False: []}
                for _ in range(args.repeat):  # alternate, so load from elsewhere hits both sides alike
                    for skip in (True, False):
                        runs[skip].append(run(project, args.jobs, args.workers, skip_locked=skip))
                ours, peer = min(runs[True]), min(runs[False])
    finally:
        with psycopg.connect(DSN, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{name}" CASCADE')
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"{args.jobs:,} no-op jobs, {args.workers} worker processes, PostgreSQL (pool size {engine_pool}), "
        f"best of {args.repeat} runs per side"
    )
    print(
        f"SKIP LOCKED (synsetforge): {ours[0]:.2f} s, {ours[1] / ours[0]:,.0f} jobs/s, {ours[2]} empty claims"
    )
    print(
        f"FOR UPDATE (peer):         {peer[0]:.2f} s, {peer[1] / peer[0]:,.0f} jobs/s, {peer[2]} empty claims"
    )
    print(
        f"throughput ratio (ours / peer): {peer[0] / ours[0]:.2f}x; every job ran exactly once on both sides"
    )
    print(f"peak RSS: {rss_mb:,.0f} MB")


if __name__ == "__main__":
    main()
