"""Worker-aware decisions: an online two-coin Dawid-Skene with a log-odds posterior per image.

Why (beyond the paper): dynamic consensus treats workers as exchangeable, so a spammer's "yes" moves an
image as much as an expert's. Here each worker has a sensitivity (P(yes | good)) and a specificity
(P(no | bad)) per synset group, and each vote adds that worker's weight of evidence to the image's
log-odds posterior:

    yes: log(sens / (1 - spec))        no: log((1 - sens) / spec)

starting from the group's prior log-odds logit(P(good)). An image is accepted once its posterior reaches
`accept`, rejected at `reject`, undecided at `max_votes`. A spammer (sens + spec = 1: always yes, or coin
flips) has weight 0 whatever it answers; an adversary (sens + spec < 1) gets negative weights, so its
flipped answers still carry signal.

Worker models are Beta posteriors (pseudo-counts `sens_a`/`sens_b`, `spec_a`/`spec_b`): a prior of
`prior_strength` pseudo-votes centred on the group's population estimate, plus gold answers (hard counts,
added at once by `observe_gold`), plus agreement (soft counts from EM over the group's votes, `refit`).
A worker with no evidence therefore weighs like the average worker of the group, a spammer drops to ~0
after a handful of gold answers, and `population="uniform"` centres the prior on 0.5 instead (weight 0
until evidence arrives). `population="gold"` centres it on the pooled gold answers of every worker of the
group: the crowd as it comes, where the votes' pooled rates describe the workers who were let vote, a
selection of those who did well on gold (their rates, as a prior, overrate the next lucky newcomer).

Synset groups: `group` is whatever key the caller passes (the live service uses the synset id, the
simulator the simulated synset); the estimator keeps workers, prior and population per group, so a
worker who is reliable on "cat" is not assumed reliable on "Burmese cat". Use one key for everything to
pool.

Online use: `observe(worker, item, label, group=...)` adds the vote with the worker's current weight;
`posterior(item)` / `decide(item)` read the running log-odds; `refit(group)` (the background job) runs EM
over the group's recorded votes seeded by gold, updates the worker models and the prior, and recomputes
every item's evidence with the new weights. `refit` starts from prior + gold only, so its result is a
function of the recorded votes: after it, the online state equals a batch `fit` on the same votes.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from synsetforge.crowd.aggregation.dynamic_consensus import Decision
from synsetforge.crowd.aggregation.results import UNDECIDED, AggregationResult
from synsetforge.crowd.aggregation.votes import Votes
from synsetforge.errors import InputError

CLIP = 1e-3  # sens/spec kept in [CLIP, 1 - CLIP]: one vote never carries more than ~6.9 nats
Population = Literal["group", "uniform", "gold"]
POPULATIONS = ("group", "uniform", "gold")


def logit(p: float) -> float:
    p = min(max(p, 1e-12), 1.0 - 1e-12)
    return math.log(p) - math.log1p(-p)


def sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


@dataclass(frozen=True)
class WorkerModel:
    """Beta posteriors of one worker's sensitivity and specificity in one synset group."""

    sens_a: float
    sens_b: float
    spec_a: float
    spec_b: float

    @classmethod
    def prior(cls, sensitivity: float, specificity: float, strength: float) -> WorkerModel:
        """`strength` pseudo-votes on each side, centred on the given rates."""
        return cls(
            strength * sensitivity, strength * (1 - sensitivity), strength * specificity,
            strength * (1 - specificity),
        )  # fmt: skip

    @property
    def sensitivity(self) -> float:
        total = self.sens_a + self.sens_b
        return _clip(self.sens_a / total) if total > 0 else 0.5

    @property
    def specificity(self) -> float:
        total = self.spec_a + self.spec_b
        return _clip(self.spec_a / total) if total > 0 else 0.5

    @property
    def spread(self) -> float:
        """Nats between a yes and a no of this worker: 0 for a spammer, 2 log(a / (1 - a)) at accuracy a."""
        return self.weight(True) - self.weight(False)

    def weight(self, label: bool) -> float:
        """The weight of evidence (nats) of this worker's `label` vote for "good"."""
        s, f = self.sensitivity, self.specificity
        return math.log(s / (1 - f)) if label else math.log((1 - s) / f)

    def plus(self, good: float, label: bool, count: float = 1.0) -> WorkerModel:
        """Add `count` answers `label` on items that are good with probability `good`."""
        return WorkerModel(
            self.sens_a + count * good * label,
            self.sens_b + count * good * (not label),
            self.spec_a + count * (1 - good) * (not label),
            self.spec_b + count * (1 - good) * label,
        )


