"""Write ``tests/data/torchvision_state_dicts.json``: every state-dict key, shape and dtype of torchvision's
AlexNet and ResNet-18/34/50 (built with ``weights=None``), their parameter counts, and a numeric probe:
torchvision's logits and penultimate features, in eval mode, for weights and an input made by a fixed
formula (``probe_state``, ``probe_input``; tests/test_models.py has the same two functions), so CI checks
that our forward computes what torchvision's does without needing torchvision.

``tests/test_models.py`` checks our networks against this file, so a user's torchvision ``.pth`` loads into
them. It needs torchvision, which is not a project dependency (its compiled ops do not load beside the
project's pinned torch): run it from a separate venv, outside CI::

    python3 -m venv /tmp/tv-venv && /tmp/tv-venv/bin/pip install torch torchvision
    /tmp/tv-venv/bin/python scripts/torchvision_fixture.py

One key per line, in torchvision's order, so a change reads well in a diff.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch
import torchvision

ARCHS = ("alexnet", "resnet18", "resnet34", "resnet50")
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "torchvision_state_dicts.json"
PROBE_SIZE, PROBE_BATCH, PROBE_VALUES = 64, 2, 16


def _table() -> torch.Tensor:
    return torch.sin(torch.arange(1009, dtype=torch.float64) * 0.61).float()


def _pattern(n: int, shift: int) -> torch.Tensor:
    return torch.roll(_table(), shift).repeat(n // 1009 + 1)[:n]


def probe_state(shapes: dict[str, list[int]]) -> dict[str, torch.Tensor]:
    """Weights from a fixed formula, He-scaled so activations neither vanish nor explode."""
    state = {}
    for i, (key, shape) in enumerate(shapes.items()):
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(0)
            continue
        t = _pattern(math.prod(shape), i).reshape(shape)
        if key.endswith("running_var"):
            state[key] = 1 + 0.5 * t * t
        elif key.endswith(("running_mean", "bias")):
            state[key] = 0.1 * t
        elif len(shape) >= 2:  # conv / linear weight: std sqrt(2 / fan_in), as He init
            state[key] = t * (2 / math.sqrt(math.prod(shape[1:])))
        else:  # batch-norm gamma
            state[key] = 1 + 0.2 * t
    return state


def probe_input() -> torch.Tensor:
    n = PROBE_BATCH * 3 * PROBE_SIZE * PROBE_SIZE
    return _pattern(n, 0).reshape(PROBE_BATCH, 3, PROBE_SIZE, PROBE_SIZE)


def probe(model: torch.nn.Module, shapes: dict[str, list[int]]) -> dict[str, object]:
    model.load_state_dict(probe_state(shapes))
    model.eval()
    last = model.classifier[6] if hasattr(model, "classifier") else model.fc
    captured: list[torch.Tensor] = []
    last.register_forward_hook(lambda _m, inputs, _out: captured.append(inputs[0]))
    with torch.no_grad():
        logits = model(probe_input())
    embed = captured[0]
    return {
        "size": PROBE_SIZE,
        "logits_first": logits[:, :PROBE_VALUES].tolist(),
        "logits_mean_abs": logits.abs().mean().item(),
        "embed_first": embed[:, :PROBE_VALUES].tolist(),
        "embed_mean_abs": embed.abs().mean().item(),
    }


def describe(arch: str) -> tuple[int, list[str], dict[str, object]]:
    model = getattr(torchvision.models, arch)(weights=None)
    params = sum(p.numel() for p in model.parameters())
    state = model.state_dict()
    lines = [
        json.dumps({"key": key, "shape": list(t.shape), "dtype": str(t.dtype).removeprefix("torch.")})
        for key, t in state.items()
    ]
    return params, lines, probe(model, {key: list(t.shape) for key, t in state.items()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    blocks = []
    for arch in ARCHS:
        params, lines, numbers = describe(arch)
        keys = ",\n        ".join(lines)
        blocks.append(
            f'    "{arch}": {{\n      "num_classes": 1000,\n      "num_parameters": {params},\n'
            f'      "probe": {json.dumps(numbers)},\n'
            f'      "state_dict": [\n        {keys}\n      ]\n    }}'
        )
    header = json.dumps(
        {
            "generator": "scripts/torchvision_fixture.py",
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
        }
    )[1:-1]
    text = "{\n  " + header + ',\n  "models": {\n' + ",\n".join(blocks) + "\n  }\n}\n"
    json.loads(text)  # the hand-joined layout must still be JSON
    args.out.write_text(text)
    print(f"wrote {args.out} ({', '.join(ARCHS)})")


if __name__ == "__main__":
    main()
