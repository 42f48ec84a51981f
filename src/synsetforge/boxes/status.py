"""`boxes status`: per synset, images by box stage, boxes by decision, tasks by kind, votes per decided box.

A whole-project summary for admins (one grouped query per table), never called on a worker's request.
Gold images and gold boxes are left out of every count except `gold_images`.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from synsetforge.store import schema

if TYPE_CHECKING:
    from synsetforge.boxes.service import BoxSynsetStatus

_STAGE_FIELD = {"done": "covered", "draw": "drawing", "quality": "verifying", "coverage": "coverage"}


def synset_status(s: Session) -> list[BoxSynsetStatus]:
    from synsetforge.boxes.service import KINDS, BoxSynsetStatus

    bi, b, c, t, v = schema.BoxImage, schema.BoxRow, schema.Candidate, schema.Task, schema.BoxVote
    stages: dict[str, dict[str, int]] = defaultdict(dict)
    for sid, stage, n in s.execute(
        select(bi.synset_id, bi.stage, func.count()).group_by(bi.synset_id, bi.stage)
    ):
        stages[str(sid)][str(stage)] = int(n)
    boxes: dict[str, dict[str, int]] = defaultdict(dict)
    for sid, status, n in s.execute(
        select(c.synset_id, b.status, func.count())
        .join(c, c.id == b.candidate_id)
        .where(b.origin != "gold")
        .group_by(c.synset_id, b.status)
    ):
        boxes[str(sid)][str(status)] = int(n)
    tasks: dict[str, dict[str, int]] = defaultdict(dict)
    for sid, kind, n in s.execute(
        select(t.synset_id, t.kind, func.count())
        .where(t.kind.in_(KINDS), t.status == "submitted")
        .group_by(t.synset_id, t.kind)
    ):
        tasks[str(sid)][str(kind)] = int(n)
    decided = (
        select(c.synset_id, func.count(v.id).label("votes"), func.count(func.distinct(b.id)).label("boxes"))
        .select_from(b)
        .join(c, c.id == b.candidate_id)
        .join(v, v.box_id == b.id)
        .where(b.origin == "crowd", b.status.in_(("good", "bad")), v.kind == "quality", v.is_gold.is_(False))
        .group_by(c.synset_id)
    )
    per_box = {str(sid): (int(nv), int(nb)) for sid, nv, nb in s.execute(decided)}
    out = []
    for sid in sorted(set(stages) | set(boxes) | set(tasks)):
        st = stages.get(sid, {})
        nv, nb = per_box.get(sid, (0, 0))
        counts = {f: st.get(stage, 0) for stage, f in _STAGE_FIELD.items()}
        out.append(
            BoxSynsetStatus(
                synset_id=sid,
                images=sum(n for stage, n in st.items() if stage != "gold"),
                given_up=st.get("given_up", 0),
                boxes_accepted=boxes.get(sid, {}).get("good", 0),
                boxes_rejected=boxes.get(sid, {}).get("bad", 0),
                boxes_proposed=boxes.get(sid, {}).get("proposed", 0),
                tasks={k: tasks.get(sid, {}).get(k, 0) for k in KINDS},
                votes_per_decided_box=nv / nb if nb else None,
                gold_images=st.get("gold", 0),
                **counts,
            )
        )
    return out