def vote_weight(model: WorkerModel, label: bool) -> float:
    """log(sens/(1-spec)) for a yes vote, log((1-sens)/spec) for a no vote."""
    return model.weight(label)


def decide_llr(
    evidence: float,
    prior_good: float,
    *,
    accept: float,
    reject: float,
    votes: int,
    min_votes: int = 1,
    max_votes: int = 20,
) -> Decision:
    """accept / reject / need_more / undecided for an image with summed vote weights `evidence`."""
    post = logit(prior_good) + evidence
    if votes >= min_votes:
        if post >= logit(accept):
            return Decision.ACCEPT
        if post <= logit(reject):
            return Decision.REJECT
    if votes >= max_votes:
        return Decision.UNDECIDED
    return Decision.NEED_MORE


def _clip(p: float) -> float:
    return min(max(p, CLIP), 1.0 - CLIP)


@dataclass
class _Group:
    """Everything the estimator knows about one synset group."""

    prior_good: float
    population: tuple[float, float]
    models: dict[Hashable, WorkerModel] = field(default_factory=dict)  # from the last refit
    gold: dict[Hashable, tuple[float, float, float, float]] = field(default_factory=dict)
    votes: list[tuple[Hashable, Hashable, bool]] = field(default_factory=list)
    evidence: dict[Hashable, float] = field(default_factory=dict)
    count: dict[Hashable, int] = field(default_factory=dict)
    refits: int = 0


