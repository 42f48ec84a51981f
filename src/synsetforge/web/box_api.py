"""Box tasks in the JSON API: draw, quality and coverage tasks for workers, box status for admins.

Same tokens and rules as the yes/no API (`web.api`): a worker bearer token, one open task at a time, no
gold flag in any answer. Coordinates are pixels of the image as served at the item's `url` (inclusive
corners, 0..width-1 and 0..height-1); the service converts them to original pixels. Every refusal stores
nothing: 422 for bad numbers (NaN, infinities, zero or negative size, outside the image), ids that are not
in the task or too many of them, 404 for a task that is not this worker's, 409 for a closed task, 403 for
a blocked worker.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Security
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

from synsetforge.boxes.service import BoxService, BoxTaskView
from synsetforge.crowd.workers import Principal
from synsetforge.web.auth import api_admin, api_worker
from synsetforge.web.edge import RowId
from synsetforge.web.openapi import CROWD_TOKEN, errors

router = APIRouter(prefix="/api/v1", dependencies=[Security(CROWD_TOKEN)], responses=errors(401, 403))
Worker = Annotated[Principal, Depends(api_worker)]
Admin = Annotated[Principal, Depends(api_admin)]
MAX_IDS = 1000  # the schema's cap; the service's `boxes_max_items` is usually lower

Coordinate = Annotated[float, Field(strict=True, allow_inf_nan=False)]


def boxes_of(request: Request) -> BoxService:
    svc: BoxService = request.app.state.boxes
    return svc


class SynsetOut(BaseModel):
    id: str
    name: str
    lemmas: list[str]
    gloss: str


class BoxItemOut(BaseModel):
    image_id: int
    url: str
    width: int
    height: int
    box_id: int | None
    box: list[float] | None
    accepted: list[list[float]]


class BoxTaskOut(BaseModel):
    id: int
    kind: str
    synset: SynsetOut
    expires_at: datetime
    items: list[BoxItemOut]


class BoxTaskEnvelope(BaseModel):
    task: BoxTaskOut | None


class BoxAnswerIn(BaseModel):
    """draw: `box` or `none_left: true`; quality: `good` (box ids); coverage: `covered` (image ids)."""

    model_config = ConfigDict(extra="forbid")

    box: list[Coordinate] | None = Field(default=None, min_length=4, max_length=4)
    none_left: StrictBool | None = None
    good: list[StrictInt] | None = Field(default=None, max_length=MAX_IDS)
    covered: list[StrictInt] | None = Field(default=None, max_length=MAX_IDS)


class BoxSubmitOut(BaseModel):
    task_id: int
    kind: str
    completion_code: str
    blocked: bool
    tasks_done: int


def box_task_out(view: BoxTaskView) -> BoxTaskOut:
    return BoxTaskOut(
        id=view.id,
        kind=view.kind,
        synset=SynsetOut(
            id=view.synset.id, name=view.synset.name, lemmas=list(view.synset.lemmas), gloss=view.synset.gloss
        ),
        expires_at=view.expires_at,
        items=[BoxItemOut(**item.__dict__) for item in view.items],
    )


@router.get("/box-task", response_model=BoxTaskEnvelope, tags=["worker"], responses=errors(409, 422))
def get_box_task(
    request: Request,
    who: Worker,
    kind: Annotated[str | None, Query(pattern="^(draw|quality|coverage)$")] = None,
) -> BoxTaskEnvelope:
    """The worker's open box task, or a new one of `kind` (default: the most needed); `task` is null when
    no box work suits this worker now."""
    assert who.worker_id is not None
    view = boxes_of(request).next_task(who.worker_id, kind)
    return BoxTaskEnvelope(task=box_task_out(view) if view is not None else None)


@router.post(
    "/box-task/{task_id}",
    response_model=BoxSubmitOut,
    tags=["worker"],
    responses=errors(400, 404, 409, 413, 422),
)
def submit_box_task(request: Request, task_id: RowId, body: BoxAnswerIn, who: Worker) -> BoxSubmitOut:
    """Record one box task's answer (all-or-nothing)."""
    assert who.worker_id is not None
    answer = body.model_dump(exclude_none=True)
    result = boxes_of(request).submit(who.worker_id, task_id, answer)
    return BoxSubmitOut(**result.__dict__)


@router.get("/admin/boxes/status", tags=["admin"])
def admin_box_status(request: Request, _: Admin) -> list[dict[str, Any]]:
    """Per synset: images covered and in each box stage, boxes by decision, tasks by kind, votes per
    decided box."""
    return [row.as_dict() for row in boxes_of(request).status()]
