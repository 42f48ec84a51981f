"""Parquet export: one file per split, image bytes plus metadata, row groups sized for streaming.

A row group is flushed when its images reach `row_group_bytes` or it has `row_group_rows` rows, so a reader
can stream the file one row group at a time and the writer never holds more than one group. The image column
is stored uncompressed (JPEG does not compress) and without statistics; the other columns use zstd. The
schema's key/value metadata carries the release name, manifest checksum and class list. Output is
deterministic for a given pyarrow version (pyarrow writes its version into the footer).
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from synsetforge.releases.exports.common import Context, ext_of
from synsetforge.releases.exports.folders import sample_metadata
from synsetforge.releases.splits import SPLITS

DEFAULT_ROW_GROUP_BYTES = 64 * 1024 * 1024
DEFAULT_ROW_GROUP_ROWS = 10_000

FIELDS: list[tuple[str, pa.DataType]] = [
    ("image", pa.binary()),
    ("format", pa.string()),
    ("label", pa.int32()),
    ("synset", pa.string()),
    ("wnid", pa.string()),
    ("words", pa.string()),
    ("split", pa.string()),
    ("image_id", pa.int64()),
    ("sha256", pa.string()),
    ("blob_sha256", pa.string()),
    ("width", pa.int32()),
    ("height", pa.int32()),
    ("confidence", pa.float64()),
    ("votes_yes", pa.int32()),
    ("votes_no", pa.int32()),
    ("license", pa.string()),
    ("author", pa.string()),
    ("source", pa.string()),
    ("source_kind", pa.string()),
    ("url", pa.string()),
    ("page_url", pa.string()),
    ("boxes", pa.list_(pa.list_(pa.int32()))),
    ("duplicate_cluster", pa.int64()),
]
_DICTIONARY = ["format", "synset", "wnid", "words", "split", "license", "source", "source_kind"]
_STATS = ["label", "image_id", "width", "height", "confidence", "votes_yes", "votes_no", "duplicate_cluster"]


def _schema(ctx: Context) -> pa.Schema:
    meta = {
        "release": ctx.release.name,
        "manifest_sha256": ctx.release.manifest_sha256,
        "classes": [ctx.wnid[s] for s in ctx.classes],
        "synsets": ctx.classes,
    }
    return pa.schema(FIELDS, metadata={b"synsetforge": json.dumps(meta, sort_keys=True).encode("utf-8")})


def _compression() -> dict[str, str]:
    out = {name: "ZSTD" for name, _ in FIELDS if name not in ("image", "boxes")}
    out["image"] = "NONE"
    out["boxes.list.element.list.element"] = "ZSTD"
    return out


def _write_split(
    ctx: Context, split: str, row_group_bytes: int, row_group_rows: int
) -> dict[str, Any] | None:
    schema = _schema(ctx)
    names = [name for name, _ in FIELDS]
    writer: pq.ParquetWriter | None = None
    columns: dict[str, list[Any]] = {n: [] for n in names}
    buffered = rows = groups = 0
    try:
        for item in ctx.items(split):
            if writer is None:
                writer = pq.ParquetWriter(
                    ctx.path(f"{split}.parquet"),
                    schema,
                    compression=_compression(),
                    use_dictionary=_DICTIONARY,
                    write_statistics=_STATS,
                )
            data = ctx.blob(item.blob).read()
            row = sample_metadata(ctx, item)
            row["image"] = data
            row["format"] = ext_of(data[:16])
            for n in names:
                columns[n].append(row[n])
            buffered += len(data)
            rows += 1
            if buffered >= row_group_bytes or len(columns["image"]) >= row_group_rows:
                _flush(writer, schema, columns)
                buffered = 0
                groups += 1
        if writer is not None and columns["image"]:
            _flush(writer, schema, columns)
            groups += 1
    finally:
        if writer is not None:
            writer.close()
    if not rows:
        return None
    return {"file": f"{split}.parquet", "rows": rows, "row_groups": groups}


def _flush(writer: pq.ParquetWriter, schema: pa.Schema, columns: dict[str, list[Any]]) -> None:
    """Write the buffered rows as one row group and empty the buffer."""
    table = pa.table(columns, schema=schema)
    writer.write_table(table, row_group_size=table.num_rows)
    for col in columns.values():
        col.clear()


def export_parquet(
    ctx: Context,
    row_group_bytes: int = DEFAULT_ROW_GROUP_BYTES,
    row_group_rows: int = DEFAULT_ROW_GROUP_ROWS,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for split in SPLITS:
        done = _write_split(ctx, split, row_group_bytes, row_group_rows)
        if done is not None:
            out[split] = done
    return out