class OnlineDawidSkene:
    """Worker-aware yes/no decisions (see the module docstring).

    accept / reject: posterior P(good) at which an image is accepted / rejected.
    prior_good: P(good) of a group before its first refit (afterwards EM estimates it).
    prior_strength: pseudo-votes of each worker's Beta prior (on each of sens and spec).
    population: centre of that prior: "group" (the group's pooled sens/spec, from EM), "uniform" (0.5) or
        "gold" (the pooled gold answers of every worker of the group, set at each refit).
    start_sensitivity / start_specificity: the population estimate before the first refit.
    min_votes / max_votes: decide on no fewer / at most this many votes (then undecided).
    max_iter / tol: EM iterations and the stopping change in any item's posterior.
    """

    def __init__(
        self,
        *,
        accept: float = 0.997,
        reject: float = 0.003,
        prior_good: float = 0.5,
        prior_strength: float = 4.0,
        population: Population = "group",
        start_sensitivity: float = 0.7,
        start_specificity: float = 0.7,
        min_votes: int = 1,
        max_votes: int = 20,
        max_iter: int = 100,
        tol: float = 1e-6,
    ) -> None:
        if not 0.5 < accept < 1.0:
            raise InputError(f"accept must be in (0.5, 1), got {accept}")
        if not 0.0 < reject < 0.5:
            raise InputError(f"reject must be in (0, 0.5), got {reject}")
        if not 0.0 < prior_good < 1.0:
            raise InputError(f"prior_good must be in (0, 1), got {prior_good}")
        if prior_strength <= 0:
            raise InputError(f"prior_strength must be > 0, got {prior_strength}")
        if population not in POPULATIONS:
            raise InputError(f"population must be one of {list(POPULATIONS)}, not {population!r}")
        for name, value in (
            ("start_sensitivity", start_sensitivity),
            ("start_specificity", start_specificity),
        ):
            if not 0.0 < value < 1.0:
                raise InputError(f"{name} must be in (0, 1), got {value}")
        if max_votes < 1 or not 0 <= min_votes <= max_votes:
            raise InputError(
                f"need 0 <= min_votes <= max_votes and max_votes >= 1, got {min_votes}, {max_votes}"
            )
        self.accept, self.reject = float(accept), float(reject)
        self.prior_good = float(prior_good)
        self.prior_strength = float(prior_strength)
        self.population: Population = population
        self.start = (float(start_sensitivity), float(start_specificity))
        self.min_votes, self.max_votes = int(min_votes), int(max_votes)
        self.max_iter, self.tol = int(max_iter), float(tol)
        self._groups: dict[Hashable, _Group] = {}
        self._group_of: dict[Hashable, Hashable] = {}
        self.result_: AggregationResult | None = None

    # ----- state ---------------------------------------------------------------------------------------
    def _group(self, group: Hashable) -> _Group:
        g = self._groups.get(group)
        if g is None:
            g = self._groups[group] = _Group(self.prior_good, self.start)
        return g

    def _item_group(self, item: Hashable) -> _Group:
        if item not in self._group_of:
            raise InputError(f"no votes on item {item!r}")
        return self._groups[self._group_of[item]]

    def _centre(self, g: _Group) -> tuple[float, float]:
        return (0.5, 0.5) if self.population == "uniform" else g.population

    def worker_model(self, worker: Hashable, group: Hashable = None) -> WorkerModel:
        """The worker's current model in `group`: the last refit's, plus gold answers given since."""
        g = self._group(group)
        model = g.models.get(worker)
        if model is None:
            model = WorkerModel.prior(*self._centre(g), self.prior_strength)
            gy, gn, by, bn = g.gold.get(worker, (0.0, 0.0, 0.0, 0.0))
            model = WorkerModel(model.sens_a + gy, model.sens_b + gn, model.spec_a + bn, model.spec_b + by)
        return model

    def group_prior(self, group: Hashable = None) -> float:
        return self._group(group).prior_good

    # ----- online --------------------------------------------------------------------------------------
    def observe_gold(self, worker: Hashable, truth: bool, label: bool, group: Hashable = None) -> None:
        """A gold answer: counts at once towards the worker's model in `group`."""
        g = self._group(group)
        gy, gn, by, bn = g.gold.get(worker, (0.0, 0.0, 0.0, 0.0))
        if truth:
            gy, gn = gy + label, gn + (not label)
        else:
            by, bn = by + label, bn + (not label)
        g.gold[worker] = (gy, gn, by, bn)
        if worker in g.models:  # keep the refitted agreement counts, add the new gold answer
            g.models[worker] = g.models[worker].plus(float(truth), bool(label))

    def observe(self, worker: Hashable, item: Hashable, label: bool, group: Hashable = None) -> float:
        """Record a vote; returns the weight it added to the item's evidence."""
        known = self._group_of.setdefault(item, group)
        if known != group:
            raise InputError(f"item {item!r} belongs to group {known!r}, not {group!r}")
        g = self._group(group)
        w = self.worker_model(worker, group).weight(bool(label))
        g.votes.append((item, worker, bool(label)))
        g.evidence[item] = g.evidence.get(item, 0.0) + w
        g.count[item] = g.count.get(item, 0) + 1
        return w

    def log_odds(self, item: Hashable) -> float:
        g = self._item_group(item)
        return logit(g.prior_good) + g.evidence.get(item, 0.0)

    def posterior(self, item: Hashable) -> float:
        """P(item is good | its votes) under the current worker models."""
        return sigmoid(self.log_odds(item))

    def votes_on(self, item: Hashable) -> int:
        return self._item_group(item).count.get(item, 0) if item in self._group_of else 0

    def decide(self, item: Hashable) -> Decision:
        g = self._item_group(item)
        return decide_llr(
            g.evidence.get(item, 0.0), g.prior_good, accept=self.accept, reject=self.reject,
            votes=g.count.get(item, 0), min_votes=self.min_votes, max_votes=self.max_votes,
        )  # fmt: skip

    def groups(self) -> list[Hashable]:
        return list(self._groups)

    def votes_in(self, group: Hashable = None) -> int:
        return len(self._group(group).votes)

    def refit(self, group: Hashable = None) -> int:
        """EM over the group's votes seeded by gold; returns the EM iterations run.

        Updates the workers' models, the group's prior P(good) and population rates, and recomputes
        every item's evidence with the new weights (the caller re-decides the items it has not closed).
        """
        g = self._group(group)
        if not g.votes:
            return 0
        items, workers, labels = zip(*g.votes, strict=True)
        fit = fit_two_coin(
            list(items), list(workers), np.asarray(labels, dtype=bool), g.gold,
            prior_good=self.prior_good, start=self.start, strength=self.prior_strength,
            uniform=self.population == "uniform", max_iter=self.max_iter, tol=self.tol,
            centre=gold_population(g.gold, self.start) if self.population == "gold" else None,
        )  # fmt: skip
        g.prior_good, g.population = fit.prior_good, fit.population
        g.models = dict(zip(fit.workers, fit.models, strict=True))
        for worker in g.gold:  # gold-only workers: a model from gold and the new population
            if worker not in g.models:
                g.models[worker] = self._gold_model(g, worker)
        g.evidence = dict(zip(fit.items, fit.evidence.tolist(), strict=True))
        g.refits += 1
        return fit.n_iter

    def _gold_model(self, g: _Group, worker: Hashable) -> WorkerModel:
        model = WorkerModel.prior(*self._centre(g), self.prior_strength)
        gy, gn, by, bn = g.gold[worker]
        return WorkerModel(model.sens_a + gy, model.sens_b + gn, model.spec_a + bn, model.spec_b + by)

    # ----- batch ---------------------------------------------------------------------------------------
    def fit(
        self,
        votes: Any,
        *,
        group_of_task: Mapping[Any, Hashable] | None = None,
        gold: Mapping[Any, bool] | None = None,
        positive: Any = True,
    ) -> OnlineDawidSkene:
        """Replace the state by the votes table (task, worker, label) and refit every group.

        group_of_task: task -> synset group (default: one group). gold: task -> truth; votes on those tasks
        count as gold answers of their workers, not as votes on items.
        """
        v = Votes.from_any(votes)
        self._groups, self._group_of = {}, {}
        gold = gold or {}
        groups = group_of_task or {}
        is_yes = v.label_values[v.label_codes] == positive
        for task, worker, label in zip(
            v.tasks[v.task_codes].tolist(), v.workers[v.worker_codes].tolist(), is_yes.tolist(), strict=True
        ):
            group = groups.get(task) if group_of_task is not None else None
            if group_of_task is not None and task not in groups:
                raise InputError(f"task {task!r} has no synset group")
            if task in gold:
                self.observe_gold(worker, bool(gold[task]), bool(label), group)
            else:
                self.observe(worker, task, bool(label), group)
        for group in list(self._groups):
            self.refit(group)
        tasks = [t for t in v.tasks.tolist() if t in self._group_of]
        post = np.asarray([self.posterior(t) for t in tasks])
        codes = np.asarray(
            [{Decision.ACCEPT: 1, Decision.REJECT: 0}.get(self.decide(t), UNDECIDED) for t in tasks],
            dtype=np.int64,
        )
        worker_keys = sorted({w for g in self._groups.values() for w in g.models}, key=repr)
        acc = [
            float(np.mean([self._groups[k].models[w].sensitivity * self._groups[k].prior_good
                           + self._groups[k].models[w].specificity * (1 - self._groups[k].prior_good)
                           for k in self._groups if w in self._groups[k].models]))
            for w in worker_keys
        ]  # fmt: skip
        self.result_ = AggregationResult(
            method="worker_aware",
            tasks=_array(tasks),
            label_values=np.asarray([False, True]),
            label_codes=codes,
            probas=np.column_stack([1 - post, post]) if tasks else np.zeros((0, 2)),
            workers=_array(worker_keys),
            worker_accuracy=np.asarray(acc),
        )
        return self

    def predict(self) -> AggregationResult:
        """Per task: accept (True) / reject (False) / undecided, and P(good); per worker: accuracy."""
        if self.result_ is None:
            raise InputError("OnlineDawidSkene.predict() called before fit()")
        return self.result_

    def fit_predict(self, votes: Any, **kwargs: Any) -> AggregationResult:
        return self.fit(votes, **kwargs).predict()


