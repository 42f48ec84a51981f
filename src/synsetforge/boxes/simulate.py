"""`boxes simulate`: the simulated box crowd works through the real HTTP API, then is scored against truth.

Why over HTTP, like `crowd simulate` (`crowd.drive`): coverage and accuracy are properties of the whole
system (assignment, gold, blocking, decisions, re-drawing after a rejection), so the simulated workers
(`boxes.crowdsim`) get invite tokens from the admin API, ask for box tasks, "look" at each image (its
ground-truth boxes, which only the simulator reads from the store) and submit answers, round-robin until
nobody gets a task. The engine's result is then scored from the store (`boxes.protocols.score`) and set
beside the two simple protocols run in-process on the same crowd model and the same images.

`simulate_boxes` needs accepted images with ground-truth boxes; `add_synthetic_box_images` makes them
(synthetic source, 1-3 instances, accepted from ground truth) for a self-contained run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx
from sqlalchemy import func, select, update

from synsetforge.boxes import progress
from synsetforge.boxes.crowdsim import CrowdModel, Rect, SimulatedBoxCrowd
from synsetforge.boxes.gold import gold_from_ground_truth
from synsetforge.boxes.protocols import ImageTruth, ProtocolResult, median_drawers, one_drawer, score
from synsetforge.boxes.settings import BoxSettings
from synsetforge.crowd.tokens import hash_token
from synsetforge.errors import InputError, StoreError
from synsetforge.store import schema
from synsetforge.store.project import Project


@dataclass(frozen=True)
class BoxRun:
    """What the simulated crowd did over HTTP."""

    workers: int
    tasks: dict[str, int]
    blocked: int
    requests: int
    seconds: float
    stopped: str  # "no work" | "max tasks" | "time limit"

    def summary(self) -> str:
        kinds = ", ".join(f"{n} {k}" for k, n in self.tasks.items())
        return (
            f"{self.workers} simulated workers submitted {sum(self.tasks.values())} box tasks ({kinds}) in "
            f"{self.seconds:.1f} s over {self.requests} HTTP requests; {self.blocked} blocked; "
            f"stopped: {self.stopped}"
        )


@dataclass(frozen=True)
class BoxSimReport:
    """The engine's run over HTTP and the simple protocols on the same crowd, scored against truth."""

    model: CrowdModel
    seed: int
    run: BoxRun
    engine: ProtocolResult
    baselines: tuple[ProtocolResult, ...]
    gold: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def protocols(self) -> tuple[ProtocolResult, ...]:
        return (self.engine, *self.baselines)

    def as_dict(self) -> dict[str, Any]:
        return {
            "crowd": asdict(self.model),
            "crowd_text": self.model.describe(),
            "seed": self.seed,
            "run": asdict(self.run),
            "gold": self.gold,
            "settings": self.settings,
            "protocols": [p.as_dict() for p in self.protocols],
        }


# -- ground truth --------------------------------------------------------------------------------------


def _served(box: Sequence[int], size: tuple[int, int], orig: tuple[int, int]) -> Rect:
    """An original-pixel box in the frame the workers see (as `boxes.geometry.to_served`, unrounded)."""
    if size == orig:
        return (float(box[0]), float(box[1]), float(box[2]), float(box[3]))
    sx, sy = size[0] / orig[0], size[1] / orig[1]
    return (box[0] * sx, box[1] * sy, (box[2] + 1) * sx - 1, (box[3] + 1) * sy - 1)


def load_box_truth(project: Project) -> dict[int, ImageTruth]:
    """Every stored candidate's ground-truth boxes, in the frame the workers see (served pixels)."""
    c, gt, i = schema.Candidate, schema.GroundTruth, schema.Image
    out: dict[int, ImageTruth] = {}
    with project.session() as s:
        rows = s.execute(
            select(c.id, gt.boxes, i.width, i.height, i.orig_width, i.orig_height)
            .join(gt, gt.candidate_id == c.id)
            .join(i, i.id == c.image_id)
            .where(c.status == "stored")
        )
        for cid, boxes, w, h, ow, oh in rows:
            if not w or not h:
                continue
            size, orig = (int(w), int(h)), (int(ow or w), int(oh or h))
            truth = tuple(_served(b, size, orig) for b in (boxes or []) if len(b) == 4)
            out[int(cid)] = ImageTruth(int(cid), size, truth)
    return out


