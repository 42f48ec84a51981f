"""Crowd-specific failures, each mapped to one HTTP status by the web layer (and one line by the CLI)."""

from __future__ import annotations

from synsetforge.errors import InputError, SynsetforgeError


class TaskClosedError(InputError):
    """The task was already submitted or has expired (HTTP 409)."""


class WorkerBlockedError(SynsetforgeError):
    """The worker is blocked and may not take or submit tasks (HTTP 403)."""


class AccessDeniedError(SynsetforgeError):
    """A valid principal asked for something that is not theirs (HTTP 403/404)."""


BOX_TASK_KINDS = ("draw", "quality", "coverage")


class BoxTaskOpenError(TaskClosedError):
    """The worker holds an open box task; yes/no work waits until it is submitted or expires (HTTP 409)."""
