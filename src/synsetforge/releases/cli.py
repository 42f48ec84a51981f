"""``synsetforge release``: create, inspect, compare, audit, report on and export releases.

Thin layer over the Python API in `synsetforge.releases`; user errors are `SynsetforgeError`s, printed as one
line by the top-level CLI.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from synsetforge.cliopts import ProjectOpt, typer_app
from synsetforge.clitables import Table
from synsetforge.errors import InputError
from synsetforge.releases.exports import FORMATS, export_release
from synsetforge.releases.exports.folders import DEFAULT_SHARD_SIZE
from synsetforge.releases.exports.parquet import DEFAULT_ROW_GROUP_BYTES, DEFAULT_ROW_GROUP_ROWS
from synsetforge.releases.quality import PrecisionReport, create_audit, estimate_precision
from synsetforge.releases.release import (
    create_release,
    diff_releases,
    get_release,
    list_releases,
)
from synsetforge.releases.report import write_report
from synsetforge.releases.splits import DEFAULT_PHASH_DISTANCE, SplitSpec
from synsetforge.store.classes import class_list as class_list_ids
from synsetforge.store.project import Project

app = typer_app(
    help="Immutable releases of the accepted images: create, diff, audit, report, export.",
    no_args_is_help=True,
)
audit_app = typer_app(help="Expert audits of a release's precision.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$", re.IGNORECASE)
_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "m": 1000**2,
    "g": 1000**3,
    "t": 1000**4,
    "ki": 1024,
    "mi": 1024**2,
    "gi": 1024**3,
    "ti": 1024**4,
}


def _console() -> Console:
    return Console(highlight=False, soft_wrap=False)


def parse_bytes(text: str) -> int:
    """``256MB``, ``64MiB``, ``1e6``-free plain integers: a size in bytes."""
    m = _SIZE.match(text)
    if not m:
        raise InputError(f"not a size: {text!r} (use e.g. 256MB, 64MiB or a number of bytes)")
    unit = (m.group(2) or "").lower().removesuffix("b")
    if unit not in _UNITS:
        raise InputError(f"unknown size unit in {text!r}")
    return int(float(m.group(1)) * _UNITS[unit])


def _split_list(values: list[str] | None) -> list[str]:
    out: list[str] = []
    for v in values or []:
        out += [x.strip() for x in v.split(",") if x.strip()]
    return out


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


@app.command()
def create(
    name: Annotated[str, typer.Argument(help="Release name (letters, digits, '.', '_', '-').")],
    min_confidence: Annotated[
        float | None, typer.Option(help="Only accepted images with at least this confidence (0..1).")
    ] = None,
    synsets: Annotated[
        list[str] | None,
        typer.Option("--synsets", "-s", help="Synset ids to include (repeat or comma-separate)."),
    ] = None,
    subtree: Annotated[
        str | None, typer.Option(help="Include the project synsets under this synset.")
    ] = None,
    min_images: Annotated[int, typer.Option(help="Leave out synsets with fewer accepted images.")] = 1,
    val: Annotated[
        str, typer.Option(help="Validation size per synset: a count (50) or fraction (0.1, 10%).")
    ] = "0.1",
    test: Annotated[str, typer.Option(help="Test size per synset: a count or a fraction.")] = "0.1",
    seed: Annotated[int, typer.Option(help="Seed of the split assignment.")] = 0,
    phash_distance: Annotated[
        int,
        typer.Option(help="Images whose pHashes differ in at most this many bits share a split (-1: off)."),
    ] = DEFAULT_PHASH_DISTANCE,
    method: Annotated[
        str | None,
        typer.Option(help="Name of the aggregation that made the decisions (default: from the project)."),
    ] = None,
    box_status: Annotated[
        list[str] | None, typer.Option(help="Box statuses to include (default: good).")
    ] = None,
    notes: Annotated[str, typer.Option(help="Free text stored with the release.")] = "",
    project: ProjectOpt = None,
) -> None:
    """Freeze the accepted images into a new, immutable release with train/val/test splits."""
    spec = SplitSpec(SplitSpec.parse_size(val, "val"), SplitSpec.parse_size(test, "test"))
    with Project.open(project) as p:
        rel = create_release(
            p,
            name,
            min_confidence=min_confidence,
            synsets=_split_list(synsets) or None,
            subtree=subtree,
            min_images=min_images,
            split=spec,
            seed=seed,
            phash_distance=phash_distance,
            method=method,
            box_statuses=tuple(box_status or ("good",)),
            notes=notes,
        )
    st = rel.stats
    sp = st["splits"]
    c = _console()
    c.print(
        f"Created release [bold]{rel.name}[/]: {st['images']:,} images ({st['distinct_images']:,} distinct) "
        f"in {st['synsets']:,} synsets"
    )
    c.print(f"  splits    train {sp['train']:,} / val {sp['val']:,} / test {sp['test']:,} (seed {seed})")
    c.print(f"  method    {rel.method}")
    d = st["duplicates"]
    c.print(
        f"  clusters  {d['clusters']:,} near-duplicate clusters ({d['images_in_clusters']:,} images), "
        f"{d['straddling_clusters']} straddling splits"
    )
    c.print(f"  boxes     {st['boxes']['boxes']:,} on {st['boxes']['images_with_boxes']:,} images")
    if st["dropped_synsets"]:
        c.print(f"  dropped   {len(st['dropped_synsets'])} synsets below --min-images {min_images}")
    if st["short_synsets"]:
        c.print(
            f"  short     {len(st['short_synsets'])} synsets too small for the held-out counts (scaled down)"
        )
    c.print(f"  manifest  sha256 {rel.manifest_sha256}")


@app.command("list")
def list_cmd(project: ProjectOpt = None) -> None:
    """List the project's releases."""
    with Project.open(project) as p:
        rels = list_releases(p)
    table = Table("name", "created", "method", "synsets", "images", "train", "val", "test", "manifest")
    for r in rels:
        sp = r.stats.get("splits", {})
        table.add_row(
            r.name,
            r.created_at.isoformat(timespec="seconds"),
            r.method or "",
            f"{r.stats.get('synsets', 0):,}",
            f"{r.stats.get('images', 0):,}",
            f"{sp.get('train', 0):,}",
            f"{sp.get('val', 0):,}",
            f"{sp.get('test', 0):,}",
            r.manifest_sha256[:12],
        )
    c = _console()
    c.print(table)
    c.print(f"{len(rels)} releases")


