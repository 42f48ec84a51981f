"""Dawid & Skene (1979): EM over per-worker confusion matrices and class priors.

Why: majority vote treats a spammer's vote like an expert's; DS learns each worker's confusion matrix
(so adversaries' flipped answers even become signal) and weights votes accordingly. ILSVRC follow-ups
(ReaL, Beyer et al. 2020) aggregate with it.

The algorithm follows crowd-kit's `DawidSkene` step for step (majority-vote initialisation, E-step then
M-step per iteration, confusion entries clipped at 1e-10, stop when the per-vote ELBO gains less than `tol`)
so labels agree with it, but every step is a handful of `np.bincount` calls over flat integer indices: no
Python loop per vote, task or worker (only per class, K-1 times).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np

from synsetforge.crowd.aggregation.results import DawidSkeneResult
from synsetforge.crowd.aggregation.votes import Votes
from synsetforge.errors import InputError

EPS = 1e-10  # floor for confusion entries and priors, as crowd-kit, so logs stay finite


class DawidSkene:
    """K-class Dawid-Skene EM.

    `max_iter` / `tol` default to crowd-kit's `n_iter=100`, `tol=1e-5` (tol is on the ELBO per vote; a
    negative tol never stops early, so exactly `max_iter` iterations run).
    `objective` is what the stopping test watches: "crowdkit" (default) is crowd-kit's per-vote objective,
    whose prior term counts once per vote, so both libraries stop at the same iteration and agree on
    labels; "elbo" is the textbook evidence lower bound, which EM never decreases (it usually stops
    sooner, and then a few near-tied tasks can differ from crowd-kit).
    `fit(votes, gold=...)` optionally pins tasks with known answers (honeypots) to their true label in
    every E-step, which anchors the workers' confusion matrices.
    """

    def __init__(
        self, max_iter: int = 100, tol: float = 1e-5, objective: Literal["crowdkit", "elbo"] = "crowdkit"
    ) -> None:
        if max_iter < 0:
            raise InputError(f"max_iter must be >= 0, got {max_iter}")
        if np.isnan(tol):
            raise InputError("tol must be a number, got NaN")
        if objective not in ("crowdkit", "elbo"):
            raise InputError(f"objective must be 'crowdkit' or 'elbo', not {objective!r}")
        self.objective = objective
        self.max_iter = int(max_iter)
        self.tol = float(tol)
        self.result_: DawidSkeneResult | None = None

    def fit(
        self, votes: Any, *, label_values: Any = None, gold: Mapping[Any, Any] | None = None
    ) -> DawidSkene:
        v = Votes.from_any(votes, label_values=label_values)
        n_tasks, n_workers, k = v.n_tasks, v.n_workers, v.n_labels
        t = v.task_codes
        wl = v.worker_codes * k + v.label_codes  # flat (worker, observed label) index per vote
        n_wl = n_workers * k
        n = v.n_votes

        counts_tl = v.counts().astype(np.float64)
        q = counts_tl / counts_tl.sum(axis=1, keepdims=True)  # majority-vote initialisation
        pin = _gold_pins(v, gold)
        if pin is not None:
            q[pin[0]] = np.eye(k)[pin[1]]
        wl_total = np.bincount(wl, minlength=n_wl).astype(np.float64)
        per_task_votes = counts_tl.sum(axis=1)
        observed = wl_total > 0

        priors = q.mean(axis=0)
        suff, errors = _m_step(q, t, wl, wl_total, observed, n_wl, k)
        elbo = -np.inf
        history: list[float] = []
        converged = False
        it = 0
        for it in range(1, self.max_iter + 1):  # noqa: B007 - it is read after the loop
            log_errors = np.zeros_like(errors)
            np.log(errors, out=log_errors, where=errors > 0)
            log_priors = np.log(np.maximum(priors, EPS))
            q = _e_step(log_errors, log_priors, t, wl, n_tasks, k)
            if pin is not None:
                q[pin[0]] = np.eye(k)[pin[1]]
            priors = q.mean(axis=0)
            suff, errors = _m_step(q, t, wl, wl_total, observed, n_wl, k)
            new_elbo = (
                _elbo(q, priors, suff, errors, per_task_votes if self.objective == "crowdkit" else None) / n
            )
            history.append(new_elbo)
            if new_elbo - elbo < self.tol:
                converged = True
                break
            elbo = new_elbo

        confusion = errors.reshape(n_workers, k, k).transpose(0, 2, 1)  # [worker, true, observed]
        accuracy = (confusion.diagonal(axis1=1, axis2=2) * priors[None, :]).sum(axis=1) / max(
            priors.sum(), EPS
        )
        self.result_ = DawidSkeneResult(
            method="dawid_skene",
            tasks=v.tasks,
            label_values=v.label_values,
            label_codes=q.argmax(axis=1).astype(np.int64),
            probas=q,
            workers=v.workers,
            worker_accuracy=accuracy,
            priors=priors,
            confusion=np.ascontiguousarray(confusion),
            n_iter=it,
            converged=converged,
            elbo_history=tuple(history),
        )
        return self

    def predict(self) -> DawidSkeneResult:
        if self.result_ is None:
            raise InputError("DawidSkene.predict() called before fit()")
        return self.result_

    def fit_predict(
        self, votes: Any, *, label_values: Any = None, gold: Mapping[Any, Any] | None = None
    ) -> DawidSkeneResult:
        return self.fit(votes, label_values=label_values, gold=gold).predict()


def _gold_pins(v: Votes, gold: Mapping[Any, Any] | None) -> tuple[np.ndarray, np.ndarray] | None:
    """(task codes, label codes) of gold tasks present in the votes; unknown gold labels are an error."""
    if not gold:
        return None
    label_index = {lab: i for i, lab in enumerate(v.label_values.tolist())}
    task_index = {key: i for i, key in enumerate(v.tasks.tolist())}
    rows, labs = [], []
    for task, label in gold.items():
        if label not in label_index:
            raise InputError(f"gold label {label!r} of task {task!r} is not one of {v.label_values.tolist()}")
        if task in task_index:
            rows.append(task_index[task])
            labs.append(label_index[label])
    if not rows:
        return None
    return np.asarray(rows, dtype=np.int64), np.asarray(labs, dtype=np.int64)


def _m_step(
    q: np.ndarray,
    t: np.ndarray,
    wl: np.ndarray,
    wl_total: np.ndarray,
    observed: np.ndarray,
    n_wl: int,
    k: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Expected counts suff[(worker, observed), true] and the column-normalised confusion entries.

    The last class's counts follow from the row sums (posteriors sum to 1), saving one bincount.
    Unobserved (worker, label) pairs stay exactly 0 as in crowd-kit, whose groupby has no row for them.
    """
    suff = np.empty((n_wl, k))
    rest = wl_total.copy()
    for c in range(k - 1):
        column = np.ascontiguousarray(q[:, c])  # gathering from a contiguous column is ~2x faster
        suff[:, c] = np.bincount(wl, weights=column[t], minlength=n_wl)
        rest -= suff[:, c]
    suff[:, k - 1] = np.maximum(rest, 0.0)
    errors = np.where(observed[:, None], np.maximum(suff, EPS), 0.0)
    per_worker = errors.reshape(-1, k, k).sum(axis=1, keepdims=True)  # sum over observed labels
    errors = (errors.reshape(-1, k, k) / per_worker).reshape(n_wl, k)
    return suff, errors


