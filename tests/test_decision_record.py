"""Recomputing decisions is explicit (issue 12, item 3): `crowd aggregate` shows what would change and writes
only when asked; the method and settings behind the current decisions are recorded, by `--write` and by live
serving, and named by the admin dashboard, the admin API, `crowd status` and new releases."""

from __future__ import annotations

import random
from pathlib import Path

import typer
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from synsetforge.crowd.cli import app as crowd_app
from synsetforge.crowd.consensus import playable
from synsetforge.crowd.decisions import STATES, aggregate
from synsetforge.crowd.record import BY_AGGREGATE, BY_LIVE, method_settings, read_record
from synsetforge.crowd.seed import add_synthetic_candidates
from synsetforge.crowd.service import CrowdService
from synsetforge.releases.release import create_release
from synsetforge.store import Project, schema
from synsetforge.web.app import create_app
from synsetforge.web.auth import ADMIN_COOKIE

SQUARE, TRIANGLE = "n13878634", "n13879320"


def _project(root: Path, db_url: str) -> Project:
    """Two synsets of synthetic candidates with 10 noisy votes each (no decisions yet)."""
    p = Project.init(root, db=db_url)
    p.add_synsets([SQUARE, TRIANGLE])
    add_synthetic_candidates(p, [SQUARE, TRIANGLE], 40, precision=0.4, render=False)
    rng = random.Random(5)
    with p.session() as s:
        workers = [schema.Worker(kind="invite", name=f"w{k}") for k in range(10)]
        s.add_all(workers)
        s.flush()
        truth = dict(s.execute(select(schema.GroundTruth.candidate_id, schema.GroundTruth.positive)).all())
        for cid in s.scalars(select(schema.Candidate.id).order_by(schema.Candidate.id)):
            for w in workers:
                right = rng.random() < 0.8
                s.add(schema.Vote(candidate_id=cid, worker_id=w.id, label=bool(truth[cid]) == right))
    return p


def _decisions(p: Project) -> dict[int, tuple[str | None, float | None]]:
    with p.session() as s:
        return {int(c): (d, conf) for c, d, conf in s.execute(
            select(schema.Candidate.id, schema.Candidate.decision, schema.Candidate.confidence)
        )}  # fmt: skip


def _counts(p: Project) -> dict[str, int]:
    out = dict.fromkeys(STATES, 0)
    with p.session() as s:
        for d, n in s.execute(
            select(schema.Candidate.decision, func.count())
            .where(playable())
            .group_by(schema.Candidate.decision)
        ):
            out[d or "open"] += int(n)
    return out


