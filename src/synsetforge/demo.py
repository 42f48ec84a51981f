"""`make demo`: build a small project end to end on the embedded default and show each stage's result.

The demo category is WordNet's `plane figure` subtree (n13863186): triangles, squares, circles, stars...
simple enough to draw synthetically, so every stage runs offline with known ground truth.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from rich.console import Console

from synsetforge.clitables import Table
from synsetforge.errors import InputError
from synsetforge.store.project import CONFIG_NAME, Project

PLANE_FIGURE = "n13863186"
# The benchmark's classes: leaf figures that look like nothing else the engine draws (see the README's
# "The demo's benchmark" for how they were chosen). The transfer figures are held back for stage 7.
DEMO_CLASSES = (
    "n13865904",  # heart
    "n13878634",  # square
    "n13883133",  # rhomboid
    "n13881512",  # trapezoid
    "n13879947",  # equilateral triangle
    "n13880551",  # right triangle
    "n13880415",  # obtuse triangle
    "n13882385",  # regular hexagon
    "n13873502",  # circle
    "n13874251",  # semicircle
    "n13882008",  # pentacle
    "n13880811",  # hexagram
)
TRANSFER_CLASSES = (
    "n13875027",  # sector
    "n13882201",  # pentagon
    "n13882563",  # octagon
    "n13881381",  # trapezium
)
DEMO_PRECISION = 0.6  # share of a query's results that show the figure
DEMO_PER_SYNSET = 330  # synthetic candidates per benchmark figure
TRANSFER_SHARE = 40  # transfer figures get this percentage of that
DEMO_CROWD_SECONDS = 240.0


DEMO_MARKER = ".synsetforge-demo"  # written into the folder the demo makes: only such a folder is rebuilt
# what a demo run leaves at the top of its folder even when it stops half-way (before it records its outputs)
_DEMO_LAYOUT = frozenset(
    {
        CONFIG_NAME,
        "project.db",
        "project.db-wal",
        "project.db-shm",
        "project.db-journal",
        "blobs",
        "cache",
        "runs",
        "release-v1",
    }
)
_MARKER_HEADER = (
    "# made by `synsetforge demo`: a rerun deletes and rebuilds the entries listed here (and refuses if\n"
    "# the folder holds anything else)\n"
)


def _prepare_folder(root: Path, fresh: bool) -> None:
    """Make `root` ready for a new demo project, deleting only what an earlier demo run made there.

    A missing or empty folder is used and marked. A marked folder is rebuilt (with `fresh`) only when every
    entry in it is one the demo made. Anything else -- a user's project, other files -- is refused with
    nothing touched: the user picks another folder.
    """
    if root.exists() and not root.is_dir():
        raise InputError(f"{root} is a file, not a folder; pick another folder for the demo")
    marker = root / DEMO_MARKER
    entries = sorted(p.name for p in root.iterdir() if p.name != DEMO_MARKER) if root.exists() else []
    if entries and not marker.is_file():
        what = "holds a synsetforge project" if (root / CONFIG_NAME).exists() else "is not empty"
        raise InputError(
            f"{root} {what} that `synsetforge demo` did not make; nothing was changed: "
            "pick another folder (a new or empty one) for the demo"
        )
    if entries:
        if not fresh:
            raise InputError(
                f"{root} holds an earlier demo; rerun with --fresh to rebuild it, or pick another folder"
            )
        made = _DEMO_LAYOUT | _recorded_outputs(marker)
        foreign = [name for name in entries if name not in made]
        if foreign:
            shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
            raise InputError(
                f"{root} holds an earlier demo and files the demo did not make ({shown}); nothing was deleted: "
                "move them out or pick another folder"
            )
        for name in entries:
            path = root / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
    root.mkdir(parents=True, exist_ok=True)
    marker.write_text(_MARKER_HEADER, encoding="utf-8")


def _recorded_outputs(marker: Path) -> frozenset[str]:
    lines = marker.read_text(encoding="utf-8", errors="replace").splitlines()
    return frozenset(line.strip() for line in lines if line.strip() and not line.startswith("#"))


def _record_outputs(root: Path) -> None:
    """List in the marker what this run made, so a rerun rebuilds it and refuses anything added later."""
    names = sorted(p.name for p in root.iterdir() if p.name != DEMO_MARKER)
    (root / DEMO_MARKER).write_text(_MARKER_HEADER + "".join(f"{n}\n" for n in names), encoding="utf-8")


def run_demo(
    directory: Path,
    *,
    fresh: bool = True,
    console: Console | None = None,
    per_synset: int = DEMO_PER_SYNSET,
    crowd_seconds: float = DEMO_CROWD_SECONDS,
    cnn_epochs: int | None = None,
) -> Project:
    """Create the demo project in `directory` and print what each stage built."""
    from synsetforge.hierarchy.cli import render_tree

    console = console or Console(highlight=False)
    started = time.perf_counter()
    root = directory.resolve()
    _prepare_folder(root, fresh)
    project = Project.init(root, name="plane-figures")
    h = project.hierarchy

    console.rule("[bold]1. Hierarchy[/]: WordNet 3.0 subtree 'plane figure'")
    subtree = h.subtree(PLANE_FIGURE)
    added = project.add_synsets(subtree)
    leaves = [s for s in subtree if h.is_leaf(s)]
    console.print(render_tree(h, PLANE_FIGURE, depth=2, max_children=12))
    console.print(
        f"{added} synsets added to the project ({len(leaves)} leaves); "
        f"root path: {' > '.join(h.name(s) for s in reversed(h.hypernym_paths(PLANE_FIGURE)[0]))}"
    )

    console.rule("[bold]Query expansion[/] (synonyms + ancestor words found in the gloss)")
    table = Table("synset", "name", "queries", show_lines=False)
    shown = [s for s in subtree if h.depth(s) <= h.depth(PLANE_FIGURE) + 2][:14]
    for sid in shown:
        queries = h.expand(sid)
        text = "; ".join(queries[:6]) + (f"; ... ({len(queries)} in all)" if len(queries) > 6 else "")
        table.add_row(sid, h.name(sid), text)
    console.print(table)
    total = sum(len(h.expand(s)) for s in subtree)
    console.print(f"{total} search queries for the {len(subtree)} synsets of the subtree")

    _pipeline(project, console, per_synset, crowd_seconds, cnn_epochs)

    console.rule(f"[bold]Where to look[/] (the demo took {time.perf_counter() - started:.0f} s)")
    console.print(f"project     {project.root}")
    console.print(f"config      {project.root / CONFIG_NAME}")
    console.print(
        f"database    {project.root / 'project.db'} (SQLite, WAL), schema revision {project.revision}"
    )
    console.print(f"blobs       {project.blobs.location}")
    console.print(f"release     {project.root / 'release-v1'} (report.html, datasheet)")
    console.print(f"next        .venv/bin/synsetforge info -p {directory}")
    console.print(f"            .venv/bin/synsetforge candidates stats -p {directory}")
    console.print(f"            .venv/bin/synsetforge admin token -p {directory}   # then")
    console.print(f"            .venv/bin/synsetforge serve -p {directory}   # http://127.0.0.1:8000/admin")
    _record_outputs(root)
    return project


def _pipeline(
    project: Project,
    console: Console,
    per_synset: int,
    crowd_seconds: float,
    cnn_epochs: int | None,
) -> None:
    """Stages 2-8 on the demo's figures: collect, verify, release, benchmark, deep baseline, transfer,
    localization."""
    from synsetforge.candidates.cli import print_summary
    from synsetforge.candidates.collect import CollectOptions, collect
    from synsetforge.candidates.process import ImagePolicy
    from synsetforge.candidates.sources.synthetic import SyntheticSource
    from synsetforge.crowd.demo import run_crowd_demo
    from synsetforge.releases import create_release
    from synsetforge.releases.exports import export_release
    from synsetforge.releases.report import write_report
    from synsetforge.releases.splits import SplitSpec

    h = project.hierarchy
    source = SyntheticSource(seed=0, precision=DEMO_PRECISION)
    figures = [*DEMO_CLASSES, *TRANSFER_CLASSES]
    console.rule(
        f"[bold]2. Candidates[/]: synthetic search engine ({DEMO_PRECISION:.0%} precision), {len(figures)} figures"
    )
    console.print(
        f"benchmark classes ({len(DEMO_CLASSES)}): {', '.join(h.name(s) for s in DEMO_CLASSES)}; "
        f"held back for transfer ({len(TRANSFER_CLASSES)}): {', '.join(h.name(s) for s in TRANSFER_CLASSES)}",
        markup=False,
    )
    options = CollectOptions(
        per_synset=per_synset, workers=2, image_policy=ImagePolicy(resize="longer", size=256)
    )
    summary = collect(project, source, DEMO_CLASSES, options, kind="synthetic")
    transfer_options = CollectOptions(
        per_synset=max(20, per_synset * TRANSFER_SHARE // 100), workers=2, image_policy=options.image_policy
    )
    summary_transfer = collect(project, source, TRANSFER_CLASSES, transfer_options, kind="synthetic")
    print_summary(summary, console)
    console.print(
        f"and {summary_transfer.registered} candidates of the {len(TRANSFER_CLASSES)} transfer figures",
        markup=False,
    )

    run_crowd_demo(project, console, max_seconds=crowd_seconds)

    console.rule("[bold]4. Releases[/]: immutable snapshots with splits")
    split = SplitSpec(val=0.1, test=0.15)
    release = create_release(project, "v1", synsets=DEMO_CLASSES, split=split, min_images=1)
    console.print(
        f"release v1 ({len(DEMO_CLASSES)} figures): {release.stats.get('images', '?')} images; "
        f"manifest {release.manifest_sha256}",
        markup=False,
    )
    transfer = create_release(
        project, "transfer-v1", synsets=TRANSFER_CLASSES, split=SplitSpec(val=0.5, test=0)
    )
    console.print(
        f"release transfer-v1 ({len(TRANSFER_CLASSES)} other figures): {transfer.stats.get('images', '?')} images",
        markup=False,
    )
    out = project.root / "release-v1"
    json_path, html_path = write_report(project, release, out)
    export_release(project, "v1", "datasheet", out / "datasheet", force=True)
    console.print(f"report: {html_path}  statistics: {json_path}", markup=False)

    from synsetforge.benchmark.demo import run_benchmark_demo

    challenge = run_benchmark_demo(
        project, "v1", console, transfer_release="transfer-v1", cnn_epochs=cnn_epochs
    )

    # 8. Localization (issue 11): boxes on the figures, a localization challenge, the CNN with a box head
    if challenge is not None:
        from synsetforge.training.localize_demo import LOC_EPOCHS, run_localization_demo

        run_localization_demo(
            project,
            console,
            classes=DEMO_CLASSES,
            cnn_run=project.root / "runs" / "v1-small",
            epochs=min(LOC_EPOCHS, cnn_epochs) if cnn_epochs else LOC_EPOCHS,
        )
