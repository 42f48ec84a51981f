"""`kill -9` of `synsetforge collect`: its worker processes (and the forkserver) exit on their own.

A killed parent cannot shut its pool down, and a worker blocked on its task queue would otherwise wait
(holding ~100 MB) for good. The descendants are read from /proc before the kill; afterwards each must be
gone within a few seconds (a pid that now belongs to another process, by start time, counts as gone).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from synsetforge.candidates.sources.synthetic import ROOT, SyntheticSource
from synsetforge.store import Project

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, parent pid, start time) of a live process, None once it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = raw[raw.rindex(")") + 2 :].split()  # after "pid (comm) "
    return fields[0], int(fields[1]), int(fields[19])


def descendants(root: int) -> dict[int, int]:
    """pid -> start time of every live descendant of `root`."""
    children: dict[int, list[int]] = {}
    starts: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (st := _stat(int(entry))) is not None:
            children.setdefault(st[1], []).append(int(entry))
            starts[int(entry)] = st[2]
    found: dict[int, int] = {}
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found[child] = starts[child]
            todo.append(child)
    return found


def alive(procs: dict[int, int]) -> list[int]:
    out = []
    for pid, start in procs.items():
        st = _stat(pid)
        if st is not None and st[2] == start and st[0] != "Z":
            out.append(pid)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("fetch", ["--fetch-in-main", "--fetch-in-workers"])
def test_workers_exit_when_collect_is_killed(tmp_path: Path, fetch: str) -> None:
    root = tmp_path / "proj"
    with Project.init(root) as p:
        source = SyntheticSource(seed=0)
        synsets = [s for s in p.hierarchy.subtree(ROOT) if source.supports(s)][:4]
        p.add_synsets(synsets)
    cmd = [sys.executable, "-m", "synsetforge", "collect", "--per-synset", "1000", "--workers", "2", fetch]
    for sid in synsets:
        cmd += ["--synsets", sid]
    proc = subprocess.Popen(
        [*cmd, "--resize", "longer", "--size", "128", "-p", str(root)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # so the cleanup below can reach anything left behind
    )
    procs: dict[int, int] = {}
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            procs = descendants(proc.pid)
            workers = [pid for pid in procs if _stat(pid) and _stat(pid)[1] != proc.pid]  # type: ignore[index]
            if len(workers) >= 2:  # the pool's workers, children of the forkserver
                break
            time.sleep(0.2)
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        assert len(procs) >= 3, f"no worker pool found under {proc.pid}: {procs}"
        time.sleep(1.0)  # the workers are busy with chunks now
        procs.update(descendants(proc.pid))
        os.kill(proc.pid, signal.SIGKILL)  # the main process only, as `kill -9 PID` does
        proc.wait(10)
        deadline = time.monotonic() + 10
        while alive(procs) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = alive(procs)
        assert left == [], f"still running after the collector was killed: {left} of {sorted(procs)}"
    finally:
        for pid in alive(procs):
            os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()


@pytest.mark.parametrize("pidfd", [True, False])
def test_wait_for_exit_returns_when_the_process_dies(monkeypatch: pytest.MonkeyPatch, pidfd: bool) -> None:
    """With a pidfd (Linux) and without one (the polling fallback); a killed, unreaped child counts as gone."""
    import threading

    from synsetforge import lifeline

    if not pidfd:
        monkeypatch.delattr(os, "pidfd_open", raising=False)
    child = subprocess.Popen(["sleep", "60"])
    waiter = threading.Thread(target=lifeline._wait_for_exit, args=(child.pid, 0.05), daemon=True)
    waiter.start()
    time.sleep(0.3)
    assert waiter.is_alive()  # still waiting while the process runs
    os.kill(child.pid, signal.SIGKILL)  # not reaped yet: a zombie
    waiter.join(5)
    assert not waiter.is_alive()
    assert not lifeline.alive(child.pid)
    child.wait()