@app.command()
def show(
    name: Annotated[str, typer.Argument(help="Release name.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the stored record as JSON.")] = False,
    project: ProjectOpt = None,
) -> None:
    """Show a release: parameters, split sizes, per-synset counts and the measured precision."""
    with Project.open(project) as p:
        rel = get_release(p, name)
        precision = estimate_precision(p, rel)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "name": rel.name,
                    "created_at": rel.created_at.isoformat(),
                    "method": rel.method,
                    "params": rel.params,
                    "manifest_sha256": rel.manifest_sha256,
                    "stats": rel.stats,
                    "precision": precision.to_dict(),
                },
                indent=1,
                sort_keys=True,
            )
        )
        return
    c = _console()
    st = rel.stats
    c.print(
        f"[bold]{rel.name}[/] created {rel.created_at.isoformat(timespec='seconds')}, method {rel.method}"
    )
    c.print(f"manifest sha256 {rel.manifest_sha256}")
    c.print("params " + json.dumps({k: v for k, v in rel.params.items() if k != "synsets"}, sort_keys=True))
    table = Table("synset", "name", "depth", "train", "val", "test", "total", "audited", "precision")
    prec = {r.synset: r for r in precision.synsets}
    for row in st.get("per_synset", []):
        pr = prec.get(row["synset"])
        table.add_row(
            row["synset"],
            row["name"],
            str(row["depth"]),
            str(row["train"]),
            str(row["val"]),
            str(row["test"]),
            str(row["total"]),
            str(pr.audited if pr else 0),
            _pct(pr.precision if pr else None),
        )
    c.print(table)
    sp = st.get("splits", {})
    c.print(
        f"{st.get('images', 0):,} images in {st.get('synsets', 0):,} synsets: train {sp.get('train', 0):,}, "
        f"val {sp.get('val', 0):,}, test {sp.get('test', 0):,}"
    )
    _print_precision(c, precision)


@app.command()
def diff(
    old: Annotated[str, typer.Argument(help="The older release.")],
    new: Annotated[str, typer.Argument(help="The newer release.")],
    images: Annotated[bool, typer.Option("--images", help="List the content hashes too.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the full difference as JSON.")] = False,
    project: ProjectOpt = None,
) -> None:
    """Images added and removed per synset between two releases (by content hash)."""
    with Project.open(project) as p:
        diffs = diff_releases(p, old, new)
    if as_json:
        typer.echo(
            json.dumps(
                [
                    {
                        "synset": d.synset,
                        "added": d.added,
                        "removed": d.removed,
                        "moved": [list(m) for m in d.moved],
                    }
                    for d in diffs
                ],
                indent=1,
            )
        )
        return
    c = _console()
    table = Table("synset", "added", "removed", "moved split")
    for d in diffs:
        table.add_row(d.synset, str(len(d.added)), str(len(d.removed)), str(len(d.moved)))
    c.print(table)
    c.print(
        f"{old} -> {new}: +{sum(len(d.added) for d in diffs):,} -{sum(len(d.removed) for d in diffs):,} "
        f"images in {len(diffs)} synsets; {sum(len(d.moved) for d in diffs):,} changed split"
    )
    if images:
        for d in diffs:
            for sha in d.added:
                c.print(f"+ {d.synset} {sha}")
            for sha in d.removed:
                c.print(f"- {d.synset} {sha}")


