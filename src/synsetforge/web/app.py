"""`create_app(project)`: the one web app of a project: worker pages, admin dashboard, JSON API, images.

Server-rendered HTML (Jinja2, autoescaping on for every template, so a gloss or a custom category name is
always shown as text) with a little JavaScript for keyboard shortcuts; a JSON API under /api/v1 described
by OpenAPI; images streamed from the blob store only to their task's worker or to admins. Without a token
only the landing page, the static assets, the entry links (invite, marketplace, admin login) and the public
release explorer (`/explore`, train and val items only) answer.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

import anyio.to_thread
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from synsetforge import __version__
from synsetforge.boxes.service import BoxService
from synsetforge.crowd.errors import AccessDeniedError, TaskClosedError, WorkerBlockedError
from synsetforge.crowd.service import CrowdService
from synsetforge.crowd.settings import CrowdSettings
from synsetforge.errors import InputError, NotFoundError, StoreError, SynsetforgeError
from synsetforge.store.project import Project
from synsetforge.web import (
    admin,
    api,
    box_api,
    box_io_routes,
    box_pages,
    challenge_routes,
    explore_routes,
    pages,
)
from synsetforge.web.auth import api_principal, image_principal, service_of
from synsetforge.web.csrf import OriginCheckMiddleware
from synsetforge.web.edge import NulGuardMiddleware, RowId, path_segment
from synsetforge.web.middleware import BodyLimitMiddleware, SecurityHeadersMiddleware
from synsetforge.web.openapi import install as install_openapi

# Paths of the crowd app (body-size limited); other routers included later keep their own limits.
CROWD_PREFIXES = ("/api/v1/", "/work", "/boxes/", "/admin", "/invite/", "/m/")
_STATUS = [
    (TaskClosedError, 409),
    (WorkerBlockedError, 403),
    (AccessDeniedError, 403),
    (NotFoundError, 404),
    (InputError, 422),
    (StoreError, 503),
]


def status_of(exc: SynsetforgeError) -> int:
    for kind, status in _STATUS:
        if isinstance(exc, kind):
            return status
    return 400


def templates() -> Environment:
    folder = resources.files("synsetforge.web") / "templates"
    env = Environment(
        loader=FileSystemLoader(str(folder)),
        autoescape=True,  # every template, whatever its extension
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["pct"] = lambda v: "–" if v is None else f"{v:.1%}"
    env.filters["num"] = lambda v, d=2: "–" if v is None else f"{v:.{d}f}"
    env.filters["segment"] = path_segment
    return env


def render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    env: Environment = request.app.state.templates
    html = env.get_template(name).render(request=request, version=__version__, **context)
    return HTMLResponse(html, status_code=status)


SERVER_THREADS = 256  # threads for sync endpoints (anyio's default is 40)


def _background_jobs(svc: CrowdService) -> Any:
    """Lifespan of a served app: bring the crowd's live state up to date, run its job thread, stop it."""

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Endpoints run in a thread pool of 40 by default. Under load the 41st request waited for a
        # thread in arrival order, so a submission queued behind next-tasks whatever the write queue's
        # order (`crowd.service.WriteGate`); waiting threads cost nothing but a little memory.
        anyio.to_thread.current_default_thread_limiter().total_tokens = SERVER_THREADS
        svc.start()
        try:
            yield
        finally:
            svc.close()

    return lifespan


def create_app(
    project: Project,
    settings: CrowdSettings | None = None,
    *,
    service: CrowdService | None = None,
    seed: int | None = None,
    background: bool = False,
) -> FastAPI:
    """The FastAPI app for a project (settings default to the project's `[settings]` crowd_* keys).

    `background=True` (a real server): the crowd's table rebuilds run in a thread of this process, started
    with the app; otherwise each request that queued one runs it after its transaction (tests, simulations).
    """
    svc = service or CrowdService(project, settings, seed=seed, background=background)
    app = FastAPI(
        title="synsetforge crowd verification",
        version=__version__,
        description="Workers verify candidate images of synsets; admins follow progress and manage workers.",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # served below, behind a token
        lifespan=_background_jobs(svc) if svc.background else None,
    )
    app.state.service = svc
    app.state.boxes = BoxService(project, seed=seed, crowd=svc)  # box tasks share workers, gold and locks
    app.state.templates = templates()
    app.add_middleware(NulGuardMiddleware)  # innermost: its 422 still gets the security headers
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(OriginCheckMiddleware)  # cross-site form posts: 403 before any route (web.csrf)
    app.add_middleware(
        BodyLimitMiddleware,
        limit=svc.settings.max_body_bytes,
        prefixes=CROWD_PREFIXES,
        own_limit=(box_io_routes.IMPORT_PATH,),  # box files: capped by the route while it reads them
    )
    static = resources.files("synsetforge.web") / "static"
    app.mount("/static", StaticFiles(directory=str(static)), name="static")
    app.include_router(api.router)
    app.include_router(pages.router)
    app.include_router(box_api.router)  # box tasks (draw, quality, coverage) in the JSON API
    app.include_router(box_pages.router)  # box task pages for workers
    app.include_router(box_io_routes.router)  # admin box import/export (COCO, VOC, ILSVRC CSV)
    app.include_router(admin.router)
    app.include_router(challenge_routes.router)  # challenge pages and API (own upload limits)
    app.include_router(explore_routes.router)  # public release explorer (train and val items only)
    install_openapi(app)  # the shared error model the routes' declared 4xx answers refer to

    @app.get("/api/v1/openapi.json", include_in_schema=False)
    def openapi(request: Request) -> JSONResponse:
        api_principal(request)
        return JSONResponse(app.openapi())

    @app.get("/img/{candidate_id}", include_in_schema=False)
    def image(request: Request, candidate_id: RowId) -> Response:
        principal = image_principal(request)
        if principal is None:
            raise HTTPException(401, "a valid token is required")
        data, media_type = service_of(request).image(principal, candidate_id)
        return Response(data, media_type=media_type, headers={"cache-control": "private, max-age=600"})

    @app.exception_handler(SynsetforgeError)
    def _domain_error(request: Request, exc: SynsetforgeError) -> Response:
        status = status_of(exc)
        message = " ".join(str(exc).split())
        if request.url.path.startswith("/api/") or request.url.path.startswith("/img/"):
            return JSONResponse({"detail": message}, status_code=status)
        return render(
            request, "message.html", status, title="Something went wrong", message=message, link=None
        )

    @app.exception_handler(RequestValidationError)
    def _invalid(request: Request, exc: RequestValidationError) -> Response:
        # The default echoes inputs back; a short list of where and what is enough.
        errors = [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", ""))} for e in exc.errors()[:20]]
        return JSONResponse({"detail": errors}, status_code=422)

    return app


def create_app_from_env() -> FastAPI:
    """For `uvicorn --factory synsetforge.web.app:create_app_from_env`: the project named by
    $SYNSETFORGE_PROJECT (or the nearest one above the working directory)."""
    return create_app(Project.open())
