"""Admin pages: login with an admin token, per-synset progress, votes per image, the worker table.

The admin cookie holds the admin token itself (HttpOnly); every admin form carries a CSRF token derived
from it, and the sign-in form one bound to the visitor's `sf_csrf` cookie (see `web.csrf`).
`synsetforge admin token` makes a token (printed once).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from synsetforge.crowd import dashboard
from synsetforge.crowd.tokens import csrf_ok, csrf_token
from synsetforge.crowd.workers import Principal
from synsetforge.errors import SynsetforgeError
from synsetforge.web.auth import ADMIN_COOKIE, cookie_admin, service_of
from synsetforge.web.csrf import login_token, login_token_ok, remember_login_token
from synsetforge.web.edge import RowId, form_has_nul
from synsetforge.web.pages import _render, message, set_cookie

router = APIRouter(prefix="/admin", include_in_schema=False)
CSRF_PURPOSE = "admin"


def _admin(request: Request) -> Principal | Response:
    who = cookie_admin(request)
    if who is None:
        return RedirectResponse("/admin/login", status_code=303)
    return who


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request) -> HTMLResponse:
    return _login_page(request, 200, None)


def _login_page(request: Request, status: int, error: str | None) -> HTMLResponse:
    """The sign-in form, with the visitor's pre-sign-in CSRF token (set as a cookie when new)."""
    csrf = login_token(request)
    response = _render(request, "admin_login.html", status, error=error, csrf=csrf)
    remember_login_token(response, request, csrf)
    return response


@router.post("/login")
async def login(request: Request) -> Response:
    try:
        form = await request.form(max_files=0, max_fields=5)
    except Exception:
        return _login_page(request, 400, "The form could not be read.")
    if not login_token_ok(request, str(form.get("csrf") or "")):
        return _login_page(request, 403, "The form expired or came from another site; sign in again.")
    token = str(form.get("token") or "").strip()
    who = await run_in_threadpool(service_of(request).principal, token)
    if who is None or who.role != "admin":
        return _login_page(request, 403, "That is not a valid admin token.")
    response = RedirectResponse("/admin", status_code=303)
    set_cookie(response, request, ADMIN_COOKIE, token)
    return response


async def _checked_form(request: Request) -> tuple[Principal, dict[str, str]] | Response:
    who = await run_in_threadpool(_admin, request)
    if not isinstance(who, Principal):
        return who
    try:
        form = await request.form(max_files=0, max_fields=10)
    except Exception:
        return message(request, 400, "Form not understood", "The form could not be read.")
    if not csrf_ok(who.token, CSRF_PURPOSE, str(form.get("csrf") or "")):
        return message(
            request, 403, "Form expired", "Reload the page and try again.", ("/admin", "Dashboard")
        )
    if form_has_nul(form.values()):
        return message(
            request, 422, "Form not understood", "A field holds a NUL character; nothing was changed."
        )
    return who, {k: str(v) for k, v in form.items()}


@router.post("/logout")
async def logout(request: Request) -> Response:
    checked = await _checked_form(request)
    if isinstance(checked, Response):
        return checked
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(ADMIN_COOKIE, path="/")
    return response


@router.get("", response_class=HTMLResponse)
def home(request: Request) -> Response:
    who = _admin(request)
    if not isinstance(who, Principal):
        return who
    svc = service_of(request)
    with svc.read() as s:
        rows = dashboard.progress(s, svc.tables)
        workers = dashboard.worker_rows(s)
        decisions = dashboard.decision_status(s, svc.settings)
    totals = {
        "candidates": sum(r.candidates for r in rows),
        "accepted": sum(r.accepted for r in rows),
        "rejected": sum(r.rejected for r in rows),
        "undecided": sum(r.undecided for r in rows),
        "open": sum(r.open for r in rows),
        "votes": sum(r.votes + r.votes_excluded for r in rows),
        "workers": len(workers),
        "blocked": sum(w.status == "blocked" for w in workers),
    }
    return _render(
        request,
        "admin.html",
        rows=rows,
        totals=totals,
        decisions=decisions,
        csrf=csrf_token(who.token, CSRF_PURPOSE),
    )


@router.get("/synsets/{synset_id:path}", response_class=HTMLResponse)
def synset(request: Request, synset_id: str) -> Response:
    who = _admin(request)
    if not isinstance(who, Principal):
        return who
    svc = service_of(request)
    with svc.read() as s:
        rows = dashboard.synset_images(s, synset_id, svc.settings)
        progress = next((r for r in dashboard.progress(s, svc.tables) if r.synset_id == synset_id), None)
        decisions = dashboard.decision_status(s, svc.settings)
    return _render(
        request,
        "admin_synset.html",
        synset_id=synset_id,
        rows=rows,
        progress=progress,
        decisions=decisions,
        csrf=csrf_token(who.token, CSRF_PURPOSE),
    )


@router.get("/workers", response_class=HTMLResponse)
def workers(request: Request) -> Response:
    who = _admin(request)
    if not isinstance(who, Principal):
        return who
    with service_of(request).read() as s:
        rows = dashboard.worker_rows(s)
    return _render(
        request, "admin_workers.html", rows=rows, csrf=csrf_token(who.token, CSRF_PURPOSE), invite=None
    )


@router.post("/workers/invite")
async def invite(request: Request) -> Response:
    checked = await _checked_form(request)
    if isinstance(checked, Response):
        return checked
    who, form = checked
    name = form.get("name", "").strip()[:200] or None
    svc = service_of(request)
    new = await run_in_threadpool(svc.invite, name)
    with svc.read() as s:
        rows = dashboard.worker_rows(s)
    link = str(request.base_url).rstrip("/") + f"/invite/{new.token}"
    return _render(
        request,
        "admin_workers.html",
        rows=rows,
        csrf=csrf_token(who.token, CSRF_PURPOSE),
        invite={"id": new.worker_id, "link": link, "name": name},
    )


@router.post("/workers/{worker_id}/{action}")
async def block_or_unblock(request: Request, worker_id: RowId, action: str) -> Response:
    checked = await _checked_form(request)
    if isinstance(checked, Response):
        return checked
    _, form = checked
    svc = service_of(request)
    try:
        if action == "block":
            await run_in_threadpool(
                svc.block, worker_id, form.get("reason", "").strip()[:1000] or "blocked by an admin"
            )
        elif action == "unblock":
            await run_in_threadpool(svc.unblock, worker_id)
        else:
            return message(request, 404, "Not found", "Unknown action.")
    except SynsetforgeError as exc:
        return message(request, 404, "Not found", str(exc), ("/admin/workers", "Workers"))
    return RedirectResponse("/admin/workers", status_code=303)
