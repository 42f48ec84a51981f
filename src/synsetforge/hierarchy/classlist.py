"""Checking a class list (which synsets a dataset or benchmark uses) against a hierarchy.

Accepted lines, as in ILSVRC's ``LOC_synset_mapping.txt``: ``n01440764`` or ``n01440764 tench, Tinca tinca``
(the first whitespace-separated token is the id, the rest is ignored). Blank lines and lines whose first
non-blank character is ``#`` are ignored.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from synsetforge.errors import InputError, NotFoundError
from synsetforge.hierarchy.model import Hierarchy


@dataclass
class ClassListReport:
    """What :func:`validate_class_list` found. ``ok`` is true when nothing but known, distinct,
    non-overlapping ids were listed."""

    source: str
    ids: list[str] = field(default_factory=list)
    """Known ids, each once, in file order."""
    lines: dict[str, int] = field(default_factory=dict)
    """The line where each known id first appears."""
    unknown: list[tuple[int, str]] = field(default_factory=list)
    """(line, token) for ids the hierarchy does not have."""
    duplicates: list[tuple[int, str, int]] = field(default_factory=list)
    """(line, id, line of its first occurrence) for repeated ids."""
    overlapping: list[tuple[str, str]] = field(default_factory=list)
    """(ancestor, descendant) pairs among the known ids; ILSVRC's classes never overlap."""

    @property
    def ok(self) -> bool:
        return bool(self.ids) and not (self.unknown or self.duplicates or self.overlapping)

    def problems(self) -> list[str]:
        """One line per problem, ``source:line: message`` where a line is known."""
        out = [f"{self.source}:{line}: unknown synset id {token!r}" for line, token in self.unknown]
        out += [
            f"{self.source}:{line}: duplicate id {sid!r} (first on line {first})"
            for line, sid, first in self.duplicates
        ]
        out += [
            f"{self.source}:{self.lines[d]}: {d!r} is a descendant of {a!r} (line {self.lines[a]})"
            for a, d in self.overlapping
        ]
        if not self.ids and not out:
            out.append(f"{self.source}: the class list is empty")
        return out

    def to_dict(self) -> dict[str, object]:
        return {
            "source": self.source,
            "ok": self.ok,
            "ids": self.ids,
            "unknown": [{"line": line, "id": token} for line, token in self.unknown],
            "duplicates": [
                {"line": line, "id": sid, "first_line": first} for line, sid, first in self.duplicates
            ],
            "overlapping": [{"ancestor": a, "descendant": d} for a, d in self.overlapping],
        }


def read_class_lines(path: Path | str) -> list[str]:
    """The lines of a class list file (UTF-8); a missing file raises :class:`NotFoundError`."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8-sig").splitlines()
    except FileNotFoundError:
        raise NotFoundError(f"{path}: class list file not found") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read the class list: {exc.strerror}") from None


def parse_class_lines(lines: Iterable[str]) -> list[tuple[int, str]]:
    """(line number, id) for each non-blank, non-comment line."""
    out: list[tuple[int, str]] = []
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if text and not text.startswith("#"):
            out.append((number, text.split()[0]))
    return out


def validate_class_list(hierarchy: Hierarchy, source: Path | str | Iterable[str]) -> ClassListReport:
    """Check a class list: ``source`` is a file path (``Path`` or ``str``) or the lines themselves."""
    if isinstance(source, Path | str):
        report = ClassListReport(source=str(source))
        lines: Iterable[str] = read_class_lines(source)
    else:
        report = ClassListReport(source="<class list>")
        lines = source
    for number, token in parse_class_lines(lines):
        if token not in hierarchy:
            report.unknown.append((number, token))
        elif token in report.lines:
            report.duplicates.append((number, token, report.lines[token]))
        else:
            report.lines[token] = number
            report.ids.append(token)
    report.overlapping = hierarchy.overlapping_pairs(report.ids)
    return report
