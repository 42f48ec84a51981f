"""Training under torchrun: two CPU processes (gloo) give the weights one process gets with the same global
batch, each process reading only its share of the release."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from _training_fixtures import SHAPES_A, figure_release
from synsetforge.store import Project
from synsetforge.training.checkpoint import load_model_file

SCRIPT = textwrap.dedent(
    '''
    """Train a network without batch statistics or dropout (so the two runs can agree exactly)."""
    import sys
    from pathlib import Path

    from torch import nn

    from synsetforge.store import Project
    from synsetforge.training.config import TrainConfig
    from synsetforge.training.models import Classifier, register
    from synsetforge.training.train import train


    class Plain(Classifier):
        head_path = "fc"

        def __init__(self, num_classes: int) -> None:
            super().__init__(arch="plain", num_classes=num_classes, feature_dim=16)
            self.body = nn.Sequential(
                nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU(), nn.Conv2d(8, 16, 3, 2, 1), nn.ReLU(),
                nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            )
            self.fc = nn.Linear(16, num_classes)

        def embed(self, x):
            return self.body(x)


    register("plain")(Plain)

    if __name__ == "__main__":
        config = TrainConfig.for_arch(
            "plain", epochs=2, image_size=32, batch_size=16, lr=0.05, schedule="cosine", fit="pad", rotate=90.0
        )
        with Project.open(sys.argv[1]) as project:
            train(project, "a", config, out=Path(sys.argv[2]), workers=0)
    '''
)


@pytest.mark.slow
def test_two_processes_equal_one_with_the_same_global_batch(tmp_path: Path) -> None:
    with Project.init(tmp_path / "proj", db=None) as project:
        figure_release(project, "a", {c: 20 for c in SHAPES_A[:3]}, val=0.2, test=0.0)
    script = tmp_path / "train_plain.py"
    script.write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RANK", "WORLD_SIZE", "LOCAL_"))}
    one = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "proj"), str(tmp_path / "one")],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert one.returncode == 0, one.stderr
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun"
    two = subprocess.run(
        [torchrun, "--standalone", "--nproc-per-node", "2", str(script), str(tmp_path / "proj"), str(tmp_path / "two")],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert two.returncode == 0, two.stderr[-3000:]
    _, a, _ = load_model_file(tmp_path / "one")
    _, b, _ = load_model_file(tmp_path / "two")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-5, rtol=1e-4), key
    moved = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert moved < 1e-5
    hist_one = json.loads((tmp_path / "one" / "run.json").read_text())["history"]
    hist_two = json.loads((tmp_path / "two" / "run.json").read_text())["history"]
    assert [h["val"]["top1_error"] for h in hist_one] == pytest.approx(
        [h["val"]["top1_error"] for h in hist_two]
    )
    assert abs(hist_one[-1]["train_loss"] - hist_two[-1]["train_loss"]) < 1e-4
