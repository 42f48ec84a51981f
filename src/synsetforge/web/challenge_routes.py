"""HTTP routes of the benchmark: challenge pages (server-rendered) and a JSON API for participants.

Include `router` in the app; the project is `app.state.project` (or `app.state.service.project`).

Pages (`/challenges/...`): overview, downloads (class list, anonymous test images, public val labels),
login with a participant token (kept in an HttpOnly, SameSite=Strict cookie), submit, my submissions and
the leaderboard with CSV export. API (`/api/challenges/...`, `Authorization: Bearer <token>`): submit,
poll a submission, list the team's submissions, leaderboard.

Safety rules every route follows: templates autoescape all text; a token sees only its own team's
submissions (another team's id reads as 404); nothing returns per-image results or hidden labels, and
private scores appear only after the end date; uploads over the challenge's byte limit get 413 before the
body is held in memory; CSV cells that a spreadsheet would run as formulas are prefixed with '.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from synsetforge.benchmark.challenge import (
    METRIC_LABELS,
    ChallengeInfo,
    anonymous_test_blob,
    anonymous_test_ids,
    get_challenge,
    list_challenges,
    public_settings,
    synset_mapping,
    val_items,
)
from synsetforge.benchmark.participants import Account, authenticate
from synsetforge.benchmark.standings import (
    Board,
    NotRevealed,
    board_csv,
    leaderboard,
    team_submissions,
)
from synsetforge.benchmark.submissions import (
    ChallengeClosed,
    LimitReached,
    Receipt,
    UploadTooLarge,
    submit,
    usage,
)
from synsetforge.errors import NotFoundError, SynsetforgeError
from synsetforge.store import schema
from synsetforge.store.project import Project
from synsetforge.web.csrf import login_token, login_token_ok, remember_login_token
from synsetforge.web.edge import RowId
from synsetforge.web.openapi import PARTICIPANT_TOKEN, CSVResponse, JPEGResponse, errors, success

router = APIRouter()

COOKIE = "sf_participant"
LOGOUT = "challenge-logout"
"""Purpose of the logout form's CSRF token (`csrf_for`); the upload form's is the default."""
MULTIPART_SLACK = 64 * 1024
"""Bytes allowed above the file limit for the multipart envelope (boundaries, headers, CSRF field)."""

_env = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _fmt_metric(value: float | None, metric: str) -> str:
    if value is None:
        return ""
    if metric == "hierarchical_error_raw":
        return f"{value:.3f}"
    return f"{100 * value:.2f}%"


_env.filters["metric"] = _fmt_metric
_env.globals["METRIC_LABELS"] = METRIC_LABELS


# -- dependencies -----------------------------------------------------------------------------------


def get_project(request: Request) -> Project:
    """`app.state.project`, or the project of the crowd service `create_app` keeps in `app.state.service`."""
    state = request.app.state
    project = getattr(state, "project", None) or getattr(getattr(state, "service", None), "project", None)
    if not isinstance(project, Project):
        raise RuntimeError("the app must set app.state.project to an open Project")
    return project


ProjectDep = Annotated[Project, Depends(get_project)]


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def optional_participant(request: Request, project: ProjectDep) -> Account | None:
    """The account of the bearer token or the login cookie, if any and valid."""
    return authenticate(project, _bearer(request) or request.cookies.get(COOKIE))


def api_participant(request: Request, project: ProjectDep) -> Account:
    """API routes take a bearer token only (no cookie, so no cross-site request can use them)."""
    token = _bearer(request)
    if token is None:
        raise HTTPException(
            401, "send 'Authorization: Bearer <participant token>'", {"WWW-Authenticate": "Bearer"}
        )
    acct = authenticate(project, token)
    if acct is None:
        raise HTTPException(401, "unknown participant token", {"WWW-Authenticate": "Bearer"})
    return acct


OptionalAccount = Annotated[Account | None, Depends(optional_participant)]
ApiAccount = Annotated[Account, Depends(api_participant)]
BoardParam = Annotated[Literal["public", "private"], Query(description="Which leaderboard.")]
NO_CHALLENGE = errors(404, 422)
SUBMISSION_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The prediction file: the raw body, or a multipart form with the file in field `file`.",
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            },
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            "text/plain": {"schema": {"type": "string"}},
            "text/csv": {"schema": {"type": "string"}},
        },
    }
}


def csrf_for(token: str, purpose: str = "challenge-submit") -> str:
    """Form token derived from the participant token: another site can post our form, not compute this."""
    return hmac.new(token.encode(), purpose.encode(), hashlib.sha256).hexdigest()[:32]


def _status_of(exc: SynsetforgeError) -> int:
    if isinstance(exc, UploadTooLarge):
        return 413
    if isinstance(exc, LimitReached):
        return 429
    if isinstance(exc, ChallengeClosed | NotRevealed):
        return 403
    if isinstance(exc, NotFoundError):
        return 404
    return 400


def _http(exc: SynsetforgeError) -> HTTPException:
    return HTTPException(_status_of(exc), str(exc))


def _challenge(project: Project, name: str) -> ChallengeInfo:
    try:
        return get_challenge(project, name)
    except SynsetforgeError as exc:
        raise _http(exc) from None


# -- reading uploads with a cap -------------------------------------------------------------------


async def _read_capped(request: Request, limit: int) -> bytes:
    """The request body, refusing (413) as soon as it is known to exceed `limit` + the envelope slack."""
    cap = limit + MULTIPART_SLACK
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > cap:
        raise HTTPException(
            413, f"the upload is {int(declared):,} bytes; this challenge accepts at most {limit:,}"
        )
    buf = bytearray()
    async for chunk in request.stream():
        buf += chunk
        if len(buf) > cap:
            raise HTTPException(413, f"the upload is larger than this challenge's limit of {limit:,} bytes")
    return bytes(buf)


async def _upload(request: Request, limit: int) -> tuple[bytes, dict[str, str]]:
    """(file bytes, other form fields): a multipart form with field `file`, or the raw body itself."""
    body = await _read_capped(request, limit)
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        return body, {}

    async def once() -> AsyncGenerator[bytes, None]:
        yield body
        yield b""

    try:
        form = await MultiPartParser(request.headers, once(), max_files=1, max_fields=10).parse()
    except MultiPartException as exc:
        raise HTTPException(400, f"malformed upload: {exc.message}") from None
    fields: dict[str, str] = {}
    data: bytes | None = None
    for key, value in form.multi_items():
        if isinstance(value, UploadFile):
            if key == "file":
                data = await value.read()
            await value.close()
        else:
            fields[key] = value
    if data is None:
        raise HTTPException(400, "the form has no file field named 'file'")
    return data, fields


# -- rendering ------------------------------------------------------------------------------------


def _page(
    template: str, request: Request, account: Account | None, status_code: int = 200, **context: Any
) -> HTMLResponse:
    cookie = request.cookies.get(COOKIE)
    logout_csrf = csrf_for(cookie, LOGOUT) if account is not None and cookie else ""
    html = _env.get_template(f"challenge/{template}").render(
        request_path=request.url.path, account=account, logout_csrf=logout_csrf, **context
    )
    return HTMLResponse(html, status_code=status_code)


def _error_page(request: Request, account: Account | None, status_code: int, message: str) -> HTMLResponse:
    return _page("error.html", request, account, status_code, message=message, challenge=None)


# -- pages ----------------------------------------------------------------------------------------

_CSS = (Path(__file__).parent / "templates" / "challenge" / "challenge.css").read_text(encoding="utf-8")


@router.get("/challenges/static/challenge.css", include_in_schema=False)
def stylesheet() -> Response:
    """Served from here, not inline, so a strict Content-Security-Policy (style-src 'self') applies it."""
    return Response(_CSS, media_type="text/css", headers={"Cache-Control": "public, max-age=3600"})


@router.get("/challenges", response_class=HTMLResponse, include_in_schema=False)
def challenges_page(request: Request, project: ProjectDep, account: OptionalAccount) -> HTMLResponse:
    return _page("list.html", request, account, challenges=list_challenges(project), challenge=None)


@router.get("/challenges/{name}", response_class=HTMLResponse, include_in_schema=False)
def overview_page(name: str, request: Request, project: ProjectDep, account: OptionalAccount) -> HTMLResponse:
    try:
        info = get_challenge(project, name)
    except SynsetforgeError as exc:
        return _error_page(request, account, _status_of(exc), str(exc))
    h = project.hierarchy
    classes = [(k, sid, h.name(sid) if sid in h else sid) for k, sid in enumerate(info.classes, start=1)]
    return _page(
        "overview.html",
        request,
        account,
        challenge=info,
        settings=public_settings(info),
        classes=classes,
        status=info.status(),
    )


@router.get(
    "/challenges/{name}/classes.txt",
    response_class=PlainTextResponse,
    tags=["challenge files"],
    responses=NO_CHALLENGE,
)
def classes_file(name: str, project: ProjectDep) -> PlainTextResponse:
    _challenge(project, name)
    return PlainTextResponse(synset_mapping(project, name))


@router.get(
    "/challenges/{name}/test_images.txt",
    response_class=PlainTextResponse,
    tags=["challenge files"],
    responses=NO_CHALLENGE,
)
def test_images_file(name: str, project: ProjectDep) -> PlainTextResponse:
    _challenge(project, name)
    return PlainTextResponse("\n".join(anonymous_test_ids(project, name)) + "\n")


@router.get(
    "/challenges/{name}/test/{image}",
    response_class=JPEGResponse,
    tags=["challenge files"],
    responses={**success("image/jpeg", binary=True), **NO_CHALLENGE},
)
def test_image(name: str, image: str, project: ProjectDep) -> Response:
    try:
        key, _ = anonymous_test_blob(project, name, image)
        data = project.blobs.get(key)
    except SynsetforgeError as exc:
        raise _http(exc) from None
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "public, max-age=86400"})


@router.get(
    "/challenges/{name}/val_labels.csv",
    response_class=CSVResponse,
    tags=["challenge files"],
    responses=NO_CHALLENGE,
)
def val_labels_file(name: str, project: ProjectDep) -> Response:
    _challenge(project, name)
    lines = ["ImageId,Label"] + [f"{image},{sid}" for image, _, sid in val_items(project, name)]
    return Response("\n".join(lines) + "\n", media_type="text/csv")


@router.get(
    "/challenges/{name}/val/{image}",
    response_class=JPEGResponse,
    tags=["challenge files"],
    responses={**success("image/jpeg", binary=True), **NO_CHALLENGE},
)
def val_image(name: str, image: str, project: ProjectDep) -> Response:
    _challenge(project, name)
    items = val_items(project, name)
    m = re.fullmatch(r"val_(\d{8})\.JPEG", image)
    k = int(m.group(1)) - 1 if m else -1
    if 0 <= k < len(items) and items[k][0] == image:
        with project.session() as s:
            row = s.get(schema.Image, items[k][1])
            if row is not None and row.blob:
                return Response(project.blobs.get(row.blob), media_type="image/jpeg")
    raise HTTPException(404, f"no val image {image!r}")


def _login_form(
    request: Request, info: ChallengeInfo, account: Account | None, status_code: int, error: str | None
) -> HTMLResponse:
    """The login form with the visitor's pre-login CSRF token (`web.csrf`; set as a cookie when new)."""
    csrf = login_token(request)
    response = _page("login.html", request, account, status_code, challenge=info, error=error, csrf=csrf)
    remember_login_token(response, request, csrf)
    return response


