"""Release exports: ILSVRC-2012, ImageFolder, WebDataset, Parquet, COCO, PASCAL VOC and a datasheet.

Every export streams the release manifest (memory does not grow with the release), copies image bytes from
the blob store, and is byte-identical when repeated: fixed tar metadata, gzip ``mtime=0``, manifest order,
deterministic JSON and Parquet. Each output folder gets a ``release.json`` describing what it holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synsetforge.errors import InputError, SynsetforgeError
from synsetforge.releases.exports.common import Context, prepare_out
from synsetforge.releases.exports.folders import DEFAULT_SHARD_SIZE
from synsetforge.releases.exports.parquet import DEFAULT_ROW_GROUP_BYTES, DEFAULT_ROW_GROUP_ROWS
from synsetforge.releases.release import get_release
from synsetforge.store.project import Project

FORMATS = ("ilsvrc", "imagefolder", "webdataset", "parquet", "coco", "voc", "datasheet")


@dataclass
class ExportResult:
    format: str
    out: Path
    summary: dict[str, Any] = field(default_factory=dict)
    files: int = 0
    bytes: int = 0


def export_release(
    project: Project,
    name: str,
    fmt: str,
    out: Path | str,
    *,
    force: bool = False,
    shard_size: int = DEFAULT_SHARD_SIZE,
    row_group_bytes: int = DEFAULT_ROW_GROUP_BYTES,
    row_group_rows: int = DEFAULT_ROW_GROUP_ROWS,
    classes: Sequence[str] | None = None,
) -> ExportResult:
    """Export release `name` as `fmt` into the folder `out` (which must be empty unless `force`)."""
    if fmt not in FORMATS:
        raise InputError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if shard_size < 1024:
        raise InputError(f"--shard-size must be at least 1 KiB, got {shard_size}")
    if row_group_bytes < 1 or row_group_rows < 1:
        raise InputError("row group sizes must be positive")
    release = get_release(project, name)
    out = Path(out)
    if fmt in ("coco", "voc") and not int(release.stats.get("boxes", {}).get("boxes", 0)):
        raise InputError(f"release {name!r} has no boxes; nothing to export as {fmt}")
    prepare_out(out, force=force)
    ctx = Context.open(project, release, out)
    summary: dict[str, Any]
    if fmt == "ilsvrc":
        from synsetforge.releases.exports.ilsvrc import export_ilsvrc

        summary = export_ilsvrc(ctx, classes)
    elif fmt == "imagefolder":
        from synsetforge.releases.exports.folders import export_imagefolder

        summary = dict(export_imagefolder(ctx))
    elif fmt == "webdataset":
        from synsetforge.releases.exports.folders import export_webdataset

        summary = export_webdataset(ctx, shard_size)
    elif fmt == "parquet":
        from synsetforge.releases.exports.parquet import export_parquet

        summary = export_parquet(ctx, row_group_bytes, row_group_rows)
    elif fmt == "coco":
        from synsetforge.releases.exports.coco import export_coco

        summary = export_coco(ctx)
    elif fmt == "voc":
        from synsetforge.releases.exports.voc import export_voc

        summary = {"images": export_voc(ctx)}
    else:
        from synsetforge.releases.exports.datasheet import render_datasheet
        from synsetforge.releases.quality import estimate_precision
        from synsetforge.releases.release import check_split_leaks

        try:
            hierarchy: Any = project.hierarchy
        except SynsetforgeError:  # the sheet is still useful without the hierarchy
            hierarchy = None
        text = render_datasheet(
            release, estimate_precision(project, release), check_split_leaks(project, release), hierarchy
        )
        ctx.write_bytes("DATASHEET.md", text.encode("utf-8"))
        summary = {"file": "DATASHEET.md"}
    ctx.marker(fmt, {"summary": summary})
    files = size = 0
    for path in out.rglob("*"):
        if path.is_file():
            files += 1
            size += path.stat().st_size
    return ExportResult(fmt, out, summary, files, size)
