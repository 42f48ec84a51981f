"""Worker pages for the three box tasks: draw one box, tick good boxes (quality), tick covered images.

Same sign-in (the worker cookie), blocking, expiry and CSRF rules as the yes/no pages in `web.pages`: every
form carries a token bound to the worker's secret and the task, and the origin check refuses cross-site
posts before any route runs. Pages are plain HTML forms (the draw page has number fields for the box);
`static/boxes.js` adds drawing with a mouse, pen or finger and keyboard nudging of the edges, and the two
grids reuse `static/task.js` for their keyboard shortcuts. Each page shows only what the task's view holds
(`BoxService.next_task`): the class, the image(s), the box to judge or the boxes already accepted; never a
gold flag or another worker's proposed box. Box coordinates in forms are pixels of the image as served.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from synsetforge.boxes.service import BoxItemView, BoxService, OtherTaskOpenError
from synsetforge.crowd.errors import TaskClosedError, WorkerBlockedError
from synsetforge.crowd.tokens import csrf_ok, csrf_token
from synsetforge.errors import NotFoundError, SynsetforgeError
from synsetforge.web import pages
from synsetforge.web.auth import PLATFORM_COOKIE, WORKER_COOKIE, service_of
from synsetforge.web.edge import RowId
from synsetforge.web.pages import _platform, _render, _worker_or_message, blocked_page, message, set_cookie

router = APIRouter(include_in_schema=False)
KINDS = ("draw", "quality", "coverage")
MAX_TICKS = 1000  # more ticks than any grid has: refused before the service is asked
_ID = re.compile(r"^\d{1,18}$")
_NUMBER = re.compile(r"^\d{1,7}(\.\d{1,6})?$")  # plain decimals: no sign, exponent, NaN or infinity
_CORNERS = ("x1", "y1", "x2", "y2")
_GRID_TEXT: dict[str, dict[str, Any]] = {
    "quality": {
        "heading_before": "Tick every box that is tight around one",
        "heading_after": "",
        "hint": "A good box touches the object's outermost visible edges on all four sides and holds exactly "
        "one object of this class. Leave loose, cut-off, wrong-object and several-object boxes unticked.",
        "field": "good",
        "tick_label": "box is tight and on one instance",
    },
    "coverage": {
        "heading_before": "Tick every image where each",
        "heading_after": " has a box",
        "hint": "Blue boxes are the boxes drawn so far. Tick an image only when no object of this class is "
        "left without a box (an image with none of them at all counts as done).",
        "field": "covered",
        "tick_label": "every instance has a box",
    },
}


def boxes_of(request: Request) -> BoxService:
    """The project's BoxService, set up by `create_app`."""
    svc: BoxService = request.app.state.boxes
    return svc


def crop_view(item: BoxItemView, margin: float = 0.5, least: float = 24.0) -> str:
    """The SVG viewBox of a quality tile: the judged box with `margin` of its size around it (at least
    `least` pixels) inside the image, so a small box is shown large enough to judge its fit."""
    if item.box is None:
        return f"0 0 {item.width} {item.height}"
    x1, y1, x2, y2 = item.box
    mx = max((x2 - x1 + 1) * margin, least)
    my = max((y2 - y1 + 1) * margin, least)
    left, top = max(0.0, x1 - mx), max(0.0, y1 - my)
    right, bottom = min(float(item.width), x2 + 1 + mx), min(float(item.height), y2 + 1 + my)
    return " ".join(
        f"{v:g}" for v in (round(left, 2), round(top, 2), round(right - left, 2), round(bottom - top, 2))
    )


def _kind_or_none(raw: str | None) -> str | None:
    return raw if raw in KINDS else None


@router.get("/boxes/invite/{token}")
def invite(request: Request, token: str, kind: str | None = None) -> Response:
    """An invite link straight to box work, optionally of one kind (`/boxes/invite/<token>?kind=draw`):
    `/invite/<token>` leads to the yes/no tasks, and a worker holding an open yes/no task gets no box task
    until it is submitted or expires."""
    who = service_of(request).principal(token)
    if who is None or who.role != "worker":
        return message(
            request,
            403,
            "Invite not valid",
            "This invite link is not valid. Ask the project team for a new one.",
        )
    want = _kind_or_none(kind)
    response = RedirectResponse(f"/boxes/work?kind={want}" if want else "/boxes/work", status_code=303)
    set_cookie(response, request, WORKER_COOKIE, token)
    response.delete_cookie(PLATFORM_COOKIE, path="/")
    return response


@router.get("/boxes/m/{key}")
def marketplace(request: Request, key: str, kind: str | None = None) -> Response:
    """A marketplace study link for box work (`/boxes/m/<key>?workerId=..` and the rest as `/m/<key>`):
    the same sign-in and platform cookie, then box tasks; each task ends on a page with its completion
    code."""
    response = pages.marketplace(request, key)
    if isinstance(response, RedirectResponse) and response.headers.get("location") == "/work":
        want = _kind_or_none(kind)
        response.headers["location"] = f"/boxes/work?kind={want}" if want else "/boxes/work"
    return response


