"""The `synsetforge` command line: one Typer app, a sub-command group per stage.

Every command is a thin layer over the Python API. Errors a user can cause (`SynsetforgeError`) are printed
as one line on stderr with a non-zero exit code; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from synsetforge import __version__
from synsetforge.clilazy import Lazy, lazy_group
from synsetforge.cliopts import ProjectOpt, typer_app
from synsetforge.errors import SynsetforgeError

if TYPE_CHECKING:
    from rich.console import Console

# Each stage's commands, imported only when they run (or print their own --help), so that `synsetforge --help`
# does not load numpy, SQLAlchemy, FastAPI or torch. A new top-level command is one line here: the target
# (a typer.Typer group or a plain function) and the short help `synsetforge --help` shows for it; a test
# checks that it matches the command's own help. In pipeline order, as `synsetforge --help` lists them.
LAZY_COMMANDS: dict[str, Lazy] = {
    "taxonomy": Lazy(
        "synsetforge.hierarchy.cli:app",
        "Browse the category hierarchy (WordNet 3.0 nouns, or a custom taxonomy with --taxonomy).",
    ),
    "collect": Lazy(
        "synsetforge.candidates.cli:collect_command",
        "Collect candidate images: register, download, validate, resize, hash, deduplicate and store.",
    ),
    "candidates": Lazy(
        "synsetforge.candidates.cli:app", "Candidate images: statistics of what collection gathered."
    ),
    "crowd": Lazy(
        "synsetforge.crowd.cli:app", "Crowd verification: simulate, aggregate, gold, CSV import/export."
    ),
    "workers": Lazy(
        "synsetforge.crowd.cli:workers_app", "Crowd workers: invite links, marketplace links, list, block."
    ),
    "admin": Lazy("synsetforge.crowd.cli:admin_app", "Admin access to the web app."),
    "serve": Lazy(
        "synsetforge.crowd.cli:serve",
        "Serve the worker pages, the admin dashboard and the JSON API (/api/v1) of a project.",
    ),
    "boxes": Lazy(
        "synsetforge.boxes.cli:app",
        "Bounding boxes: crowd drawing and verification, import, export, simulation.",
    ),
    "release": Lazy(
        "synsetforge.releases.cli:app",
        "Immutable releases of the accepted images: create, diff, audit, report, export.",
    ),
    "benchmark": Lazy(
        "synsetforge.benchmark.cli:app",
        "Score ILSVRC-style submissions (classic devkit or Kaggle CSV files).",
    ),
    "challenge": Lazy(
        "synsetforge.benchmark.challenge_cli:challenge_app",
        "ILSVRC-style challenges: hidden test labels, per-team limits, leaderboards.",
    ),
    "submit": Lazy(
        "synsetforge.benchmark.challenge_cli:submit_command",
        "Submit a prediction file to a challenge, over HTTP (--url) or straight into a local project.",
    ),
    "worker": Lazy(
        "synsetforge.benchmark.challenge_cli:worker_command",
        "Score queued submissions (PostgreSQL: run as many as you like; SQLite: one).",
    ),
    "baseline": Lazy(
        "synsetforge.baselines.cli:baseline_app",
        "Reference entries: train, write a valid submission, submit it.",
    ),
    "train": Lazy(
        "synsetforge.training.cli:train_command",
        "Train a network on a release (checkpoint each epoch; --resume continues after a kill).",
    ),
    "predict": Lazy(
        "synsetforge.training.cli:predict_command",
        "Five guesses per test image of a challenge from a trained network (centre crop); --submit queues it.",
    ),
    "transfer": Lazy(
        "synsetforge.training.cli:transfer_command",
        "Pretrained vs from scratch on K images per class of another release; val errors with 95% intervals.",
    ),
    "embed": Lazy(
        "synsetforge.training.cli:embed_command",
        "Store per-image feature vectors (float16) of a release from a trained network (explorer: similar images).",
    ),
}

app = typer_app(
    name="synsetforge",
    help="Build hierarchical, crowd-verified image datasets and run ILSVRC-style benchmarks on them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    cls=lazy_group(LAZY_COMMANDS),
)
synsets_app = typer_app(help="The synsets (categories) a project collects images for.", no_args_is_help=True)
classes_app = typer_app(
    help="ILSVRC-style class lists (validate one with `taxonomy validate`).", no_args_is_help=True
)
app.add_typer(synsets_app, name="synsets")
app.add_typer(classes_app, name="classes")


def _console() -> Console:
    from rich.console import Console

    return Console(highlight=False)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"synsetforge {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """synsetforge: hierarchy -> candidates -> crowd verification -> releases -> benchmark."""


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Folder to create the project in.")],
    db: Annotated[
        str | None,
        typer.Option(help="Metadata database URL (default: SQLite in the folder); e.g. postgresql://host/db"),
    ] = None,
    name: Annotated[str | None, typer.Option(help="Project name (default: the folder name).")] = None,
    taxonomy: Annotated[
        Path | None, typer.Option(help="Custom taxonomy (YAML or CSV) instead of WordNet 3.0.")
    ] = None,
    blobs: Annotated[
        str | None,
        typer.Option(
            help="Where image bytes go (default: DIR/blobs): a folder (relative to DIR, or absolute) or an "
            "fsspec URL, e.g. s3://bucket/prefix, gcs://bucket/prefix, file:///abs/path"
        ),
    ] = None,
) -> None:
    """Create a project: config file, metadata database (SQLite WAL or PostgreSQL) and blob store."""
    from synsetforge.store.project import Project

    console = _console()
    with Project.init(directory, db=db, name=name, taxonomy=taxonomy, blobs=blobs) as project:
        console.print(f"Created project [bold]{project.config.name}[/] in {project.root}")
        console.print(f"  config    {project.root / 'synsetforge.toml'}")
        console.print(f"  database  {project.dialect} (schema revision {project.revision})")
        console.print(f"  blobs     {project.blobs.location}")
        console.print(f"  taxonomy  {project.config.taxonomy}")


@app.command()
def info(project: ProjectOpt = None) -> None:
    """Show a project's configuration and how many rows each stage has."""
    from synsetforge.clitables import Table
    from synsetforge.store.project import Project

    console = _console()
    with Project.open(project) as p:
        console.print(f"[bold]{p.config.name}[/] at {p.root}")
        console.print(f"database {p.dialect}, schema revision {p.revision}; taxonomy {p.config.taxonomy}")
        console.print(f"blobs {p.blobs.location}")
        table = Table("table", "rows")
        for name, n in p.counts().items():
            table.add_row(name, f"{n:,}")
        console.print(table)


