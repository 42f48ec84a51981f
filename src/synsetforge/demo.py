"""`make demo`: build a small project end to end on the embedded default and show each stage's result.

The demo category is WordNet's `plane figure` subtree (n13863186): triangles, squares, circles, stars...
simple enough to draw synthetically, so every stage runs offline with known ground truth.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from rich.console import Console
from rich.table import Table

from synsetforge.errors import InputError
from synsetforge.store.project import CONFIG_NAME, Project

PLANE_FIGURE = "n13863186"


def _prepare_folder(root: Path, fresh: bool) -> None:
    """Only ever delete a folder that is a synsetforge project; refuse to touch anything else."""
    if not root.exists():
        return
    if (root / CONFIG_NAME).exists():
        if not fresh:
            raise InputError(f"{root} already holds a project; rerun with --fresh to rebuild it")
        shutil.rmtree(root)
    elif any(root.iterdir()):
        raise InputError(
            f"{root} exists, is not empty and is not a synsetforge project; choose another folder"
        )


def run_demo(directory: Path, *, fresh: bool = True, console: Console | None = None) -> Project:
    """Create the demo project in `directory` and print what each stage built."""
    from synsetforge.hierarchy.cli import render_tree

    console = console or Console(highlight=False)
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

    console.rule("[bold]Where to look[/]")
    console.print(f"project     {project.root}")
    console.print(f"config      {project.root / CONFIG_NAME}")
    console.print(
        f"database    {project.root / 'project.db'} (SQLite, WAL), schema revision {project.revision}"
    )
    console.print(f"next        .venv/bin/synsetforge info -p {directory}")
    console.print("            .venv/bin/synsetforge taxonomy tree n13863186 --depth 3")
    return project
