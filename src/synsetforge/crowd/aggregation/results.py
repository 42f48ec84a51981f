"""Plain result types of the aggregators: numpy arrays plus the original keys, convertible to dicts/rows.

Kept free of pandas so the web layer, the store and the CLI can consume them directly (to_rows() is
JSON-ready: keys and labels are converted to Python scalars).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

UNDECIDED = -1  # label code of a task without a decision (e.g. a majority tie with ties="undecided")


@dataclass(frozen=True, eq=False)
class AggregationResult:
    """Per task: the decided label and the posterior of every label; per worker: estimated accuracy.

    `label_codes[i]` indexes `label_values` (or is `UNDECIDED`); `probas[i, k]` is P(true label of task i
    is `label_values[k]`); `worker_accuracy[j]` is the estimated share of correct answers of `workers[j]`.
    """

    method: str
    tasks: np.ndarray
    label_values: np.ndarray
    label_codes: np.ndarray
    probas: np.ndarray
    workers: np.ndarray
    worker_accuracy: np.ndarray

    @property
    def decided(self) -> np.ndarray:
        """Boolean mask of tasks that got a label."""
        return self.label_codes != UNDECIDED

    @property
    def labels(self) -> np.ndarray:
        """Decided label per task in the caller's label type; `None` (object array) where undecided."""
        if self.decided.all():
            return self.label_values[self.label_codes]
        out = np.empty(self.label_codes.shape[0], dtype=object)
        ok = self.decided
        out[ok] = self.label_values[self.label_codes[ok]]
        return out

    @property
    def confidence(self) -> np.ndarray:
        """Posterior probability of the decided label (of the most probable one where undecided)."""
        if self.probas.shape[0] == 0:
            return np.zeros(0)
        return self.probas.max(axis=1)

    def to_dict(self) -> dict[Any, Any]:
        """`{task: label}` with Python scalars; undecided tasks map to None."""
        return dict(zip(self.tasks.tolist(), self.labels.tolist(), strict=True))

    def to_rows(self) -> list[dict[str, Any]]:
        """One dict per task: task, label (None if undecided), confidence."""
        return [
            {"task": t, "label": lab, "confidence": c}
            for t, lab, c in zip(
                self.tasks.tolist(), self.labels.tolist(), self.confidence.tolist(), strict=True
            )
        ]

    def worker_rows(self) -> list[dict[str, Any]]:
        """One dict per worker: worker, accuracy."""
        return [
            {"worker": w, "accuracy": a}
            for w, a in zip(self.workers.tolist(), self.worker_accuracy.tolist(), strict=True)
        ]


@dataclass(frozen=True, eq=False)
class DawidSkeneResult(AggregationResult):
    """Adds the fitted Dawid-Skene parameters.

    `priors[k]` = P(true label k); `confusion[j, c, k]` = P(worker j answers label k | true label c);
    `n_iter` EM iterations run; `converged` whether the ELBO change fell under `tol` before `max_iter`.
    """

    priors: np.ndarray
    confusion: np.ndarray
    n_iter: int
    converged: bool
    elbo_history: tuple[float, ...]
