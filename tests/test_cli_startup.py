"""`synsetforge --help` is quick (stage modules load only when their command runs) and reads well."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest
from typer.testing import CliRunner

from synsetforge.cli import LAZY_COMMANDS, app
from synsetforge.clilazy import loaded_commands

HEAVY = ("numpy", "sqlalchemy", "torch", "fastapi", "PIL", "aiohttp", "pydantic", "synsetforge.store.project")


def _imported_after(code: str) -> list[str]:
    probe = f"import sys\n{code}\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    env = {k: v for k, v in os.environ.items() if k != "SYNSETFORGE_PROJECT"}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True)
    return out.stdout.split()


def test_help_imports_no_stage_module() -> None:
    code = (
        "from typer.testing import CliRunner\n"
        "from synsetforge.cli import app\n"
        "result = CliRunner().invoke(app, ['--help'])\n"
        "assert result.exit_code == 0 and 'taxonomy' in result.output and 'baseline' in result.output\n"
    )
    assert _imported_after(code) == []


def test_no_arguments_prints_help_without_stage_modules() -> None:
    code = (
        "from typer.testing import CliRunner\n"
        "from synsetforge.cli import app\n"
        "result = CliRunner().invoke(app, [])\n"
        "assert 'Commands' in result.output, result.output\n"
    )
    assert _imported_after(code) == []


@pytest.mark.parametrize("group", ["taxonomy", "synsets", "classes", "baseline"])
def test_light_groups_help_imports_no_heavy_module(group: str) -> None:
    code = (
        "from typer.testing import CliRunner\n"
        "from synsetforge.cli import app\n"
        f"result = CliRunner().invoke(app, [{group!r}, '--help'])\n"
        "assert result.exit_code == 0 and 'Commands' in result.output, result.output\n"
    )
    assert set(_imported_after(code)) <= {"pydantic"}  # Typer itself converts option values with pydantic


def test_taxonomy_show_needs_no_numpy_or_database() -> None:
    """`taxonomy show` reads the shipped derived values: no numpy, no SQLAlchemy, nothing recomputed."""
    code = (
        "from typer.testing import CliRunner\n"
        "from synsetforge.cli import app\n"
        "from synsetforge.hierarchy import load_wordnet\n"
        "result = CliRunner().invoke(app, ['taxonomy', 'show', 'n02084071'])\n"
        "assert result.exit_code == 0 and 'descendants: ' in result.output, result.output\n"
        "assert load_wordnet()._topo is None\n"
    )
    assert _imported_after(code) == ["pydantic"]  # Typer converts option values with pydantic


def _root() -> Any:
    import typer.main

    return typer.main.get_command(app)


def test_static_help_matches_each_command() -> None:
    """The one-line help listed without importing a command is the one the command itself declares."""
    from synsetforge.clilazy import LazyGroup

    groups = [_root()]
    checked = 0
    while groups:
        group = groups.pop()
        subs = loaded_commands(group)
        groups += [sub for sub in subs.values() if hasattr(sub, "list_commands")]
        if not isinstance(group, LazyGroup):
            continue
        for name, entry in group.lazy.items():
            declared = (subs[name].help or "").strip().split("\n\n")[0].replace("\n", " ")
            assert entry.help == declared, name
            checked += 1
    assert checked == len(LAZY_COMMANDS) + 2  # the root's and crowd's offline commands


def test_lazy_command_runs_and_typos_get_suggestions() -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["taxonomy", "show", "n02084071"])
    assert result.exit_code == 0, result.output
    assert "Canis familiaris" in result.output
    result = runner.invoke(app, ["taxonomi", "show"])
    assert result.exit_code != 0
    assert "taxonomy" in result.output


def _walk(command: Any, path: list[str]) -> list[list[str]]:
    paths = [path]
    if hasattr(command, "list_commands"):
        for name, sub in loaded_commands(command).items():
            paths += _walk(sub, [*path, name])
    return paths


def _all_paths() -> list[list[str]]:
    return _walk(_root(), [])


@pytest.mark.parametrize("path", _all_paths(), ids=lambda p: " ".join(p) or "synsetforge")
def test_help_shows_no_raw_python_types(path: list[str]) -> None:
    """Flags show no `<bool>` and repeatable values show their element type, not `<list[str]>`."""
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    assert "<bool>" not in result.output
    assert "<list[" not in result.output