def add_synthetic_box_images(
    project: Project, synset_ids: Sequence[str], per_synset: int, seed: int = 0
) -> int:
    """`per_synset` synthetic images per synset that show it (1-3 instances each, rendered), their
    ground-truth boxes recorded and accepted as if verified; returns how many were added."""
    from synsetforge.candidates.sources import synthetic
    from synsetforge.crowd.seed import SOURCE_NAME, add_synthetic_candidates

    added = add_synthetic_candidates(project, list(synset_ids), per_synset, seed=seed, precision=1.0)
    c, gt, src = schema.Candidate, schema.GroundTruth, schema.Source
    with project.session() as s:
        rows = s.execute(
            select(c.id, c.url)
            .join(src, src.id == c.source_id)
            .join(gt, gt.candidate_id == c.id)
            .where(src.name == SOURCE_NAME, c.decision.is_(None), gt.positive.is_(True))
        ).all()
        for cid, url in rows:
            boxes = [[b.xmin, b.ymin, b.xmax, b.ymax] for b in synthetic.scene_of(url).boxes]
            s.execute(update(gt).where(gt.candidate_id == cid).values(boxes=boxes))
        ids = [int(cid) for cid, _ in rows]
        for start in range(0, len(ids), 500):
            s.execute(
                update(c)
                .where(c.id.in_(ids[start : start + 500]))
                .values(decision="accepted", confidence=1.0)
            )
    return added


# -- the crowd over HTTP -------------------------------------------------------------------------------


def _check(response: httpx.Response, what: str) -> httpx.Response:
    if response.status_code >= 400:
        raise StoreError(f"{what}: HTTP {response.status_code}: {response.text[:200]}")
    return response


def _answer(
    task: Mapping[str, Any], worker: Any, crowd: SimulatedBoxCrowd, truth: Mapping[int, ImageTruth]
) -> dict[str, Any]:
    """The simulated worker's answer to one box task (from the items it shows and the images' truth)."""
    items = task["items"]
    for item in items:
        if int(item["image_id"]) not in truth:
            raise InputError(
                f"image {item['image_id']} has no ground truth; the simulated crowd cannot answer it"
            )
    if task["kind"] == "draw":
        item = items[0]
        image = truth[int(item["image_id"])]
        box = crowd.draw(worker, image.boxes, item["accepted"], (int(item["width"]), int(item["height"])))
        return {"none_left": True} if box is None else {"box": list(box)}
    if task["kind"] == "quality":
        return {
            "good": [
                int(it["box_id"])
                for it in items
                if crowd.judge_box(worker, it["box"], truth[int(it["image_id"])].boxes)
            ]
        }
    return {
        "covered": [
            int(it["image_id"])
            for it in items
            if crowd.judge_covered(worker, it["accepted"], truth[int(it["image_id"])].boxes)
        ]
    }


