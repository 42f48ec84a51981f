"""Worker processes that exit when the process that started them dies, even by `kill -9`.

A pool's workers outlive a killed parent otherwise (they are children of the forkserver, not of the
parent), holding memory forever. Linux can signal a process when its parent thread dies
(`PR_SET_PDEATHSIG`); as that names the forkserver, not the original parent, a daemon thread also polls
whether the original parent still exists.
"""

from __future__ import annotations

import ctypes
import os
import signal
import threading
import time

_PR_SET_PDEATHSIG = 1


def _alive(pid: int) -> bool:
    """True while `pid` runs (a killed parent that nobody has reaped yet is a zombie: not alive)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: fall back to a signal-0 probe
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def exit_with_parent(parent_pid: int, interval: float = 0.5) -> None:
    """Make this process exit when `parent_pid` (or the process that forked it) goes away."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass

    def watch() -> None:
        while _alive(parent_pid) and os.getppid() != 1:
            time.sleep(interval)
        os._exit(1)

    threading.Thread(target=watch, name="lifeline", daemon=True).start()
