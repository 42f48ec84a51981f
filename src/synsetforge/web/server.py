"""Run the app with uvicorn: in the foreground (`synsetforge serve`, one process or `--workers N` processes
sharing the port) or in a thread on loopback (tests, `crowd simulate`, the demo), on a free port chosen
by the OS."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import Request
from fastapi.responses import JSONResponse

from synsetforge.errors import StoreError
from synsetforge.store import PROJECT_ENV


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class ThreadedServer:
    """uvicorn serving `app` from a daemon thread; a context manager that waits until it accepts."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int | None = None, **options: Any) -> None:
        self.host = host
        self.port = port or free_port(host)
        config = uvicorn.Config(
            app, host=host, port=self.port, log_level="warning", access_log=False, lifespan="off", **options
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="synsetforge-web", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> ThreadedServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise StoreError(f"the web server did not start on {self.url}")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


# -- `synsetforge serve --workers N`: N processes on one port ------------------------------------------

WORKERS_ENV = "SYNSETFORGE_SERVE_WORKERS"
SERVER_INFO_PATH = "/api/v1/admin/server"


class RequestCounter:
    """Pure ASGI middleware counting this process's requests into `counts` (task, submit, all)."""

    def __init__(self, app: Any, counts: dict[str, int]) -> None:
        self.app = app
        self.counts = counts

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.counts["all"] += 1
            path: str = scope["path"]
            if scope["method"] == "GET" and path == "/api/v1/task":
                self.counts["task"] += 1
            elif scope["method"] == "POST" and path.startswith("/api/v1/tasks/") and path.endswith("/submit"):
                self.counts["submit"] += 1
        await self.app(scope, receive, send)


def install_server_info(app: Any, processes: int) -> None:
    """An admin-only `GET /api/v1/admin/server`: which process answered (pid), how many the server runs,
    the database backend and what this process served -- to see every process of `--workers N` at work."""
    from synsetforge.web.auth import api_admin, service_of

    counts = {"task": 0, "submit": 0, "all": 0}
    app.add_middleware(RequestCounter, counts=counts)

    @app.get(SERVER_INFO_PATH, include_in_schema=False)
    def server_info(request: Request) -> JSONResponse:
        api_admin(request)
        return JSONResponse(
            {
                "pid": os.getpid(),
                "processes": processes,
                "backend": service_of(request).project.dialect,
                "served": dict(counts),
            }
        )


def create_served_app() -> Any:
    """The app of one process of `synsetforge serve`: the project named by $SYNSETFORGE_PROJECT, plus the
    server info route. uvicorn calls this factory in each worker process, so every process has its own
    service (its own connection pool) and they share state only through the database."""
    from synsetforge.store.project import Project
    from synsetforge.web.app import create_app

    app = create_app(Project.open(), background=True)
    install_server_info(app, int(os.environ.get(WORKERS_ENV, "1")))
    return app


def serve_workers(root: Path, host: str, port: int, workers: int) -> None:
    """Run `workers` uvicorn processes on host:port, each building its app with `create_served_app`.

    SQLite is refused before this is called (it has one writer: more processes would only queue on its
    write lock). Blocks until interrupted; uvicorn's supervisor restarts a worker process that dies.
    """
    os.environ[PROJECT_ENV] = str(root)
    os.environ[WORKERS_ENV] = str(workers)
    uvicorn.run(
        "synsetforge.web.server:create_served_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        access_log=False,
    )
