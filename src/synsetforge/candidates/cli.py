"""`synsetforge collect` and `synsetforge candidates ...`: gather candidate images into a project."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from synsetforge.candidates.collect import CollectOptions, CollectSummary, collect
from synsetforge.candidates.netpolicy import FetchPolicy
from synsetforge.candidates.process import ImagePolicy
from synsetforge.candidates.stats import Tally, candidate_stats
from synsetforge.cliopts import ProjectOpt, typer_app
from synsetforge.clitables import Table
from synsetforge.errors import InputError
from synsetforge.store.project import Project

app = typer_app(help="Candidate images: statistics of what collection gathered.", no_args_is_help=True)
console = Console(highlight=False)


class SourceKind(StrEnum):
    synthetic = "synthetic"
    folder = "folder"
    urls = "urls"
    openverse = "openverse"
    wikimedia = "wikimedia"
    flickr = "flickr"


class Engine(StrEnum):
    process = "process"
    thread = "thread"
    ray = "ray"
    inline = "inline"


class Resize(StrEnum):
    keep = "keep"
    shorter = "shorter"
    longer = "longer"


def make_source(kind: SourceKind, path: Path | None, options: dict[str, Any]) -> tuple[Any, bool]:
    """The source object for `kind`, and whether its refs are local files."""
    if kind is SourceKind.synthetic:
        from synsetforge.candidates.sources.synthetic import Settings, SyntheticSource

        multi = options.get("multi_instance", Settings.multi)
        return SyntheticSource(seed=options["seed"], precision=options["precision"], multi=multi), False
    if kind in (SourceKind.folder, SourceKind.urls) and path is None:
        raise InputError(
            f"--source {kind.value} needs --path (a {'folder' if kind is SourceKind.folder else 'URL list file'})"
        )
    if kind is SourceKind.folder:
        from synsetforge.candidates.sources.folder import FolderSource

        assert path is not None
        return FolderSource(path, mapping=options.get("mapping"), name=f"folder:{path.resolve()}"), True
    if kind is SourceKind.urls:
        from synsetforge.candidates.sources.urls import UrlListSource

        assert path is not None
        return UrlListSource(
            path, default_synset=options.get("default_synset"), name=f"urls:{path.name}"
        ), False
    if kind is SourceKind.openverse:
        from synsetforge.candidates.sources.openverse import OpenverseSource

        return OpenverseSource(base_url=options.get("base_url")), False
    if kind is SourceKind.wikimedia:
        from synsetforge.candidates.sources.wikimedia import WikimediaSource

        return WikimediaSource(base_url=options.get("base_url")), False
    from synsetforge.candidates.sources.flickr import FlickrSource

    return FlickrSource(api_key=options.get("api_key"), base_url=options.get("base_url")), False


def collect_command(
    source: Annotated[SourceKind, typer.Option(help="Where candidates come from.")] = SourceKind.synthetic,
    synsets: Annotated[
        list[str] | None,
        typer.Option("--synsets", help="Synset ids (repeatable; default: all in the project)."),
    ] = None,
    per_synset: Annotated[int | None, typer.Option(help="Candidates asked per synset.")] = None,
    path: Annotated[Path | None, typer.Option(help="folder: the image tree; urls: the list file.")] = None,
    mapping: Annotated[
        Path | None, typer.Option(help="folder: CSV path,synset instead of folder names.")
    ] = None,
    default_synset: Annotated[str | None, typer.Option(help="urls: synset for rows without one.")] = None,
    base_url: Annotated[str | None, typer.Option(help="Search API base URL (tests, mirrors).")] = None,
    api_key: Annotated[str | None, typer.Option(envvar="FLICKR_API_KEY", help="Flickr API key.")] = None,
    precision: Annotated[float, typer.Option(help="synthetic: share of results that show the synset.")] = 0.4,
    seed: Annotated[int, typer.Option(help="synthetic: seed of the generator.")] = 0,
    multi_instance: Annotated[
        float, typer.Option(help="synthetic: share of figure images showing 2-3 instances.")
    ] = 0.3,
    engine: Annotated[Engine, typer.Option(help="Where image processing runs.")] = Engine.process,
    workers: Annotated[int | None, typer.Option(help="Worker processes (default: all cores).")] = None,
    address: Annotated[str | None, typer.Option(help="Ray cluster address (with --engine ray).")] = None,
    resize: Annotated[Resize, typer.Option(help="Resize policy; never upscales.")] = Resize.longer,
    size: Annotated[int, typer.Option(help="Target side in pixels for --resize shorter|longer.")] = 500,
    quality: Annotated[int, typer.Option(help="JPEG quality of stored images.")] = 90,
    near_distance: Annotated[int, typer.Option(help="pHash Hamming distance counted as near-duplicate.")] = 4,
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", help="Only re-fetch candidates that failed transiently.")
    ] = False,
    allow_private: Annotated[
        bool, typer.Option(help="Allow private and loopback addresses (a local mirror).")
    ] = False,
    robots: Annotated[
        bool, typer.Option(help="Honour X-Robots-Tag noai/noimageai/noindex/noimageindex opt-outs.")
    ] = True,
    max_in_flight: Annotated[
        int, typer.Option(min=1, help="Downloads in progress at once, all hosts together.")
    ] = FetchPolicy.max_in_flight,
    per_domain_concurrency: Annotated[
        int, typer.Option(min=1, help="Downloads in progress at once from one host.")
    ] = FetchPolicy.per_domain_concurrency,
    per_domain_rate: Annotated[
        float, typer.Option(min=0.0, help="Requests per second to one host; 0: no limit (a local mirror).")
    ] = FetchPolicy.per_domain_rate,
    fetch_in_workers: Annotated[
        bool,
        typer.Option(
            "--fetch-in-workers/--fetch-in-main",
            help="Workers download their own chunks (img2dataset's layout; limits split between workers), "
            "or the main process downloads for all.",
        ),
    ] = False,
    project: ProjectOpt = None,
) -> None:
    """Collect candidate images: register, download, validate, resize, hash, deduplicate and store."""
    with Project.open(project) as p:
        synset_ids = synsets or p.synset_ids()
        if not synset_ids:
            raise InputError("the project has no synsets yet; add some with `synsetforge synsets add`")
        src, local = make_source(
            source,
            path,
            {
                "seed": seed,
                "precision": precision,
                "multi_instance": multi_instance,
                "mapping": mapping,
                "default_synset": default_synset,
                "base_url": base_url,
                "api_key": api_key,
            },
        )
        fetch = FetchPolicy(
            allow_private=allow_private,
            respect_robots_tags=robots,
            allow_files=local,
            file_roots=(path.resolve(),) if local and path else (),
            max_in_flight=max_in_flight,
            max_connections=max(FetchPolicy.max_connections, max_in_flight),
            per_domain_concurrency=per_domain_concurrency,
            per_domain_rate=per_domain_rate,
        )
        options = CollectOptions(
            per_synset=per_synset,
            engine=engine.value,
            workers=workers,
            ray_address=address,
            image_policy=ImagePolicy(resize=resize.value, size=size, jpeg_quality=quality),
            fetch_policy=fetch,
            near_distance=near_distance,
            retry_failed=retry_failed,
            fetch_in_workers=fetch_in_workers,
        )
        columns = (
            TextColumn("[bold]collect[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:>8} img/s"),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=console, transient=False, refresh_per_second=4) as bar:
            task = bar.add_task("collect", total=None, rate="-")
            started: list[float] = []

            def on_total(total: int) -> None:
                import time

                started.append(time.perf_counter())
                bar.update(task, total=total)

            def on_progress(done: int, total: int) -> None:
                import time

                elapsed = time.perf_counter() - started[0] if started else 0.0
                rate = f"{done / elapsed:,.0f}" if elapsed > 0 else "-"
                bar.update(task, completed=done, total=total, rate=rate)

            summary = collect(
                p, src, synset_ids, options, kind=source.value, progress=on_progress, on_total=on_total
            )
        print_summary(summary, console)


def print_summary(summary: CollectSummary, console: Console) -> None:
    totals = summary.totals()
    reasons = sorted(k for k in totals if ":" in k)
    table = Table("synset", "fetched", "stored", "duplicates", *reasons, title="collection summary")
    for synset_id in sorted(summary.per_synset):
        c = summary.per_synset[synset_id]
        table.add_row(synset_id, *(str(c[k]) for k in ("fetched", "stored", "duplicate", *reasons)))
    table.add_row(
        "[bold]total[/]", *(f"[bold]{totals[k]}[/]" for k in ("fetched", "stored", "duplicate", *reasons))
    )
    console.print(table)
    rate = summary.processed / summary.elapsed_s if summary.elapsed_s else 0.0
    console.print(
        f"registered {summary.registered} refs; processed {summary.processed} candidates in "
        f"{summary.elapsed_s:.1f} s ({rate:,.0f}/s)"
    )
    print_skipped(summary, console)


SHOWN_PROBLEMS = 20


def print_skipped(summary: CollectSummary, console: Console) -> None:
    """What the source skipped (bad rows, schemes it refuses, symlinks leaving the folder), with where."""
    if not summary.skipped:
        return
    total = sum(summary.skipped.values())
    reasons = ", ".join(f"{reason} {n}" for reason, n in summary.skipped.most_common())
    console.print(f"skipped {total} source items: {reasons}", markup=False)
    listed = [p for p in summary.problems if p.reason in summary.skipped][:SHOWN_PROBLEMS]
    for p in listed:
        console.print(f"  {p.where}: {p.reason}" + (f": {p.detail}" if p.detail else ""), markup=False)
    if total > len(listed):
        console.print(f"  ... and {total - len(listed)} more not listed", markup=False)


def _tally_table(title: str, key: str, tallies: dict[str, Tally], limit: int) -> Table:
    table = Table(
        key,
        "candidates",
        "attempted",
        "stored",
        "dups",
        "rejected",
        "failed",
        "success",
        "top reasons",
        title=title,
    )
    ordered = sorted(tallies.items(), key=lambda kv: -kv[1].total)[:limit]
    for name, t in ordered:
        rate = "-" if t.success_rate is None else f"{t.success_rate:.0%}"
        top = ", ".join(f"{r} {n}" for r, n in t.reasons.most_common(3))
        table.add_row(
            name,
            str(t.total),
            str(t.attempted),
            str(t.statuses["stored"]),
            str(t.statuses["duplicate"]),
            str(t.statuses["rejected"]),
            str(t.statuses["failed"]),
            rate,
            top,
        )
    return table


@app.command("stats")
def stats_command(
    limit: Annotated[int, typer.Option(help="Rows per table.")] = 20,
    project: ProjectOpt = None,
) -> None:
    """Success rates and reasons per source and per domain (and per synset)."""
    with Project.open(project) as p:
        st = candidate_stats(p)
    console.print(_tally_table("by source", "source", st.by_source, limit))
    console.print(_tally_table("by domain", "domain", st.by_domain, limit))
    console.print(_tally_table("by synset", "synset", st.by_synset, limit))
