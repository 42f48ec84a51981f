"""Worker processes that exit when the process that started their pool dies, even by `kill -9`.

A killed parent cannot shut its pool down. Under the forkserver start method a worker is a child of the
forkserver, not of the parent, and each worker holds the forkserver's "parent alive" pipe open, so neither
notices: the workers wait on their task queue for good, ~100 MB each, and the forkserver waits for them.

`exit_with_parent`, run as the pool's initializer, closes that loop from the worker's side:

* a daemon thread waits on a pidfd of the original parent (Linux 5.3+: readable once it has exited; no
  polling, no pid-reuse race) and ends the worker at once; without pidfds it polls every half second;
* `PR_SET_PDEATHSIG` (Linux) ends the worker when its direct parent, the forkserver, dies.

Once the workers are gone the forkserver sees end-of-file on its pipe and exits, and so does
multiprocessing's resource tracker. This module imports only the standard library: workers start fast.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import signal
import sys
import threading
import time

_PR_SET_PDEATHSIG = 1


def alive(pid: int) -> bool:
    """True while `pid` runs (a killed process nobody has reaped yet is a zombie: not alive)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except FileNotFoundError:
        return False
    except (OSError, IndexError):  # no /proc (macOS): a signal-0 probe
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def _die_with_direct_parent() -> None:
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _wait_for_exit(pid: int, interval: float) -> None:
    """Block until `pid` has exited."""
    fd = None
    with contextlib.suppress(OSError, AttributeError):  # no pidfd_open (not Linux, old kernel, seccomp)
        fd = os.pidfd_open(pid)
    if fd is not None:
        select.select([fd], [], [])  # readable once the process the fd was taken for has exited
        return
    while alive(pid):
        time.sleep(interval)


def exit_with_parent(parent_pid: int, interval: float = 0.5) -> None:
    """Make this (worker) process exit as soon as `parent_pid` or its own direct parent is gone."""
    _die_with_direct_parent()
    if not alive(parent_pid):  # died while this worker was starting
        os._exit(1)

    def watch() -> None:
        _wait_for_exit(parent_pid, interval)
        os._exit(1)

    threading.Thread(target=watch, name="lifeline", daemon=True).start()
