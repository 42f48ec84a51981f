"""The crowd stage of `make demo`: a simulated crowd verifies the demo's synthetic candidates over HTTP."""

from __future__ import annotations

from rich.console import Console

from synsetforge.clitables import Table
from synsetforge.crowd.cli import print_simulation
from synsetforge.crowd.dashboard import progress
from synsetforge.crowd.drive import Simulation, simulate_over_http
from synsetforge.crowd.settings import CrowdSettings
from synsetforge.store.project import Project


def run_crowd_demo(
    project: Project,
    console: Console,
    *,
    workers: int = 40,
    accuracy: float = 0.8,
    spammers: float = 0.1,
    adversaries: float = 0.0,
    seed: int = 0,
    max_seconds: float | None = 90.0,
    settings: CrowdSettings | None = None,
) -> Simulation:
    """Serve the project on 127.0.0.1, let simulated workers (some spammers) verify its candidates through the
    HTTP API, then print what they cost and how precise the accepted images are against ground truth."""
    settings = settings or CrowdSettings.from_project(project)
    console.rule("[bold]3. Crowd verification[/]: simulated workers over HTTP, dynamic consensus")
    console.print(
        f"{workers} simulated workers (mean accuracy {accuracy:.0%}, {spammers:.0%} spammers, "
        f"{adversaries:.0%} adversaries) take tasks of {settings.grid_size} images with gold mixed in"
    )
    with console.status("simulated workers at work...") as status:
        sim = simulate_over_http(
            project,
            workers=workers,
            accuracy=accuracy,
            spammers=spammers,
            adversaries=adversaries,
            seed=seed,
            settings=settings,
            max_seconds=max_seconds,
            on_task=lambda n: status.update(f"simulated workers at work... {n} tasks"),
            background=True,  # served as `synsetforge serve` serves: rebuilds in the job thread
        )
    print_simulation(sim, settings, console)
    with project.session() as s:
        rows = [r for r in progress(s) if r.decided]
    if rows:
        table = Table("synset", "name", "accepted", "rejected", "open", "votes / decided", "precision")
        for r in sorted(rows, key=lambda r: -r.decided)[:12]:
            table.add_row(
                r.synset_id,
                r.name,
                str(r.accepted),
                str(r.rejected),
                str(r.open + r.undecided),
                "-" if r.votes_per_decided is None else f"{r.votes_per_decided:.2f}",
                "-" if r.true_precision is None else f"{r.true_precision:.1%}",
            )
        console.print(table)
    console.print(
        f"see it live: synsetforge admin token -p {project.root}; synsetforge serve -p {project.root}; "
        "open http://127.0.0.1:8000/admin",
        markup=False,
    )
    return sim
