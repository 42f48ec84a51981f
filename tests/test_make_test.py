"""`make test` does its own set-up: it installs the Debian packages the tests need (only when missing) before
linting and testing, and `.ci/run` goes through it."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "system-packages.sh"


def test_make_test_installs_system_packages_first() -> None:
    plan = subprocess.run(
        ["make", "-n", "test"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    steps = [line for line in plan if "system-packages.sh" in line or "pytest" in line or "ruff" in line]
    assert steps and "system-packages.sh" in steps[0], plan
    assert any("pytest" in s for s in steps)


def test_ci_runs_make_test() -> None:
    lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert "make test" in lines
    assert not any(line.startswith("apt-get") for line in lines)  # the install step lives in make test


def test_missing_package_without_root_is_one_clear_line(tmp_path: Path) -> None:
    """A non-root user missing a package gets one `error:` line naming it and the command, exit 1."""
    # an empty PATH: no pg_isready (postgresql-client counts as missing), no sudo, no apt-get
    env = {"PATH": str(tmp_path / "empty")}
    argv = [shutil.which("bash") or "/bin/bash", str(SCRIPT)]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        assert setpriv is not None
        argv = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", *argv]
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "postgresql-client" in lines[0] and "apt-get install" in lines[0]
