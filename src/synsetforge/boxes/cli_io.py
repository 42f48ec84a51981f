"""`synsetforge boxes import` and `synsetforge boxes export`: boxes in and out of a project as files.

Thin layer over `boxes.importing` and `boxes.exporting`; errors are `SynsetforgeError`s printed as one line.
File names and categories come from outside, so they are printed as plain text (no console markup).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from synsetforge.boxes.exporting import export_boxes
from synsetforge.boxes.formats import FORMATS
from synsetforge.boxes.importing import ImportReport, import_boxes, parse_mapping
from synsetforge.cliopts import ProjectOpt
from synsetforge.errors import InputError
from synsetforge.store.project import Project

SHOWN_SKIPS = 20


def _format(value: str) -> str:
    if value not in FORMATS:
        raise InputError(f"--format must be one of {', '.join(FORMATS)}, got {value!r}")
    return value


def print_report(c: Console, report: ImportReport) -> None:
    verb = "would import" if report.dry_run else "imported"
    c.print(
        f"{verb} {report.imported} box{'' if report.imported == 1 else 'es'} from {report.source} ({report.format}, {report.files} file"
        f"{'' if report.files == 1 else 's'}): {report.records} records, {report.imported} new, "
        f"{report.duplicates} already there, {len(report.skipped)} skipped, {report.clipped} clipped to the image",
        markup=False,
    )
    per_file = report.per_file() if report.files > 1 else {}
    for name, counts in list(per_file.items())[:SHOWN_SKIPS]:
        c.print(
            f"  {name}: {counts['new']} new, {counts['duplicates']} already there, {counts['skipped']} skipped",
            markup=False,
        )
    if len(per_file) > SHOWN_SKIPS:
        c.print(f"  ... and {len(per_file) - SHOWN_SKIPS} more files", markup=False)
    for skip in report.skipped[:SHOWN_SKIPS]:
        c.print(f"  skipped {skip.place}: {skip.reason}", markup=False)
    if len(report.skipped) > SHOWN_SKIPS:
        c.print(f"  ... {len(report.skipped) - SHOWN_SKIPS} more skipped; by reason:", markup=False)
        for reason, n in report.reasons().most_common():
            c.print(f"    {n} x {reason}", markup=False)


def register(app: typer.Typer) -> None:
    """Add `boxes import` and `boxes export` to `synsetforge boxes`."""

    @app.command("import")
    def import_cmd(
        file: Annotated[Path, typer.Argument(help="Box file (or, for voc, a folder of XML files).")],
        fmt: Annotated[str, typer.Option("--format", "-f", help=f"One of: {', '.join(FORMATS)}.")],
        mapping: Annotated[
            list[str] | None,
            typer.Option("--map", help="NAME=SYNSET: the file's category NAME is project synset SYNSET."),
        ] = None,
        dry_run: Annotated[bool, typer.Option(help="Match and report, store nothing.")] = False,
        as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
        project: ProjectOpt = None,
    ) -> None:
        """Import boxes you already have (COCO, VOC, ILSVRC LOC CSV) as accepted, imported boxes.

        Images are matched by SHA-256, folder-source path, file name, or name without extension; categories
        by --map, synset id or a unique lemma. A malformed file imports nothing; reruns add no duplicates."""
        with Project.open(project) as p:
            report = import_boxes(
                p, file, _format(fmt), mapping=parse_mapping(mapping or []), dry_run=dry_run
            )
        c = Console(highlight=False, soft_wrap=True)
        if as_json:
            c.print(json.dumps(report.as_dict(), indent=1, ensure_ascii=False), markup=False)
        else:
            print_report(c, report)

    @app.command("export")
    def export_cmd(
        fmt: Annotated[str, typer.Option("--format", "-f", help=f"One of: {', '.join(FORMATS)}.")],
        out: Annotated[
            Path, typer.Option("--out", "-o", help="Output file (coco, ilsvrc-csv) or folder (voc).")
        ],
        force: Annotated[
            bool, typer.Option(help="Replace an existing output file / write into a folder.")
        ] = (False),
        project: ProjectOpt = None,
    ) -> None:
        """Export the boxes accepted now (a live view; releases freeze their own).

        Crowd boxes voted good, imported and synthetic ones not voted bad, never gold boxes; in original-image
        pixels, annotations only."""
        with Project.open(project) as p:
            result = export_boxes(p, _format(fmt), out, force=force)
        Console(highlight=False, soft_wrap=True).print(
            f"wrote {result.boxes} boxes on {result.images} images as {result.format} to {result.path} "
            "(live export: the boxes accepted now; a release's own export has its frozen boxes)",
            markup=False,
        )
