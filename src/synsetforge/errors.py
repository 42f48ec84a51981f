"""One exception type for every user-facing failure.

The CLI prints a `SynsetforgeError` as a single line and exits non-zero; anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations


class SynsetforgeError(Exception):
    """An error caused by input, configuration or environment, explained in one line."""

    exit_code = 1


class NotFoundError(SynsetforgeError):
    """An id, name or file that does not exist."""


class InputError(SynsetforgeError):
    """Malformed input: a file, a payload or an argument."""


class StoreError(SynsetforgeError):
    """The project store cannot be opened or used (unreachable, wrong schema version)."""
