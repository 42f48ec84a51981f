"""Running a network over decoded images: the device, mixed precision, evaluation and feature extraction.

Shared by `train`, `predict`, `transfer` and `embed`, so all four see images the same way (centre crop of
the decoded image, ImageNet normalisation) and report the same figures.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from synsetforge.errors import InputError
from synsetforge.training.augment import eval_transform
from synsetforge.training.loader import DecodedImages, usable_cores


def pick_device(choice: str) -> torch.device:
    """`auto`: CUDA when torch sees a GPU, else the CPU; `cuda` without a GPU is a one-line error."""
    if choice not in ("auto", "cpu", "cuda") and not choice.startswith("cuda:"):
        raise InputError(f"--device must be auto, cpu or cuda, got {choice!r}")
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"--device {choice}: no CUDA GPU is available to torch {torch.__version__} here")
    return torch.device(choice)


def cpu_threads() -> int:
    """Threads for torch on the CPU: the cores this process may use (divided among local ranks)."""
    return usable_cores()


def autocast(device: torch.device) -> contextlib.AbstractContextManager[object]:
    """Mixed precision on CUDA (bfloat16 where supported, else float16); full precision on the CPU."""
    if device.type != "cuda":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)


def batches(n: int, size: int) -> Iterator[np.ndarray]:
    for start in range(0, n, size):
        yield np.arange(start, min(n, start + size))


@dataclass
class EvalResult:
    """Top-1 / top-5 error and mean loss on labelled images, plus each image's top-5 guesses."""

    top1_error: float
    top5_error: float
    loss: float
    n: int
    top5: np.ndarray  # int64 [n, min(5, classes)] class indices, best first
    correct1: np.ndarray  # bool [n]

    def summary(self) -> dict[str, float]:
        return {"top1_error": self.top1_error, "top5_error": self.top5_error, "loss": self.loss, "n": self.n}


@torch.no_grad()
def run_eval(
    model: torch.nn.Module,
    images: DecodedImages,
    rows: np.ndarray,
    size: int,
    device: torch.device,
    *,
    batch_size: int = 256,
    features: bool = False,
    class_mask: torch.Tensor | None = None,
    pool: concurrent.futures.Executor | None = None,
    normalize: str = "imagenet",
) -> tuple[np.ndarray, np.ndarray]:
    """Logits (or features) for `rows` of `images`, centre-cropped: returns (outputs float32 [n, D], rows kept).

    Rows that cannot be decoded (streaming mode) are left out; the second value lists the rows kept.
    """
    was_training = model.training
    model.eval()
    outs: list[np.ndarray] = []
    kept: list[np.ndarray] = []
    order = [rows[i : i + batch_size] for i in range(0, len(rows), batch_size)]
    try:
        for got_rows, batch, _ in images.stream(pool, order):
            if len(got_rows) == 0:
                continue
            x = eval_transform(torch.from_numpy(batch).to(device, non_blocking=True), size, normalize)
            with autocast(device):
                if features:
                    y = model.embed(x)  # type: ignore[operator]
                else:
                    y = model(x)
                    if class_mask is not None:
                        y = y.masked_fill(~class_mask.to(y.device), float("-inf"))
            outs.append(y.float().cpu().numpy())
            kept.append(got_rows)
    finally:
        model.train(was_training)
    width = outs[0].shape[1] if outs else 0
    return (np.concatenate(outs) if outs else np.empty((0, width), np.float32)), (
        np.concatenate(kept) if kept else np.empty(0, np.int64)
    )


def evaluate(
    model: torch.nn.Module,
    images: DecodedImages,
    rows: np.ndarray,
    labels: np.ndarray,
    size: int,
    device: torch.device,
    *,
    batch_size: int = 256,
    pool: concurrent.futures.Executor | None = None,
    normalize: str = "imagenet",
) -> EvalResult:
    """Top-1/top-5 error and cross-entropy of `model` on `rows` (labels per row of `images`)."""
    logits, kept = run_eval(
        model, images, rows, size, device, batch_size=batch_size, pool=pool, normalize=normalize
    )
    return scores_of(logits, labels[kept])


def scores_of(logits: np.ndarray, labels: np.ndarray) -> EvalResult:
    """Top-1/top-5 error and cross-entropy of logits [n, K] against labels [n]."""
    if len(labels) == 0:
        return EvalResult(
            float("nan"), float("nan"), float("nan"), 0, np.empty((0, 5), np.int64), np.empty(0, bool)
        )
    y = torch.from_numpy(labels)
    t = torch.from_numpy(logits)
    loss = float(F.cross_entropy(t, y))
    k = min(5, t.shape[1])
    top = torch.topk(t, k, dim=1).indices
    correct1 = (top[:, 0] == y).numpy()
    correct5 = (top == y[:, None]).any(dim=1).numpy()
    return EvalResult(
        top1_error=float(1 - correct1.mean()),
        top5_error=float(1 - correct5.mean()),
        loss=loss,
        n=len(labels),
        top5=top.numpy(),
        correct1=correct1,
    )
