"""The HTML side of the web app through FastAPI's TestClient: invite flow, task form, thank-you page,
marketplace mode with completion codes, the blocked page, and the admin dashboard."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from synsetforge.crowd.drive import load_truth
from synsetforge.crowd.gold import gold_from_ground_truth
from synsetforge.crowd.seed import add_synthetic_candidates
from synsetforge.crowd.service import CrowdService
from synsetforge.crowd.settings import CrowdSettings
from synsetforge.store import Project, schema
from synsetforge.web.app import create_app

SQUARE = "n13878634"


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    with Project.init(tmp_path / "p") as p:
        p.add_synsets([SQUARE])
        add_synthetic_candidates(p, [SQUARE], 40, precision=0.4)
        gold_from_ground_truth(p, per_synset=8)
        yield p


def client_for(p: Project, **settings: object) -> tuple[TestClient, CrowdService]:
    app = create_app(
        p, CrowdSettings(**{"grid_size": 12, "gold_per_task": 2, "block_min_gold": 4, **settings})
    )  # type: ignore[arg-type]
    return TestClient(app), app.state.service


def form_of(html: str) -> tuple[str, str, list[int]]:
    action = re.search(r'<form id="task" method="post" action="(/work/\d+)"', html)
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert action is not None and csrf is not None
    ids = [int(x) for x in re.findall(r'name="yes" value="(\d+)"', html)]
    return action.group(1), csrf.group(1), ids


def votes(p: Project, worker_id: int | None = None) -> dict[int, bool]:
    q = select(schema.Vote.candidate_id, schema.Vote.label)
    if worker_id is not None:
        q = q.where(schema.Vote.worker_id == worker_id)
    with p.session() as s:
        return {int(c): bool(label) for c, label in s.execute(q)}


def test_invite_task_submit_done(project: Project) -> None:
    client, svc = client_for(project)
    new = svc.invite("ann")
    r = client.get(f"/invite/{new.token}", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/work"
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie
    page = client.get("/work")
    assert page.status_code == 200 and 'name="viewport"' in page.text
    assert "square" in page.text and "four equal sides" in page.text  # lemma and gloss
    assert 'id="ticked"' in page.text and "/static/task.js" in page.text  # progress line, shortcuts
    action, csrf, ids = form_of(page.text)
    assert len(ids) == 12
    assert all(client.get(f"/img/{i}").headers["content-type"] == "image/jpeg" for i in ids[:3])
    truth = load_truth(project)
    ticked = [i for i in ids if truth[i]]
    done = client.post(action, data={"csrf": csrf, "yes": [str(i) for i in ticked]}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"].startswith("/work/done/")
    thanks = client.get(done.headers["location"])
    assert "answers saved" in thanks.text and "completion code" not in thanks.text.lower()
    assert votes(project, new.worker_id) == {i: i in ticked for i in ids}
    # the images of a submitted task are no longer served to the worker
    assert client.get(f"/img/{ids[0]}").status_code == 404
    # submitting the same form again changes nothing
    again = client.post(action, data={"csrf": csrf, "yes": [str(ids[0])]})
    assert again.status_code == 409 and len(votes(project)) == 12


def test_examples_of_the_synset_are_shown_once_accepted(project: Project) -> None:
    client, svc = client_for(project, examples=2)
    # the live engine first brings its state up to date (a start-up rebuild re-decides images from their
    # votes); accept two images by hand after that, as a finished verification would have
    svc.start()
    with project.session() as s:
        some = list(
            s.scalars(
                select(schema.Candidate.id)
                .where(schema.Candidate.id.not_in(select(schema.Gold.candidate_id)))
                .limit(2)
            )
        )
        s.execute(
            update(schema.Candidate)
            .where(schema.Candidate.id.in_(some))
            .values(decision="accepted", confidence=0.999)
        )
    new = svc.invite()
    page = client.get(f"/invite/{new.token}", follow_redirects=True).text
    shown = [int(x) for x in re.findall(r'<img src="/img/(\d+)" alt="example">', page)]
    assert sorted(shown) == sorted(some)
    assert all(client.get(f"/img/{i}").status_code == 200 for i in shown)


def test_a_worker_who_fails_gold_sees_the_blocked_page(project: Project) -> None:
    client, svc = client_for(project, block_threshold=0.9, calibration="initial")  # all gold screens
    new = svc.invite("careless")
    page = client.get(f"/invite/{new.token}", follow_redirects=True).text
    action, csrf, ids = form_of(page)
    truth = load_truth(project)
    wrong = [str(i) for i in ids if not truth[i]]
    r = client.post(action, data={"csrf": csrf, "yes": wrong}, follow_redirects=True)
    assert r.status_code == 403 and 'id="blocked"' in r.text and "no longer take tasks" in r.text
    assert client.get("/work").status_code == 403
    with project.session() as s:
        assert s.get(schema.Worker, new.worker_id).status == "blocked"  # type: ignore[union-attr]


def test_marketplace_mturk_flow_shows_a_completion_code(project: Project) -> None:
    client, svc = client_for(project, block_threshold=0.0)
    key = svc.create_token("marketplace")
    preview = client.get(f"/m/{key}?assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE&hitId=H")
    assert preview.status_code == 200 and "Preview" in preview.text
    assert client.get("/m/not-a-key?workerId=A1").status_code == 403
    assert client.get(f"/m/{key}").status_code == 400  # no worker id
    url = f"/m/{key}?workerId=A1B2C3&assignmentId=3XYZ&hitId=H1&turkSubmitTo=https%3A%2F%2Fworkersandbox.mturk.com"
    page = client.get(url, follow_redirects=True)
    action, csrf, ids = form_of(page.text)
    done = client.post(action, data={"csrf": csrf, "yes": [str(ids[0])]}, follow_redirects=True)
    code = re.search(r'<strong class="code" id="code">([A-Z0-9]+)</strong>', done.text)
    assert code is not None
    assert 'action="https://workersandbox.mturk.com/mturk/externalSubmit"' in done.text
    assert 'name="assignmentId" value="3XYZ"' in done.text
    with project.session() as s:
        worker = s.scalars(select(schema.Worker).where(schema.Worker.kind == "marketplace")).one()
        task = s.scalars(select(schema.Task).where(schema.Task.worker_id == worker.id)).one()
    assert worker.external_id == "mturk:A1B2C3" and task.completion_code == code.group(1)
    # coming back through the link is the same worker (new session token), with their history
    client.cookies.clear()
    client.get(url)
    with project.session() as s:
        assert (
            s.scalar(
                select(func.count()).select_from(schema.Worker).where(schema.Worker.kind == "marketplace")
            )
            == 1
        )


def test_marketplace_prolific_flow(project: Project) -> None:
    client, svc = client_for(project, block_threshold=0.0)
    key = svc.create_token("marketplace")
    page = client.get(f"/m/{key}?PROLIFIC_PID=5f1a&STUDY_ID=s&SESSION_ID=x", follow_redirects=True)
    action, csrf, _ = form_of(page.text)
    done = client.post(action, data={"csrf": csrf}, follow_redirects=True).text
    assert "https://app.prolific.com/submissions/complete?cc=" in done


def test_admin_dashboard_pages(project: Project) -> None:
    client, svc = client_for(project)
    admin = svc.create_token("admin")
    worker = svc.invite("ann")
    view = svc.next_task(worker.worker_id)
    assert view is not None
    svc.submit(worker.worker_id, view.task_id, view.items[:3])
    login = re.search(r'name="csrf" value="([^"]+)"', client.get("/admin/login").text)
    assert login is not None
    assert client.post("/admin/login", data={"token": "wrong", "csrf": login.group(1)}).status_code == 403
    home = client.post("/admin/login", data={"token": admin, "csrf": login.group(1)}, follow_redirects=True)
    assert home.status_code == 200 and "Verification progress" in home.text and SQUARE in home.text
    assert re.search(r"<td>12</td>", home.text) or "votes" in home.text
    synset = client.get(f"/admin/synsets/{SQUARE}")
    assert synset.status_code == 200 and synset.text.count('class="thumb"') >= 12
    workers = client.get("/admin/workers")
    assert "ann" in workers.text
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', workers.text)
    assert csrf is not None
    invited = client.post("/admin/workers/invite", data={"csrf": csrf.group(1), "name": "bea"})
    link = re.search(r'<code id="invite-link">(http[^<]+/invite/[^<]+)</code>', invited.text)
    assert link is not None
    assert client.post(f"/admin/workers/{worker.worker_id}/block", data={"csrf": "forged"}).status_code == 403
    blocked = client.post(
        f"/admin/workers/{worker.worker_id}/block",
        data={"csrf": csrf.group(1), "reason": "test"},
        follow_redirects=True,
    )
    assert blocked.status_code == 200
    with project.session() as s:
        assert s.get(schema.Worker, worker.worker_id).status == "blocked"  # type: ignore[union-attr]
    progress = client.get("/api/v1/admin/progress", headers={"Authorization": f"Bearer {admin}"}).json()
    with project.session() as s:
        regular = s.scalar(
            select(func.count()).select_from(schema.Vote).where(schema.Vote.is_gold.is_(False))
        )
    assert progress[0]["synset_id"] == SQUARE and progress[0]["votes_excluded"] == regular > 0
    out = client.post("/admin/logout", data={"csrf": csrf.group(1)}, follow_redirects=False)
    assert out.status_code == 303
    client.cookies.clear()
    assert client.get("/admin", follow_redirects=False).status_code == 303