def test_aggregate_previews_writes_on_request_and_records_the_method(tmp_path: Path, db_url: str) -> None:
    with _project(tmp_path / "p", db_url) as p:
        svc = CrowdService(p)
        assert svc.refresh() > 0  # live serving decides...
        with p.session() as s:
            live = read_record(s)
        assert live is not None and live.method == "imagenet" and live.by == BY_LIVE  # ...and says so
        assert live.settings == method_settings("imagenet", svc.settings)
        before = _decisions(p)

        preview = aggregate(svc, "majority")
        assert not preview.written and preview.record is None
        assert _decisions(p) == before  # a dry run writes nothing
        with p.session() as s:
            assert read_record(s) == live
        assert preview.before == _counts(p) and preview.after != preview.before
        assert preview.changed > 0 and sum(ch.changed for ch in preview.per_synset) == preview.changed
        assert {ch.synset_id for ch in preview.per_synset} <= {SQUARE, TRIANGLE}
        for k in STATES:  # the per-synset rows (synsets with a change) account for every moved count
            moved = sum(ch.after[k] - ch.before[k] for ch in preview.per_synset)
            assert moved == preview.after[k] - preview.before[k]
        assert preview.previous == live
        text = "\n".join(preview.lines())
        assert "would change" in text and "dry run: nothing written" in text and "live serving" in text

        written = aggregate(svc, "majority", write=True)
        assert written.written and (written.after, written.changed) == (preview.after, preview.changed)
        assert _counts(p) == preview.after  # the preview said exactly what the write did
        changed = sum(1 for cid, d in _decisions(p).items() if d[0] != before[cid][0])
        assert changed == preview.changed
        with p.session() as s:
            rec = read_record(s)
        assert rec is not None and (rec.method, rec.by) == ("majority", BY_AGGREGATE)
        assert rec.settings == method_settings("majority", svc.settings) and rec == written.record
        assert aggregate(svc, "majority").changed == 0  # nothing left to change

        # a release records the method and settings that made its decisions
        rel = create_release(p, "v1", phash_distance=-1)
        assert rel.method == "majority"
        assert rel.params["aggregation"]["params"]["by"] == BY_AGGREGATE
        assert rel.params["aggregation"]["params"]["settings"] == rec.settings

        # the admin dashboard and the admin API name it
        token = svc.create_token("admin")
        with TestClient(create_app(p)) as client:
            client.cookies.set(ADMIN_COOKIE, token)
            html = client.get("/admin").text
            assert 'id="decisions"' in html and "Decisions by majority" in html and BY_AGGREGATE in html
            synset_page = client.get(f"/admin/synsets/{SQUARE}").text
            assert "Decisions by majority" in synset_page
            auth = {"Authorization": f"Bearer {token}"}
            got = client.get("/api/v1/admin/decisions", headers=auth).json()
            assert got["record"]["method"] == "majority" and got["counts"] == _counts(p)
            # the API previews and writes the same way
            snapshot = _decisions(p)
            dry = client.post("/api/v1/admin/aggregate", json={"method": "dawid-skene"}, headers=auth)
            assert dry.status_code == 200 and dry.json()["written"] is False
            assert _decisions(p) == snapshot
            assert (
                client.post("/api/v1/admin/aggregate", json={"method": "vote"}, headers=auth).status_code
                == 422
            )
            done = client.post(
                "/api/v1/admin/aggregate", json={"method": "dawid-skene", "write": True}, headers=auth
            ).json()
            assert done["written"] is True and done["after"] == _counts(p) == dry.json()["after"]
            assert (
                client.get("/api/v1/admin/decisions", headers=auth).json()["record"]["method"]
                == "dawid-skene"
            )

            # live serving re-deciding images records itself, over the batch run it partly replaced
            assert svc.refresh() > 0
            html = client.get("/admin").text
            assert "Decisions by imagenet" in html and "over earlier decisions by dawid-skene" in html
        with p.session() as s:
            now = read_record(s)
        assert now is not None and now.by == BY_LIVE and now.previous is not None
        assert now.previous.method == "dawid-skene"


def test_crowd_aggregate_cli_is_a_dry_run_without_write(tmp_path: Path, db_url: str) -> None:
    root = tmp_path / "p"
    with _project(root, db_url) as p:
        CrowdService(p).refresh()
        before = _decisions(p)
    app = typer.Typer(pretty_exceptions_enable=False)
    app.add_typer(crowd_app, name="crowd")
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(app, list(args), catch_exceptions=False, env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        return result.output

    out = run("crowd", "aggregate", "--method", "majority", "-p", str(root))
    with Project.open(root) as p:
        assert _decisions(p) == before  # without --write nothing is written
    assert "would change" in out and "per synset (before -> after)" in out and "dry run" in out
    assert SQUARE in out or TRIANGLE in out
    assert "decisions by: imagenet" in run("crowd", "status", "-p", str(root))
    out = run("crowd", "aggregate", "--method", "majority", "--write", "-p", str(root))
    assert "written; decisions now: majority" in out
    with Project.open(root) as p:
        assert _decisions(p) != before
    status = run("crowd", "status", "-p", str(root))
    assert (
        "decisions by: majority" in status and BY_AGGREGATE in status and "live rule:    imagenet" in status
    )