@router.get("/challenges/{name}/login", response_class=HTMLResponse, include_in_schema=False)
def login_page(name: str, request: Request, project: ProjectDep, account: OptionalAccount) -> HTMLResponse:
    info = _challenge(project, name)
    return _login_form(request, info, account, 200, None)


def _form_fields(body: bytes) -> dict[str, str]:
    """An urlencoded form body as {name: first value}."""
    return {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items() if v}


@router.post("/challenges/{name}/login", include_in_schema=False)
async def login(name: str, request: Request, project: ProjectDep) -> Response:
    info = _challenge(project, name)
    fields = _form_fields(await _read_capped(request, 4096))
    if not login_token_ok(request, fields.get("csrf")):
        return _login_form(
            request, info, None, 403, "The form expired or came from another site; log in again."
        )
    token = fields.get("token", "").strip()
    acct = await run_in_threadpool(authenticate, project, token)
    if acct is None:
        return _login_form(request, info, None, 401, "Unknown token.")
    response = RedirectResponse(f"/challenges/{info.name}/submit", status_code=303)
    response.set_cookie(
        COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/challenges",
        max_age=30 * 24 * 3600,
    )
    return response


@router.post("/challenges/{name}/logout", include_in_schema=False)
async def logout(name: str, request: Request, project: ProjectDep) -> Response:
    info = await run_in_threadpool(_challenge, project, name)
    cookie = request.cookies.get(COOKIE)
    fields = _form_fields(await _read_capped(request, 4096))
    if cookie and not hmac.compare_digest(fields.get("csrf", ""), csrf_for(cookie, LOGOUT)):
        return _error_page(request, None, 403, "The form expired or came from another site; reload the page.")
    response = RedirectResponse(f"/challenges/{info.name}", status_code=303)
    response.delete_cookie(COOKIE, path="/challenges")
    return response


