"""Every `synsetforge ...` command the README shows exists: its sub-command path and each of its options.

Commands are taken from fenced code blocks (lines starting with `synsetforge `, `\\` continuations joined,
`# comments` dropped) and from inline code spans; `a | b` on one line lists alternative sub-commands of the
same group, `[...]` marks optional parts and upper-case words or `...` are placeholders.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import typer.main

from synsetforge.cli import app

README = Path(__file__).resolve().parents[1] / "README.md"
_PLACEHOLDER = re.compile(r"^(\.\.\.|<.*|[A-Z][A-Z0-9_]*(\.\.\.)?|\$.*)$")


def readme_commands(text: str) -> list[tuple[int, str]]:
    """(line number, command) of every `synsetforge` command in code blocks and inline code."""
    found: list[tuple[int, str]] = []
    in_block = False
    pending: tuple[int, str] | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if line.lstrip().startswith("```"):
            in_block = not in_block
            continue
        if in_block:
            code = re.sub(r"(^|\s)#.*$", "", line).rstrip()
            if pending is not None:
                pending = (pending[0], pending[1] + " " + code.rstrip("\\").strip())
            elif code.lstrip().startswith("synsetforge "):
                pending = (number, code.strip().rstrip("\\").strip())
            if pending is not None and not code.endswith("\\"):
                found.append(pending)
                pending = None
        else:
            for span in re.findall(r"`(synsetforge [^`]+)`", line):
                found.append((number, span))
    return found


def _options(command: Any) -> set[str]:
    names = {"--help"}
    for param in command.params:
        names.update(param.opts)
        names.update(getattr(param, "secondary_opts", []))
    return names


def problems(command_line: str) -> list[str]:
    """What in one README command does not exist (empty when all of it does)."""
    root = typer.main.get_command(app)
    tokens = command_line.split()[1:]
    out: list[str] = []
    group, command = root, root
    path = ["synsetforge"]
    resolving = True
    for token in tokens:
        if token == "|":  # `release list | show v1`: the next word is another sub-command of the same group
            command, resolving, path = group, True, path[:-1]
            continue
        word = token.strip("[]()")
        if word.startswith("-"):
            name = word.split("=", 1)[0].rstrip(",.;")
            if re.fullmatch(r"--?[A-Za-z][\w-]*", name) and name not in _options(command):
                out.append(f"`{' '.join(path)}` has no option {name}")
            continue
        if not resolving:
            continue
        if hasattr(command, "list_commands"):
            sub = command.get_command(None, word) if word in command.list_commands(None) else None
            if sub is not None:
                group, command = command, sub
                path.append(word)
                continue
            if not _PLACEHOLDER.match(word):
                out.append(f"`{' '.join(path)}` has no sub-command {word!r}")
                break  # its options belong to a command that does not exist
        resolving = False
    return out


def test_parser_finds_commands_in_blocks_and_inline_code() -> None:
    text = (
        "Run `synsetforge demo [DIR]` first.\n```sh\nsynsetforge init DIR \\\n    --db URL   # a comment\n"
        "python -m other\n```\nnot code: synsetforge is great\n"
    )
    assert readme_commands(text) == [(1, "synsetforge demo [DIR]"), (3, "synsetforge init DIR --db URL")]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("synsetforge taxonomy show n02084071 [--taxonomy FILE]", []),
        ("synsetforge release list | show v1 [--json] | diff v1 v2 [--images]", []),
        ("synsetforge synsets add ID... [--subtree ID [--leaves] [--max N]]", []),
        ("synsetforge classes check FILE", ["`synsetforge classes` has no sub-command 'check'"]),
        ("synsetforge taxonomy show dog --colour", ["`synsetforge taxonomy show` has no option --colour"]),
        ("synsetforge crowd ...", []),
    ],
)
def test_problems_are_found(line: str, expected: list[str]) -> None:
    assert problems(line) == expected


def test_every_readme_command_exists() -> None:
    commands = readme_commands(README.read_text(encoding="utf-8"))
    assert len(commands) > 30
    found = [f"README.md:{number}: {p}" for number, line in commands for p in problems(line)]
    assert found == []
