"""The JSON API (`/api/v1`), described by OpenAPI at `/api/v1/openapi.json` (any valid token).

Worker endpoints never carry gold flags or answers: a task lists image ids and URLs in display order, and a
submission's reply says how many votes were recorded, nothing about right or wrong.
"""

from __future__ import annotations

import io
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Security
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from synsetforge.crowd import dashboard
from synsetforge.crowd.csvio import EXPORTS, export_csv
from synsetforge.crowd.service import TaskView
from synsetforge.crowd.workers import Principal
from synsetforge.errors import InputError
from synsetforge.web.auth import api_admin, api_worker, service_of
from synsetforge.web.edge import RowId, Text
from synsetforge.web.openapi import CROWD_TOKEN, CSVResponse, errors

router = APIRouter(prefix="/api/v1", dependencies=[Security(CROWD_TOKEN)], responses=errors(401, 403))
Worker = Annotated[Principal, Depends(api_worker)]
Admin = Annotated[Principal, Depends(api_admin)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SynsetOut(BaseModel):
    id: str
    name: str
    lemmas: list[str]
    gloss: str


class ImageOut(BaseModel):
    candidate_id: int
    image_url: str


class TaskOut(BaseModel):
    task_id: int
    synset: SynsetOut
    items: list[ImageOut]
    examples: list[ImageOut]
    expires_at: datetime
    tasks_done: int
    images_done: int


class TaskEnvelope(BaseModel):
    task: TaskOut | None
    message: str


class SubmitIn(Strict):
    """The ids of the images that show the synset; every other image of the task is a "no"."""

    yes: list[StrictInt] = Field(default_factory=list, max_length=1000)


class SubmitOut(BaseModel):
    task_id: int
    votes: int
    completion_code: str
    blocked: bool
    tasks_done: int


class MeOut(BaseModel):
    worker_id: int
    kind: str
    status: str
    blocked_reason: str | None
    tasks_done: int
    images_done: int


class InviteIn(Strict):
    name: Text | None = Field(default=None, max_length=200)
    kind: str = Field(default="invite", pattern="^(invite|expert)$")


class InviteOut(BaseModel):
    worker_id: int
    token: str
    invite_path: str


class BlockIn(Strict):
    reason: Text = Field(default="blocked by an admin", max_length=1000)


class ChangedOut(BaseModel):
    worker_id: int
    status: str
    decisions_changed: int


class AggregateIn(Strict):
    """Recompute every decision with `method`; nothing is written unless `write` is true."""

    method: str = Field(default="imagenet", pattern="^(imagenet|majority|dawid-skene)$")
    write: bool = False


def task_out(view: TaskView) -> TaskOut:
    def img(cid: int) -> ImageOut:
        return ImageOut(candidate_id=cid, image_url=f"/img/{cid}")

    return TaskOut(
        task_id=view.task_id,
        synset=SynsetOut(
            id=view.synset.id, name=view.synset.name, lemmas=list(view.synset.lemmas), gloss=view.synset.gloss
        ),
        items=[img(c) for c in view.items],
        examples=[img(c) for c in view.examples],
        expires_at=view.expires_at,
        tasks_done=view.tasks_done,
        images_done=view.images_done,
    )


@router.get("/task", response_model=TaskEnvelope, tags=["worker"])
def get_task(request: Request, who: Worker) -> TaskEnvelope:
    """The worker's open task, or a new one; `task` is null when nothing needs this worker right now."""
    assert who.worker_id is not None
    view = service_of(request).next_task(who.worker_id)
    if view is None:
        return TaskEnvelope(task=None, message="no images need checking by you right now")
    return TaskEnvelope(task=task_out(view), message="ok")


@router.post(
    "/tasks/{task_id}/submit",
    response_model=SubmitOut,
    tags=["worker"],
    responses=errors(400, 404, 409, 413, 422),
)
def submit_task(request: Request, task_id: RowId, body: SubmitIn, who: Worker) -> SubmitOut:
    """Record the answers of one task (all-or-nothing)."""
    assert who.worker_id is not None
    result = service_of(request).submit(who.worker_id, task_id, body.yes)
    return SubmitOut(**result.__dict__)


@router.get("/me", response_model=MeOut, tags=["worker"])
def me(request: Request, who: Worker) -> MeOut:
    assert who.worker_id is not None
    s = service_of(request).worker_summary(who.worker_id)
    return MeOut(
        worker_id=s.worker_id,
        kind=s.kind,
        status=s.status,
        blocked_reason=s.blocked_reason,
        tasks_done=s.tasks_done,
        images_done=s.images_done,
    )


@router.get("/admin/progress", tags=["admin"])
def admin_progress(request: Request, _: Admin) -> list[dict[str, Any]]:
    """Per-synset progress: decisions, votes, estimated (and, with ground truth, measured) precision."""
    svc = service_of(request)
    with svc.read() as s:
        return [row.as_dict() for row in dashboard.progress(s, svc.tables)]


@router.get("/admin/synsets/{synset_id:path}/images", tags=["admin"], responses=errors(404, 422))
def admin_images(request: Request, synset_id: str, _: Admin) -> list[dict[str, Any]]:
    """Votes per image of one synset (gold answers and ground truth included: admins only)."""
    svc = service_of(request)
    with svc.read() as s:
        return [row.__dict__ for row in dashboard.synset_images(s, synset_id, svc.settings)]


@router.get("/admin/decisions", tags=["admin"])
def admin_decisions(request: Request, _: Admin) -> dict[str, Any]:
    """Decision counts, the recorded method and settings that produced them, and the live rule."""
    svc = service_of(request)
    with svc.read() as s:
        return dashboard.decision_status(s, svc.settings).as_dict()


@router.post("/admin/aggregate", tags=["admin"], responses=errors(400, 413, 422))
def admin_aggregate(request: Request, body: AggregateIn, _: Admin) -> dict[str, Any]:
    """What recomputing every decision with `method` changes (counts before and after, per synset);
    with `write: true` the decisions are replaced and the method recorded (`crowd aggregate --write`)."""
    from synsetforge.crowd.decisions import aggregate

    return aggregate(service_of(request), body.method, write=body.write).as_dict()


@router.get("/admin/workers", tags=["admin"])
def admin_workers(request: Request, _: Admin) -> list[dict[str, Any]]:
    with service_of(request).read() as s:
        return [row.as_dict() for row in dashboard.worker_rows(s)]


@router.post(
    "/admin/workers",
    response_model=InviteOut,
    status_code=201,
    tags=["admin"],
    responses=errors(400, 413, 422),
)
def admin_invite(request: Request, body: InviteIn, _: Admin) -> InviteOut:
    """A new in-house worker; the token (and the invite link made from it) is returned once."""
    new = service_of(request).invite(body.name, body.kind)
    return InviteOut(worker_id=new.worker_id, token=new.token, invite_path=f"/invite/{new.token}")


@router.post(
    "/admin/workers/{worker_id}/block",
    response_model=ChangedOut,
    tags=["admin"],
    responses=errors(400, 404, 413, 422),
)
def admin_block(request: Request, worker_id: RowId, body: BlockIn, _: Admin) -> ChangedOut:
    changed = service_of(request).block(worker_id, body.reason)
    return ChangedOut(worker_id=worker_id, status="blocked", decisions_changed=changed)


@router.post(
    "/admin/workers/{worker_id}/unblock",
    response_model=ChangedOut,
    tags=["admin"],
    responses=errors(404, 422),
)
def admin_unblock(request: Request, worker_id: RowId, _: Admin) -> ChangedOut:
    changed = service_of(request).unblock(worker_id)
    return ChangedOut(worker_id=worker_id, status="active", decisions_changed=changed)


@router.get("/admin/export/{what}.csv", tags=["admin"], response_class=CSVResponse, responses=errors(422))
def admin_export(
    request: Request,
    what: Annotated[str, Path(pattern=f"^({'|'.join(EXPORTS)})$", description="Which table to export.")],
    _: Admin,
) -> Response:
    """CSV export: votes, decisions or tasks (with completion codes)."""
    if what not in EXPORTS:
        raise InputError(f"unknown export {what!r}; choose one of {list(EXPORTS)}")
    buf = io.StringIO()
    export_csv(service_of(request).project, buf, what)
    return Response(
        buf.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{what}.csv"'},
    )
