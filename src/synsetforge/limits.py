"""What the project database can hold, shared by every edge that takes input (web routes, CLI, files).

Why here: SQLite stores nearly anything (any length in a VARCHAR, NUL bytes in text), PostgreSQL refuses
some of it (`integer out of range`, `value too long`, `cannot contain NUL`). Checking these limits where
input enters makes both databases accept and refuse the same things, with a one-line reason instead of a
driver traceback. `tests/test_edge_inputs.py` checks that the numbers agree with `store/schema.py`.
"""

from __future__ import annotations

MAX_ROW_ID = 2**31 - 1
"""Largest surrogate key (`Integer` columns are 32-bit on PostgreSQL); ids outside 1..MAX_ROW_ID cannot
exist in a project."""

SYNSET_ID_LENGTH = 64
"""Longest synset id (`synsets.id` and every column referring to it are VARCHAR(64))."""


def nul_free(text: str) -> bool:
    """True unless the text holds a NUL character (PostgreSQL text columns cannot store one)."""
    return "\x00" not in text