def _e_step(
    log_errors: np.ndarray, log_priors: np.ndarray, t: np.ndarray, wl: np.ndarray, n_tasks: int, k: int
) -> np.ndarray:
    """Task posteriors from summed log-likelihoods, computed relative to class 0 (K-1 bincounts).

    Each vote's log-likelihood ratio is looked up in a small per-(worker, label) table, so every class
    costs one gather and one bincount over the votes.
    """
    if k == 2:
        delta = log_errors[:, 1] - log_errors[:, 0]
        r = np.bincount(t, weights=delta[wl], minlength=n_tasks) + (log_priors[1] - log_priors[0])
        e = np.exp(-np.abs(r))  # stable logistic in both tails: no overflow, tiny posteriors kept
        big, small = 1.0 / (1.0 + e), e / (1.0 + e)
        q = np.empty((n_tasks, 2))
        pos = r >= 0
        q[:, 1] = np.where(pos, big, small)
        q[:, 0] = np.where(pos, small, big)
        return q
    rel = np.zeros((n_tasks, k))
    for c in range(1, k):
        delta = log_errors[:, c] - log_errors[:, 0]
        rel[:, c] = np.bincount(t, weights=delta[wl], minlength=n_tasks)
    rel += log_priors - log_priors[0]
    rel -= rel.max(axis=1, keepdims=True)
    q = np.exp(rel)
    q /= q.sum(axis=1, keepdims=True)
    return q


def _elbo(
    q: np.ndarray,
    priors: np.ndarray,
    suff: np.ndarray,
    errors: np.ndarray,
    prior_weight: np.ndarray | None,
) -> float:
    """E_q[log p(labels, truth)] + H(q); the votes' term comes from the M-step's expected counts.

    `prior_weight=None`: the textbook bound (the prior term once per task). With the tasks' vote counts it
    is crowd-kit's objective, which adds the prior term once per *vote*; it is only the stopping test.
    """
    log_errors = np.zeros_like(errors)
    np.log(np.maximum(errors, EPS), out=log_errors, where=errors > 0)
    log_priors = np.log(np.maximum(priors, EPS))
    if prior_weight is None:
        prior_term = float(q.sum(axis=0) @ log_priors)
    else:
        prior_term = float((prior_weight @ q) @ log_priors)
    qc = np.maximum(q, EPS)
    entropy = -float((qc * np.log(qc)).sum())
    return float((suff * log_errors).sum()) + prior_term + entropy
