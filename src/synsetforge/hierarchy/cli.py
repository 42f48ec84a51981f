"""``synsetforge taxonomy``: browse WordNet 3.0 nouns or a custom taxonomy from the command line.

Every command takes ``--taxonomy FILE`` to use a custom taxonomy (YAML or CSV) instead of WordNet. Errors are
raised as :class:`synsetforge.errors.SynsetforgeError`; the top-level CLI prints them as one line.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text
from rich.tree import Tree

from synsetforge.cliopts import typer_app
from synsetforge.clitables import Table
from synsetforge.errors import InputError
from synsetforge.hierarchy.classlist import validate_class_list
from synsetforge.hierarchy.model import Hierarchy, Synset
from synsetforge.hierarchy.taxonomy import load_hierarchy

app = typer_app(
    help="Browse the category hierarchy (WordNet 3.0 nouns, or a custom taxonomy with --taxonomy).",
    no_args_is_help=True,
)

TaxonomyOption = Annotated[
    Path | None,
    typer.Option(
        "--taxonomy", "-t", help="Custom taxonomy file (.yaml, .yml or .csv) instead of WordNet 3.0."
    ),
]


class ExpandMode(StrEnum):
    gloss = "gloss"
    parents = "parents"


def _console() -> Console:
    return Console(highlight=False, soft_wrap=False)


def _label(h: Hierarchy, synset_id: str) -> str:
    return f"{h.name(synset_id)} ({synset_id})"


def _class_line(s: Synset) -> str:
    """``n01440764 tench, Tinca tinca``: the ILSVRC ``LOC_synset_mapping.txt`` line."""
    return f"{s.id} {', '.join(s.lemmas)}"


@app.command()
def show(
    synset: Annotated[str, typer.Argument(help="Synset id (n02084071) or a lemma (dog).")],
    taxonomy: TaxonomyOption = None,
) -> None:
    """Show a synset: lemmas, gloss, depth, height, descendants and every hypernym path to the root."""
    h = load_hierarchy(taxonomy)
    matches = h.resolve_all(synset)
    console = _console()
    if len(matches) > 1:
        console.print(Text(f"{len(matches)} synsets have the lemma {synset!r}; show one by its id:"))
        table = Table("id", "lemmas", "gloss", show_lines=False)
        for s in matches:
            table.add_row(s.id, ", ".join(s.lemmas), s.gloss)
        console.print(table)
        return
    s = matches[0]
    console.print(Text(s.id, style="bold"), Text(", ".join(s.lemmas)))
    if s.gloss:
        console.print(Text(f"gloss: {s.gloss}"))
    console.print(
        Text(
            f"depth: {h.depth(s.id)} (longest path to the root: {h.max_depth(s.id)})   "
            f"height: {h.height(s.id)}   descendants: {h.num_descendants(s.id)}   "
            f"children: {len(h.children(s.id))}"
        )
    )
    paths = h.hypernym_paths(s.id)
    console.print(Text(f"hypernym paths to the root: {len(paths)}"))
    for k, path in enumerate(paths, start=1):
        for line in _wrap_path([_label(h, sid) for sid in path], f"  {k}. ", console.width):
            console.print(Text(line), overflow="fold")


def _wrap_path(labels: list[str], prefix: str, width: int) -> list[str]:
    """``a → b → c`` broken between labels, never inside one, continuation lines indented."""
    indent = " " * (len(prefix) + 2)
    lines: list[str] = []
    current = prefix + labels[0]
    for label in labels[1:]:
        piece = f" → {label}"
        if len(current) + len(piece) > width:
            lines.append(current)
            current = f"{indent}→ {label}"
        else:
            current += piece
    lines.append(current)
    return lines


@app.command()
def tree(
    synset: Annotated[str, typer.Argument(help="Synset id or unambiguous lemma; omit for the root(s).")] = "",
    depth: Annotated[int, typer.Option("--depth", "-d", min=0, help="Levels below the synset to draw.")] = 2,
    max_children: Annotated[
        int, typer.Option("--max-children", min=1, help="Children drawn per node; the rest are counted.")
    ] = 20,
    taxonomy: TaxonomyOption = None,
) -> None:
    """Draw the subtree under a synset: lemma, id and number of descendants per node."""
    h = load_hierarchy(taxonomy)
    starts = [h.resolve(synset).id] if synset else h.roots
    console = _console()
    for start in starts:
        console.print(render_tree(h, start, depth=depth, max_children=max_children))


def render_tree(h: Hierarchy, synset_id: str, *, depth: int = 2, max_children: int = 20) -> Tree:
    """A Rich tree of ``synset_id`` and ``depth`` levels below it (``... N more`` past ``max_children``)."""
    node = Tree(_tree_label(h, synset_id))
    _grow(h, node, synset_id, depth, max_children)
    return node


def _tree_label(h: Hierarchy, synset_id: str) -> Text:
    label = Text(h.name(synset_id), style="bold")
    label.append(f" {synset_id}", style="dim")
    n = h.num_descendants(synset_id)
    if n:
        label.append(f" · {n} descendant{'s' if n != 1 else ''}")
    return label


def _grow(h: Hierarchy, node: Tree, synset_id: str, depth: int, max_children: int) -> None:
    if depth <= 0:
        return
    kids = h.children(synset_id)
    for child in kids[:max_children]:
        _grow(h, node.add(_tree_label(h, child)), child, depth - 1, max_children)
    if len(kids) > max_children:
        node.add(Text(f"... {len(kids) - max_children} more", style="italic"))


@app.command()
def search(
    text: Annotated[str, typer.Argument(help="Text to find in lemmas (case-insensitive).")],
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="Most synsets to list.")] = 20,
    taxonomy: TaxonomyOption = None,
) -> None:
    """Find synsets whose lemmas contain TEXT: exact matches first, then prefixes, then substrings."""
    h = load_hierarchy(taxonomy)
    hits = h.search(text, limit=limit)
    console = _console()
    if not hits:
        console.print(Text(f"no lemma contains {text!r}"))
        raise typer.Exit(1)
    table = Table("id", "lemmas", "gloss")
    for s in hits:
        table.add_row(s.id, ", ".join(s.lemmas), s.gloss)
    console.print(table)


@app.command()
def select(
    subtree: Annotated[
        str | None, typer.Option("--subtree", "-s", help="Synset id or unambiguous lemma (default: all).")
    ] = None,
    leaves: Annotated[bool, typer.Option("--leaves/--all", help="Only leaves, or every synset.")] = True,
    max_n: Annotated[int | None, typer.Option("--max", min=1, help="Draw at most N at random.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Random seed for --max.")] = 0,
    non_overlapping: Annotated[
        bool, typer.Option("--non-overlapping", help="Drop synsets that are ancestors of other chosen ones.")
    ] = False,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the class list to FILE.")
    ] = None,
    taxonomy: TaxonomyOption = None,
) -> None:
    """Choose classes: prints `ID lemma, lemma` lines (a class list file) in id order, deterministic."""
    h = load_hierarchy(taxonomy)
    root = h.resolve(subtree).id if subtree else None
    ids = h.select(root, leaves=leaves, max_n=max_n, seed=seed, non_overlapping=non_overlapping)
    lines = [_class_line(h.get(s)) for s in ids]
    if output is None:
        for line in lines:
            typer.echo(line)
        return
    try:
        output.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{output}: cannot write the class list: {exc.strerror}") from None
    typer.echo(f"wrote {len(lines)} classes to {output}")


@app.command()
def expand(
    synset: Annotated[str, typer.Argument(help="Synset id or unambiguous lemma.")],
    mode: Annotated[
        ExpandMode, typer.Option("--mode", "-m", help="gloss: the paper's rule; parents: every parent lemma.")
    ] = ExpandMode.gloss,
    taxonomy: TaxonomyOption = None,
) -> None:
    """Print the image-search queries for a synset, one per line."""
    h = load_hierarchy(taxonomy)
    for query in h.expand(h.resolve(synset).id, mode.value):
        typer.echo(query)


@app.command()
def lca(
    first: Annotated[str, typer.Argument(help="Synset id or unambiguous lemma.")],
    second: Annotated[str, typer.Argument(help="Synset id or unambiguous lemma.")],
    taxonomy: TaxonomyOption = None,
) -> None:
    """Print the lowest common ancestor of two synsets and its height (ILSVRC's hierarchical cost)."""
    h = load_hierarchy(taxonomy)
    a, b = h.resolve(first).id, h.resolve(second).id
    found = h.lca(a, b)
    if found is None:
        typer.echo(f"{a} and {b} have no common ancestor")
        raise typer.Exit(1)
    sid, height = found
    typer.echo(f"{sid} {', '.join(h.get(sid).lemmas)} (height {height})")


@app.command()
def validate(
    class_list: Annotated[
        Path, typer.Argument(help="Class list: one id per line, optionally followed by text.")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    taxonomy: TaxonomyOption = None,
) -> None:
    """Check a class list: unknown ids, duplicates, ids that are ancestors of others. Exit 1 on problems."""
    h = load_hierarchy(taxonomy)
    report = validate_class_list(h, class_list)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        for problem in report.problems():
            typer.echo(problem)
        verdict = "ok" if report.ok else "problems found"
        typer.echo(
            f"{class_list}: {len(report.ids)} classes, {len(report.unknown)} unknown, "
            f"{len(report.duplicates)} duplicate, {len(report.overlapping)} overlapping pairs: {verdict}"
        )
    if not report.ok:
        raise typer.Exit(1)
