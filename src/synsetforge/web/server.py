"""Run the app with uvicorn: in the foreground (`synsetforge serve`) or in a thread on loopback (tests,
`crowd simulate`, the demo), on a free port chosen by the OS."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import uvicorn

from synsetforge.errors import StoreError


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