def _submit_context(
    project: Project, info: ChallengeInfo, account: Account | None, request: Request
) -> dict[str, Any]:
    token = request.cookies.get(COOKIE) or _bearer(request) or ""
    return {
        "challenge": info,
        "usage": usage(project, info.id, account.team_id) if account else None,
        "csrf": csrf_for(token) if account else "",
        "status": info.status(),
    }


@router.get("/challenges/{name}/submit", response_class=HTMLResponse, include_in_schema=False)
def submit_page(name: str, request: Request, project: ProjectDep, account: OptionalAccount) -> HTMLResponse:
    info = _challenge(project, name)
    return _page(
        "submit.html", request, account, error=None, **_submit_context(project, info, account, request)
    )


@router.post("/challenges/{name}/submit", include_in_schema=False)
async def submit_form(name: str, request: Request, project: ProjectDep) -> Response:
    info = await run_in_threadpool(_challenge, project, name)
    token = request.cookies.get(COOKIE)
    account = await run_in_threadpool(authenticate, project, token)
    if account is None or token is None:
        return _error_page(request, None, 401, "Log in with your participant token first.")
    try:
        data, fields = await _upload(request, info.settings.max_upload_bytes)
    except HTTPException as exc:
        context = await run_in_threadpool(_submit_context, project, info, account, request)
        return _page("submit.html", request, account, exc.status_code, error=str(exc.detail), **context)
    if not hmac.compare_digest(fields.get("csrf", ""), csrf_for(token)):
        return _error_page(
            request, account, 403, "The form expired or came from another site; reload the page."
        )
    try:
        receipt = await run_in_threadpool(submit, project, info.id, account, data)
    except SynsetforgeError as exc:
        context = await run_in_threadpool(_submit_context, project, info, account, request)
        return _page("submit.html", request, account, _status_of(exc), error=str(exc), **context)
    return RedirectResponse(f"/challenges/{info.name}/submissions?new={receipt.id}", status_code=303)


