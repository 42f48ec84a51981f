"""Load test of the crowd web app: N concurrent simulated workers on loopback, SQLite then PostgreSQL.

    .venv/bin/python bench/serve_load.py                      # 100 workers, 60 s per backend
    .venv/bin/python bench/serve_load.py --seconds 15         # shorter
    .venv/bin/python bench/serve_load.py --backends sqlite --images 5000

Each backend gets a fresh project (PostgreSQL: a fresh schema in database `test`, dropped afterwards, like
tests/conftest.py) seeded with synthetic candidates (placeholder images) and gold from ground truth, and a
uvicorn *subprocess* (`--factory synsetforge.web.app:create_app_from_env`, one process). The clients are
httpx async, one coroutine per worker, no think time: ask for a task, answer it like a SimulatedWorker
(accuracy 0.8) from ground truth, submit, repeat until the time is up (no new request starts after it;
requests in flight finish). Every submission the server acknowledged is then checked in the store: each
(image, worker) vote present exactly once and nothing else stored.

Prints per backend: votes/s, tasks/s, p50 / p99 latency of GET /api/v1/task and of the submission, errors,
peak memory (ru_maxrss) of the server process, and PostgreSQL vs SQLite as a ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import psycopg
from sqlalchemy import select

from synsetforge.crowd.drive import load_truth
from synsetforge.crowd.gold import gold_from_ground_truth
from synsetforge.crowd.seed import add_synthetic_candidates
from synsetforge.crowd.service import CrowdService
from synsetforge.crowd.simulate import SimulatedWorker
from synsetforge.store import Project, schema

PLANE_FIGURES = ["n13878634", "n13879320", "n13883346", "n13882961", "n13882201", "n13882276"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Stats:
    task_ms: list[float] = field(default_factory=list)
    submit_ms: list[float] = field(default_factory=list)
    acked: list[tuple[int, int]] = field(default_factory=list)
    tasks: int = 0
    empty: int = 0
    errors: Counter[str] = field(default_factory=Counter)


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


async def worker_loop(
    client: httpx.AsyncClient, token: str, worker_id: int, sim: SimulatedWorker, truth: dict[int, bool],
    deadline: float, stats: Stats, seed: int,
) -> None:  # fmt: skip
    rng = np.random.default_rng(seed)
    auth = {"Authorization": f"Bearer {token}"}
    while time.monotonic() < deadline:
        t0 = time.perf_counter()
        try:
            r = await client.get("/api/v1/task", headers=auth)
        except httpx.HTTPError as exc:
            stats.errors[type(exc).__name__] += 1
            continue
        stats.task_ms.append((time.perf_counter() - t0) * 1000)
        if r.status_code != 200:
            stats.errors[f"task HTTP {r.status_code}"] += 1
            if r.status_code == 403:
                return  # blocked
            continue
        task = r.json()["task"]
        if task is None:
            stats.empty += 1
            await asyncio.sleep(0.2)
            continue
        items = [int(it["candidate_id"]) for it in task["items"]]
        yes = [c for c in items if sim.answer(truth[c], rng)]
        t0 = time.perf_counter()
        try:
            r = await client.post(f"/api/v1/tasks/{task['task_id']}/submit", json={"yes": yes}, headers=auth)
        except httpx.HTTPError as exc:
            stats.errors[type(exc).__name__] += 1
            continue
        stats.submit_ms.append((time.perf_counter() - t0) * 1000)
        if r.status_code == 200:
            stats.tasks += 1
            stats.acked.extend((c, worker_id) for c in items)
        else:
            stats.errors[f"submit HTTP {r.status_code}"] += 1


async def drive(
    url: str, tokens: list[tuple[int, str]], truth: dict[int, bool], seconds: float
) -> tuple[Stats, float]:
    stats = Stats()
    limits = httpx.Limits(max_connections=len(tokens), max_keepalive_connections=len(tokens))
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        start = time.monotonic()
        deadline = start + seconds
        await asyncio.gather(
            *(
                worker_loop(
                    client, tok, wid, SimulatedWorker(f"w{wid}", "honest", 0.8), truth, deadline, stats, wid
                )
                for wid, tok in tokens
            )
        )
        elapsed = time.monotonic() - start
    return stats, elapsed


def prepare(
    root: Path, db: str | None, images: int, workers: int
) -> tuple[list[tuple[int, str]], dict[int, bool]]:
    per_synset = max(images // len(PLANE_FIGURES), 1)
    with Project.init(root, db=db) as p:
        p.add_synsets(PLANE_FIGURES)
        add_synthetic_candidates(p, PLANE_FIGURES, per_synset, precision=0.2, render=False)
        gold_from_ground_truth(p, per_synset=20)
        svc = CrowdService(p)
        tokens = [(new.worker_id, new.token) for new in (svc.invite(f"load{i}") for i in range(workers))]
        truth = load_truth(p)
    return tokens, truth


def start_server(root: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "SYNSETFORGE_PROJECT": str(root)}
    cmd = [
        sys.executable, "-m", "uvicorn", "--factory", "synsetforge.web.app:create_app_from_env",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the server did not start")


def check_store(root: Path, acked: list[tuple[int, int]]) -> tuple[bool, str]:
    with Project.open(root) as p, p.session() as s:
        stored = [
            (int(c), int(w)) for c, w in s.execute(select(schema.Vote.candidate_id, schema.Vote.worker_id))
        ]
    counts = Counter(stored)
    dupes = sum(1 for n in counts.values() if n > 1)
    missing = sum(1 for pair in acked if counts.get(pair, 0) != 1)
    extra = len(stored) - len(acked)
    ok = dupes == 0 and missing == 0 and extra == 0 and len(set(acked)) == len(acked)
    return (
        ok,
        f"{len(acked)} acknowledged votes, {len(stored)} stored, {missing} missing, {dupes} duplicated, {extra} extra",
    )


def run_backend(name: str, args: argparse.Namespace) -> dict[str, float] | None:
    schema_name = None
    with tempfile.TemporaryDirectory(prefix="serve-load-") as tmp:
        root = Path(tmp) / "project"
        db = None
        if name == "postgresql":
            schema_name = "bench_" + uuid.uuid4().hex[:10]
            try:
                with psycopg.connect(args.pg_dsn, autocommit=True) as conn:
                    conn.execute(f'CREATE SCHEMA "{schema_name}"')
            except psycopg.Error as exc:
                print(f"{name}: skipped, cannot reach {args.pg_dsn}: {exc}")
                return None
            db = f"{args.pg_dsn}?options=-csearch_path%3D{schema_name}"
        try:
            t0 = time.monotonic()
            tokens, truth = prepare(root, db, args.images, args.workers)
            print(
                f"{name}: project with {len(truth)} candidates and {len(tokens)} workers ready in {time.monotonic() - t0:.1f} s"
            )
            port = free_port()
            server = start_server(root, port)
            try:
                stats, elapsed = asyncio.run(drive(f"http://127.0.0.1:{port}", tokens, truth, args.seconds))
            finally:
                server.send_signal(signal.SIGINT)
                server.wait(30)
            ok, detail = check_store(root, stats.acked)
        finally:
            if schema_name is not None:
                with psycopg.connect(args.pg_dsn, autocommit=True) as conn:
                    conn.execute(f'DROP SCHEMA "{schema_name}" CASCADE')
    server_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    votes_s = len(stats.acked) / elapsed
    print(
        f"{name}: {args.workers} workers for {elapsed:.1f} s: {votes_s:,.0f} votes/s, {stats.tasks / elapsed:.1f} tasks/s "
        f"({len(stats.acked):,} votes in {stats.tasks:,} tasks; {stats.empty} empty polls)"
    )
    print(
        f"{name}: latency GET /api/v1/task p50 {pct(stats.task_ms, 50):.0f} ms, p99 {pct(stats.task_ms, 99):.0f} ms; "
        f"submit p50 {pct(stats.submit_ms, 50):.0f} ms, p99 {pct(stats.submit_ms, 99):.0f} ms"
    )
    print(
        f"{name}: errors {dict(stats.errors) or 'none'}; server peak RSS (largest child so far) {server_rss:.0f} MiB"
    )
    print(f"{name}: store check {'OK' if ok else 'FAILED'}: {detail}")
    if not ok:
        raise SystemExit(f"{name}: acknowledged votes and the store disagree")
    return {
        "votes_s": votes_s,
        "p50": pct(stats.task_ms + stats.submit_ms, 50),
        "p99": pct(stats.task_ms + stats.submit_ms, 99),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="load duration per backend")
    parser.add_argument("--workers", type=int, default=100, help="concurrent simulated workers")
    parser.add_argument(
        "--images", type=int, default=30000, help="candidates per project (spread over 6 synsets)"
    )
    parser.add_argument("--backends", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql")
    parser.add_argument(
        "--pg-dsn", default=os.environ.get("SYNSETFORGE_TEST_PG", "postgresql://127.0.0.1:5432/test")
    )
    args = parser.parse_args()
    results = {}
    for name in args.backends.split(","):
        out = run_backend(name.strip(), args)
        if out is not None:
            results[name.strip()] = out
    if {"sqlite", "postgresql"} <= set(results):
        s, p = results["sqlite"], results["postgresql"]
        print(
            f"postgresql / sqlite: votes/s x{p['votes_s'] / s['votes_s']:.2f}, p50 latency x{p['p50'] / s['p50']:.2f}, "
            f"p99 latency x{p['p99'] / s['p99']:.2f}"
        )
    print(f"bench process peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
