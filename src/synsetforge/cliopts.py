"""Command-line options shared by every stage's commands."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from synsetforge.store import PROJECT_ENV


def typer_app(**settings: Any) -> typer.Typer:
    """A Typer app with plain help and errors (click's formatting, not Rich's).

    Why: Typer's Rich help imports Rich's markdown, traceback and layout modules, about 0.3 s on a slow
    2-core machine, which doubled `synsetforge --help` (0.45 s against 0.22 s plain). The help text is
    the same; only the boxes around it go. Click stops at 80 columns by default; up to 120 on a wider
    terminal keeps the commands' one-line help whole.
    """
    settings.setdefault("context_settings", {"max_content_width": 120})
    return typer.Typer(rich_markup_mode=None, **settings)


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
