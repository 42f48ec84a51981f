"""Leaderboard statistics on per-image scores: intervals, paired tests, public/private split, the Ladder.

All functions take per-image vectors (bool correctness, 0/1 losses or per-image costs such as LCA heights)
from `metrics.score`, so they work for any metric and never touch files or a store.

* bootstrap: percentile interval of the mean over images resampled with replacement. When the vector
  takes few distinct values (correctness, costs that are small integer heights, paired differences in
  {-1, 0, 1}) a resample is fully described by how many images of each value it drew, so we draw those
  counts from a multinomial: exactly the same distribution as resampling indices, at O(resamples) cost.
* paired test: exact McNemar (two-sided binomial test on the discordant images) for 0/1 vectors, or a
  paired bootstrap of the mean difference (p-value from the centred resamples) for anything.
* public/private split: each image's side is fixed by a hash of (seed, image id), independent of order.
* Ladder (Blum & Hardt, ICML 2015): a new public score is released only when it beats the last released
  one by more than a margin, so repeated submissions learn little about the holdout.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from synsetforge.errors import InputError

DEFAULT_RESAMPLES = 10_000
_MAX_DISTINCT_FOR_COUNTS = 64
_CHUNK_ELEMENTS = 1 << 22


@dataclass(frozen=True)
class Interval:
    """A bootstrap percentile interval around the observed mean."""

    estimate: float
    low: float
    high: float
    confidence: float
    n_resamples: int


@dataclass(frozen=True)
class PairedComparison:
    """Entry A versus entry B on the same images; `difference` = mean(A) - mean(B)."""

    method: Literal["mcnemar", "bootstrap"]
    mean_a: float
    mean_b: float
    difference: float
    p_value: float
    a_only: int | None = None
    b_only: int | None = None
    low: float | None = None
    high: float | None = None


def _vector(values: np.ndarray | Sequence[float], what: str = "values") -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or len(v) == 0:
        raise InputError(f"{what}: need a non-empty 1-D vector of per-image values, got shape {v.shape}")
    if not np.isfinite(v).all():
        raise InputError(f"{what}: per-image values must be finite")
    return v


def _check_resampling(confidence: float, n_resamples: int) -> None:
    if not 0 < confidence < 1:
        raise InputError(f"confidence must lie strictly between 0 and 1, not {confidence}")
    if n_resamples < 1:
        raise InputError("n_resamples must be at least 1")


def bootstrap_means(values: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Means of `n_resamples` bootstrap resamples of `values` (vectorised; see module doc)."""
    v = _vector(values)
    n = len(v)
    distinct, counts = np.unique(v, return_counts=True)
    if len(distinct) <= _MAX_DISTINCT_FOR_COUNTS:
        draws = rng.multinomial(n, counts / n, size=n_resamples)
        return (draws @ distinct) / n
    means = np.empty(n_resamples)
    rows = max(1, _CHUNK_ELEMENTS // n)
    for start in range(0, n_resamples, rows):
        stop = min(n_resamples, start + rows)
        means[start:stop] = v[rng.integers(0, n, size=(stop - start, n))].mean(axis=1)
    return means


def bootstrap_interval(
    values: np.ndarray | Sequence[float],
    *,
    confidence: float = 0.95,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Interval:
    """Percentile bootstrap interval for the mean of per-image values (pass ~correct for an error rate)."""
    _check_resampling(confidence, n_resamples)
    v = _vector(values)
    means = bootstrap_means(v, n_resamples, np.random.default_rng(seed))
    alpha = 1 - confidence
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return Interval(float(v.sum()) / len(v), float(low), float(high), confidence, n_resamples)


def mcnemar_exact(a_only: int, b_only: int) -> float:
    """Two-sided exact McNemar p-value: binomial test of a_only against Binomial(a_only + b_only, 1/2)."""
    n = a_only + b_only
    if n == 0:
        return 1.0
    from scipy.stats import binomtest  # lazy: scipy.stats takes a while to import

    return float(binomtest(a_only, n, 0.5).pvalue)


def paired_test(
    a: np.ndarray | Sequence[float],
    b: np.ndarray | Sequence[float],
    *,
    method: Literal["mcnemar", "bootstrap"] = "mcnemar",
    confidence: float = 0.95,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> PairedComparison:
    """Is A different from B on the same images? McNemar needs 0/1 vectors; the bootstrap takes any.

    The bootstrap p-value is (1 + #{|m* - d| >= |d|}) / (1 + resamples), m* the resampled mean
    differences and d the observed one: the share of resamples, centred on the null, at least as extreme.
    """
    va, vb = _vector(a, "entry A"), _vector(b, "entry B")
    if va.shape != vb.shape:
        raise InputError(f"the entries were scored on different image sets ({len(va)} vs {len(vb)} images)")
    n = len(va)
    mean_a, mean_b = float(va.sum()) / n, float(vb.sum()) / n
    d = va - vb
    observed = float(d.sum()) / n
    if method == "mcnemar":
        binary = np.isin(va, (0.0, 1.0)).all() and np.isin(vb, (0.0, 1.0)).all()
        if not binary:
            raise InputError("McNemar's test needs 0/1 per-image values; use method='bootstrap'")
        a_only, b_only = int((d > 0).sum()), int((d < 0).sum())
        return PairedComparison(
            "mcnemar", mean_a, mean_b, observed, mcnemar_exact(a_only, b_only), a_only=a_only, b_only=b_only
        )
    if method != "bootstrap":
        raise InputError(f"unknown paired test {method!r}; use 'mcnemar' or 'bootstrap'")
    _check_resampling(confidence, n_resamples)
    means = bootstrap_means(d, n_resamples, np.random.default_rng(seed))
    extreme = int((np.abs(means - observed) >= abs(observed)).sum())
    alpha = 1 - confidence
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return PairedComparison(
        "bootstrap",
        mean_a,
        mean_b,
        observed,
        (1 + extreme) / (1 + n_resamples),
        a_only=int((d > 0).sum()),
        b_only=int((d < 0).sum()),
        low=float(low),
        high=float(high),
    )


def public_private_split(image_ids: Sequence[str], *, public_fraction: float, seed: int | str) -> np.ndarray:
    """bool [n], True = public: the round(fraction * n) images with the smallest hash of (seed, id).

    Hashing instead of shuffling makes an image's side independent of list order, numpy version and
    platform, so a split can be recomputed years later from the seed alone.
    """
    if not 0 <= public_fraction <= 1:
        raise InputError(f"public_fraction must lie in [0, 1], not {public_fraction}")
    ids = list(image_ids)
    if len(set(ids)) != len(ids):
        raise InputError("image ids must be distinct to split them")
    n_public = math.floor(public_fraction * len(ids) + 0.5)
    prefix = f"{seed}\x00".encode()
    keys = [hashlib.blake2b(prefix + image.encode(), digest_size=8).digest() for image in ids]
    order = sorted(range(len(ids)), key=lambda i: (keys[i], ids[i]))
    public = np.zeros(len(ids), dtype=bool)
    public[order[:n_public]] = True
    return public


@dataclass(frozen=True)
class LadderStep:
    """What the leaderboard shows after one submission; `loss` is the true holdout loss, kept private."""

    released: float
    improved: bool
    loss: float


def round_to_step(value: float, step: float) -> float:
    """[value]_step of the paper: the nearest multiple of step (float noise trimmed)."""
    return round(math.floor(value / step + 0.5) * step, 12)


def ladder_step(loss: float, best: float | None, *, step: float) -> LadderStep:
    """Ladder with a fixed margin: release [loss]_step only if loss < best - step (best = last released)."""
    if not step > 0:
        raise InputError(f"the Ladder step must be positive, not {step}")
    if not math.isfinite(loss):
        raise InputError("the loss must be finite")
    if best is None or loss < best - step:
        return LadderStep(round_to_step(loss, step), True, loss)
    return LadderStep(best, False, loss)


def parameter_free_ladder_step(
    losses: np.ndarray | Sequence[float], best_losses: np.ndarray | None
) -> LadderStep:
    """Parameter-free Ladder: the margin is std(losses - best_losses) / sqrt(n), a one-sided paired test.

    `best_losses` are the per-image losses of the last released submission (None before the first). As in
    the authors' reference code the released score is the unrounded mean loss.
    """
    v = _vector(losses, "losses")
    n = len(v)
    loss = float(v.sum()) / n
    if best_losses is None:
        spread = float(v.std(ddof=1)) if n > 1 else 0.0
        best = math.inf
    else:
        bv = _vector(best_losses, "best losses")
        if bv.shape != v.shape:
            raise InputError("the submissions were scored on different image sets")
        spread = float((v - bv).std(ddof=1)) if n > 1 else 0.0
        best = float(bv.sum()) / n
    if loss < best - spread / math.sqrt(n):
        return LadderStep(loss, True, loss)
    return LadderStep(best, False, loss)


class Ladder:
    """A running Ladder leaderboard for one challenge: fixed `step`, or parameter-free when step is None."""

    def __init__(self, step: float | None = None) -> None:
        if step is not None and not step > 0:
            raise InputError(f"the Ladder step must be positive, not {step}")
        self.step = step
        self.best: float | None = None
        self.best_losses: np.ndarray | None = None

    def submit(self, losses: np.ndarray | Sequence[float]) -> LadderStep:
        """Score one submission's per-image holdout losses; returns what to show."""
        v = _vector(losses, "losses")
        if self.best_losses is not None and self.best_losses.shape != v.shape:
            raise InputError("the submissions were scored on different image sets")
        if self.step is None:
            result = parameter_free_ladder_step(v, self.best_losses)
        else:
            result = ladder_step(float(v.sum()) / len(v), self.best, step=self.step)
        if result.improved:
            self.best, self.best_losses = result.released, v
        return result