def drive_box_crowd(
    client: httpx.Client,
    admin_token: str,
    crowd: SimulatedBoxCrowd,
    truth: Mapping[int, ImageTruth],
    *,
    max_tasks: int | None = None,
    max_seconds: float | None = None,
    on_task: Callable[[int], None] | None = None,
) -> BoxRun:
    """Drive the crowd through the box API of the app behind `client`: round-robin, one task per worker
    per turn (the kind the server finds most needed), blocked workers leave, until a whole round hands
    out no task or a limit is hit."""
    start = time.monotonic()
    admin = {"Authorization": f"Bearer {admin_token}"}
    tokens: list[str] = []
    requests = 0
    for w in crowd.workers:
        r = _check(client.post("/api/v1/admin/workers", json={"name": w.worker_id}, headers=admin), "invite")
        tokens.append(r.json()["token"])
        requests += 1
    active = list(range(len(crowd.workers)))
    done = {"draw": 0, "quality": 0, "coverage": 0}
    blocked = 0
    stopped = ""
    while active and not stopped:
        progressed = False
        for i in list(active):
            if max_tasks is not None and sum(done.values()) >= max_tasks:
                stopped = "max tasks"
                break
            if max_seconds is not None and time.monotonic() - start > max_seconds:
                stopped = "time limit"
                break
            auth = {"Authorization": f"Bearer {tokens[i]}"}
            r = client.get("/api/v1/box-task", headers=auth)
            requests += 1
            if r.status_code == 403:
                active.remove(i)
                blocked += 1
                continue
            task = _check(r, "get box task").json()["task"]
            if task is None:
                continue
            body = _answer(task, crowd.workers[i], crowd, truth)
            result = _check(client.post(f"/api/v1/box-task/{task['id']}", json=body, headers=auth), "submit")
            requests += 1
            done[task["kind"]] += 1
            progressed = True
            if on_task is not None:
                on_task(sum(done.values()))
            if result.json()["blocked"]:
                active.remove(i)
                blocked += 1
        if not progressed and not stopped:
            stopped = "no work"
    return BoxRun(len(crowd.workers), done, blocked, requests, time.monotonic() - start, stopped or "no work")


# -- scoring the engine from the store -----------------------------------------------------------------


def engine_result(project: Project, truth: Mapping[int, ImageTruth]) -> tuple[ProtocolResult, list[int]]:
    """The engine's accepted boxes on every non-gold image of the box pipeline, scored against truth;
    also returns the images scored (the same set the simple protocols then run on)."""
    bi, b, t, ti, v = schema.BoxImage, schema.BoxRow, schema.Task, schema.TaskItem, schema.BoxVote
    with project.session() as s:
        images = {
            int(cid): str(stage)
            for cid, stage in s.execute(select(bi.candidate_id, bi.stage).where(bi.stage != "gold"))
        }
        missing = [cid for cid in images if cid not in truth or not truth[cid].boxes]
        if missing:
            raise InputError(
                f"{len(missing)} image(s) in the box pipeline have no ground-truth boxes (e.g. {missing[:3]}); "
                "the simulation scores only images whose instances are known"
            )
        kept: dict[int, list[tuple[float, ...]]] = {cid: [] for cid in images}
        rows = s.execute(
            select(b.candidate_id, b.x1, b.y1, b.x2, b.y2, schema.Image.width, schema.Image.height,
                   schema.Image.orig_width, schema.Image.orig_height)
            .join(schema.Candidate, schema.Candidate.id == b.candidate_id)
            .join(schema.Image, schema.Image.id == schema.Candidate.image_id)
            .where(progress.accepted_box())
            .order_by(b.id)
        )  # fmt: skip
        for cid, x1, y1, x2, y2, w, h, ow, oh in rows:
            if int(cid) in kept and int(cid) in truth:
                size = truth[int(cid)].size
                orig = (int(ow or w or size[0]), int(oh or h or size[1]))
                kept[int(cid)].append(_served((x1, y1, x2, y2), size, orig))
        draws = dict(
            s.execute(
                select(ti.is_gold, func.count())
                .join(t, t.id == ti.task_id)
                .where(t.kind == "draw", t.status == "submitted")
                .group_by(ti.is_gold)
            ).all()
        )
        coverage_votes = int(
            s.scalar(
                select(func.count(v.id))
                .join(t, t.id == v.task_id)
                .where(v.kind == "coverage", v.is_gold.is_(False), t.kind == "coverage")
            )
            or 0
        )
        decided_votes = int(
            s.scalar(
                select(func.count(v.id))
                .join(b, b.id == v.box_id)
                .where(
                    v.kind == "quality",
                    v.is_gold.is_(False),
                    b.origin == "crowd",
                    b.status.in_(("good", "bad")),
                )
            )
            or 0
        )
        gold_votes = int(
            s.scalar(select(func.count(v.id)).where(v.is_gold.is_(True), v.kind.in_(("quality", "coverage"))))
            or 0
        )
        decided = int(
            s.scalar(select(func.count()).where(b.origin == "crowd", b.status.in_(("good", "bad")))) or 0
        )
    order = sorted(images)
    result = ProtocolResult(
        "engine: draw + quality + coverage (over HTTP)",
        score([(truth[cid].boxes, kept[cid]) for cid in order]),
        draw_tasks=int(draws.get(False, 0)),
        gold_draw_tasks=int(draws.get(True, 0)),
        quality_votes=decided_votes,
        coverage_votes=coverage_votes,
        decided_boxes=decided,
        gold_votes=gold_votes,
        unfinished=sum(1 for st in images.values() if st not in ("done", "given_up")),
        kept=tuple(tuple(kept[cid]) for cid in order),
    )
    return result, order


