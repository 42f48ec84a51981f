"""A simulated crowd that works through the real HTTP API, like people would.

Why over HTTP: the claims worth testing (no double assignment, gold screening, blocking, re-queueing,
dynamic consensus reaching its precision) are properties of the whole system, so the simulated workers
(the aggregation helper's `SimulatedWorker`s) get invite tokens from the admin API, ask for tasks, "look"
at each image (its ground truth, which only the simulator reads from the store) and submit answers.

`simulate_over_http` runs it end to end on a project: gold from ground truth if there is none, the app
served by uvicorn on 127.0.0.1 (free port) in a thread, workers driven round-robin until nobody gets a
task, then the decisions compared with ground truth.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import httpx
import numpy as np
from sqlalchemy import select, update

from synsetforge.crowd.gold import gold_from_ground_truth
from synsetforge.crowd.report import TruthReport, truth_report
from synsetforge.crowd.settings import CrowdSettings
from synsetforge.crowd.simulate import SimulatedWorker, make_worker_pool
from synsetforge.crowd.tokens import hash_token
from synsetforge.errors import InputError, StoreError
from synsetforge.store import schema
from synsetforge.store.project import Project


@dataclass(frozen=True)
class CrowdRun:
    """What the simulated crowd did over HTTP."""

    workers: int
    tasks: int
    votes: int
    blocked: int
    requests: int
    seconds: float
    stopped: str  # "no work" | "max tasks" | "time limit"

    def summary(self) -> str:
        return (
            f"{self.workers} simulated workers submitted {self.tasks} tasks ({self.votes} votes) in "
            f"{self.seconds:.1f} s over {self.requests} HTTP requests; {self.blocked} blocked; "
            f"stopped: {self.stopped}"
        )


def load_truth(project: Project) -> dict[int, bool]:
    """What each candidate really shows: ground truth, overridden by gold answers."""
    with project.session() as s:
        truth = {
            int(c): bool(p)
            for c, p in s.execute(select(schema.GroundTruth.candidate_id, schema.GroundTruth.positive))
        }
        truth.update(
            {int(c): bool(a) for c, a in s.execute(select(schema.Gold.candidate_id, schema.Gold.answer))}
        )
    return truth


def _check(response: httpx.Response, what: str) -> httpx.Response:
    if response.status_code >= 400:
        raise StoreError(f"{what}: HTTP {response.status_code}: {response.text[:200]}")
    return response


def drive_crowd(
    client: httpx.Client,
    admin_token: str,
    workers: Sequence[SimulatedWorker],
    truth: Mapping[int, bool],
    *,
    seed: int = 0,
    difficulty: float = 0.0,
    max_tasks: int | None = None,
    max_seconds: float | None = None,
    fetch_images: bool = False,
    on_task: Callable[[int], None] | None = None,
) -> CrowdRun:
    """Drive `workers` through the API of the app behind `client` (an httpx.Client or FastAPI TestClient).

    Round-robin: each active worker takes one task and submits it, then the next worker; a worker who is
    blocked leaves; the run ends when a whole round hands out no task (or a limit is hit).
    """
    rng = np.random.default_rng(seed)
    start = time.monotonic()
    admin = {"Authorization": f"Bearer {admin_token}"}
    tokens: list[str] = []
    requests = 0
    for w in workers:
        r = _check(client.post("/api/v1/admin/workers", json={"name": w.worker_id}, headers=admin), "invite")
        tokens.append(r.json()["token"])
        requests += 1
    active = list(range(len(workers)))
    tasks = votes = blocked = 0
    stopped = ""
    while active and not stopped:
        progressed = False
        for i in list(active):
            if max_tasks is not None and tasks >= max_tasks:
                stopped = "max tasks"
                break
            if max_seconds is not None and time.monotonic() - start > max_seconds:
                stopped = "time limit"
                break
            auth = {"Authorization": f"Bearer {tokens[i]}"}
            r = client.get("/api/v1/task", headers=auth)
            requests += 1
            if r.status_code == 403:
                active.remove(i)
                blocked += 1
                continue
            task = _check(r, "get task").json()["task"]
            if task is None:
                continue
            if fetch_images:
                for item in task["items"]:
                    _check(client.get(item["image_url"], headers=auth), "image")
                    requests += 1
            yes = []
            for item in task["items"]:
                cid = int(item["candidate_id"])
                if cid not in truth:
                    raise InputError(
                        f"candidate {cid} has no ground truth; the simulated crowd cannot answer it"
                    )
                if workers[i].answer(truth[cid], rng, difficulty):
                    yes.append(cid)
            r = client.post(f"/api/v1/tasks/{task['task_id']}/submit", json={"yes": yes}, headers=auth)
            requests += 1
            result = _check(r, "submit").json()
            tasks += 1
            votes += int(result["votes"])
            progressed = True
            if on_task is not None:
                on_task(tasks)
            if result["blocked"]:
                active.remove(i)
                blocked += 1
        if not progressed and not stopped:
            stopped = "no work"
    stopped = stopped or "no work"
    return CrowdRun(len(workers), tasks, votes, blocked, requests, time.monotonic() - start, stopped)


@dataclass(frozen=True)
class Simulation:
    run: CrowdRun
    report: TruthReport
    gold_added: int


def simulate_over_http(
    project: Project,
    *,
    workers: int = 40,
    accuracy: float = 0.8,
    spammers: float = 0.0,
    adversaries: float = 0.0,
    seed: int = 0,
    settings: CrowdSettings | None = None,
    gold_per_synset: int = 20,
    max_tasks: int | None = None,
    max_seconds: float | None = None,
    on_task: Callable[[int], None] | None = None,
    background: bool = False,
) -> Simulation:
    """The whole simulated campaign on `project` over loopback HTTP (see the module docstring).

    `background=True` serves it as `synsetforge serve` does: table rebuilds run in the server's job thread
    instead of after each request (faster, but the campaign then depends on timing, so not reproducible
    from its seed); the jobs left when the crowd stops are run before the report."""
    from synsetforge.web.app import create_app
    from synsetforge.web.server import ThreadedServer

    truth = load_truth(project)
    if not truth:
        raise InputError(
            "no ground truth in this project: the simulated crowd needs candidates that know their answer "
            "(collect from the synthetic source first)"
        )
    with project.session() as s:
        has_gold = s.scalar(select(schema.Gold.candidate_id).limit(1)) is not None
    # Gold is taken from the candidates themselves: leave at least half of each synset's to verify.
    gold_added = 0 if has_gold else gold_from_ground_truth(project, gold_per_synset, seed=seed, max_share=0.5)
    truth = load_truth(project)
    pool = make_worker_pool(
        workers, mean_accuracy=accuracy, spammer_fraction=spammers, adversary_fraction=adversaries, seed=seed
    )
    app = create_app(project, settings, seed=seed, background=background)
    token = app.state.service.create_token("admin", "crowd simulate")
    try:
        with ThreadedServer(app) as server, httpx.Client(base_url=server.url, timeout=60) as client:
            run = drive_crowd(
                client,
                token,
                pool,
                truth,
                seed=seed,
                max_tasks=max_tasks,
                max_seconds=max_seconds,
                on_task=on_task,
            )
    finally:
        if background:
            app.state.service.close()
            app.state.service.run_jobs()  # what the job thread had not done yet
        with project.session() as s:
            s.execute(
                update(schema.ApiToken)
                .where(schema.ApiToken.token_hash == hash_token(token))
                .values(revoked=True)
            )
    with project.session() as s:
        report = truth_report(s)
    return Simulation(run, report, gold_added)
