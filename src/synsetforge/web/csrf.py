"""Cross-site request forgery: two independent layers in front of every HTML form that changes state.

1. A token in the form that another site cannot know. Forms of a signed-in user carry a token derived from
   their cookie's secret (`crowd.tokens.csrf_token`, `challenge_routes.csrf_for`). Forms shown before
   sign-in (the admin and challenge login forms) carry the value of a random `sf_csrf` cookie (double
   submit): a foreign page can make the browser post a form, but cannot read the cookie to copy it into
   the form, and the cookie (SameSite=Strict) is not even sent with a cross-site post.
2. `OriginCheckMiddleware`: browsers say where a POST comes from (`Sec-Fetch-Site`, else `Origin`); one
   from another site is refused with 403 before any route runs. Clients that are not browsers send neither
   header and are unaffected; the JSON API takes bearer tokens only, which a browser never adds to a
   cross-site request by itself.

Why the login forms need it too: without it a foreign page can post the attacker's own token to a login
form and sign the visitor in as the attacker ("login CSRF"): the visitor then works, or uploads, as them.
"""

from __future__ import annotations

import hmac
import json
import re
import secrets
from urllib.parse import urlsplit

from fastapi import Request
from fastapi.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

LOGIN_COOKIE = "sf_csrf"
_WELL_FORMED = re.compile(r"^[A-Za-z0-9_-]{32,64}$")
_UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
_ALLOWED_FETCH_SITES = {"same-origin", "none"}  # "none": the user typed or bookmarked it


def login_token(request: Request) -> str:
    """The visitor's form token for the login forms: their `sf_csrf` cookie, or a fresh random one (which
    `remember_login_token` must then set on the response that shows the form)."""
    value = request.cookies.get(LOGIN_COOKIE, "")
    return value if _WELL_FORMED.match(value) else secrets.token_urlsafe(32)


def remember_login_token(response: Response, request: Request, value: str) -> None:
    if request.cookies.get(LOGIN_COOKIE) == value:
        return
    response.set_cookie(
        LOGIN_COOKIE,
        value,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
        max_age=7 * 86400,
    )


def login_token_ok(request: Request, given: str | None) -> bool:
    """True when the form's token equals the visitor's `sf_csrf` cookie (both present and well-formed)."""
    cookie = request.cookies.get(LOGIN_COOKIE, "")
    return bool(_WELL_FORMED.match(cookie)) and hmac.compare_digest(cookie, given or "")


def cross_site(headers: dict[bytes, bytes]) -> bool:
    """Whether a browser marked the request as sent by a page of another site.

    `Sec-Fetch-Site` decides when present (every current browser sends it); otherwise an `Origin` other
    than the request's own host (an `Origin: null`, from sandboxed frames, counts as foreign). Requests
    with neither header are not from a browser page and pass.
    """
    site = headers.get(b"sec-fetch-site")
    if site is not None:
        return site.decode("latin-1").strip().lower() not in _ALLOWED_FETCH_SITES
    origin = headers.get(b"origin")
    if origin is None:
        return False
    text = origin.decode("latin-1").strip()
    if text.lower() == "null":
        return True
    host = headers.get(b"host", b"").decode("latin-1").strip().lower()
    try:
        return urlsplit(text).netloc.lower() != host
    except ValueError:
        return True


class OriginCheckMiddleware:
    """403 for a state-changing request (POST, PUT, PATCH, DELETE) that a browser says came from another
    site; it reaches no route, so no cookie is set and nothing changes."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] not in _UNSAFE
            or not cross_site(dict(scope["headers"]))
        ):
            await self.app(scope, receive, send)
            return
        body = json.dumps({"detail": "refused: this form was sent from another site"}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 403,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
