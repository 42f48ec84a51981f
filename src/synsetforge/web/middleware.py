"""ASGI middleware: a hard cap on request bodies, and security headers on every response.

Why a cap before parsing: a vote is a few hundred bytes; anything much larger is a mistake or an attack,
and refusing it before the JSON/form parser runs keeps memory bounded and leaves nothing half-applied.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
# MTurk shows ExternalQuestion pages in an iframe on its own sites, and its forms post back there.
_MTURK = "https://www.mturk.com https://workersandbox.mturk.com"
CSP = (
    "default-src 'self'; img-src 'self'; script-src 'self'; style-src 'self'; object-src 'none'; "
    f"base-uri 'none'; form-action 'self' {_MTURK}; frame-ancestors 'self' {_MTURK}"
)


async def _reply(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyLimitMiddleware:
    """413 for request bodies over `limit` bytes (declared or actual); the app sees only complete bodies.

    Only paths under `prefixes` are limited (the crowd's routes), except the exact paths in `own_limit`;
    routes that accept large uploads (a challenge's prediction files, an admin's box file) enforce their own
    limits while streaming.
    """

    def __init__(
        self, app: ASGIApp, limit: int, prefixes: tuple[str, ...] = ("/",), own_limit: tuple[str, ...] = ()
    ) -> None:
        self.app = app
        self.limit = limit
        self.prefixes = prefixes
        self.own_limit = frozenset(own_limit)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] not in _BODY_METHODS
            or not str(scope.get("path", "")).startswith(self.prefixes)
            or scope.get("path") in self.own_limit
        ):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                await _reply(send, 400, "malformed Content-Length")
                return
            if size > self.limit:
                await _reply(send, 413, f"request body too large (limit {self.limit} bytes)")
                return
        chunks: list[bytes] = []
        total = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            total += len(body)
            if total > self.limit:
                await _reply(send, 413, f"request body too large (limit {self.limit} bytes)")
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        whole = b"".join(chunks)
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": whole, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class SecurityHeadersMiddleware:
    """CSP (no inline script), nosniff, no referrer (tokens appear in invite URLs), no caching of pages."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers: list[Any] = list(message.get("headers", []))
                names = {h[0].lower() for h in headers}
                extra = [
                    (b"content-security-policy", CSP.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                ]
                if b"cache-control" not in names and not path.startswith("/static/"):
                    extra.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers + [h for h in extra if h[0] not in names]}
            await send(message)

        await self.app(scope, receive, wrapped)