def _array(values: list[Any]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


@dataclass(frozen=True)
class TwoCoinFit:
    """The outcome of `fit_two_coin` (items and workers in first-seen order)."""

    items: list[Any]
    evidence: np.ndarray
    workers: list[Any]
    models: list[WorkerModel]
    prior_good: float
    population: tuple[float, float]
    n_iter: int


def gold_population(
    gold: Mapping[Any, tuple[float, float, float, float]], start: tuple[float, float]
) -> tuple[float, float]:
    """Pooled (sensitivity, specificity) of every worker's gold answers, with one pseudo-answer each way
    at `start`: the rates of a worker drawn from the crowd before anyone was screened."""
    g = np.asarray(list(gold.values()), dtype=np.float64).reshape(-1, 4).sum(axis=0)
    return (
        float((g[0] + 2 * start[0]) / (g[0] + g[1] + 2)),
        float((g[3] + 2 * start[1]) / (g[3] + g[2] + 2)),
    )


def fit_two_coin(
    items: Sequence[Any],
    workers: Sequence[Any],
    labels: np.ndarray,
    gold: Mapping[Any, tuple[float, float, float, float]],
    *,
    prior_good: float,
    start: tuple[float, float],
    strength: float,
    uniform: bool = False,
    max_iter: int = 100,
    tol: float = 1e-6,
    centre: tuple[float, float] | None = None,
) -> TwoCoinFit:
    """EM for per-worker two-coin models over one group's votes, vectorised with bincount.

    gold[worker] = (yes on good, no on good, yes on bad, no on bad): hard counts added to every M-step.
    Each worker's rates are Beta posterior means with `strength` pseudo-votes centred on the pooled
    population rates (0.5 with `uniform`; `centre` when given, e.g. `gold_population`); P(good) gets one
    pseudo-image each way. EM starts from the posteriors under prior + gold models, so the result depends
    only on the votes and gold.
    """
    item_keys, t = _codes(items)
    worker_keys, w = _codes(workers)
    n_items, n_workers = len(item_keys), len(worker_keys)
    y = labels.astype(np.float64)
    g_arr = np.asarray([gold.get(k, (0.0, 0.0, 0.0, 0.0)) for k in worker_keys], dtype=np.float64)
    g_arr = g_arr.reshape(n_workers, 4)
    pop = centre or start
    pi = prior_good

    def rates(q: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
        sy: np.ndarray
        sn: np.ndarray
        by: np.ndarray
        bn: np.ndarray
        if q is None:
            sy = sn = by = bn = np.zeros(n_workers, dtype=np.float64)
        else:
            qv = q[t]
            sy = np.bincount(w, weights=qv * y, minlength=n_workers)
            sn = np.bincount(w, weights=qv * (1 - y), minlength=n_workers)
            by = np.bincount(w, weights=(1 - qv) * y, minlength=n_workers)
            bn = np.bincount(w, weights=(1 - qv) * (1 - y), minlength=n_workers)
        sy, sn, by, bn = sy + g_arr[:, 0], sn + g_arr[:, 1], by + g_arr[:, 2], bn + g_arr[:, 3]
        if q is None or centre is not None:
            population = pop
        else:  # pooled rates with a weak pull towards the starting guess
            population = (
                float((sy.sum() + 2 * start[0]) / (sy.sum() + sn.sum() + 2)),
                float((bn.sum() + 2 * start[1]) / (bn.sum() + by.sum() + 2)),
            )
        cs, cf = (0.5, 0.5) if uniform else population
        sens = np.clip((sy + strength * cs) / (sy + sn + strength), CLIP, 1 - CLIP)
        spec = np.clip((bn + strength * cf) / (bn + by + strength), CLIP, 1 - CLIP)
        return sens, spec, population

    def evidence(sens: np.ndarray, spec: np.ndarray) -> np.ndarray:
        w_yes, w_no = np.log(sens / (1 - spec)), np.log((1 - sens) / spec)
        return np.bincount(t, weights=np.where(labels, w_yes[w], w_no[w]), minlength=n_items)

    sens, spec, pop = rates(None)
    ev = evidence(sens, spec)
    q = 1.0 / (1.0 + np.exp(-(logit(pi) + ev)))
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007 - read after the loop
        pi = float((q.sum() + 1.0) / (n_items + 2.0))
        sens, spec, pop = rates(q)
        ev = evidence(sens, spec)
        new_q = 1.0 / (1.0 + np.exp(-(logit(pi) + ev)))
        done = float(np.abs(new_q - q).max(initial=0.0)) < tol
        q = new_q
        if done:
            break
    models = _models(q, t, w, y, g_arr, n_workers, strength, (0.5, 0.5) if uniform else pop)
    # the items' evidence under exactly the models handed out (so later online votes add up consistently)
    sens = np.asarray([m.sensitivity for m in models])
    spec = np.asarray([m.specificity for m in models])
    return TwoCoinFit(item_keys, evidence(sens, spec), worker_keys, models, pi, pop, it)


def _models(
    q: np.ndarray,
    t: np.ndarray,
    w: np.ndarray,
    y: np.ndarray,
    g_arr: np.ndarray,
    n_workers: int,
    strength: float,
    centre: tuple[float, float],
) -> list[WorkerModel]:
    """The workers' Beta pseudo-counts behind the last M-step (so online updates can continue from them)."""
    qv = q[t]
    sy = np.bincount(w, weights=qv * y, minlength=n_workers) + g_arr[:, 0] + strength * centre[0]
    sn = np.bincount(w, weights=qv * (1 - y), minlength=n_workers) + g_arr[:, 1] + strength * (1 - centre[0])
    bn = np.bincount(w, weights=(1 - qv) * (1 - y), minlength=n_workers) + g_arr[:, 3] + strength * centre[1]
    by = np.bincount(w, weights=(1 - qv) * y, minlength=n_workers) + g_arr[:, 2] + strength * (1 - centre[1])
    return [WorkerModel(*map(float, row)) for row in zip(sy, sn, bn, by, strict=True)]


def _codes(keys: Iterable[Any]) -> tuple[list[Any], np.ndarray]:
    index: dict[Any, int] = {}
    codes = [index.setdefault(k, len(index)) for k in keys]
    return list(index), np.asarray(codes, dtype=np.int64)
