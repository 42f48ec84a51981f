"""Command-line options shared by every stage's commands."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from synsetforge.store import PROJECT_ENV

ProjectOpt = Annotated[
    Path | None,
    typer.Option(
        "--project",
        "-p",
        envvar=PROJECT_ENV,
        help="Project folder (default: the nearest folder with synsetforge.toml, here or above).",
    ),
]


class FileFormat(StrEnum):
    """Submission file formats: the ILSVRC devkit's text file or Kaggle's CSV."""

    ilsvrc = "ilsvrc"
    kaggle = "kaggle"
