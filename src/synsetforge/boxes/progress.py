"""Per-image box progress (`box_images`): which stage an accepted image is in, and what moves it on.

The stages (SPEC §4's three tasks): draw -> quality (its one proposed box is verified) -> coverage (every
box decided, at least one accepted) -> done (coverage votes say every instance is boxed). A rejected box,
or coverage votes saying an instance is missing, send the image back to drawing; an accepted box starts a
new coverage round (earlier coverage votes were about fewer boxes), and so do coverage votes that reach
the cap without agreeing (the image goes back to drawing); a "none left" answer of a draw task is a
coverage vote. An image drawn `max_draws` times without being covered is given up.

Every function here touches one image's rows by primary key or indexed columns, so a request costs the
same in a project of any size.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import exists, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from synsetforge.boxes.decisions import coverage_verdict
from synsetforge.boxes.settings import BoxSettings
from synsetforge.store import schema

STAGES = ("draw", "quality", "coverage", "done", "given_up", "gold")
ENROLL_BATCH = 5000


def accepted_box() -> Any:
    """SQL condition: a box that counts as on the image (crowd-accepted, or imported/synthetic not refused)."""
    b = schema.BoxRow
    return (b.origin != "gold") & (
        (b.status == "good") | (b.origin.in_(("import", "synthetic")) & (b.status != "bad"))
    )


def accepted_boxes(s: Session, candidate_id: int) -> list[tuple[int, int, int, int]]:
    b = schema.BoxRow
    rows = s.execute(
        select(b.x1, b.y1, b.x2, b.y2).where(b.candidate_id == candidate_id, accepted_box()).order_by(b.id)
    )
    return [(int(x1), int(y1), int(x2), int(y2)) for x1, y1, x2, y2 in rows]


def proposed_box(s: Session, candidate_id: int) -> schema.BoxRow | None:
    """The image's crowd box awaiting quality votes (at most one: one draw task holds an image at a time)."""
    b = schema.BoxRow
    return s.scalars(
        select(b)
        .where(b.candidate_id == candidate_id, b.status == "proposed", b.origin == "crowd")
        .order_by(b.id)
        .limit(1)
    ).first()


def settle(
    s: Session, image: schema.BoxImage, settings: BoxSettings, blocked_weight: float, now: datetime
) -> None:
    """Put the image in the stage its boxes and votes call for (no-op for gold images)."""
    if image.stage == "gold":
        return
    cid = image.candidate_id
    if proposed_box(s, cid) is not None:
        image.stage, image.coverage = "quality", None
    else:
        b = schema.BoxRow
        n_good = int(s.scalar(select(func.count()).where(b.candidate_id == cid, accepted_box())) or 0)
        verdict = coverage_verdict(s, cid, image.round, settings, blocked_weight) if n_good else None
        image.coverage = verdict.p if verdict is not None else None
        if verdict is not None and verdict.decided is True:
            image.stage = "done"
        elif verdict is not None and verdict.decided is None:
            image.stage = "coverage"
        else:
            if verdict is not None and verdict.capped:
                image.round += 1  # conflicting coverage votes: fresh evidence after the next drawing
            image.stage = "draw" if image.draws < settings.max_draws else "given_up"
    image.updated_at = now


def enroll(s: Session, settings: BoxSettings, blocked_weight: float, now: datetime) -> int:
    """Enter accepted images that have no progress row yet into drawing (or further, when they already
    carry imported boxes). Returns how many entered."""
    c, bi, g, b = schema.Candidate, schema.BoxImage, schema.Gold, schema.BoxRow
    rows = s.execute(
        select(c.id, c.synset_id)
        .where(
            c.decision == "accepted",
            c.status == "stored",
            c.image_id.is_not(None),
            ~exists().where(bi.candidate_id == c.id),
            ~exists().where(g.candidate_id == c.id),
        )
        .order_by(c.id)
        .limit(ENROLL_BATCH)
    ).all()
    if not rows:
        return 0
    try:
        with s.begin_nested():
            images = [
                schema.BoxImage(
                    candidate_id=cid, synset_id=sid, stage="draw", round=0, draws=0, updated_at=now
                )
                for cid, sid in rows
            ]
            s.add_all(images)
            s.flush()
    except IntegrityError:  # another process enrolled some of them at the same moment: next time
        return 0
    ids = [cid for cid, _ in rows]
    with_boxes = set(s.scalars(select(b.candidate_id).where(b.candidate_id.in_(ids), b.origin != "gold")))
    for image in images:
        if image.candidate_id in with_boxes:
            settle(s, image, settings, blocked_weight, now)
    return len(rows)
