"""Batch CSV export and import of crowd results: round trip between projects, idempotent re-import,
all-or-nothing validation with line numbers, gold answers in imports counting towards blocking."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from synsetforge.crowd.csvio import HEADERS, export_csv, import_votes_csv, parse_label
from synsetforge.crowd.gold import add_gold, load_gold_csv
from synsetforge.crowd.seed import add_synthetic_candidates
from synsetforge.crowd.service import CrowdService
from synsetforge.crowd.settings import CrowdSettings
from synsetforge.errors import InputError, NotFoundError
from synsetforge.store import Project, schema

SQUARE = "n13878634"
FIXED = CrowdSettings(grid_size=10, gold_per_task=0, method="fixed", fixed_votes=2)


def make(root: Path) -> Project:
    p = Project.init(root)
    p.add_synsets([SQUARE])
    add_synthetic_candidates(p, [SQUARE], 20, render=False)
    return p


@pytest.fixture
def source(tmp_path: Path) -> Iterator[Project]:
    with make(tmp_path / "src") as p:
        svc = CrowdService(p, FIXED)
        for w in (svc.invite("ann").worker_id, svc.invite("bob").worker_id):
            while (view := svc.next_task(w)) is not None:
                svc.submit(w, view.task_id, view.items[: len(view.items) // 2])
        yield p


def labels(p: Project) -> list[tuple[int, bool]]:
    with p.session() as s:
        return sorted(
            (c, bool(lab)) for c, lab in s.execute(select(schema.Vote.candidate_id, schema.Vote.label))
        )


def count(p: Project, model: type) -> int:
    with p.session() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_export_formats(source: Project) -> None:
    for what in ("votes", "decisions", "tasks"):
        buf = io.StringIO()
        n = export_csv(source, buf, what)
        rows = list(csv.reader(io.StringIO(buf.getvalue())))
        assert rows[0] == HEADERS[what] and len(rows) == n + 1
    buf = io.StringIO()
    export_csv(source, buf, "tasks")
    tasks = list(csv.DictReader(io.StringIO(buf.getvalue())))
    assert tasks and all(t["status"] == "submitted" and len(t["completion_code"]) == 10 for t in tasks)
    with pytest.raises(InputError, match="unknown export"):
        export_csv(source, io.StringIO(), "secrets")


def test_round_trip_into_another_project_and_reimport_adds_nothing(source: Project, tmp_path: Path) -> None:
    buf = io.StringIO()
    n = export_csv(source, buf, "votes")
    assert n == count(source, schema.Vote) == 40
    # invite workers have no external id: give them one, as a marketplace export would have
    rows = list(csv.DictReader(io.StringIO(buf.getvalue())))
    assert {r["worker_kind"] for r in rows} == {"invite"} and not any(r["worker_external_id"] for r in rows)
    for r in rows:
        r["worker_kind"], r["worker_external_id"] = "marketplace", f"lab-{r['worker_id']}"
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=HEADERS["votes"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    with make(tmp_path / "dst") as dst:
        svc = CrowdService(dst, FIXED)
        summary = import_votes_csv(svc, io.StringIO(out.getvalue()))
        assert (summary.rows, summary.inserted, summary.duplicates, summary.new_workers) == (40, 40, 0, 2)
        assert summary.decisions_changed == 20  # 2 votes per image: all decided
        again = import_votes_csv(svc, io.StringIO(out.getvalue()))
        assert (again.inserted, again.duplicates, again.new_workers) == (0, 40, 0)
        assert count(dst, schema.Vote) == 40
        assert labels(source) == labels(dst)  # same candidate ids: both projects were seeded alike


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("candidate_id,label\n1,yes\n", "needs columns"),
        ("candidate_id,worker_external_id,label\n1,x,maybe\n", r"<csv>:2: label 'maybe'"),
        ("candidate_id,worker_external_id,label\nabc,x,yes\n", "is not a number"),
        ("candidate_id,worker_external_id,label\n999999,x,yes\n", "no candidate with id 999999"),
        ("candidate_id,worker_id,label\n1,424242,yes\n", "no worker with id 424242"),
        (
            "candidate_id,worker_external_id,label\n1,x,yes\n2,x,no\n1,x,no\n",
            "already answered image 1 on line 2",
        ),
        ("candidate_id,worker_external_id,worker_kind,label\n1,x,admin,yes\n", "worker_kind 'admin'"),
    ],
)
def test_malformed_imports_write_nothing(tmp_path: Path, body: str, message: str) -> None:
    with make(tmp_path / "p") as p:
        svc = CrowdService(p, FIXED)
        with pytest.raises(InputError, match=message):
            import_votes_csv(svc, io.StringIO(body))
        assert count(p, schema.Vote) == 0 and count(p, schema.Worker) == 0


def test_imported_gold_answers_can_block_a_worker(tmp_path: Path) -> None:
    with make(tmp_path / "p") as p:
        add_gold(p, {1: True, 2: False, 3: True})
        svc = CrowdService(p, CrowdSettings(block_min_gold=3, block_threshold=0.6, calibration="initial"))
        body = "candidate_id,worker_external_id,label\n1,z,no\n2,z,yes\n3,z,no\n4,z,yes\n"
        summary = import_votes_csv(svc, io.StringIO(body))
        assert summary.blocked_workers == 1
        with p.session() as s:
            w = s.scalars(select(schema.Worker).where(schema.Worker.external_id == "z")).one()
            assert w.status == "blocked" and (w.gold_correct, w.gold_total) == (0, 3)
            assert {float(x) for x in s.scalars(select(schema.Vote.weight))} == {0.0}


def test_gold_csv_and_labels(tmp_path: Path) -> None:
    assert parse_label(" YES ", "x") and not parse_label("0", "x")
    with make(tmp_path / "p") as p:
        f = tmp_path / "gold.csv"
        f.write_text("candidate_id,answer\n1,yes\n2,no\n", encoding="utf-8")
        assert load_gold_csv(p, f) == 2
        f.write_text("candidate_id,answer\n1,perhaps\n", encoding="utf-8")
        with pytest.raises(InputError, match=r"gold\.csv:2"):
            load_gold_csv(p, f)
        f.write_text("candidate_id,answer\n777777,yes\n", encoding="utf-8")
        with pytest.raises(NotFoundError):
            load_gold_csv(p, f)
        with pytest.raises(InputError, match="cannot read"):
            load_gold_csv(p, tmp_path / "missing.csv")