@router.get("/challenges/{name}/submissions", response_class=HTMLResponse, include_in_schema=False)
def submissions_page(name: str, request: Request, project: ProjectDep, account: OptionalAccount) -> Response:
    info = _challenge(project, name)
    if account is None:
        return RedirectResponse(f"/challenges/{info.name}/login", status_code=303)
    views = team_submissions(project, info.id, account.team_id)
    pending = any(v.status in ("queued", "running") for v in views)
    return _page(
        "submissions.html",
        request,
        account,
        challenge=info,
        submissions=views,
        pending=pending,
        usage=usage(project, info.id, account.team_id),
        revealed=info.revealed(),
        ladder=info.settings.ladder,
        metrics=info.settings.metrics if not info.settings.ladder else [info.settings.rank_by],
        private_metrics=info.settings.metrics,
    )


def _board(project: Project, name: str, board: str) -> Board:
    if board not in ("public", "private"):
        raise HTTPException(400, "board must be 'public' or 'private'")
    try:
        return leaderboard(project, name, split="private" if board == "private" else "public")
    except SynsetforgeError as exc:
        raise _http(exc) from None


@router.get("/challenges/{name}/leaderboard", response_class=HTMLResponse, include_in_schema=False)
def leaderboard_page(
    name: str,
    request: Request,
    project: ProjectDep,
    account: OptionalAccount,
    board: Annotated[str, Query()] = "public",
) -> HTMLResponse:
    info = _challenge(project, name)
    try:
        result = _board(project, name, board)
    except HTTPException as exc:
        return _error_page(request, account, exc.status_code, str(exc.detail))
    return _page("leaderboard.html", request, account, challenge=info, board=result, revealed=info.revealed())


