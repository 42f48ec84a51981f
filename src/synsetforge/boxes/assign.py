"""Choosing a worker's next box task: which images, which gold, held so that nobody else gets them.

Like the yes/no assigner (`crowd.assign`): the caller has locked the worker's row, so one worker's requests
run one at a time; an image is held by one open task at a time (`box_images.held_task_id` until
`held_until`, the task's expiry, so an abandoned task frees its images by itself); on PostgreSQL the
chosen rows are locked `FOR UPDATE SKIP LOCKED` (READ COMMITTED re-checks the hold on the locked row), on
SQLite the transaction holds the database's write lock. A worker never verifies a box they drew or voted
on, and never answers the same coverage round twice.

Order: the kind asked for, or the most needed one (quality first: a proposed box blocks its image; then
coverage, then drawing); inside a kind, the images that waited longest, all from one synset.
"""

from __future__ import annotations

import random
import time
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from synsetforge.store import schema

KINDS = ("draw", "quality", "coverage")
NEED_ORDER = ("quality", "coverage", "draw")  # kind=None: finish images before starting new ones


def _eligible(kind: str, worker_id: int, now: datetime) -> list[Any]:
    """SQL conditions on box_images (joined to candidates) for images this worker may get in `kind`."""
    bi, c, b, v = schema.BoxImage, schema.Candidate, schema.BoxRow, schema.BoxVote
    conds: list[Any] = [
        bi.stage == kind,
        (bi.held_until.is_(None)) | (bi.held_until <= now),
        c.id == bi.candidate_id,
        c.decision == "accepted",
        ~exists().where(schema.Synset.id == bi.synset_id, schema.Synset.status == "retired"),
    ]
    same_round = ~exists().where(
        v.candidate_id == bi.candidate_id, v.worker_id == worker_id, v.kind == "coverage", v.round == bi.round
    )
    if kind in ("draw", "coverage"):
        conds.append(same_round)  # a "none left" or a coverage answer in this round: not again
    if kind == "quality":
        mine = (b.worker_id == worker_id) | exists().where(v.box_id == b.id, v.worker_id == worker_id)
        conds.append(
            ~exists().where(
                b.candidate_id == bi.candidate_id, b.status == "proposed", b.origin == "crowd", mine
            )
        )
    return conds


def pick_images(
    s: Session, kind: str, worker_id: int, want: int, now: datetime, postgres: bool
) -> tuple[str, list[int]] | None:
    """(synset, up to `want` image ids) for a task of `kind`, longest-waiting first, all of the synset of
    the first one; None if no work. On PostgreSQL rows that other assignments hold locked are skipped; when
    every eligible row was locked at that instant, try again shortly rather than tell the worker there is
    no work."""
    bi, c = schema.BoxImage, schema.Candidate
    base = (
        select(bi.candidate_id, bi.synset_id)
        .select_from(bi)
        .join(c, c.id == bi.candidate_id)
        .where(*_eligible(kind, worker_id, now))
        .order_by(bi.updated_at, bi.candidate_id)
    )
    for attempt in range(5 if postgres else 1):
        q = base.limit(1)
        if postgres:
            q = q.with_for_update(skip_locked=True, of=bi)
        first = s.execute(q).first()
        if first is None:
            if not postgres or s.execute(base.limit(1)).first() is None:
                return None
            time.sleep(0.02 * (attempt + 1))  # everything left was being claimed by others just now
            continue
        cid, sid = int(first[0]), str(first[1])
        ids = [cid]
        if want > 1:
            more = base.where(bi.synset_id == sid, bi.candidate_id != cid).limit(want - 1)
            if postgres:
                more = more.with_for_update(skip_locked=True, of=bi)
            ids += [int(x) for x, _ in s.execute(more)]
        return sid, ids
    return None