# -- the whole run -------------------------------------------------------------------------------------


def simulate_boxes(
    project: Project,
    model: CrowdModel | None = None,
    *,
    seed: int = 0,
    settings: BoxSettings | None = None,
    gold_per_synset: int = 10,
    median_drawer_counts: Sequence[int] = (3,),
    max_tasks: int | None = None,
    max_seconds: float | None = None,
    on_task: Callable[[int], None] | None = None,
) -> BoxSimReport:
    """Run the simulated box crowd over loopback HTTP on `project` and score it (module docstring)."""
    from synsetforge.boxes.service import BoxService
    from synsetforge.web.app import create_app
    from synsetforge.web.server import ThreadedServer

    model = model or CrowdModel()
    settings = (settings or BoxSettings.from_project(project)).with_(enroll_every_s=0.0)
    truth = load_box_truth(project)
    with project.session() as s:
        accepted = int(
            s.scalar(
                select(func.count()).where(
                    schema.Candidate.decision == "accepted", schema.Candidate.image_id.is_not(None)
                )
            )
            or 0
        )
        has_gold = s.scalar(select(schema.BoxGold.candidate_id).limit(1)) is not None
    if not accepted or not any(t.boxes for t in truth.values()):
        raise InputError(
            "no accepted images with ground-truth boxes in this project: add some with "
            "`synsetforge boxes simulate --add-synthetic N` (or collect from the synthetic source and verify)"
        )
    gold = None if has_gold else gold_from_ground_truth(project, gold_per_synset, seed=seed).line()
    crowd = SimulatedBoxCrowd(model, seed)
    app = create_app(project, seed=seed)
    app.state.boxes = BoxService(project, settings, seed=seed, crowd=app.state.service)
    app.state.boxes.enroll()
    token = app.state.service.create_token("admin", "boxes simulate")
    try:
        with ThreadedServer(app) as server, httpx.Client(base_url=server.url, timeout=60) as client:
            run = drive_box_crowd(
                client, token, crowd, truth, max_tasks=max_tasks, max_seconds=max_seconds, on_task=on_task
            )
    finally:
        with project.session() as s:
            s.execute(
                update(schema.ApiToken)
                .where(schema.ApiToken.token_hash == hash_token(token))
                .values(revoked=True)
            )
    engine, scored = engine_result(project, truth)
    images = [truth[cid] for cid in scored]
    baselines = [one_drawer(images, SimulatedBoxCrowd(model, seed), max_draws=settings.max_draws)]
    for k in median_drawer_counts:
        baselines.append(
            median_drawers(images, SimulatedBoxCrowd(model, seed), drawers=k, max_rounds=settings.max_draws)
        )
    return BoxSimReport(model, seed, run, engine, tuple(baselines), gold, asdict(settings))