@app.command()
def export(
    name: Annotated[str, typer.Argument(help="Release name.")],
    fmt: Annotated[str, typer.Option("--format", "-f", help=f"One of: {', '.join(FORMATS)}.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (must be empty unless --force).")],
    force: Annotated[bool, typer.Option(help="Replace a previous synsetforge export in --out.")] = False,
    shard_size: Annotated[str, typer.Option(help="WebDataset: target shard size (e.g. 256MB).")] = str(
        DEFAULT_SHARD_SIZE
    ),
    row_group_size: Annotated[
        str, typer.Option(help="Parquet: image bytes per row group (e.g. 64MB).")
    ] = str(DEFAULT_ROW_GROUP_BYTES),
    row_group_rows: Annotated[int, typer.Option(help="Parquet: at most this many rows per row group.")] = (
        DEFAULT_ROW_GROUP_ROWS
    ),
    class_list: Annotated[
        str | None, typer.Option(help="ILSVRC: a stored class list fixing the ILSVRC2012_ID order.")
    ] = None,
    project: ProjectOpt = None,
) -> None:
    """Export a release: ilsvrc, imagefolder, webdataset, parquet, coco, voc or a datasheet."""
    with Project.open(project) as p:
        classes = class_list_ids(p, class_list) if class_list else None
        result = export_release(
            p,
            name,
            fmt,
            out,
            force=force,
            shard_size=parse_bytes(shard_size),
            row_group_bytes=parse_bytes(row_group_size),
            row_group_rows=row_group_rows,
            classes=classes,
        )
    c = _console()
    c.print(
        f"Exported [bold]{name}[/] as {fmt} to {result.out}: {result.files:,} files, "
        f"{result.bytes / 1e6:,.1f} MB"
    )
    for key, value in result.summary.items():
        if isinstance(value, dict):
            value = {k: v for k, v in value.items() if k != "shards"}
        c.print(f"  {key}: {json.dumps(value, sort_keys=True)}")


@app.command()
def report(
    name: Annotated[str, typer.Argument(help="Release name.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for stats.json and report.html.")],
    project: ProjectOpt = None,
) -> None:
    """Write the release's statistics as JSON and an HTML report with plots."""
    with Project.open(project) as p:
        json_path, html_path = write_report(p, name, out)
        precision = estimate_precision(p, name)
    c = _console()
    c.print(f"wrote {json_path}")
    c.print(f"wrote {html_path}")
    _print_precision(c, precision)


def _print_precision(c: Console, precision: PrecisionReport) -> None:
    if not precision.audited:
        c.print("precision: not measured yet (no expert audit votes)")
        return
    c.print(
        f"precision {_pct(precision.estimate)} [95% {_pct(precision.low)}, {_pct(precision.high)}] from "
        f"{precision.audited:,} audited images ({_pct(precision.audited_share)} of images in audited synsets)"
    )


@audit_app.command("create")
def audit_create(
    name: Annotated[str, typer.Argument(help="Release name.")],
    per_synset: Annotated[int, typer.Option(help="Images to sample per synset.")] = 10,
    worker: Annotated[
        list[int] | None, typer.Option(help="Expert worker id (repeat; default: all experts).")
    ] = None,
    redundancy: Annotated[int, typer.Option(help="Experts per sampled image.")] = 1,
    gold_per_task: Annotated[int, typer.Option(help="Gold items mixed into each task.")] = 0,
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 0,
    synsets: Annotated[list[str] | None, typer.Option("--synsets", "-s", help="Only these synsets.")] = None,
    project: ProjectOpt = None,
) -> None:
    """Create audit tasks for expert workers over a random sample of a release's images."""
    with Project.open(project) as p:
        plan = create_audit(
            p,
            name,
            per_synset=per_synset,
            workers=worker,
            redundancy=redundancy,
            gold_per_task=gold_per_task,
            seed=seed,
            synsets=_split_list(synsets) or None,
        )
    c = _console()
    c.print(
        f"Created {len(plan.tasks)} audit tasks over {plan.sampled:,} sampled images in {plan.synsets} synsets"
    )
    if plan.exhausted:
        c.print(f"  {len(plan.exhausted)} synsets had fewer unaudited images than --per-synset {per_synset}")


@audit_app.command("precision")
def audit_precision(
    name: Annotated[str, typer.Argument(help="Release name.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the full report as JSON.")] = False,
    project: ProjectOpt = None,
) -> None:
    """Estimated precision per synset and overall (Wilson 95% intervals) from the expert audits."""
    with Project.open(project) as p:
        precision = estimate_precision(p, name)
    if as_json:
        typer.echo(json.dumps(precision.to_dict(), indent=1, sort_keys=True))
        return
    c = _console()
    table = Table("synset", "images", "audited", "correct", "disputed", "precision", "95% interval")
    for r in precision.synsets:
        table.add_row(
            r.synset,
            str(r.images),
            str(r.audited),
            str(r.correct),
            str(r.disputed),
            _pct(r.precision),
            f"{_pct(r.low)} - {_pct(r.high)}" if r.audited else "-",
        )
    c.print(table)
    _print_precision(c, precision)