def gold_quota(per_task: int, grid: int, gold_answered: int, block_min_gold: int) -> int:
    """Gold items in a verification grid: `per_task`, more (up to half the grid) while on probation."""
    probation = max(block_min_gold - gold_answered, 0)
    return max(per_task, min(probation, grid // 2))


def pick_gold_boxes(
    s: Session, worker_id: int, synset_id: str, n: int, rng: random.Random
) -> list[tuple[int, int]]:
    """Up to n (image, gold box template) of the synset, one per gold image the worker has not judged in a
    quality task yet, good and bad alternating. The caller shows a fresh copy (`copy_gold_box`)."""
    if n <= 0:
        return []
    b, c, v = schema.BoxRow, schema.Candidate, schema.BoxVote
    rows = s.execute(
        select(b.candidate_id, b.id, b.status)
        .join(c, c.id == b.candidate_id)
        .where(
            c.synset_id == synset_id,
            b.origin == "gold",
            b.origin_ref.is_(None),  # templates; shown copies name their template in origin_ref
            ~exists().where(
                v.candidate_id == b.candidate_id,
                v.worker_id == worker_id,
                v.kind == "quality",
                v.is_gold.is_(True),
            ),
        )
        .order_by(b.id)
    ).all()
    return _alternate([((int(cid), int(bid)), status == "good") for cid, bid, status in rows], n, rng)


def copy_gold_box(s: Session, template_id: int, now: datetime) -> int:
    """A new row for one showing of a gold box: its id is as fresh as the crowd boxes' beside it in the grid,
    so ids give nothing away (gold boxes are made before the crowd draws)."""
    t = s.get(schema.BoxRow, template_id)
    assert t is not None
    row = schema.BoxRow(
        candidate_id=t.candidate_id, x1=t.x1, y1=t.y1, x2=t.x2, y2=t.y2, origin="gold", status=t.status,
        confidence=t.confidence, origin_ref=f"gold box {t.id}", created_at=now,
    )  # fmt: skip
    s.add(row)
    s.flush()
    return row.id


def pick_gold_images(
    s: Session, worker_id: int, synset_id: str, kind: str, n: int, rng: random.Random
) -> list[int]:
    """Up to n gold images of `kind` (draw | coverage) of the synset the worker has not answered."""
    if n <= 0:
        return []
    g, c, v = schema.BoxGold, schema.Candidate, schema.BoxVote
    rows = s.execute(
        select(g.candidate_id, g.answer)
        .join(c, c.id == g.candidate_id)
        .where(
            c.synset_id == synset_id,
            g.kind == kind,
            ~exists().where(
                v.candidate_id == g.candidate_id,
                v.worker_id == worker_id,
                v.kind == kind,
                v.is_gold.is_(True),
            ),
        )
        .order_by(g.candidate_id)
    ).all()
    return [cid for (cid, _) in _alternate([((int(cid), 0), bool(a)) for cid, a in rows], n, rng)]


def _alternate(rows: list[tuple[tuple[int, int], bool]], n: int, rng: random.Random) -> list[tuple[int, int]]:
    yes = [key for key, answer in rows if answer]
    no = [key for key, answer in rows if not answer]
    rng.shuffle(yes)
    rng.shuffle(no)
    first, second = (yes, no) if rng.random() < 0.5 else (no, yes)
    out: list[tuple[int, int]] = []
    seen: set[int] = set()
    while len(out) < n and (first or second):
        if first:
            key = first.pop()
            if key[0] not in seen:
                seen.add(key[0])
                out.append(key)
        first, second = second, first
    return out


def create_task(
    s: Session,
    worker_id: int,
    synset_id: str,
    kind: str,
    items: list[tuple[int, int | None, bool]],
    task_minutes: float,
    now: datetime,
    rng: random.Random,
) -> int:
    """A task with its items (image, box or None, is_gold) in shuffled order; real images are held."""
    expires = now + timedelta(minutes=task_minutes)
    task = schema.Task(
        worker_id=worker_id, synset_id=synset_id, kind=kind, status="open", created_at=now, expires_at=expires
    )
    s.add(task)
    s.flush()
    order = list(items)
    rng.shuffle(order)
    s.add_all(
        schema.TaskItem(task_id=task.id, candidate_id=cid, position=i, is_gold=gold, box_id=box)
        for i, (cid, box, gold) in enumerate(order)
    )
    real = [cid for cid, _, gold in items if not gold]
    if real:
        for image in s.scalars(select(schema.BoxImage).where(schema.BoxImage.candidate_id.in_(real))):
            image.held_task_id, image.held_until = task.id, expires
    s.flush()
    return task.id
