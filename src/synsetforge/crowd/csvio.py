"""Batch CSV export and import of crowd results.

Why: marketplaces and offline campaigns work in batches (MTurk's batch results CSV, a lab's spreadsheet),
and results must be movable between projects. Exports: `votes` (one row per vote), `decisions` (one row per
candidate with its vote counts), `tasks` (one row per task with its completion code, to reconcile
marketplace payments). Import reads the `votes` format back (extra columns are ignored).

Import is all-or-nothing on validation: any malformed row (unknown candidate or worker, bad label, the same
worker twice on one image) is reported with its line and nothing is written. Votes that are already in the
project (same worker, same image) are skipped and counted, so importing a file twice adds nothing.
Gold answers in an import count towards workers' gold accuracy and the blocking rule, like live answers.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from sqlalchemy import case, func, insert, select

from synsetforge.errors import InputError
from synsetforge.store import schema

EXPORTS = ("votes", "decisions", "tasks")
VOTE_COLUMNS = (
    "vote_id",
    "task_id",
    "candidate_id",
    "synset_id",
    "worker_id",
    "worker_kind",
    "worker_external_id",
    "label",
    "is_gold",
    "weight",
    "created_at",
)
_YES = {"1", "true", "yes", "y", "t"}
_NO = {"0", "false", "no", "n", "f"}
_IMPORT_KINDS = ("marketplace", "expert", "invite")


def parse_label(value: str | None, where: str) -> bool:
    """yes/no, true/false, 1/0 (any case) -> bool; anything else is an InputError naming `where`."""
    text = (value or "").strip().lower()
    if text in _YES:
        return True
    if text in _NO:
        return False
    raise InputError(f"{where}: label {value!r} is not yes/no, true/false or 1/0")


def _iso(value: datetime | None) -> str:
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.isoformat(timespec="seconds")


def _vote_rows(session: Any) -> Iterator[list[Any]]:
    v, c, w = schema.Vote, schema.Candidate, schema.Worker
    q = (
        select(
            v.id, v.task_id, v.candidate_id, c.synset_id, v.worker_id, w.kind, w.external_id,
            v.label, v.is_gold, v.weight, v.created_at,
        )
        .join(c, c.id == v.candidate_id)
        .join(w, w.id == v.worker_id)
        .order_by(v.id)
    )  # fmt: skip
    for row in session.execute(q).yield_per(5000):
        vid, tid, cid, sid, wid, kind, ext, label, gold, weight, created = row
        yield [
            vid,
            tid or "",
            cid,
            sid,
            wid,
            kind,
            ext or "",
            int(bool(label)),
            int(bool(gold)),
            weight,
            _iso(created),
        ]


def _decision_rows(session: Any) -> Iterator[list[Any]]:
    v, c = schema.Vote, schema.Candidate
    counts = (
        select(
            v.candidate_id.label("cid"),
            func.sum(case((v.label.is_(True), v.weight), else_=0.0)).label("yes"),
            func.sum(case((v.label.is_(True), 0.0), else_=v.weight)).label("no"),
            func.count(v.id).label("n"),
        )
        .group_by(v.candidate_id)
        .subquery()
    )
    q = (
        select(c.id, c.synset_id, c.decision, c.confidence, counts.c.yes, counts.c.no, counts.c.n, c.url)
        .outerjoin(counts, counts.c.cid == c.id)
        .where(c.status == "stored")
        .order_by(c.synset_id, c.id)
    )
    for cid, sid, decision, conf, yes, no, n, url in session.execute(q).yield_per(5000):
        yield [
            cid,
            sid,
            decision or "",
            "" if conf is None else round(conf, 6),
            yes or 0,
            no or 0,
            n or 0,
            url,
        ]


def _task_rows(session: Any) -> Iterator[list[Any]]:
    t, w, ti = schema.Task, schema.Worker, schema.TaskItem
    n_items = select(ti.task_id.label("tid"), func.count().label("n")).group_by(ti.task_id).subquery()
    q = (
        select(t.id, t.worker_id, w.kind, w.external_id, t.synset_id, t.status, n_items.c.n, t.created_at,
               t.submitted_at, t.completion_code)
        .join(w, w.id == t.worker_id)
        .outerjoin(n_items, n_items.c.tid == t.id)
        .order_by(t.id)
    )  # fmt: skip
    for tid, wid, kind, ext, sid, status, n, created, submitted, code in session.execute(q).yield_per(5000):
        yield [tid, wid, kind, ext or "", sid, status, n or 0, _iso(created), _iso(submitted), code or ""]


HEADERS = {
    "votes": list(VOTE_COLUMNS),
    "decisions": ["candidate_id", "synset_id", "decision", "confidence", "yes", "no", "votes", "url"],
    "tasks": [
        "task_id", "worker_id", "worker_kind", "worker_external_id", "synset_id", "status", "images",
        "created_at", "submitted_at", "completion_code",
    ],
}  # fmt: skip


def export_csv(project: Any, out: IO[str], what: str = "votes") -> int:
    """Write one of EXPORTS as CSV to `out`; returns the number of data rows."""
    if what not in EXPORTS:
        raise InputError(f"unknown export {what!r}; choose one of {list(EXPORTS)}")
    rows_of = {"votes": _vote_rows, "decisions": _decision_rows, "tasks": _task_rows}[what]
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADERS[what])
    n = 0
    with project.session() as s:
        for row in rows_of(s):
            writer.writerow(row)
            n += 1
    return n


@dataclass(frozen=True)
class ImportSummary:
    rows: int
    inserted: int
    duplicates: int
    new_workers: int
    blocked_workers: int
    decisions_changed: int


@dataclass(frozen=True)
class _Row:
    line: int
    candidate_id: int
    worker_id: int | None
    kind: str
    external_id: str | None
    label: bool


def _parse(lines: Iterable[str], name: str) -> list[_Row]:
    reader = csv.DictReader(lines)
    cols = set(reader.fieldnames or [])
    if not {"candidate_id", "label"} <= cols or not ({"worker_id", "worker_external_id"} & cols):
        raise InputError(
            f"{name}: needs columns candidate_id, label and worker_id or worker_external_id; "
            f"has {sorted(cols)}"
        )
    out = []
    for line, rec in enumerate(reader, start=2):
        where = f"{name}:{line}"
        try:
            cid = int((rec.get("candidate_id") or "").strip())
        except ValueError:
            raise InputError(f"{where}: candidate_id {rec.get('candidate_id')!r} is not a number") from None
        ext = (rec.get("worker_external_id") or "").strip() or None
        kind = (rec.get("worker_kind") or "").strip() or "marketplace"
        wid: int | None = None
        if ext is None:
            try:
                wid = int((rec.get("worker_id") or "").strip())
            except ValueError:
                raise InputError(f"{where}: a row needs worker_external_id or a numeric worker_id") from None
        elif kind not in _IMPORT_KINDS or len(ext) > 200:
            raise InputError(f"{where}: worker_kind {kind!r} / external id is not valid")
        out.append(_Row(line, cid, wid, kind, ext, parse_label(rec.get("label"), where)))
    return out


def import_votes_csv(service: Any, source: Path | str | IO[str]) -> ImportSummary:
    """Import votes (the `votes` export format) through a `CrowdService`; see the module docstring."""
    from synsetforge.crowd import workers as wk

    if isinstance(source, Path | str):
        path = Path(source)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise InputError(f"{path}: not UTF-8 text") from None
        rows, name = _parse(io.StringIO(text, newline=""), str(path)), str(path)
    else:
        rows, name = _parse(source, "<csv>"), "<csv>"
    now = datetime.now(UTC)
    c, w, v, g = schema.Candidate, schema.Worker, schema.Vote, schema.Gold
    with service.write() as s:
        cids = sorted({r.candidate_id for r in rows})
        cand: dict[int, str] = {}
        gold: dict[int, bool] = {}
        for i in range(0, len(cids), 900):
            chunk = cids[i : i + 900]
            cand.update(s.execute(select(c.id, c.synset_id).where(c.id.in_(chunk))).all())
            gold.update(s.execute(select(g.candidate_id, g.answer).where(g.candidate_id.in_(chunk))).all())
        for r in rows:
            if r.candidate_id not in cand:
                raise InputError(f"{name}:{r.line}: no candidate with id {r.candidate_id} in this project")
        ids = sorted({r.worker_id for r in rows if r.worker_id is not None})
        known_ids = set(s.scalars(select(w.id).where(w.id.in_(ids)))) if ids else set()
        for r in rows:
            if r.worker_id is not None and r.worker_id not in known_ids:
                raise InputError(f"{name}:{r.line}: no worker with id {r.worker_id} in this project")
        by_ext: dict[tuple[str, str], int] = {}
        new_workers = 0
        for kind, ext in sorted({(r.kind, r.external_id) for r in rows if r.external_id is not None}):
            found = s.scalar(select(w.id).where(w.kind == kind, w.external_id == ext))
            if found is None:
                worker = w(kind=kind, external_id=ext, name=f"imported {kind}", status="active")
                s.add(worker)
                s.flush()
                found, new_workers = worker.id, new_workers + 1
            by_ext[(kind, ext)] = found
        resolved = []
        seen: dict[tuple[int, int], int] = {}
        for r in rows:
            wid = r.worker_id if r.worker_id is not None else by_ext[(r.kind, r.external_id or "")]
            pair = (r.candidate_id, wid)
            if pair in seen:
                raise InputError(
                    f"{name}:{r.line}: worker {wid} already answered image {r.candidate_id} on line {seen[pair]}"
                )
            seen[pair] = r.line
            resolved.append((r, wid))
        existing: set[tuple[int, int]] = set()
        for i in range(0, len(cids), 900):
            chunk = cids[i : i + 900]
            existing.update(
                s.execute(select(v.candidate_id, v.worker_id).where(v.candidate_id.in_(chunk))).all()
            )
        fresh = [(r, wid) for r, wid in resolved if (r.candidate_id, wid) not in existing]
        workers = {wid: s.get(w, wid) for wid in {wid for _, wid in fresh}}
        payload = []
        touched: dict[str, set[int]] = defaultdict(set)
        for r, wid in fresh:
            worker = workers[wid]
            assert worker is not None
            is_gold = r.candidate_id in gold
            weight = 1.0 if worker.status == "active" else service.settings.blocked_vote_weight
            payload.append(
                {"candidate_id": r.candidate_id, "worker_id": wid, "task_id": None, "label": r.label,
                 "is_gold": is_gold, "weight": weight, "created_at": now}
            )  # fmt: skip
            if is_gold:
                worker.gold_total += 1
                worker.gold_correct += int(r.label == gold[r.candidate_id])
            else:
                touched[cand[r.candidate_id]].add(r.candidate_id)
        if payload:
            s.execute(insert(v), payload)
        blocked = 0
        for worker in workers.values():
            assert worker is not None
            reason = wk.block_reason(worker, service.settings)
            if reason is not None:
                blocked += 1
                for sid, got in wk.block_worker(s, worker, reason, service.settings).items():
                    touched[sid].update(got)
        changed = service.reevaluate(s, touched)
    service.after_write()  # rebuilds the import queued (new tables re-decide whole synsets)
    return ImportSummary(len(rows), len(fresh), len(resolved) - len(fresh), new_workers, blocked, changed)
