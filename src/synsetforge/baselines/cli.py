"""`synsetforge baseline ...`: reference entries for a challenge.

Register in the top-level app with `app.add_typer(baseline_app, name="baseline")`.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from synsetforge.cliopts import FileFormat, ProjectOpt, typer_app

console = Console(highlight=False)
baseline_app = typer_app(
    help="Reference entries: train, write a valid submission, submit it.", no_args_is_help=True
)


class Features(StrEnum):
    bow = "bow"
    hog = "hog"


@baseline_app.command("classical")
def classical_command(
    release: Annotated[str, typer.Option("--release", help="Release to train on (its train split).")],
    challenge: Annotated[str, typer.Option("--challenge", help="Challenge to write the submission for.")],
    per_class: Annotated[int, typer.Option("--per-class", help="Train images per class, at most.")] = 100,
    features: Annotated[
        Features,
        typer.Option(
            "--features",
            help="bow: dense SIFT, bag of visual words, spatial pyramid (2010 devkit); "
            "hog: HOG + colour histogram.",
        ),
    ] = Features.bow,
    words: Annotated[int, typer.Option("--words", help="Visual words in the codebook (bow).")] = 2000,
    size: Annotated[
        int,
        typer.Option("--size", help="Images are resized to SIZE pixels (bow: the longer side; hog: both)."),
    ] = 64,
    c: Annotated[
        float | None, typer.Option("--c", help="SVM regularisation C (default: 1 for bow, 0.01 for hog).")
    ] = None,
    file_format: Annotated[
        FileFormat, typer.Option("--format", help="Submission file format.")
    ] = FileFormat.ilsvrc,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Also write the submission here.")
    ] = None,
    submit: Annotated[
        bool, typer.Option("--submit/--no-submit", help="Queue it as team 'classical-baseline'.")
    ] = True,
    team: Annotated[
        str, typer.Option("--team", help="Team to submit as (created if missing).")
    ] = "classical-baseline",
    project: ProjectOpt = None,
) -> None:
    """Dense SIFT bag of words (or HOG) with linear SVMs, trained on the train split (2010-2011 style)."""
    from synsetforge.baselines.classical import run_classical_baseline
    from synsetforge.store.project import Project

    with Project.open(project) as p:
        result = run_classical_baseline(
            p,
            challenge,
            release=release,
            per_class=per_class,
            features=features.value,
            words=words,
            size=size,
            c=c,
            file_format=file_format.value,
            submit_as=(team, None) if submit else None,
            log=lambda msg: console.print(msg, markup=False),
        )
        if not result.converged:
            console.print("note: the SVM solver stopped at its iteration limit (try a smaller --c)")
        if output is not None:
            output.write_bytes(result.file)
            console.print(f"wrote {output} ({len(result.file):,} bytes, {result.format} format)")
        if result.submission_id is None and output is None:
            console.print("nothing written: pass --output FILE or --submit")
        elif result.submission_id is not None:
            console.print("run `synsetforge worker --once` to score it")
