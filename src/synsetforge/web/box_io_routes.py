"""Admin JSON API for box files: `POST /api/v1/admin/boxes/import` and `GET /api/v1/admin/boxes/export`.

Same behaviour as `synsetforge boxes import` / `boxes export` (see `boxes.importing`, `boxes.exporting`):
an import is one transaction (a malformed file is a 422 naming the place, and nothing is stored); the
export is LIVE (the boxes accepted now, original-image pixels), unlike a release's frozen export.

The upload is the raw request body or a multipart form with a field named ``file``, read with its own cap
(`IMPORT_LIMIT`, 413 beyond it) instead of the crowd app's small body limit (the app exempts `IMPORT_PATH`).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Security
from fastapi.responses import Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from synsetforge.boxes.exporting import export_bytes
from synsetforge.boxes.importing import MAX_IMPORT_BYTES, import_upload, parse_mapping
from synsetforge.crowd.workers import Principal
from synsetforge.web.auth import api_admin, service_of
from synsetforge.web.openapi import CROWD_TOKEN, errors

IMPORT_LIMIT = 16 * 1024 * 1024
"""Largest box file the HTTP import reads (the CLI reads up to `MAX_IMPORT_BYTES`)."""
_SLACK = 64 * 1024  # multipart envelope around the file
PREFIX = "/api/v1/admin/boxes"
IMPORT_PATH = f"{PREFIX}/import"

router = APIRouter(
    prefix=PREFIX,
    tags=["admin"],
    dependencies=[Security(CROWD_TOKEN)],
    responses=errors(401, 403),
)
Admin = Annotated[Principal, Depends(api_admin)]


class BoxFormat(StrEnum):
    coco = "coco"
    voc = "voc"
    ilsvrc_csv = "ilsvrc-csv"


class SkipOut(BaseModel):
    place: str
    reason: str


class ImportOut(BaseModel):
    source: str
    format: str
    files: int
    records: int
    imported: int
    duplicates: int
    clipped: int
    skipped: list[SkipOut]
    per_file: dict[str, dict[str, int]]  # VOC: new / duplicates / skipped per XML file
    dry_run: bool


async def _read(request: Request, limit: int) -> tuple[bytes, str | None]:
    """(file bytes, its file name if a form gave one); 413 past the limit, 400 for a broken form."""
    cap = limit + _SLACK
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > cap:
        raise HTTPException(413, f"the upload is {int(declared):,} bytes; box imports take at most {limit:,}")
    buf = bytearray()
    async for chunk in request.stream():
        buf += chunk
        if len(buf) > cap:
            raise HTTPException(413, f"the upload is larger than the box import limit of {limit:,} bytes")
    body = bytes(buf)
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        if len(body) > limit:
            raise HTTPException(413, f"the upload is larger than the box import limit of {limit:,} bytes")
        return body, None

    async def once() -> AsyncGenerator[bytes, None]:
        yield body
        yield b""

    try:
        form = await MultiPartParser(request.headers, once(), max_files=1, max_fields=5).parse()
    except MultiPartException as exc:
        raise HTTPException(400, f"malformed upload: {exc.message}") from None
    data: bytes | None = None
    filename: str | None = None
    for key, value in form.multi_items():
        if isinstance(value, UploadFile):
            if key == "file":
                data, filename = await value.read(), value.filename
            await value.close()
    if data is None:
        raise HTTPException(400, "the form has no file field named 'file'")
    if len(data) > limit:
        raise HTTPException(413, f"the upload is larger than the box import limit of {limit:,} bytes")
    return data, filename


@router.post(
    "/import",
    response_model=ImportOut,
    responses=errors(400, 404, 413, 422),
    openapi_extra={
        "requestBody": {
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
        }
    },
)
async def import_boxes_route(
    request: Request,
    _: Admin,
    format: Annotated[
        BoxFormat, Query(description="coco, voc (one XML file or a zip of them) or ilsvrc-csv")
    ],
    name: Annotated[str | None, Query(max_length=200, description="File name for origin_ref")] = None,
    map: Annotated[list[str] | None, Query(max_length=200, description="NAME=SYNSET, repeatable")] = None,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Import a box file (COCO, VOC or ILSVRC CSV) as accepted, imported boxes; one transaction."""
    data, filename = await _read(request, min(IMPORT_LIMIT, MAX_IMPORT_BYTES))
    mapping = parse_mapping(map or [])
    project = service_of(request).project
    report = await run_in_threadpool(
        import_upload,
        project,
        name or filename or f"upload.{format.value}",
        data,
        format.value,
        mapping=mapping,
        dry_run=dry_run,
    )
    return report.as_dict()


@router.get(
    "/export",
    responses={
        200: {
            "description": "COCO JSON, the ILSVRC CSV, or a zip of VOC XML files",
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "text/csv": {"schema": {"type": "string"}},
                "application/zip": {"schema": {"type": "string", "format": "binary"}},
            },
        },
        **errors(422),
    },
)
def export_boxes_route(
    request: Request, _: Admin, format: Annotated[BoxFormat, Query(description="coco, voc or ilsvrc-csv")]
) -> Response:
    """The accepted boxes as they are now (live; a release's export has its frozen boxes)."""
    data, media, images, boxes = export_bytes(service_of(request).project, format.value)
    suffix = {"coco": "json", "ilsvrc-csv": "csv", "voc": "zip"}[format.value]
    return Response(
        data,
        media_type=media,
        headers={
            "content-disposition": f'attachment; filename="boxes-{format.value}.{suffix}"',
            "x-synsetforge-export": f"live; images={images}; boxes={boxes}",
        },
    )
