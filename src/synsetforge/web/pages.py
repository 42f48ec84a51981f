"""Worker pages: landing, invite and marketplace entry, the task grid, the thank-you page.

A task page is a plain HTML form (works without JavaScript): one checkbox per image, ticked = "shows the
synset". `static/task.js` adds keyboard shortcuts, a live progress line and the countdown.
Marketplace mode: `/m/<key>?workerId=..&assignmentId=..&turkSubmitTo=..` (MTurk ExternalQuestion) or
`/m/<key>?PROLIFIC_PID=..&STUDY_ID=..&SESSION_ID=..` (Prolific) or `/m/<key>?worker=..`; after each task the
worker sees a completion code to paste into the platform (with MTurk's submit form / Prolific's link).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from synsetforge.crowd.errors import AccessDeniedError, TaskClosedError, WorkerBlockedError
from synsetforge.crowd.tokens import csrf_ok, csrf_token
from synsetforge.crowd.workers import Principal
from synsetforge.errors import InputError, NotFoundError, SynsetforgeError
from synsetforge.web.auth import PLATFORM_COOKIE, WORKER_COOKIE, cookie_worker, service_of
from synsetforge.web.edge import RowId

router = APIRouter(include_in_schema=False)
_ASSIGNMENT = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_ID = re.compile(r"^\d{1,18}$")
MAX_FIELDS = 1000


def _render(request: Request, name: str, status: int = 200, **ctx: object) -> HTMLResponse:
    from synsetforge.web.app import render

    return render(request, name, status, **ctx)


def message(
    request: Request, status: int, title: str, text: str, link: tuple[str, str] | None = None
) -> HTMLResponse:
    return _render(request, "message.html", status, title=title, message=text, link=link)


def set_cookie(response: Response, request: Request, name: str, value: str, cross_site: bool = False) -> None:
    """HttpOnly cookie; `Secure` over HTTPS; SameSite=None only for marketplace iframes over HTTPS."""
    secure = request.url.scheme == "https"
    samesite: Literal["lax", "none"] = "none" if (cross_site and secure) else "lax"
    response.set_cookie(
        name, value, httponly=True, secure=secure, samesite=samesite, path="/", max_age=30 * 86400
    )


def blocked_page(request: Request, reason: str | None) -> HTMLResponse:
    by_admin = reason is not None and "gold accuracy" not in reason
    return _render(request, "blocked.html", 403, by_admin=by_admin)


def _worker_or_message(request: Request) -> Principal | HTMLResponse:
    who = cookie_worker(request)
    if who is None:
        return message(
            request, 401, "Not signed in", "Open the invite or study link you were given to start working."
        )
    return who


@router.get("/", response_class=HTMLResponse)
def landing(request: Request) -> HTMLResponse:
    return _render(request, "landing.html")


@router.get("/invite/{token}")
def invite(request: Request, token: str) -> Response:
    who = service_of(request).principal(token)
    if who is None or who.role != "worker":
        return message(
            request,
            403,
            "Invite not valid",
            "This invite link is not valid. Ask the project team for a new one.",
        )
    response = RedirectResponse("/work", status_code=303)
    set_cookie(response, request, WORKER_COOKIE, token)
    response.delete_cookie(PLATFORM_COOKIE, path="/")
    return response


@router.get("/m/{key}")
def marketplace(request: Request, key: str) -> Response:
    q = request.query_params
    assignment = q.get("assignmentId")
    if assignment == "ASSIGNMENT_ID_NOT_AVAILABLE":  # MTurk preview: describe the work, assign nothing
        return _render(request, "preview.html")
    if q.get("PROLIFIC_PID"):
        platform, external = "prolific", q["PROLIFIC_PID"]
    elif q.get("workerId"):
        platform, external = "mturk", q["workerId"]
    else:
        platform, external = "generic", q.get("worker", "")
    try:
        new = service_of(request).enter_marketplace(key, platform, external)
    except AccessDeniedError:
        return message(request, 403, "Study link not valid", "This study link is not valid or was withdrawn.")
    except InputError as exc:
        return message(request, 400, "Link incomplete", str(exc))
    response = RedirectResponse("/work", status_code=303)
    set_cookie(response, request, WORKER_COOKIE, new.token, cross_site=True)
    marker = platform
    if platform == "mturk" and assignment and _ASSIGNMENT.match(assignment):
        sandbox = "workersandbox" in (q.get("turkSubmitTo") or "")
        marker = f"mturk.{assignment}.{'sandbox' if sandbox else 'live'}"
    set_cookie(response, request, PLATFORM_COOKIE, marker, cross_site=True)
    return response


def _platform(request: Request) -> dict[str, str]:
    raw = request.cookies.get(PLATFORM_COOKIE, "")
    parts = raw.split(".")
    if parts[0] == "mturk" and len(parts) == 3 and _ASSIGNMENT.match(parts[1]):
        host = "https://workersandbox.mturk.com" if parts[2] == "sandbox" else "https://www.mturk.com"
        return {"name": "mturk", "assignment": parts[1], "submit_to": f"{host}/mturk/externalSubmit"}
    if parts[0] in ("mturk", "prolific", "generic"):
        return {"name": parts[0]}
    return {}


@router.get("/work", response_class=HTMLResponse)
def work(request: Request) -> HTMLResponse:
    who = _worker_or_message(request)
    if isinstance(who, HTMLResponse):
        return who
    assert who.worker_id is not None
    svc = service_of(request)
    if who.status != "active":
        return blocked_page(request, svc.worker_summary(who.worker_id).blocked_reason)
    try:
        view = svc.next_task(who.worker_id)
    except WorkerBlockedError as exc:
        return blocked_page(request, str(exc))
    if view is None:
        summary = svc.worker_summary(who.worker_id)
        return _render(
            request,
            "nowork.html",
            summary=summary,
            platform=_platform(request),
            marketplace=who.kind == "marketplace",
        )
    return _render(
        request,
        "task.html",
        task=view,
        csrf=csrf_token(who.token, f"task:{view.task_id}"),
        seconds_left=max(0, int((view.expires_at - datetime.now(UTC)).total_seconds())),
    )


@router.post("/work/{task_id}")
async def submit(request: Request, task_id: RowId) -> Response:
    who = await run_in_threadpool(_worker_or_message, request)
    if isinstance(who, HTMLResponse):
        return who
    assert who.worker_id is not None
    try:
        form = await request.form(max_files=0, max_fields=MAX_FIELDS + 2)
    except Exception:  # malformed multipart / too many fields: starlette raises several kinds
        return message(
            request, 400, "Answer not understood", "The form could not be read; please reload the task."
        )
    if not csrf_ok(who.token, f"task:{task_id}", str(form.get("csrf") or "")):
        return message(
            request,
            403,
            "Form expired",
            "This form is not valid any more; please reload the task.",
            ("/work", "Reload"),
        )
    raw = [str(v) for v in form.getlist("yes")]
    if any(not _ID.match(v) for v in raw):
        return message(
            request,
            400,
            "Answer not understood",
            "The answers were malformed; nothing was recorded.",
            ("/work", "Back to the task"),
        )
    svc = service_of(request)
    try:
        result = await run_in_threadpool(svc.submit, who.worker_id, task_id, [int(v) for v in raw])
    except WorkerBlockedError as exc:
        return blocked_page(request, str(exc))
    except TaskClosedError as exc:
        return message(request, 409, "Task closed", str(exc), ("/work", "Take a new task"))
    except NotFoundError:
        return message(
            request,
            404,
            "No such task",
            "This task is not yours or does not exist.",
            ("/work", "Take a task"),
        )
    except SynsetforgeError as exc:
        return message(request, 400, "Answer not accepted", str(exc), ("/work", "Back to the task"))
    if result.blocked:
        return RedirectResponse("/work", status_code=303)
    return RedirectResponse(f"/work/done/{task_id}", status_code=303)


@router.get("/work/done/{task_id}", response_class=HTMLResponse)
def done(request: Request, task_id: RowId) -> HTMLResponse:
    who = _worker_or_message(request)
    if isinstance(who, HTMLResponse):
        return who
    assert who.worker_id is not None
    svc = service_of(request)
    code = svc.completion_of(who.worker_id, task_id)
    summary = svc.worker_summary(who.worker_id)
    return _render(
        request,
        "done.html",
        code=code,
        summary=summary,
        marketplace=who.kind == "marketplace",
        platform=_platform(request),
    )
