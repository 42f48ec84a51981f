"""Projects for the box engine tests: accepted synthetic images with 1-3 ground-truth boxes each, and a
truthful simulated worker that answers any box task from that ground truth."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update

from synsetforge.boxes.geometry import best_iou
from synsetforge.boxes.service import BoxTaskView
from synsetforge.crowd.seed import add_synthetic_candidates
from synsetforge.store import Project, schema

SQUARE, TRIANGLE = "n13878634", "n13879320"


def build_box_project(p: Project, per_synset: int = 6) -> dict[int, list[list[int]]]:
    """Two synsets of accepted images, image k with 1 + k % 3 side-by-side instances; returns the truth."""
    p.add_synsets([SQUARE, TRIANGLE])
    add_synthetic_candidates(p, [SQUARE, TRIANGLE], per_synset, precision=1.0, render=False)
    c, i, gt = schema.Candidate, schema.Image, schema.GroundTruth
    truth: dict[int, list[list[int]]] = {}
    with p.session() as s:
        rows = s.execute(select(c.id, i.width, i.height).join(i, i.id == c.image_id).order_by(c.id)).all()
        for k, (cid, w, h) in enumerate(rows):
            n = 1 + k % 3
            boxes = [[j * w // n + 2, h // 4, (j + 1) * w // n - 3, 3 * h // 4] for j in range(n)]
            truth[int(cid)] = boxes
            s.execute(update(gt).where(gt.candidate_id == cid).values(boxes=boxes, positive=True))
        s.execute(update(c).values(decision="accepted", confidence=0.99))
    return truth


def truthful(view: BoxTaskView, truth: dict[int, list[list[int]]]) -> dict[str, Any]:
    """The right answer to a box task (images are served at full size in these projects)."""
    if view.kind == "draw":
        item = view.items[0]
        for t in truth[item.image_id]:
            if best_iou(t, item.accepted) < 0.5:
                return {"box": list(t)}
        return {"none_left": True}
    if view.kind == "quality":
        return {
            "good": [it.box_id for it in view.items if it.box and best_iou(it.box, truth[it.image_id]) >= 0.7]
        }
    return {
        "covered": [
            it.image_id
            for it in view.items
            if all(best_iou(t, it.accepted) >= 0.5 for t in truth[it.image_id])
        ]
    }
