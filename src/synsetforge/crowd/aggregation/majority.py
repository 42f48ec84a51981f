"""Majority vote: the baseline every other aggregator is compared with (fixed number of votes per image)."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from synsetforge.crowd.aggregation.results import UNDECIDED, AggregationResult
from synsetforge.crowd.aggregation.votes import Votes
from synsetforge.errors import InputError

TieRule = Literal["lowest", "undecided"]


def majority_codes(counts: np.ndarray, ties: TieRule) -> np.ndarray:
    """Winning label code per row of a (tasks, labels) count matrix; ties -> lowest code or UNDECIDED."""
    codes = counts.argmax(axis=1)  # argmax returns the first (lowest) label among equal maxima
    if ties == "undecided":
        top = counts.max(axis=1, keepdims=True)
        tied = (counts == top).sum(axis=1) > 1
        codes = np.where(tied, UNDECIDED, codes)
    return codes.astype(np.int64)


def worker_agreement(votes: Votes, codes: np.ndarray) -> np.ndarray:
    """Share of each worker's votes that equal the task's decided label (votes on undecided tasks skipped)."""
    per_vote = codes[votes.task_codes]
    counted = per_vote != UNDECIDED
    agree = np.bincount(
        votes.worker_codes, weights=(per_vote == votes.label_codes) & counted, minlength=votes.n_workers
    )
    total = np.bincount(votes.worker_codes, weights=counted, minlength=votes.n_workers)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, agree / np.maximum(total, 1), np.nan)


class MajorityVote:
    """Each task gets its most frequent label; confidence is that label's share of the task's votes.

    Ties: `ties="lowest"` (default, as crowd-kit) picks the lowest label value (False before True, so a 1-1
    yes/no tie is *not* accepted); `ties="undecided"` leaves the task without a label (label None).
    Worker accuracy is the share of a worker's votes that agree with the decided labels.
    """

    def __init__(self, ties: TieRule = "lowest") -> None:
        if ties not in ("lowest", "undecided"):
            raise InputError(f"ties must be 'lowest' or 'undecided', not {ties!r}")
        self.ties: TieRule = ties
        self.result_: AggregationResult | None = None

    def fit(self, votes: Any, *, label_values: Any = None) -> MajorityVote:
        v = Votes.from_any(votes, label_values=label_values)
        counts = v.counts().astype(np.float64)
        probas = counts / counts.sum(axis=1, keepdims=True)
        codes = majority_codes(counts, self.ties)
        self.result_ = AggregationResult(
            method="majority_vote",
            tasks=v.tasks,
            label_values=v.label_values,
            label_codes=codes,
            probas=probas,
            workers=v.workers,
            worker_accuracy=worker_agreement(v, codes),
        )
        return self

    def predict(self) -> AggregationResult:
        if self.result_ is None:
            raise InputError("MajorityVote.predict() called before fit()")
        return self.result_

    def fit_predict(self, votes: Any, *, label_values: Any = None) -> AggregationResult:
        return self.fit(votes, label_values=label_values).predict()
