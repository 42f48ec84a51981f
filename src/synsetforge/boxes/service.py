"""The crowd box engine in Python (`BoxService`): draw, quality and coverage tasks (SPEC §4), no web imports.

Mirrors the yes/no `CrowdService` and shares its machinery: the same workers, tokens, gold record and
blocking rule (`crowd.workers`), the same write transactions and worker lock (`crowd.assign.lock_worker`),
the same task table with expiry and completion codes. A worker holds at most one open task of any kind:
asking for a box task while a box task is open returns that task (whatever kind was asked for); while a
yes/no task is open the request is refused (409) until it is submitted or expires.

Every method is one transaction, so a refused submission (bad numbers, ids not in the task, someone else's
task, a closed task, a blocked worker) stores nothing. Progress per image lives in `box_images`
(`boxes.progress`); decisions are sequential posteriors (`boxes.decisions`); gold in `boxes.gold`.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from synsetforge.boxes import assign, progress
from synsetforge.boxes.decisions import box_verdict
from synsetforge.boxes.geometry import Box, check_served, frames, to_original, to_served
from synsetforge.boxes.gold import draw_answer_right
from synsetforge.boxes.settings import BoxSettings
from synsetforge.crowd import workers as wk
from synsetforge.crowd.assign import as_utc, lock_worker, open_task_of, sweep_expired
from synsetforge.crowd.errors import TaskClosedError, WorkerBlockedError
from synsetforge.crowd.service import SWEEP_EVERY_S, CrowdService, SynsetView
from synsetforge.crowd.tokens import completion_code
from synsetforge.errors import InputError, NotFoundError
from synsetforge.store import schema
from synsetforge.store.project import Project

KINDS = assign.KINDS


class OtherTaskOpenError(TaskClosedError):
    """The worker holds an open yes/no task; box tasks wait until it is submitted or expires (HTTP 409)."""


@dataclass(frozen=True)
class BoxItemView:
    """One image of a box task as the worker sees it (served-pixel coordinates, no gold flag)."""

    image_id: int
    url: str
    width: int
    height: int
    box_id: int | None
    box: list[float] | None
    accepted: list[list[float]]


@dataclass(frozen=True)
class BoxTaskView:
    id: int
    kind: str
    synset: SynsetView
    expires_at: datetime
    items: tuple[BoxItemView, ...]


@dataclass(frozen=True)
class BoxSubmitResult:
    task_id: int
    kind: str
    completion_code: str
    blocked: bool
    tasks_done: int


@dataclass(frozen=True)
class BoxSynsetStatus:
    """Box progress of one synset (gold images and gold boxes are not counted)."""

    synset_id: str
    images: int  # accepted images in the box pipeline
    covered: int  # stage done
    drawing: int
    verifying: int  # a proposed box awaiting quality votes
    coverage: int  # awaiting coverage votes
    given_up: int
    boxes_accepted: int
    boxes_rejected: int
    boxes_proposed: int
    tasks: dict[str, int] = field(default_factory=dict)  # submitted tasks by kind
    votes_per_decided_box: float | None = None
    gold_images: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class _Item:
    candidate_id: int
    box_id: int | None
    is_gold: bool


class BoxService:
    """Crowd boxes on one project (see the module docstring)."""

    def __init__(
        self,
        project: Project,
        settings: BoxSettings | None = None,
        *,
        seed: int | None = None,
        crowd: CrowdService | None = None,
    ) -> None:
        self.project = project
        self.settings = settings or BoxSettings.from_project(project)
        self.crowd = crowd or CrowdService(project, seed=seed)
        self._rng = random.Random(seed)
        self._postgres = project.dialect == "postgresql"
        self._last_sweep = 0.0
        self._last_enroll = -math.inf

    @property
    def blocked_weight(self) -> float:
        return self.crowd.settings.blocked_vote_weight

    # -- progress ------------------------------------------------------------------------------------

    def enroll(self) -> int:
        """Enter newly accepted images into drawing now (assignment also does it every `enroll_every_s`)."""
        total = 0
        while True:
            with self.crowd.write() as s:
                n = progress.enroll(s, self.settings, self.blocked_weight, datetime.now(UTC))
            total += n
            if n < progress.ENROLL_BATCH:
                return total

    # -- tasks ---------------------------------------------------------------------------------------

    def next_task(self, worker_id: int, kind: str | None = None) -> BoxTaskView | None:
        """The worker's open box task, or a new one of `kind` (None: the most needed); None when no box
        work suits this worker now."""
        if kind is not None and kind not in KINDS:
            raise InputError(f"unknown box task kind {kind!r}; expected one of {list(KINDS)}")
        now = datetime.now(UTC)
        with self.crowd.write() as s:
            worker = lock_worker(s, worker_id)
            if worker.status != "active":
                raise WorkerBlockedError(worker.blocked_reason or "this worker is blocked")
            if time.monotonic() - self._last_sweep > SWEEP_EVERY_S:
                self._last_sweep = time.monotonic()
                sweep_expired(s, now)
            if time.monotonic() - self._last_enroll >= self.settings.enroll_every_s:
                self._last_enroll = time.monotonic()
                progress.enroll(s, self.settings, self.blocked_weight, now)
            open_id = open_task_of(s, worker_id, now)
            if open_id is not None:
                task = s.get(schema.Task, open_id)
                assert task is not None
                if task.kind not in KINDS:
                    raise OtherTaskOpenError(
                        f"you have an open image-verification task ({open_id}); submit it first or let it expire"
                    )
                return self._view(s, task)
            for k in [kind] if kind is not None else list(assign.NEED_ORDER):
                task_id = self._assign(s, worker, k, now)
                if task_id is not None:
                    task = s.get(schema.Task, task_id)
                    assert task is not None
                    return self._view(s, task)
            return None

    def _assign(self, s: Session, worker: schema.Worker, kind: str, now: datetime) -> int | None:
        crowd = self.crowd.settings
        st = self.settings
        if kind == "draw":
            picked = assign.pick_images(s, "draw", worker.id, 1, now, self._postgres)
            if picked is None:
                return None
            sid, ids = picked
            on_probation = worker.gold_total < crowd.block_min_gold
            rate = st.draw_probation_gold if on_probation else st.draw_gold_rate
            if self._rng.random() < rate:
                gold = assign.pick_gold_images(s, worker.id, sid, "draw", 1, self._rng)
                if gold:
                    return assign.create_task(
                        s, worker.id, sid, "draw", [(gold[0], None, True)], crowd.task_minutes, now, self._rng
                    )
            return assign.create_task(
                s, worker.id, sid, "draw", [(ids[0], None, False)], crowd.task_minutes, now, self._rng
            )
        grid, per_task = (
            (st.quality_grid, st.quality_gold) if kind == "quality" else (st.coverage_grid, st.coverage_gold)
        )
        n_gold = assign.gold_quota(per_task, grid, worker.gold_total, crowd.block_min_gold)
        picked = assign.pick_images(s, kind, worker.id, grid - min(n_gold, grid - 1), now, self._postgres)
        if picked is None:
            return None
        sid, ids = picked
        items: list[tuple[int, int | None, bool]]
        if kind == "quality":
            b = schema.BoxRow
            boxes = dict(
                s.execute(
                    select(b.candidate_id, b.id).where(
                        b.candidate_id.in_(ids), b.status == "proposed", b.origin == "crowd"
                    )
                ).all()
            )
            items = [(cid, int(boxes[cid]), False) for cid in ids if cid in boxes]
            gold_boxes = assign.pick_gold_boxes(s, worker.id, sid, n_gold, self._rng)
            items += [(cid, assign.copy_gold_box(s, template, now), True) for cid, template in gold_boxes]
        else:
            items = [(cid, None, False) for cid in ids]
            items += [
                (cid, None, True)
                for cid in assign.pick_gold_images(s, worker.id, sid, "coverage", n_gold, self._rng)
            ]
        if not any(not gold for _, _, gold in items):
            return None
        return assign.create_task(s, worker.id, sid, kind, items, crowd.task_minutes, now, self._rng)

    def task_view(self, worker_id: int, task_id: int) -> BoxTaskView:
        """One of the worker's box tasks (NotFoundError for anyone else's)."""
        with self.crowd.read() as s:
            task = s.get(schema.Task, task_id)
            if task is None or task.worker_id != worker_id or task.kind not in KINDS:
                raise NotFoundError(f"no box task {task_id} for this worker")
            return self._view(s, task)

    def _view(self, s: Session, task: schema.Task) -> BoxTaskView:
        syn = s.get(schema.Synset, task.synset_id)
        assert syn is not None
        ti, c, i, b = schema.TaskItem, schema.Candidate, schema.Image, schema.BoxRow
        rows = s.execute(
            select(ti.candidate_id, ti.box_id, ti.is_gold, i.width, i.height, i.orig_width, i.orig_height)
            .join(c, c.id == ti.candidate_id)
            .join(i, i.id == c.image_id)
            .where(ti.task_id == task.id)
            .order_by(ti.position)
        ).all()
        gold_specs = {
            int(g.candidate_id): g
            for g in s.scalars(
                select(schema.BoxGold).where(
                    schema.BoxGold.candidate_id.in_([r[0] for r in rows if r[2]]),
                    schema.BoxGold.kind == task.kind,
                )
            )
        }
        items = []
        for cid, box_id, is_gold, w, h, ow, oh in rows:
            size, orig = frames(w, h, ow, oh)
            box: list[float] | None = None
            accepted: list[list[float]] = []
            if task.kind == "quality" and box_id is not None:
                row = s.get(b, box_id)
                assert row is not None
                box = to_served((row.x1, row.y1, row.x2, row.y2), size, orig)
            elif is_gold and cid in gold_specs:
                accepted = [to_served(t, size, orig) for t in gold_specs[cid].shown]
            elif not is_gold:
                accepted = [to_served(t, size, orig) for t in progress.accepted_boxes(s, cid)]
            items.append(BoxItemView(int(cid), f"/img/{cid}", size[0], size[1], box_id, box, accepted))
        lemmas = tuple(str(x).replace("_", " ") for x in syn.lemmas)
        return BoxTaskView(
            id=task.id,
            kind=task.kind,
            synset=SynsetView(syn.id, lemmas[0] if lemmas else syn.id, lemmas, syn.gloss or ""),
            expires_at=as_utc(task.expires_at) or datetime.now(UTC),
            items=tuple(items),
        )

    # -- submissions ---------------------------------------------------------------------------------

    def submit(self, worker_id: int, task_id: int, answer: Mapping[str, Any]) -> BoxSubmitResult:
        """Record one box task's answer (draw `{"box": [x1, y1, x2, y2]}` or `{"none_left": true}`, quality
        `{"good": [box_id, ...]}`, coverage `{"covered": [image_id, ...]}`), all or nothing.

        Refused without any change: a malformed answer, numbers out of range, ids not in the task
        (InputError); someone else's task (NotFoundError); a submitted or expired task (TaskClosedError);
        a blocked worker (WorkerBlockedError).
        """
        if not isinstance(answer, Mapping):
            raise InputError("the answer must be an object")
        for key in ("good", "covered"):
            ids = answer.get(key)
            if ids is not None and (not isinstance(ids, list | tuple) or len(ids) > self.settings.max_items):
                raise InputError(f"'{key}' must be a list of at most {self.settings.max_items} ids")
        now = datetime.now(UTC)
        try:
            with self.crowd.write() as s:
                worker = lock_worker(s, worker_id)
                if worker.status != "active":
                    raise WorkerBlockedError(worker.blocked_reason or "this worker is blocked")
                q = select(schema.Task).where(schema.Task.id == task_id)
                if self._postgres:
                    q = q.with_for_update()
                task = s.scalars(q).first()
                if task is None or task.worker_id != worker_id or task.kind not in KINDS:
                    raise NotFoundError(f"no box task {task_id} for this worker")
                if task.status == "submitted":
                    raise TaskClosedError(f"task {task_id} was already submitted")
                expires = as_utc(task.expires_at)
                if task.status != "open" or (expires is not None and expires <= now):
                    raise TaskClosedError(
                        f"task {task_id} expired; its images went back, please take a new task"
                    )
                ti = schema.TaskItem
                items = [
                    _Item(int(cid), None if bid is None else int(bid), bool(g))
                    for cid, bid, g in s.execute(
                        select(ti.candidate_id, ti.box_id, ti.is_gold).where(ti.task_id == task_id)
                    )
                ]
                gold_right, gold_total, touched = self._record(s, task, worker_id, items, answer, now)
                worker.gold_total += gold_total
                worker.gold_correct += gold_right
                code = completion_code()
                task.status, task.submitted_at, task.completion_code = "submitted", now, code
                s.execute(
                    update(schema.BoxImage)
                    .where(schema.BoxImage.held_task_id == task_id)
                    .values(held_task_id=None, held_until=None)
                )
                reason = wk.block_reason(worker, self.crowd.settings)
                if reason is not None:
                    touched |= self._block(s, worker, reason)
                self._settle_all(s, touched, now)
                done = int(
                    s.scalar(
                        select(func.count()).where(
                            schema.Task.worker_id == worker_id, schema.Task.status == "submitted"
                        )
                    )
                    or 0
                )
                result = BoxSubmitResult(task_id, task.kind, code, reason is not None, done)
        except IntegrityError:
            raise TaskClosedError(f"task {task_id}: these items already have your answers") from None
        if result.blocked:
            self._crowd_after_write()
        return result

    def _crowd_after_write(self) -> None:
        """After a block re-decided yes/no votes: let the crowd engine run the jobs it queued (outside the
        write lock), where its version has them."""
        after = getattr(self.crowd, "after_write", None) or getattr(self.crowd, "_after_write", None)
        if callable(after):
            after()

    def _record(
        self,
        s: Session,
        task: schema.Task,
        worker_id: int,
        items: list[_Item],
        answer: Mapping[str, Any],
        now: datetime,
    ) -> tuple[int, int, set[int]]:
        """Store the answer's rows; returns (gold right, gold answered, images to settle)."""
        kind = task.kind
        allowed = {"draw": {"box", "none_left"}, "quality": {"good"}, "coverage": {"covered"}}[kind]
        given = {k for k, v in answer.items() if v is not None}
        if not given <= allowed or not given:
            raise InputError(f"a {kind} answer has {' or '.join(sorted(allowed))}; got {sorted(answer)}")
        if kind == "draw":
            return self._record_draw(s, task, worker_id, items[0], answer, now)
        key = "good" if kind == "quality" else "covered"
        raw = list(answer.get(key) or [])
        if not all(isinstance(x, int) and not isinstance(x, bool) for x in raw):
            raise InputError(f"'{key}' must list integer ids")
        ticked = set(raw)
        in_task = {it.box_id for it in items} if kind == "quality" else {it.candidate_id for it in items}
        strangers = ticked - in_task
        if strangers:
            what = "boxes" if kind == "quality" else "images"
            raise InputError(
                f"{len(strangers)} id(s) name {what} not in task {task.id}: {sorted(strangers)[:5]}"
            )
        right = total = 0
        touched: set[int] = set()
        v = schema.BoxVote
        if kind == "quality":
            gold_status = dict(
                s.execute(
                    select(schema.BoxRow.id, schema.BoxRow.status).where(
                        schema.BoxRow.id.in_([it.box_id for it in items if it.is_gold])
                    )
                ).all()
            )
            rows = []
            for it in items:
                label = it.box_id in ticked
                rows.append(dict(kind="quality", box_id=it.box_id, candidate_id=it.candidate_id, worker_id=worker_id,
                                 task_id=task.id, label=label, is_gold=it.is_gold, weight=1.0, created_at=now))  # fmt: skip
                if it.is_gold:
                    total += 1
                    right += int(label == (gold_status.get(it.box_id or 0) == "good"))
                else:
                    touched.add(it.candidate_id)
            s.add_all(v(**r) for r in rows)
        else:
            rounds = dict(
                s.execute(
                    select(schema.BoxImage.candidate_id, schema.BoxImage.round).where(
                        schema.BoxImage.candidate_id.in_([it.candidate_id for it in items])
                    )
                ).all()
            )
            answers = dict(
                s.execute(
                    select(schema.BoxGold.candidate_id, schema.BoxGold.answer).where(
                        schema.BoxGold.candidate_id.in_([it.candidate_id for it in items if it.is_gold]),
                        schema.BoxGold.kind == "coverage",
                    )
                ).all()
            )
            for it in items:
                label = it.candidate_id in ticked
                s.add(v(kind="coverage", box_id=None, candidate_id=it.candidate_id, worker_id=worker_id,
                        task_id=task.id, label=label, is_gold=it.is_gold, weight=1.0, created_at=now,
                        round=None if it.is_gold else rounds.get(it.candidate_id, 0)))  # fmt: skip
                if it.is_gold:
                    total += 1
                    right += int(label == bool(answers.get(it.candidate_id)))
                else:
                    touched.add(it.candidate_id)
        s.flush()
        return right, total, touched

    def _record_draw(
        self,
        s: Session,
        task: schema.Task,
        worker_id: int,
        item: _Item,
        answer: Mapping[str, Any],
        now: datetime,
    ) -> tuple[int, int, set[int]]:
        none_left = answer.get("none_left")
        box_in = answer.get("box")
        if box_in is not None and none_left is not None:
            raise InputError("a draw answer is either a box or none_left, not both")
        if none_left is not None and none_left is not True:
            raise InputError("none_left must be true")
        cid = item.candidate_id
        img = s.execute(
            select(schema.Image.width, schema.Image.height, schema.Image.orig_width, schema.Image.orig_height)
            .join(schema.Candidate, schema.Candidate.image_id == schema.Image.id)
            .where(schema.Candidate.id == cid)
        ).one()
        size, orig = frames(*img)
        box: Box | None = None
        if box_in is not None:
            if not isinstance(box_in, list | tuple):
                raise InputError("box must be a list of 4 numbers")
            check_served(list(box_in), size[0], size[1], self.settings.min_box_px)
            box = to_original(list(box_in), size, orig)
        v = schema.BoxVote
        if item.is_gold:
            spec = s.get(schema.BoxGold, (cid, "draw"))
            right = spec is not None and draw_answer_right(spec, box, self.settings.gold_iou)
            s.add(v(kind="draw", box_id=None, candidate_id=cid, worker_id=worker_id, task_id=task.id,
                    label=bool(right), is_gold=True, weight=1.0, created_at=now))  # fmt: skip
            s.flush()
            return int(right), 1, set()
        image = s.get(schema.BoxImage, cid)
        assert image is not None
        image.draws += 1
        if box is None:
            s.add(v(kind="coverage", box_id=None, candidate_id=cid, worker_id=worker_id, task_id=task.id,
                    label=True, is_gold=False, weight=1.0, created_at=now, round=image.round))  # fmt: skip
        else:
            s.add(schema.BoxRow(candidate_id=cid, x1=box[0], y1=box[1], x2=box[2], y2=box[3], worker_id=worker_id,
                                origin="crowd", task_id=task.id, status="proposed", created_at=now))  # fmt: skip
        s.flush()
        return 0, 0, {cid}

    def _settle_all(self, s: Session, touched: set[int], now: datetime) -> None:
        """Decide the touched images' proposed boxes, then move each image to its next stage."""
        for cid in sorted(touched):
            image = s.get(schema.BoxImage, cid)
            if image is None:
                continue
            box = progress.proposed_box(s, cid)
            if box is not None and image.stage == "quality":
                verdict = box_verdict(s, box.id, self.settings, self.blocked_weight)
                if verdict.decided is not None:
                    box.status = "good" if verdict.decided else "bad"
                    box.confidence = verdict.confidence
                    if verdict.decided:
                        image.round += 1  # the accepted set changed: a new coverage round
                    s.flush()
            progress.settle(s, image, self.settings, self.blocked_weight, now)
        s.flush()

    def _block(self, s: Session, worker: schema.Worker, reason: str) -> set[int]:
        """Block under the shared rule: yes/no votes re-weighted and re-decided (CrowdService), box votes
        re-weighted, the worker's proposed boxes refused, held images freed. Returns images to settle."""
        touched_votes = wk.block_worker(s, worker, reason, self.crowd.settings)
        self.crowd.reevaluate(s, touched_votes)
        v, b, bi, t = schema.BoxVote, schema.BoxRow, schema.BoxImage, schema.Task
        s.execute(update(v).where(v.worker_id == worker.id).values(weight=self.blocked_weight))
        s.execute(
            update(bi)
            .where(bi.held_task_id.in_(select(t.id).where(t.worker_id == worker.id, t.status == "expired")))
            .values(held_task_id=None, held_until=None)
        )
        touched = set(
            s.scalars(select(v.candidate_id).where(v.worker_id == worker.id, v.is_gold.is_(False)).distinct())
        )
        for box in s.scalars(
            select(b).where(b.worker_id == worker.id, b.status == "proposed", b.origin == "crowd")
        ):
            box.status, box.confidence = "bad", None
            touched.add(box.candidate_id)
        s.flush()
        # decided boxes stay decided; open items are re-decided without this worker's votes
        open_stages = ("quality", "coverage", "draw")
        return (
            set(
                s.scalars(
                    select(bi.candidate_id).where(bi.candidate_id.in_(touched), bi.stage.in_(open_stages))
                )
            )
            if touched
            else set()
        )

    # -- status --------------------------------------------------------------------------------------

    def status(self) -> list[BoxSynsetStatus]:
        """Per synset: images by stage, boxes by decision, submitted tasks by kind, votes per decided box."""
        from synsetforge.boxes.status import synset_status

        self.enroll()
        with self.crowd.read() as s:
            return synset_status(s)
