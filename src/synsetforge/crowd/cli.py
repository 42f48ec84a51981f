"""Command line of crowd verification: `crowd ...`, `workers ...`, `admin token`, `serve`.

`synsetforge.cli` registers these lazily (see its LAZY_COMMANDS); mounted by hand they work the same:
    app.add_typer(crowd_app, name="crowd"); app.add_typer(workers_app, name="workers")
    app.add_typer(admin_app, name="admin"); app.command()(serve)
Every command is a thin layer over `CrowdService` and the modules it names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from synsetforge.clilazy import Lazy, lazy_group
from synsetforge.cliopts import ProjectOpt, typer_app
from synsetforge.clitables import Table
from synsetforge.crowd.service import CrowdService
from synsetforge.crowd.settings import CrowdSettings
from synsetforge.errors import InputError
from synsetforge.limits import MAX_ROW_ID
from synsetforge.store.project import Project

console = Console(highlight=False)
app = typer_app(
    help="Crowd verification: simulate, aggregate, gold, CSV import/export.",
    no_args_is_help=True,
    # The offline aggregation commands import numpy: only when they run.
    cls=lazy_group(
        {
            "simulate-offline": Lazy(
                "synsetforge.crowd.aggregation.cli:simulate",
                "Compare dynamic consensus, a fixed-size majority vote and worker-aware decisions on a simulated crowd.",
            ),
            "votes": Lazy(
                "synsetforge.crowd.aggregation.cli:votes",
                "Aggregate a votes CSV into one decision per task; print a summary, optionally write the rows.",
            ),
        }
    ),
)
workers_app = typer_app(
    help="Crowd workers: invite links, marketplace links, list, block.", no_args_is_help=True
)
admin_app = typer_app(help="Admin access to the web app.", no_args_is_help=True)


def _service(project: Project, **overrides: object) -> CrowdService:

    settings = CrowdSettings.from_project(project)
    if overrides:
        settings = settings.with_(**{k: v for k, v in overrides.items() if v is not None})
    return CrowdService(project, settings)


def _pct(value: float | None) -> str:
    return "n/a" if value is None or value != value else f"{value:.2%}"


# -- serve / admin ------------------------------------------------------------------------------------


def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=1,
            max=64,
            help="Server processes sharing the port (PostgreSQL projects; SQLite has one writer: 1).",
        ),
    ] = 1,
    project: ProjectOpt = None,
) -> None:
    """Serve the worker pages, the admin dashboard and the JSON API (/api/v1) of a project."""
    import uvicorn

    from synsetforge.web.app import create_app
    from synsetforge.web.server import install_server_info, serve_workers

    with Project.open(project) as p:
        if workers > 1 and p.dialect == "sqlite":
            raise InputError(
                f"--workers {workers}: this project's database is SQLite, which has one writer, so more "
                "server processes would only queue on its lock; serve it with one process (no --workers), "
                "or use a PostgreSQL project (`synsetforge init --db postgresql://...`)"
            )
        processes = f" with {workers} processes" if workers > 1 else ""
        console.print(f"serving [bold]{p.config.name}[/] on http://{host}:{port}{processes}  (Ctrl-C stops)")
        console.print("  workers: invite links from `synsetforge workers invite`; admins: /admin/login")
        console.print(f"  API: http://{host}:{port}/api/v1/openapi.json (needs a token)")
        if workers == 1:
            app_ = create_app(p, background=True)
            install_server_info(app_, 1)
            uvicorn.run(app_, host=host, port=port, log_level="warning", access_log=False)
            return
        root = p.root
    serve_workers(root, host, port, workers)  # each process opens the project itself


@admin_app.command("token")
def admin_token(
    name: Annotated[str | None, typer.Option(help="A note to recognise the token by.")] = None,
    project: ProjectOpt = None,
) -> None:
    """Create an admin token and print it once (only its SHA-256 is stored)."""
    with Project.open(project) as p:
        token = _service(p).create_token("admin", name)
    console.print(
        "admin token (shown once; sign in at /admin/login or send `Authorization: Bearer <token>`):"
    )
    typer.echo(token)


# -- workers ------------------------------------------------------------------------------------------


@workers_app.command("invite")
def workers_invite(
    names: Annotated[list[str] | None, typer.Argument(help="Names of the people to invite.")] = None,
    count: Annotated[int, typer.Option(help="Anonymous invites to create when no names are given.")] = 1,
    base_url: Annotated[
        str, typer.Option(help="Public address of the server, for the links.")
    ] = "http://127.0.0.1:8000",
    expert: Annotated[bool, typer.Option(help="Invite experts instead of annotators.")] = False,
    project: ProjectOpt = None,
) -> None:
    """Create in-house workers and print their invite links (shown once)."""
    wanted: list[str | None] = list(names) if names else [None] * max(count, 1)
    with Project.open(project) as p:
        svc = _service(p)
        lines = []
        for name in wanted:
            new = svc.invite(name, "expert" if expert else "invite")
            lines.append((new.worker_id, name, f"{base_url.rstrip('/')}/invite/{new.token}"))
    for worker_id, name, link in lines:
        console.print(f"worker {worker_id}" + (f" ({name})" if name else "") + ":")
        typer.echo(f"  {link}")
    console.print("links are shown only now; each link signs its worker in")


@workers_app.command("marketplace-link")
def workers_marketplace_link(
    platform: Annotated[str, typer.Option(help="mturk, prolific or generic.")] = "mturk",
    base_url: Annotated[
        str, typer.Option(help="Public HTTPS address of the server.")
    ] = "https://example.org",
    name: Annotated[str | None, typer.Option(help="A note to recognise the key by.")] = None,
    project: ProjectOpt = None,
) -> None:
    """Create a marketplace key and print the study URL to give MTurk (ExternalQuestion) or Prolific."""
    from synsetforge.crowd.workers import PLATFORMS

    if platform not in PLATFORMS:
        raise typer.BadParameter(f"platform must be one of {list(PLATFORMS)}")
    with Project.open(project) as p:
        key = _service(p).create_token("marketplace", name or platform)
    root = f"{base_url.rstrip('/')}/m/{key}"
    if platform == "mturk":
        console.print("ExternalQuestion URL (MTurk appends workerId, assignmentId, hitId, turkSubmitTo):")
        typer.echo(root)
    elif platform == "prolific":
        console.print("Prolific study URL (choose 'URL parameters' so Prolific fills them in):")
        typer.echo(
            root + "?PROLIFIC_PID={{%PROLIFIC_PID%}}&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}"
        )
    else:
        console.print("Study URL (put the worker's id after worker=):")
        typer.echo(root + "?worker=")
    console.print("workers see a completion code after each task; `crowd export-csv --what tasks` lists them")


@workers_app.command("list")
def workers_list(project: ProjectOpt = None) -> None:
    """Workers with their tasks, votes, gold accuracy, estimated accuracy and status."""
    from synsetforge.crowd.dashboard import worker_rows

    with Project.open(project) as p, p.session() as s:
        rows = worker_rows(s)
    table = Table(
        "id", "kind", "name / external id", "status", "tasks", "votes", "gold", "gold acc.", "est. acc."
    )
    for w in rows:
        who = " · ".join(x for x in (w.name, w.external_id) if x)
        status = w.status + (f": {w.blocked_reason}" if w.blocked_reason else "")
        table.add_row(
            str(w.worker_id), w.kind, who, status, str(w.tasks), str(w.votes),
            f"{w.gold_correct}/{w.gold_total}", _pct(w.gold_accuracy), _pct(w.est_accuracy),
        )  # fmt: skip
    console.print(table)
    console.print(f"{len(rows)} workers, {sum(w.status == 'blocked' for w in rows)} blocked")


@workers_app.command("block")
def workers_block(
    worker_id: Annotated[int, typer.Argument(min=1, max=MAX_ROW_ID, help="Worker id (see `workers list`).")],
    reason: Annotated[str, typer.Option(help="Why (shown to admins).")] = "blocked by an admin",
    undo: Annotated[bool, typer.Option("--undo", help="Unblock instead.")] = False,
    project: ProjectOpt = None,
) -> None:
    """Block a worker (their votes are excluded or down-weighted per policy; affected images re-queued)."""
    with Project.open(project) as p:
        svc = _service(p)
        changed = svc.unblock(worker_id) if undo else svc.block(worker_id, reason)
        policy = svc.settings.blocked_policy
    verb = "unblocked" if undo else f"blocked (policy: {policy})"
    console.print(f"worker {worker_id} {verb}; {changed} image decisions changed")


# -- crowd --------------------------------------------------------------------------------------------


@app.command("simulate")
def simulate(
    workers: Annotated[int, typer.Option(help="Simulated workers.")] = 40,
    accuracy: Annotated[float, typer.Option(help="Mean accuracy of honest workers.")] = 0.8,
    spammers: Annotated[float, typer.Option(help="Share of spammers (always yes / random).")] = 0.0,
    adversaries: Annotated[float, typer.Option(help="Share of adversaries (flip their answers).")] = 0.0,
    method: Annotated[
        str, typer.Option(help="Live rule: imagenet (dynamic consensus), fixed or worker-aware.")
    ] = "imagenet",
    votes: Annotated[int | None, typer.Option(help="Votes per image for --method fixed.")] = None,
    threshold: Annotated[float | None, typer.Option(help="Dynamic consensus threshold.")] = None,
    reject_threshold: Annotated[
        float | None, typer.Option(help="Reject at this confidence (default: 1 - threshold).")
    ] = None,
    gold: Annotated[
        int, typer.Option(help="Gold images per synset, taken from ground truth if none exist.")
    ] = 20,
    max_tasks: Annotated[int | None, typer.Option(help="Stop after this many tasks.")] = None,
    max_seconds: Annotated[float | None, typer.Option(help="Stop after this long.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the simulated crowd.")] = 0,
    project: ProjectOpt = None,
) -> None:
    """Run a simulated crowd over HTTP (the app on 127.0.0.1, a free port) and measure it against ground truth."""
    from synsetforge.crowd.drive import simulate_over_http

    with Project.open(project) as p:
        settings = _service(
            p, method=method, fixed_votes=votes, threshold=threshold, reject_threshold=reject_threshold
        ).settings
        with console.status("simulated workers at work...") as status:
            sim = simulate_over_http(
                p, workers=workers, accuracy=accuracy, spammers=spammers, adversaries=adversaries, seed=seed,
                settings=settings, gold_per_synset=gold, max_tasks=max_tasks, max_seconds=max_seconds,
                on_task=lambda n: status.update(f"simulated workers at work... {n} tasks"),
            )  # fmt: skip
    print_simulation(sim, settings)


def print_simulation(sim: object, settings: CrowdSettings, out: Console | None = None) -> None:
    from synsetforge.crowd.drive import Simulation
    from synsetforge.crowd.simulate import shown

    assert isinstance(sim, Simulation)
    out = out or console
    r = sim.report
    reject = settings.reject_threshold
    rule = (
        f"dynamic consensus, threshold {settings.threshold}"
        + ("" if reject is None else f", reject at {reject}")
        if settings.method == "imagenet"
        else f"fixed {settings.fixed_votes}-vote majority"
    )
    if settings.method == "worker-aware":  # worker-aware (C2)
        rule = (
            f"worker-aware, accept at {settings.threshold}, reject at "
            f"{1 - settings.threshold if reject is None else reject:g}, worker spread >= "
            f"{settings.worker_min_spread:g}, prior {settings.worker_population} x "
            f"{settings.worker_prior_strength:g}"
            + (f", qualification {settings.worker_qualify} gold" if settings.worker_qualify else "")
        )
    if sim.gold_added:
        out.print(f"gold: {sim.gold_added} images taken from ground truth")
    out.print(sim.run.summary())
    out.print(f"rule: {rule}")
    out.print(
        f"images {r.images}: {r.accepted} accepted, {r.rejected} rejected, {r.undecided} undecided, {r.open} open"
    )
    out.print(
        f"votes {r.votes} ({r.votes_excluded} excluded after blocks) = {shown(r.votes_per_decided, '.2f')} "
        "per decided image; "
        f"{r.gold_votes} gold votes"
    )
    out.print(
        f"precision vs ground truth: {_pct(r.precision)} on {r.accepted} accepted images "
        f"({r.true_accepted} truly good); recall {_pct(r.recall)}"
    )


@app.command("aggregate")
def aggregate_cmd(
    method: Annotated[
        str, typer.Option(help="imagenet (dynamic consensus), dawid-skene or majority.")
    ] = "imagenet",
    write: Annotated[
        bool, typer.Option("--write", help="Replace the decisions (default: only show what would change).")
    ] = False,
    project: ProjectOpt = None,
) -> None:
    """Recompute every decision from all votes and show what changes; --write replaces them.

    Without --write nothing is written. With it, candidates.decision/confidence and workers.est_accuracy
    are rewritten and the method and its settings are recorded (see `crowd status`)."""
    from synsetforge.crowd.decisions import STATES, aggregate

    with Project.open(project) as p:
        summary = aggregate(_service(p), method, write=write)
    for line in summary.lines()[:-1]:
        console.print(line)
    if summary.per_synset:
        table = Table(title="per synset (before -> after)")
        for col in ("synset", *STATES, "changed"):
            table.add_column(col, justify="left" if col == "synset" else "right")
        for ch in summary.per_synset:
            table.add_row(
                ch.synset_id,
                *(f"{ch.before[k]} -> {ch.after[k]}" for k in STATES),
                str(ch.changed),
            )
        console.print(table)
    console.print(summary.lines()[-1])


@app.command("status")
def status_cmd(project: ProjectOpt = None) -> None:
    """Decision counts and the method (with its settings) that produced the current decisions."""
    from synsetforge.crowd.dashboard import decision_status

    with Project.open(project) as p:
        svc = _service(p)
        with svc.read() as s:
            st = decision_status(s, svc.settings)
    c = st.counts
    console.print(
        f"{st.images} images: accepted {c['accepted']}, rejected {c['rejected']}, "
        f"undecided {c['undecided']}, open {c['open']}"
    )
    console.print(f"decisions by: {st.describe()}")
    console.print(f"live rule:    {st.live_rule}")


@app.command("gold")
def gold_cmd(
    from_ground_truth: Annotated[
        int | None, typer.Option(help="Pick N gold images per synset from ground truth.")
    ] = None,
    csv_file: Annotated[Path | None, typer.Option("--csv", help="CSV with candidate_id,answer.")] = None,
    seed: Annotated[int, typer.Option(help="Seed for picking from ground truth.")] = 0,
    project: ProjectOpt = None,
) -> None:
    """Add gold (known-answer) images: from an expert CSV or from the synthetic ground truth."""
    from synsetforge.crowd.gold import gold_from_ground_truth, load_gold_csv

    if (from_ground_truth is None) == (csv_file is None):
        raise typer.BadParameter("give exactly one of --from-ground-truth N or --csv FILE")
    with Project.open(project) as p:
        n = (
            load_gold_csv(p, csv_file)
            if csv_file is not None
            else gold_from_ground_truth(p, from_ground_truth or 0, seed)
        )
    console.print(f"{n} gold images stored")


@app.command("export-csv")
def export_csv_cmd(
    out: Annotated[Path, typer.Argument(help="CSV file to write ('-' for stdout).")],
    what: Annotated[str, typer.Option(help="votes, decisions or tasks (with completion codes).")] = "votes",
    project: ProjectOpt = None,
) -> None:
    """Export votes, decisions or tasks as CSV."""
    import sys

    from synsetforge.crowd.csvio import export_csv

    with Project.open(project) as p:
        if str(out) == "-":
            n = export_csv(p, sys.stdout, what)
        else:
            with out.open("w", newline="", encoding="utf-8") as f:
                n = export_csv(p, f, what)
    if str(out) != "-":
        console.print(f"wrote {n} {what} rows to {out}")


@app.command("import-csv")
def import_csv_cmd(
    file: Annotated[Path, typer.Argument(help="Votes CSV (the `export-csv --what votes` format).")],
    project: ProjectOpt = None,
) -> None:
    """Import votes from CSV (all-or-nothing validation; votes already present are skipped)."""
    from synsetforge.crowd.csvio import import_votes_csv

    with Project.open(project) as p:
        s = import_votes_csv(_service(p), file)
    console.print(
        f"{s.rows} rows: {s.inserted} votes imported, {s.duplicates} already present; {s.new_workers} new workers, "
        f"{s.blocked_workers} blocked by the gold rule; {s.decisions_changed} decisions changed"
    )
