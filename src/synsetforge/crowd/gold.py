"""Gold ("honeypot") images: candidates with a known answer, mixed into tasks to measure workers.

Where answers come from: an expert's CSV (`candidate_id,answer`), or, for synthetic candidates, the
ground truth the source recorded. A gold image is taken out of the voting pool (its answer is known), shown
in tasks exactly like any other image, and never revealed to workers.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Mapping
from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from synsetforge.crowd.csvio import parse_label
from synsetforge.errors import InputError, NotFoundError
from synsetforge.store import schema
from synsetforge.store.project import Project


def add_gold(project: Project, answers: Mapping[int, bool]) -> int:
    """Mark candidates as gold with the given answers (existing gold rows are updated). Returns the count."""
    if not answers:
        return 0
    ids = sorted(answers)
    with project.session() as s:
        known = set(s.scalars(select(schema.Candidate.id).where(schema.Candidate.id.in_(ids))))
        missing = [i for i in ids if i not in known]
        if missing:
            raise NotFoundError(f"{len(missing)} gold candidate id(s) do not exist, e.g. {missing[0]}")
        for cid in ids:
            s.merge(schema.Gold(candidate_id=cid, answer=bool(answers[cid])))
        leave_live_state(s, ids)
    return len(ids)


def leave_live_state(session: Session, ids: list[int]) -> None:
    """Gold images are not voted on: drop their live tallies (`crowd_images`), fix their synsets' counters
    and queue a rebuild (the initial subset and the table may change), in the caller's transaction."""
    from synsetforge.crowd.incremental import request_refresh
    from synsetforge.crowd.tallies import lock_synset

    ci = schema.CrowdImage
    rows = session.execute(
        select(ci.synset_id, ci.candidate_id, ci.cell).where(ci.candidate_id.in_(ids))
    ).all()
    by_synset: dict[str, list[tuple[int, bool]]] = {}
    for sid, cid, cell in rows:
        by_synset.setdefault(str(sid), []).append((int(cid), cell is not None))
    for sid in sorted(by_synset):
        syn = lock_synset(session, sid)
        gone = by_synset[sid]
        session.execute(delete(ci).where(ci.candidate_id.in_([cid for cid, _ in gone])))
        syn.n_playable -= len(gone)
        syn.n_open -= sum(was_open for _, was_open in gone)
        request_refresh(session, syn, sync=True)
    session.flush()


def gold_from_ground_truth(
    project: Project, per_synset: int = 6, seed: int = 0, max_share: float = 1.0
) -> int:
    """Pick `per_synset` gold images per synset (half positives, half negatives where possible) among
    stored candidates with ground truth that nobody has voted on yet, but at most `max_share` of each
    synset's such candidates (rounded down), so that some are left to verify. Returns how many were added."""
    if per_synset < 1:
        raise InputError(f"per_synset must be >= 1, got {per_synset}")
    if not 0 < max_share <= 1:
        raise InputError(f"max_share must be in (0, 1], got {max_share}")
    rng = random.Random(seed)
    c, gt, v, g = schema.Candidate, schema.GroundTruth, schema.Vote, schema.Gold
    with project.session() as s:
        rows = s.execute(
            select(c.synset_id, c.id, gt.positive)
            .join(gt, gt.candidate_id == c.id)
            .where(
                c.status == "stored",
                c.image_id.is_not(None),
                c.id.not_in(select(v.candidate_id)),
                c.id.not_in(select(g.candidate_id)),
            )
            .order_by(c.synset_id, c.id)
        ).all()
    by_synset: dict[str, tuple[list[int], list[int]]] = {}
    for sid, cid, positive in rows:
        pos, neg = by_synset.setdefault(sid, ([], []))
        (pos if positive else neg).append(cid)
    chosen: dict[int, bool] = {}
    for _sid, (pos, neg) in sorted(by_synset.items()):
        rng.shuffle(pos)
        rng.shuffle(neg)
        wanted = min(per_synset, int((len(pos) + len(neg)) * max_share))
        n_pos = min(len(pos), (wanted + 1) // 2)
        n_neg = min(len(neg), wanted - n_pos)
        n_pos = min(len(pos), wanted - n_neg)
        chosen.update(dict.fromkeys(pos[:n_pos], True))
        chosen.update(dict.fromkeys(neg[:n_neg], False))
    return add_gold(project, chosen)


def load_gold_csv(project: Project, path: Path) -> int:
    """Gold answers from a CSV with columns `candidate_id,answer` (yes/no, true/false, 1/0)."""
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or not {"candidate_id", "answer"} <= set(reader.fieldnames):
                raise InputError(f"{path}: needs columns candidate_id,answer; has {reader.fieldnames}")
            answers: dict[int, bool] = {}
            for line, row in enumerate(reader, start=2):
                try:
                    cid = int(row["candidate_id"])
                except (TypeError, ValueError):
                    raise InputError(
                        f"{path}:{line}: candidate_id {row['candidate_id']!r} is not a number"
                    ) from None
                answers[cid] = parse_label(row["answer"], f"{path}:{line}")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None
    return add_gold(project, answers)
