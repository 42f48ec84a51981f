"""What the OpenAPI document says beyond FastAPI's defaults, so that it tells the truth about the API.

FastAPI documents a route's success answer and its own shape of 422; the API also answers 400, 401, 403,
404, 409, 413, 422 and 429, always as JSON `{"detail": ...}` (a one-line message, or for invalid input a
list of where and what), also on routes whose success is CSV, text or an image. Routes declare those with
`errors(...)`, which refers to one shared model, `ErrorOut`; `install` puts it into the document.
tests/test_openapi_schema.py holds the document to the API with schemathesis.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.responses import Response
from fastapi.security import HTTPBearer
from pydantic import BaseModel

_REF = "#/components/schemas/{model}"

WHY = {
    400: "The request could not be read (e.g. a malformed upload)",
    401: "No valid bearer token",
    403: "The token may not do this (wrong role, blocked worker, closed challenge, scores not yet public)",
    404: "No such thing, or not yours",
    409: "The task is closed (submitted already, or expired)",
    413: "The request body is larger than the limit",
    422: "Invalid input: a parameter or body field (`detail` lists where and what), or a value the "
    "project refuses (`detail` says why)",
    429: "The team's submission limit for the last 24 hours is used up",
}

CROWD_TOKEN = HTTPBearer(
    scheme_name="crowdToken",
    description="A worker token (from an invite or study link) or an admin token "
    "(`synsetforge admin token`); each endpoint's tag says which.",
    auto_error=False,
)
PARTICIPANT_TOKEN = HTTPBearer(
    scheme_name="participantToken",
    description="A challenge participant's token (`synsetforge challenge account-add TEAM NAME`).",
    auto_error=False,
)


class ValidationIssue(BaseModel):
    loc: list[str | int]
    msg: str


class ErrorOut(BaseModel):
    """The body of every error answer of the API."""

    detail: str | list[ValidationIssue]


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries for these error statuses: JSON `ErrorOut`, whatever the success media type."""
    schema = {"$ref": _REF.format(model="ErrorOut")}
    return {
        code: {"description": WHY[code], "content": {"application/json": {"schema": schema}}}
        for code in codes
    }


def success(
    media_type: str, *, binary: bool = False, description: str = "Successful Response"
) -> dict[int | str, dict[str, Any]]:
    """`responses=` entry for a 200 answer that is not JSON (text, CSV, an image)."""
    schema: dict[str, Any] = {"type": "string", "format": "binary"} if binary else {"type": "string"}
    return {200: {"description": description, "content": {media_type: {"schema": schema}}}}


class CSVResponse(Response):
    media_type = "text/csv"


class JPEGResponse(Response):
    media_type = "image/jpeg"


def install(app: FastAPI) -> None:
    """Make `app.openapi()` include the shared error models that `errors(...)` refers to."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        doc = generate()
        schemas = doc.setdefault("components", {}).setdefault("schemas", {})
        if "ErrorOut" not in schemas:
            model = ErrorOut.model_json_schema(ref_template=_REF)
            schemas.update(model.pop("$defs", {}))
            schemas["ErrorOut"] = model
        return doc

    app.openapi = openapi  # type: ignore[method-assign]
