"""The box task JSON API over HTTP (FastAPI TestClient), on SQLite and PostgreSQL: a draw, a quality and a
coverage task end to end, every refused input (4xx and nothing stored), tokens and ownership, no gold flag
in anything a worker receives, the admin status route and the CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update
from typer.testing import CliRunner

from _boxes_fixtures import build_box_project, truthful
from synsetforge.boxes.gold import gold_from_ground_truth
from synsetforge.boxes.service import BoxItemView, BoxTaskView
from synsetforge.boxes.settings import BoxSettings
from synsetforge.cli import app as cli_app
from synsetforge.crowd.service import SynsetView
from synsetforge.crowd.settings import CrowdSettings
from synsetforge.store import Project, schema
from synsetforge.web.app import create_app


@dataclass
class Env:
    project: Project
    client: TestClient
    truth: dict[int, list[list[int]]]
    admin: str
    tokens: list[str]

    def get(self, token: str, kind: str | None = None) -> Any:
        params = {"kind": kind} if kind else {}
        r = self.client.get("/api/v1/box-task", params=params, headers=auth(token))
        assert r.status_code == 200, r.text
        return r.json()["task"]

    def post(self, token: str, task_id: int, body: Any) -> Any:
        data = body if isinstance(body, str | bytes) else json.dumps(body)
        return self.client.post(
            f"/api/v1/box-task/{task_id}",
            content=data,
            headers={**auth(token), "content-type": "application/json"},
        )


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def env(tmp_path: Path, db_url: str) -> Iterator[Env]:
    with Project.init(tmp_path / "p", db=db_url) as p:
        truth = build_box_project(p, per_synset=3)
        gold_from_ground_truth(p, per_synset=1, seed=3)
        app = create_app(p, CrowdSettings(block_min_gold=50, max_body_bytes=8192), seed=4)
        app.state.boxes.settings = BoxSettings(enroll_every_s=0, draw_gold_rate=0, draw_probation_gold=0)
        svc = app.state.service
        admin = svc.create_token("admin")
        tokens = [svc.invite(f"w{i}").token for i in range(5)]
        with TestClient(app) as client:
            yield Env(p, client, truth, admin, tokens)


def stored(p: Project) -> tuple[int, int, int]:
    with p.session() as s:
        return (
            int(
                s.scalar(
                    select(func.count()).select_from(schema.BoxRow).where(schema.BoxRow.origin != "gold")
                )
                or 0
            ),
            int(s.scalar(select(func.count()).select_from(schema.BoxVote)) or 0),
            int(s.scalar(select(func.count()).where(schema.Task.status == "submitted")) or 0),
        )


def view_of(task: dict[str, Any]) -> BoxTaskView:
    items = tuple(BoxItemView(**item) for item in task["items"])
    syn = task["synset"]
    return BoxTaskView(task["id"], task["kind"], SynsetView(syn["id"], syn["name"], tuple(syn["lemmas"]), syn["gloss"]),
                       task["expires_at"], items)  # type: ignore[arg-type]  # fmt: skip


def test_draw_quality_and_coverage_over_http(env: Env) -> None:
    ann, *others = env.tokens
    task = env.get(ann, "draw")
    assert task["kind"] == "draw" and len(task["items"]) == 1
    item = task["items"][0]
    assert set(item) == {"image_id", "url", "width", "height", "box_id", "box", "accepted"}
    assert item["url"] == f"/img/{item['image_id']}" and item["accepted"] == []
    img = env.client.get(item["url"], headers=auth(ann))
    assert img.status_code == 200 and img.content
    truth = env.truth[item["image_id"]]
    r = env.post(ann, task["id"], {"box": truth[0]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["kind"] == "draw" and body["task_id"] == task["id"] and len(body["completion_code"]) == 10
    assert body["blocked"] is False and body["tasks_done"] == 1
    with env.project.session() as s:
        box = s.scalars(select(schema.BoxRow).where(schema.BoxRow.origin == "crowd")).one()
        assert [box.x1, box.y1, box.x2, box.y2] == truth[0] and box.status == "proposed"
    # verifiers accept it; a coverage task then shows it as accepted
    for tok in others:
        q = env.get(tok, "quality")
        assert q is not None and q["kind"] == "quality"
        mine = [it for it in q["items"] if it["box_id"] == box.id]
        assert mine and mine[0]["box"] == truth[0]
        assert env.post(tok, q["id"], truthful(view_of(q), env.truth)).status_code == 200
        with env.project.session() as s:
            if s.get(schema.BoxRow, box.id).status == "good":  # type: ignore[union-attr]
                break
    with env.project.session() as s:
        assert s.get(schema.BoxRow, box.id).status == "good"  # type: ignore[union-attr]
    cov = None
    for tok in env.tokens:
        cov = env.get(tok, "coverage")
        if cov is not None:
            covering = tok
            break
    assert cov is not None
    shown = {it["image_id"]: it["accepted"] for it in cov["items"]}
    assert shown[item["image_id"]] == [truth[0]]
    r = env.post(covering, cov["id"], truthful(view_of(cov), env.truth))
    assert r.status_code == 200 and r.json()["kind"] == "coverage"
    status = env.client.get("/api/v1/admin/boxes/status", headers=auth(env.admin))
    assert status.status_code == 200
    rows = {row["synset_id"]: row for row in status.json()}
    assert sum(row["boxes_accepted"] for row in rows.values()) == 1
    assert sum(row["tasks"]["draw"] for row in rows.values()) == 1
    assert env.client.get("/api/v1/admin/boxes/status", headers=auth(ann)).status_code == 403


def test_bad_input_is_refused_and_stores_nothing(env: Env) -> None:
    ann, bob = env.tokens[:2]
    task = env.get(ann, "draw")
    w, h = task["items"][0]["width"], task["items"][0]["height"]
    refused: list[tuple[Any, int]] = [
        ({"box": [10, 10, 5, 20]}, 422),  # negative size
        ({"box": [10, 10, 10, 20]}, 422),  # zero size
        ({"box": [-3, 0, 10, 10]}, 422),  # outside the image
        ({"box": [0, 0, w, 10]}, 422),
        ({"box": [0, 0, 10, h + 100]}, 422),
        ('{"box": [NaN, 0, 10, 10]}', 422),  # JSON NaN literal
        ('{"box": [0, 0, Infinity, 10]}', 422),
        ('{"box": [0, 0, 1e999, 10]}', 422),
        ({"box": ["1", 0, 10, 10]}, 422),
        ({"box": [0, 0, 10, 10, 12]}, 422),
        ({"box": [[0, 0, 10, 10]] * 3000}, 413),  # thousands of boxes: over the body limit
        ({"box": [0, 0, 10, 10], "extra": 1}, 422),
        ({"none_left": False}, 422),
        ({"covered": [task["items"][0]["image_id"]]}, 422),  # another kind's answer
        ({"good": list(range(1, 1200))}, 422),  # too many ids for the schema
        ("not json", 422),
    ]
    for body, status in refused:
        r = env.post(ann, task["id"], body)
        assert r.status_code == status, (body if len(str(body)) < 80 else str(body)[:80], r.text)
    assert env.post(bob, task["id"], {"none_left": True}).status_code == 404  # not bob's task
    assert env.post(ann, 2**31 - 1, {"none_left": True}).status_code == 404
    assert env.post(ann, 0, {"none_left": True}).status_code == 422
    assert env.client.post(f"/api/v1/box-task/{task['id']}", json={"none_left": True}).status_code == 401
    assert env.post(env.admin, task["id"], {"none_left": True}).status_code == 403
    assert env.client.get("/api/v1/box-task", params={"kind": "paint"}, headers=auth(ann)).status_code == 422
    assert stored(env.project) == (0, 0, 0)
    # still open and answerable; then a second answer is a conflict
    good_box = env.truth[task["items"][0]["image_id"]][0]
    assert env.post(ann, task["id"], {"box": good_box}).status_code == 200
    assert env.post(ann, task["id"], {"box": good_box}).status_code == 409
    # a verification task refuses ids that are not in it, and too many ids
    q = env.get(bob, "quality")
    assert q is not None
    before = stored(env.project)
    foreign = max(it["box_id"] for it in q["items"]) + 1000
    for body in ({"good": [foreign]}, {"good": list(range(1, 500))}, {"good": [True]}, {"covered": []}):
        assert env.post(bob, q["id"], body).status_code == 422, body
    assert stored(env.project) == before


def test_workers_never_see_gold_flags_or_others_proposed_boxes(env: Env) -> None:
    ann, bob, cat = env.tokens[:3]
    with env.project.session() as s:
        gold_ids = set(s.scalars(select(schema.BoxImage.candidate_id).where(schema.BoxImage.stage == "gold")))
    first = env.get(ann, "draw")
    drawn = env.truth[first["items"][0]["image_id"]][0]
    env.post(ann, first["id"], {"box": drawn})
    # bob's draw task is another image and shows no proposed box of ann's
    second = env.get(bob, "draw")
    assert second["items"][0]["image_id"] != first["items"][0]["image_id"]
    assert second["items"][0]["accepted"] == []
    q = env.get(cat, "quality")
    raw = json.dumps(q).lower()
    assert "gold" not in raw and "is_gold" not in raw and "worker" not in raw
    assert any(it["image_id"] in gold_ids for it in q["items"])  # gold is mixed in, unmarked
    assert all(
        set(it) == {"image_id", "url", "width", "height", "box_id", "box", "accepted"} for it in q["items"]
    )
    # another worker cannot fetch the images of cat's task
    other = next(it["image_id"] for it in q["items"] if it["image_id"] not in gold_ids)
    assert env.client.get(f"/img/{other}", headers=auth(env.tokens[4])).status_code == 404


def test_blocked_worker_gets_403(env: Env) -> None:
    ann = env.tokens[0]
    with env.project.session() as s:
        wid = s.scalars(select(schema.Worker.id).where(schema.Worker.name == "w0")).one()
        s.execute(
            update(schema.Worker)
            .where(schema.Worker.id == wid)
            .values(status="blocked", blocked_reason="test")
        )
    r = env.client.get("/api/v1/box-task", headers=auth(ann))
    assert r.status_code == 403


def test_cli_gold_and_status(tmp_path: Path) -> None:
    with Project.init(tmp_path / "p") as p:
        truth = build_box_project(p, per_synset=3)
        root = p.root
    runner = CliRunner()
    r = runner.invoke(cli_app, ["boxes", "status", "-p", str(root)])
    assert r.exit_code == 0, r.output
    assert f"0 of {len(truth)} images covered" in r.output
    r = runner.invoke(cli_app, ["boxes", "gold", "--per-synset", "2", "-p", str(root)])
    assert r.exit_code == 0, r.output
    assert "box gold: 4 images; draw 4" in r.output
    r = runner.invoke(cli_app, ["boxes", "gold", "--per-synset", "0", "-p", str(root)])
    assert r.exit_code != 0 and "per_synset must be >= 1" in str(r.exception)
    r = runner.invoke(cli_app, ["boxes", "status", "-p", str(root)])
    assert f"0 of {len(truth) - 4} images covered" in r.output


def test_an_open_box_task_is_never_served_or_submitted_as_a_yes_no_task(env: Env) -> None:
    """One open task per worker, of any kind: /api/v1/task must neither show a box task as an image grid nor
    take yes/no answers for it (before, it stored votes and closed the box task)."""
    ann = env.tokens[0]
    task = env.get(ann, "draw")
    assert task is not None
    before = stored(env.project)
    with env.project.session() as s:
        votes_before = int(s.scalar(select(func.count()).select_from(schema.Vote)) or 0)
    r = env.client.get("/api/v1/task", headers=auth(ann))
    assert r.status_code == 409, r.text
    assert "box task" in r.json()["detail"]
    item = task["items"][0]["image_id"]
    r = env.client.post(f"/api/v1/tasks/{task['id']}/submit", json={"yes": [item]}, headers=auth(ann))
    assert r.status_code in (404, 422), r.text
    with env.project.session() as s:
        assert int(s.scalar(select(func.count()).select_from(schema.Vote)) or 0) == votes_before
        assert s.get(schema.Task, task["id"]).status == "open"  # type: ignore[union-attr]
    assert stored(env.project) == before
    # the box task is still the worker's and can be done
    assert env.post(ann, task["id"], truthful(view_of(task), env.truth)).status_code == 200