@app.command()
def upgrade(project: ProjectOpt = None) -> None:
    """Migrate the project's database to this version's schema (opening a project also does this)."""
    from synsetforge.store.project import Project

    with Project.open(project) as p:
        _console().print(f"schema at revision {p.revision}")


@synsets_app.command("add")
def synsets_add(
    ids: Annotated[list[str] | None, typer.Argument(help="Synset ids (or lemmas) to add.")] = None,
    subtree: Annotated[str | None, typer.Option(help="Add this synset and all its descendants.")] = None,
    leaves: Annotated[bool, typer.Option(help="With --subtree: only its leaves.")] = False,
    max_n: Annotated[
        int | None, typer.Option("--max", help="With --subtree: at most N (seeded sample).")
    ] = None,
    project: ProjectOpt = None,
) -> None:
    """Add synsets to the project, by id or as a whole subtree."""
    from synsetforge.store.project import Project

    with Project.open(project) as p:
        h = p.hierarchy
        chosen = [h.resolve(i).id for i in ids or []]
        if subtree:
            chosen += h.select(subtree=h.resolve(subtree).id, leaves=leaves, max_n=max_n)
        if not chosen:
            raise typer.BadParameter("give synset ids or --subtree")
        new = p.add_synsets(chosen)
        _console().print(f"added {new} synsets ({len(set(chosen)) - new} already in the project)")


@synsets_app.command("list")
def synsets_list(project: ProjectOpt = None) -> None:
    """List the project's synsets."""
    from sqlalchemy import select

    from synsetforge.clitables import Table
    from synsetforge.store import schema
    from synsetforge.store.project import Project

    console = _console()
    with Project.open(project) as p, p.session() as s:
        table = Table("id", "lemmas", "depth", "status")
        rows = s.scalars(select(schema.Synset).order_by(schema.Synset.id)).all()
        for row in rows:
            table.add_row(row.id, ", ".join(row.lemmas), str(row.depth), row.status)
        console.print(table)
        console.print(f"{len(rows)} synsets")


@classes_app.command("load")
def classes_load(
    file: Annotated[Path, typer.Argument(help="Class list: one synset id per line.")],
    name: Annotated[
        str | None, typer.Option(help="Name of the list in the project (default: file stem).")
    ] = None,
    project: ProjectOpt = None,
) -> None:
    """Validate a class list and store it in the project (its synsets are added too)."""
    from synsetforge.store.classes import load_class_list
    from synsetforge.store.project import Project

    with Project.open(project) as p:
        report, list_id = load_class_list(p, file, name=name)
        _console().print(
            f"stored class list {name or file.stem!r} (id {list_id}) with {len(report.ids)} classes"
        )


@app.command()
def demo(
    directory: Annotated[
        Path, typer.Argument(help="Folder for the demo project: a new or empty one, or an earlier demo's.")
    ] = Path("demo-project"),
    fresh: Annotated[
        bool,
        typer.Option(
            help="Rebuild a folder an earlier `synsetforge demo` made (only what it made is deleted); "
            "--no-fresh refuses instead. Any other non-empty folder is always refused."
        ),
    ] = True,
    per_synset: Annotated[
        int, typer.Option(help="Synthetic candidates per benchmark figure (transfer figures get 40% of it).")
    ] = 330,
    crowd_seconds: Annotated[float, typer.Option(help="Time limit of the simulated crowd (s).")] = 240.0,
    epochs: Annotated[
        int | None, typer.Option(help="Epochs of the demo's CNN (default: its measured recipe).")
    ] = None,
) -> None:
    """Build the demo project for the `plane figure` subtree and show what each stage made."""
    from synsetforge.demo import run_demo

    run_demo(
        directory,
        fresh=fresh,
        console=_console(),
        per_synset=per_synset,
        crowd_seconds=crowd_seconds,
        cnn_epochs=epochs,
    )


def main() -> None:
    """Console-script entry point: one line per user error, non-zero exit."""
    try:
        app()
    except SynsetforgeError as exc:
        msg = " ".join(str(exc).split("\n")).strip()
        typer.echo(f"error: {msg}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # a database damaged where opening did not look is the user's, not a bug
        from synsetforge.store.project import damaged_database

        damage = damaged_database(exc)
        if damage is None:
            raise
        typer.echo(f"error: {damage}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
