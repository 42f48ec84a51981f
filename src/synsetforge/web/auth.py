"""Who is asking: bearer tokens for the JSON API, cookies for the HTML pages.

The JSON API accepts only `Authorization: Bearer <token>` (never cookies), so a foreign page cannot make a
browser call it. HTML pages use HttpOnly cookies set from an invite link, a marketplace link or the admin
login form; every form they post carries a CSRF token derived from the cookie's secret.
"""

from __future__ import annotations

from fastapi import HTTPException, Request

from synsetforge.crowd.service import CrowdService
from synsetforge.crowd.workers import Principal

WORKER_COOKIE = "sf_worker"
ADMIN_COOKIE = "sf_admin"
PLATFORM_COOKIE = "sf_platform"


def service_of(request: Request) -> CrowdService:
    svc: CrowdService = request.app.state.service
    return svc


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def api_principal(request: Request) -> Principal:
    """Any valid bearer token (401 otherwise)."""
    principal = service_of(request).principal(bearer(request))
    if principal is None:
        raise HTTPException(401, "a valid bearer token is required", headers={"WWW-Authenticate": "Bearer"})
    return principal


def api_worker(request: Request) -> Principal:
    principal = api_principal(request)
    if principal.role != "worker":
        raise HTTPException(403, "this endpoint is for workers")
    return principal


def api_admin(request: Request) -> Principal:
    principal = api_principal(request)
    if principal.role != "admin":
        raise HTTPException(403, "admin token required")
    return principal


def cookie_worker(request: Request) -> Principal | None:
    principal = service_of(request).principal(request.cookies.get(WORKER_COOKIE))
    return principal if principal is not None and principal.role == "worker" else None


def cookie_admin(request: Request) -> Principal | None:
    principal = service_of(request).principal(request.cookies.get(ADMIN_COOKIE))
    return principal if principal is not None and principal.role == "admin" else None


def image_principal(request: Request) -> Principal | None:
    """Images are fetched by <img> tags (cookies) or API clients (bearer)."""
    token = bearer(request)
    if token is not None:
        return service_of(request).principal(token)
    return cookie_admin(request) or cookie_worker(request)
