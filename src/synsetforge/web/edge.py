"""The input policy of every web route, in one place: what a request may carry before it reaches the store.

- Integer ids in paths (`RowId`) must be 1..`MAX_ROW_ID` (a 32-bit key, what PostgreSQL's `integer`
  columns hold); anything else is refused with 422 and the parameter named, on both databases alike.
- No NUL byte anywhere: not in the path or query (`NulGuardMiddleware`, 422 before routing), not in JSON
  text fields (`Text`), not in HTML form fields (`form_has_nul`). PostgreSQL cannot store one and SQLite
  would, so refusing at the edge keeps the two databases alike.

Every refusal is 422 with the shape of FastAPI's validation errors: `{"detail": [{"loc": [...], "msg":
"..."}]}`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Annotated
from urllib.parse import quote

from fastapi import Path
from pydantic import AfterValidator
from starlette.types import ASGIApp, Receive, Scope, Send

from synsetforge.limits import MAX_ROW_ID, nul_free

NUL_MESSAGE = "NUL characters are not allowed"

RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID, description=f"A row id: an integer from 1 to {MAX_ROW_ID}.")]
"""A path parameter naming a row (image, candidate, task, worker, submission)."""


def _no_nul(value: str) -> str:
    if not nul_free(value):
        raise ValueError(NUL_MESSAGE)
    return value


Text = Annotated[str, AfterValidator(_no_nul)]
"""A JSON text field the store will keep: any string without NUL characters."""


def form_has_nul(values: Iterable[object]) -> bool:
    """True when any text field of a posted HTML form holds a NUL character."""
    return any(isinstance(v, str) and not nul_free(v) for v in values)


def _refusal(where: str) -> bytes:
    return json.dumps({"detail": [{"loc": [where], "msg": NUL_MESSAGE}]}).encode()


class NulGuardMiddleware:
    """422 for a request whose path or query string holds a NUL (`%00` or a raw zero byte)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            where = None
            if "\x00" in str(scope.get("path", "")) or b"%00" in bytes(scope.get("raw_path") or b""):
                where = "path"
            elif b"%00" in bytes(scope.get("query_string", b"")) or b"\x00" in bytes(
                scope.get("query_string", b"")
            ):
                where = "query"
            if where is not None:
                body = _refusal(where)
                headers = [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ]
                await send({"type": "http.response.start", "status": 422, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def path_segment(value: object) -> str:
    """`value` quoted as one URL path segment (`/` too), for links the templates build from ids.

    Jinja's `urlencode` keeps `/`, so a custom synset id such as `tools/hammer` would split into two
    segments; routes that take a synset id use Starlette's `path` converter, which gets it back whole.
    """
    return quote(str(value), safe="")
