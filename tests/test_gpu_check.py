"""scripts/gpu_check.sh, CPU-sized: it builds a 100-class synthetic release, trains, and reports its figures."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_runs_small_on_the_cpu(tmp_path: Path) -> None:
    proc = subprocess.run(
        [str(ROOT / "scripts" / "gpu_check.sh"), "--small", "--device", "cpu", "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert "release: 100 classes x 4 train + 1 val" in out
    assert re.search(r"training: [\d,]+ images in [\d.]+ s of epochs = [\d,]+ images/s", out)
    assert re.search(r"final val top-1 accuracy [\d.]+% \(chance 1\.0%\)", out)
    assert len(re.findall(r"time to val top-1 accuracy \d+%: ", out)) == 3
    assert not list(tmp_path.iterdir())  # the work folder is cleaned up