@router.get("/boxes/work", response_class=HTMLResponse)
def work(request: Request, kind: str | None = None, saved: str | None = None) -> HTMLResponse:
    who = _worker_or_message(request)
    if isinstance(who, HTMLResponse):
        return who
    assert who.worker_id is not None
    if kind not in (None, "", *KINDS):
        return message(request, 400, "No such kind of task", "Box tasks are draw, quality or coverage.")
    want = kind or None
    svc = service_of(request)
    if who.status != "active":
        return blocked_page(request, svc.worker_summary(who.worker_id).blocked_reason)
    try:
        view = boxes_of(request).next_task(who.worker_id, want)
    except WorkerBlockedError as exc:
        return blocked_page(request, str(exc))
    except OtherTaskOpenError:
        return message(
            request,
            409,
            "Finish your image task first",
            "You have an open image-checking task; submit it (or let it expire) before taking box tasks.",
            ("/work", "Back to the image task"),
        )
    summary = svc.worker_summary(who.worker_id)
    if view is None:
        return _render(
            request,
            "box_nowork.html",
            kind=want,
            saved=bool(saved),
            summary=summary,
            marketplace=who.kind == "marketplace",
        )
    common: dict[str, Any] = {
        "task": view,
        "want": want or "",
        "saved": bool(saved),
        "tasks_done": summary.tasks_done,
        "csrf": csrf_token(who.token, f"box:{view.id}"),
        "seconds_left": max(0, int((view.expires_at - datetime.now(UTC)).total_seconds())),
    }
    if view.kind == "draw":
        return _render(request, "box_draw.html", **common)
    text = _GRID_TEXT[view.kind]
    heading = f"{text['heading_before']} {view.synset.name}{text['heading_after']}"
    return _render(request, "box_grid.html", heading_text=heading, crop=crop_view, **text, **common)


class FormError(ValueError):
    """A malformed box form (the service is never asked)."""


def answer_of(form: Any) -> dict[str, Any]:
    """The JSON answer of `BoxService.submit` from a posted form (FormError if malformed)."""
    kind = str(form.get("kind") or "")
    if kind == "draw":
        corners = [str(form.get(n) or "").strip() for n in _CORNERS]
        if form.get("none_left") is not None:
            if str(form.get("none_left")) != "1" or any(corners):
                raise FormError("'none left' comes without a box")
            return {"none_left": True}
        if not all(_NUMBER.match(v) for v in corners):
            raise FormError("the box needs four plain numbers x1 y1 x2 y2")
        numbers = [float(v) for v in corners]
        return {"box": [int(v) if v.is_integer() else v for v in numbers]}
    if kind in _GRID_TEXT:
        field = _GRID_TEXT[kind]["field"]
        raw = [str(v) for v in form.getlist(field)]
        if len(raw) > MAX_TICKS or not all(_ID.match(v) for v in raw):
            raise FormError("the ticks were malformed")
        return {field: [int(v) for v in raw]}
    raise FormError("unknown kind of box task")


@router.post("/boxes/work/{task_id}")
async def submit(request: Request, task_id: RowId) -> Response:
    who = await run_in_threadpool(_worker_or_message, request)
    if isinstance(who, HTMLResponse):
        return who
    assert who.worker_id is not None
    try:
        form = await request.form(max_files=0, max_fields=MAX_TICKS + 10)
    except Exception:  # malformed multipart / too many fields: starlette raises several kinds
        return message(
            request, 400, "Answer not understood", "The form could not be read; please reload the task."
        )
    again = ("/boxes/work", "Back to the task")
    if not csrf_ok(who.token, f"box:{task_id}", str(form.get("csrf") or "")):
        return message(
            request, 403, "Form expired", "This form is not valid any more; please reload the task.", again
        )
    try:
        answer = answer_of(form)
    except FormError as exc:
        return message(request, 400, "Answer not understood", f"{exc}; nothing was recorded.", again)
    want = _kind_or_none(str(form.get("want") or ""))
    try:
        result = await run_in_threadpool(boxes_of(request).submit, who.worker_id, task_id, answer)
    except WorkerBlockedError as exc:
        return blocked_page(request, str(exc))
    except TaskClosedError as exc:
        return message(request, 409, "Task closed", str(exc), ("/boxes/work", "Take a new task"))
    except NotFoundError:
        return message(
            request,
            404,
            "No such task",
            "This task is not yours or does not exist.",
            ("/boxes/work", "Take a task"),
        )
    except SynsetforgeError as exc:
        return message(request, 422, "Answer not accepted", f"{exc}; nothing was recorded.", again)
    query = f"?kind={want}" if want else ""
    if result.blocked:
        return RedirectResponse("/boxes/work", status_code=303)
    if who.kind == "marketplace":
        return RedirectResponse(f"/boxes/work/done/{task_id}{query}", status_code=303)
    return RedirectResponse(f"/boxes/work{query}{'&' if query else '?'}saved=1", status_code=303)


@router.get("/boxes/work/done/{task_id}", response_class=HTMLResponse)
def done(request: Request, task_id: RowId, kind: str | None = None) -> HTMLResponse:
    """Marketplace workers see the task's completion code before the next task."""
    who = _worker_or_message(request)
    if isinstance(who, HTMLResponse):
        return who
    assert who.worker_id is not None
    svc = service_of(request)
    return _render(
        request,
        "box_done.html",
        code=svc.completion_of(who.worker_id, task_id),
        summary=svc.worker_summary(who.worker_id),
        platform=_platform(request),
        kind=_kind_or_none(kind),
    )