def _csv_response(board: Board) -> Response:
    filename = f"{board.challenge.name}-{board.split}-leaderboard.csv"
    return Response(
        board_csv(board),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get(
    "/challenges/{name}/leaderboard.csv",
    response_class=CSVResponse,
    tags=["challenge files"],
    responses=errors(403, 404, 422),
)
def leaderboard_csv(name: str, project: ProjectDep, board: BoardParam = "public") -> Response:
    return _csv_response(_board(project, name, board))


# -- JSON API -------------------------------------------------------------------------------------


@router.get("/api/challenges", tags=["challenge"])
def api_challenges(project: ProjectDep) -> list[dict[str, Any]]:
    return [{"name": c.name, "status": c.status(), **public_settings(c)} for c in list_challenges(project)]


@router.get("/api/challenges/{name}", tags=["challenge"], responses=NO_CHALLENGE)
def api_challenge(name: str, project: ProjectDep) -> dict[str, Any]:
    info = _challenge(project, name)
    return {
        "name": info.name,
        "status": info.status(),
        "classes": list(info.classes),
        **public_settings(info),
    }


def _receipt_json(receipt: Receipt) -> dict[str, Any]:
    return {
        "id": receipt.id,
        "challenge": receipt.challenge,
        "team": receipt.team,
        "status": "queued",
        "format": receipt.format,
        "bytes": receipt.bytes,
        "status_url": f"/api/challenges/{receipt.challenge}/submissions/{receipt.id}",
        "submissions_left_24h": receipt.usage.remaining,
    }


@router.post(
    "/api/challenges/{name}/submissions",
    status_code=202,
    tags=["challenge"],
    dependencies=[Security(PARTICIPANT_TOKEN)],
    responses=errors(400, 401, 403, 404, 413, 422, 429),
    openapi_extra=SUBMISSION_BODY,
)
async def api_submit(name: str, request: Request, project: ProjectDep, account: ApiAccount) -> JSONResponse:
    info = await run_in_threadpool(_challenge, project, name)
    data, _ = await _upload(request, info.settings.max_upload_bytes)
    try:
        receipt = await run_in_threadpool(submit, project, info.id, account, data)
    except SynsetforgeError as exc:
        raise _http(exc) from None
    return JSONResponse(_receipt_json(receipt), status_code=202)


@router.get(
    "/api/challenges/{name}/submissions",
    tags=["challenge"],
    dependencies=[Security(PARTICIPANT_TOKEN)],
    responses=errors(401, 404, 422),
)
def api_submissions(name: str, project: ProjectDep, account: ApiAccount) -> dict[str, Any]:
    info = _challenge(project, name)
    views = team_submissions(project, info.id, account.team_id)
    left = usage(project, info.id, account.team_id)
    return {
        "team": account.team,
        "submissions_left_24h": left.remaining,
        "submissions": [v.to_json() for v in views],
    }


@router.get(
    "/api/challenges/{name}/submissions/{submission_id}",
    tags=["challenge"],
    dependencies=[Security(PARTICIPANT_TOKEN)],
    responses=errors(401, 404, 422),
)
def api_submission(
    name: str, submission_id: RowId, project: ProjectDep, account: ApiAccount
) -> dict[str, Any]:
    info = _challenge(project, name)
    views = team_submissions(project, info.id, account.team_id, submission_id=submission_id)
    if not views:
        raise HTTPException(404, f"no submission {submission_id} of team {account.team!r} in this challenge")
    return views[0].to_json()


@router.get("/api/challenges/{name}/leaderboard", tags=["challenge"], responses=errors(403, 404, 422))
def api_leaderboard(name: str, project: ProjectDep, board: BoardParam = "public") -> dict[str, Any]:
    return _board(project, name, board).to_json()


__all__ = ["COOKIE", "csrf_for", "get_project", "router"]
