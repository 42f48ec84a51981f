"""Check numerically that torchvision's weights give the same outputs in our networks as in torchvision's.

For each architecture: build torchvision's model (random weights, batch-norm running statistics made
non-trivial by a few training-mode passes), save its state dict to a ``.pth``, load that file into our model
with ``load_torchvision_weights``, and compare logits and penultimate features of both in eval mode on the
same random batch (and, as a control, that they differ before loading). Also loads the 1,000-class file into a 20-class model (head reset).

Not part of CI: it needs torchvision, which is not a project dependency (its compiled ops do not load
beside the project's pinned torch). Run it from a separate venv; our modules only need torch::

    python3 -m venv /tmp/tv-venv && /tmp/tv-venv/bin/pip install torch torchvision
    /tmp/tv-venv/bin/python scripts/torchvision_crosscheck.py
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch
import torchvision

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from synsetforge.training.models import build_model, load_torchvision_weights

ARCHS = ("alexnet", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
TOLERANCE = 1e-4


def penultimate(tv_model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """torchvision's features before the last Linear, captured with a hook on that Linear's input."""
    last = tv_model.classifier[6] if hasattr(tv_model, "classifier") else tv_model.fc
    captured: list[torch.Tensor] = []
    handle = last.register_forward_hook(lambda _m, inputs, _out: captured.append(inputs[0]))
    tv_model(x)
    handle.remove()
    return captured[0]


def check(arch: str, size: int, batch: int, workdir: Path) -> float:
    torch.manual_seed(0)
    theirs = getattr(torchvision.models, arch)(weights=None)
    theirs.train()
    with torch.no_grad():  # move batch-norm running statistics away from 0/1 so loading them matters
        for _ in range(2):
            theirs(torch.randn(4, 3, size, size))
    theirs.eval()
    path = workdir / f"{arch}.pth"
    torch.save(theirs.state_dict(), path)

    x = torch.randn(batch, 3, size, size)
    ours = build_model(arch, 1000).eval()
    with torch.no_grad():  # control: before loading, the outputs must differ, or the check proves nothing
        diff_before = (theirs(x) - ours(x)).abs().max().item()
    assert diff_before > 100 * TOLERANCE, f"{arch}: outputs agree before loading ({diff_before:.2e})"
    report = load_torchvision_weights(ours, path)
    assert not report.head_reset, report
    with torch.no_grad():
        diff_logits = (theirs(x) - ours(x)).abs().max().item()
        diff_embed = (penultimate(theirs, x) - ours.embed(x)).abs().max().item()

    small = build_model(arch, 20)
    small_report = load_torchvision_weights(small, path)
    assert small_report.head_reset and small_report.file_classes == 1000, small_report
    small.eval()
    with torch.no_grad():
        diff_transfer = (small.embed(x) - ours.embed(x)).abs().max().item()

    worst = max(diff_logits, diff_embed, diff_transfer)
    print(
        f"{arch:10s} {size}px  before loading {diff_before:.2e}  max|logits diff| {diff_logits:.2e}  max|embed diff| {diff_embed:.2e}  "
        f"20-class embed diff {diff_transfer:.2e}  {'ok' if worst < TOLERANCE else 'FAIL'}  ({report})"
    )
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--arch", action="append", choices=ARCHS, help="default: all")
    args = parser.parse_args()
    torch.set_num_threads(2)
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, tolerance {TOLERANCE}")
    with tempfile.TemporaryDirectory() as tmp:
        worst = max(check(arch, args.size, args.batch, Path(tmp)) for arch in args.arch or ARCHS)
    if worst >= TOLERANCE:
        sys.exit(f"FAIL: max abs difference {worst:.2e} >= {TOLERANCE}")
    print("all outputs agree")


if __name__ == "__main__":
    main()
