"""`synsetforge boxes simulate`: a simulated box crowd over HTTP, scored against ground truth and set beside
two simple protocols on the same crowd (`boxes.simulate`). Heavy imports happen inside the command."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from synsetforge.cliopts import ProjectOpt

if TYPE_CHECKING:
    from synsetforge.boxes.simulate import BoxSimReport

console = Console(highlight=False)


def register(app: typer.Typer) -> None:
    """Add this module's commands to `synsetforge boxes`."""
    app.command("simulate")(simulate_cmd)


def simulate_cmd(
    workers: Annotated[int, typer.Option(help="Simulated workers (each draws and verifies).")] = 40,
    jitter: Annotated[
        float, typer.Option(help="Sigma of each edge's error, as a share of the box side.")
    ] = 0.05,
    sloppy: Annotated[
        float, typer.Option(help="Share of drawings with IoU < 0.5 with every instance.")
    ] = 0.15,
    miss: Annotated[
        float, typer.Option(help="Share of draw tasks where the drawer misses an instance that is left.")
    ] = 0.10,
    accuracy: Annotated[float, typer.Option(help="Mean accuracy of honest verifiers.")] = 0.85,
    spammers: Annotated[float, typer.Option(help="Share of spammers (draw and verify at random).")] = 0.10,
    seed: Annotated[int, typer.Option(help="Seed of the simulated crowd (and of new synthetic images).")] = 0,
    add_synthetic: Annotated[
        int,
        typer.Option(
            help="First add this many synthetic images per plane-figure synset of the project, accepted, "
            "with their true boxes (1-3 instances)."
        ),
    ] = 0,
    gold: Annotated[
        int, typer.Option(help="Box-gold images per synset, from ground truth if none exist.")
    ] = 10,
    median_drawers: Annotated[
        list[int] | None,
        typer.Option("--median-drawers", help="Drawers per instance of the median protocol (repeatable)."),
    ] = None,
    max_tasks: Annotated[int | None, typer.Option(help="Stop after this many box tasks.")] = None,
    max_seconds: Annotated[float | None, typer.Option(help="Stop after this long.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    project: ProjectOpt = None,
) -> None:
    """Run simulated drawers and verifiers over HTTP (the app on 127.0.0.1, a free port); report coverage,
    box accuracy and cost against ground truth, beside one-drawer and median-of-drawers protocols."""
    from synsetforge.boxes.crowdsim import CrowdModel
    from synsetforge.boxes.simulate import add_synthetic_box_images, simulate_boxes
    from synsetforge.candidates.sources.synthetic import SyntheticSource
    from synsetforge.errors import InputError
    from synsetforge.store.project import Project

    model = CrowdModel(
        workers=workers, jitter=jitter, sloppy=sloppy, miss=miss, accuracy=accuracy, spammers=spammers
    )
    counts = tuple(median_drawers or [3])
    if any(k < 2 for k in counts):
        raise InputError("--median-drawers must be at least 2")
    with Project.open(project) as p:
        if add_synthetic:
            figures = [sid for sid in p.synset_ids() if SyntheticSource.supports(sid)]
            if not figures:
                raise InputError(
                    "--add-synthetic needs plane-figure synsets (under n13863186) in the project"
                )
            added = add_synthetic_box_images(p, figures, add_synthetic, seed=seed)
            if not as_json:
                console.print(f"added {added} synthetic images with true boxes to {len(figures)} synsets")
        if as_json:
            report = simulate_boxes(
                p, model, seed=seed, gold_per_synset=gold, median_drawer_counts=counts, max_tasks=max_tasks,
                max_seconds=max_seconds,
            )  # fmt: skip
        else:
            with console.status("simulated box crowd at work...") as status:
                report = simulate_boxes(
                    p, model, seed=seed, gold_per_synset=gold, median_drawer_counts=counts, max_tasks=max_tasks,
                    max_seconds=max_seconds,
                    on_task=lambda n: status.update(f"simulated box crowd at work... {n} tasks"),
                )  # fmt: skip
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
    else:
        print_report(report)


def _pct(value: float) -> str:
    return "n/a" if value != value else f"{value:.1%}"


def _num(value: float) -> str:
    return "n/a" if value != value else f"{value:.2f}"


def print_report(report: BoxSimReport, out: Console | None = None) -> None:
    """The report as people read it: the crowd, the run, one table row per protocol."""
    from synsetforge.clitables import Table

    out = out or console
    out.print(f"crowd: {report.model.describe()} (seed {report.seed})")
    if report.gold:
        out.print(report.gold)
    out.print(report.run.summary())
    table = Table(title="Boxes against ground truth")
    for name in ("protocol", "images", "covered", "boxes", "IoU>=0.5", "IoU>=0.7", "draw tasks/box",
                 "votes/decided box", "votes/box", "duplicates", "open"):  # fmt: skip
        table.add_column(name, justify="left" if name == "protocol" else "right")
    for r in report.protocols:
        table.add_row(
            r.protocol,
            str(r.score.images),
            _pct(r.coverage),
            str(r.score.boxes),
            _pct(r.iou50_share),
            _pct(r.iou70_share),
            _num(r.draw_tasks_per_box),
            _num(r.votes_per_decided_box) if r.decided_boxes else "-",
            _num(r.votes_per_box) if r.decided_boxes else "-",
            str(r.score.duplicates),
            str(r.unfinished),
        )
    out.print(table)
    e = report.engine
    out.print(
        f"engine: {e.draw_tasks} draw tasks (+{e.gold_draw_tasks} gold), {e.quality_votes} quality votes on "
        f"{e.decided_boxes} decided boxes, {e.coverage_votes} coverage votes (+{e.gold_votes} gold answers in "
        "verification tasks); votes/box = all verification votes per accepted box"
    )
