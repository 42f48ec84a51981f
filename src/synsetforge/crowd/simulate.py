"""A simulated crowd, to test and tune verification without paying anyone.

Why: the methodology's claims (dynamic consensus reaches ~99.7% precision with fewer votes than a fixed
majority; gold questions keep spammers out) must be checkable offline and deterministically. Workers here
are plain objects with `answer(truth, rng)`; the drivers below run the whole adaptive loop in memory, and
the web layer can drive the very same workers through HTTP.

Worker model: an honest worker answers correctly with probability `accuracy` on an easy image; a synset's
`difficulty` d in [0, 1) shrinks that towards a coin flip, 0.5 + (accuracy - 0.5)(1 - d). Spammers answer
"yes" always or at random; adversaries answer like an honest worker and then flip the answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from synsetforge.crowd.aggregation.dynamic_consensus import ConfidenceTable, Decision, DynamicConsensus
from synsetforge.crowd.aggregation.majority import MajorityVote
from synsetforge.crowd.aggregation.online_ds import OnlineDawidSkene, logit
from synsetforge.errors import InputError

WorkerKind = Literal["honest", "always_yes", "random", "adversary"]
KINDS: tuple[str, ...] = ("honest", "always_yes", "random", "adversary")


@dataclass(frozen=True)
class SimulatedWorker:
    """One simulated crowd worker."""

    worker_id: str
    kind: WorkerKind = "honest"
    accuracy: float = 0.8

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InputError(f"unknown worker kind {self.kind!r}; expected one of {list(KINDS)}")
        if not 0.0 <= self.accuracy <= 1.0:
            raise InputError(f"worker accuracy must be in [0, 1], got {self.accuracy}")

    def answer(self, truth: bool, rng: np.random.Generator, difficulty: float = 0.0) -> bool:
        """Does the image show the synset? `truth` is the real answer, `difficulty` the synset's."""
        if self.kind == "always_yes":
            return True
        if self.kind == "random":
            return bool(rng.random() < 0.5)
        p_correct = 0.5 + (self.accuracy - 0.5) * (1.0 - difficulty)
        honest = bool(truth) if rng.random() < p_correct else not truth
        return not honest if self.kind == "adversary" else honest


def make_worker_pool(
    n: int,
    *,
    mean_accuracy: float = 0.8,
    concentration: float | None = 20.0,
    spammer_fraction: float = 0.0,
    always_yes_share: float = 0.5,
    adversary_fraction: float = 0.0,
    seed: int | np.random.Generator = 0,
) -> list[SimulatedWorker]:
    """`n` workers: honest accuracies ~ Beta(mean * c, (1 - mean) * c) (fixed at the mean if
    `concentration` is None), then `spammer_fraction` of them replaced by spammers (`always_yes_share` of
    those say yes always, the rest answer at random) and `adversary_fraction` by adversaries."""
    if n < 1:
        raise InputError(f"a worker pool needs at least one worker, got n={n}")
    if not 0.0 < mean_accuracy < 1.0:
        raise InputError(f"mean_accuracy must be in (0, 1), got {mean_accuracy}")
    if spammer_fraction < 0 or adversary_fraction < 0 or spammer_fraction + adversary_fraction > 1:
        raise InputError("spammer_fraction and adversary_fraction must be >= 0 and sum to at most 1")
    rng = np.random.default_rng(seed)
    if concentration is None:
        acc = np.full(n, mean_accuracy)
    else:
        if concentration <= 0:
            raise InputError(f"concentration must be > 0, got {concentration}")
        acc = rng.beta(mean_accuracy * concentration, (1.0 - mean_accuracy) * concentration, size=n)
    n_spam = round(n * spammer_fraction)
    n_adv = round(n * adversary_fraction)
    n_yes = round(n_spam * always_yes_share)
    counts: list[tuple[WorkerKind, int]] = [
        ("always_yes", n_yes),
        ("random", n_spam - n_yes),
        ("adversary", n_adv),
        ("honest", n - n_spam - n_adv),
    ]
    kinds = [kind for kind, k in counts for _ in range(k)]
    order = rng.permutation(n)
    width = len(str(n - 1))
    return [SimulatedWorker(f"w{i:0{width}d}", kinds[order[i]], float(acc[i])) for i in range(n)]


@dataclass(frozen=True)
class SimulatedSynset:
    """Ground truth for one synset's candidate images (True = shows the synset)."""

    synset: str
    truth: np.ndarray
    difficulty: float = 0.0

    def task_ids(self) -> list[str]:
        return [f"{self.synset}/{i}" for i in range(self.truth.shape[0])]


def make_synset(
    synset: str,
    n_images: int,
    *,
    positive_rate: float = 0.4,
    difficulty: float = 0.0,
    seed: int | np.random.Generator = 0,
) -> SimulatedSynset:
    """A synset whose candidates are good with probability `positive_rate` (a search engine's precision)."""
    if n_images < 1:
        raise InputError(f"a synset needs at least one image, got {n_images}")
    if not 0.0 <= difficulty < 1.0:
        raise InputError(f"difficulty must be in [0, 1), got {difficulty}")
    rng = np.random.default_rng(seed)
    return SimulatedSynset(synset, rng.random(n_images) < positive_rate, float(difficulty))


@dataclass(frozen=True)
class GoldPolicy:
    """Known-answer screening: each worker first answers `questions` gold images (half good, half bad, at
    `difficulty`) and is blocked when fewer than `min_accuracy` of them are right."""

    questions: int = 10
    min_accuracy: float = 0.8
    difficulty: float = 0.0


def screen_workers(
    workers: Sequence[SimulatedWorker], gold: GoldPolicy | None, rng: np.random.Generator
) -> tuple[list[SimulatedWorker], list[SimulatedWorker], int]:
    """(admitted, blocked, gold votes spent)."""
    if gold is None:
        return list(workers), [], 0
    if gold.questions < 1:
        raise InputError(f"gold questions must be >= 1, got {gold.questions}")
    truths = np.arange(gold.questions) % 2 == 0
    admitted: list[SimulatedWorker] = []
    blocked: list[SimulatedWorker] = []
    for w in workers:
        right = sum(w.answer(bool(t), rng, gold.difficulty) == t for t in truths)
        (admitted if right >= gold.min_accuracy * gold.questions else blocked).append(w)
    return admitted, blocked, len(workers) * gold.questions


def shown(value: float | None, spec: str) -> str:
    """A rate for people: ``format(value, spec)``, or ``n/a`` when it is undefined (None or NaN)."""
    return "n/a" if value is None or value != value else format(value, spec)


class DecisionRates:
    """Precision, recall and decided count from accepted/rejected/true_accepted/positives counts.

    Shared by the in-memory simulation report and the store's ground-truth report, so both compute the
    figures the same way (NaN when a denominator is zero).
    """

    accepted: int
    rejected: int
    true_accepted: int
    positives: int

    @property
    def decided(self) -> int:
        return self.accepted + self.rejected

    @property
    def precision(self) -> float:
        """Share of accepted images that are really good (NaN if nothing was accepted)."""
        return self.true_accepted / self.accepted if self.accepted else float("nan")

    @property
    def recall(self) -> float:
        return self.true_accepted / self.positives if self.positives else float("nan")


@dataclass(frozen=True)
class SimulationReport(DecisionRates):
    """What a verification strategy cost and how right it was, against the ground truth.

    votes counts every vote on candidate images (initial subsets included); gold votes are separate.
    vote_log holds every vote as columns task, worker, label, synset, order (a votes table for the
    aggregators); initial_tasks lists the images of the initial subsets (dynamic consensus only).
    votes_per_decided_image = votes / (accepted + rejected): undecided images' votes are still paid for.
    """

    method: str
    images: int
    accepted: int
    rejected: int
    undecided: int
    true_accepted: int
    true_rejected: int
    positives: int
    votes: int
    initial_votes: int
    gold_votes: int
    blocked_workers: int
    per_synset: dict[str, dict[str, float]]
    not_easily_illustrated: tuple[str, ...] = ()
    tables: dict[str, ConfidenceTable] = field(default_factory=dict)
    initial_tasks: tuple[str, ...] = ()
    vote_log: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def accuracy(self) -> float:
        """Share of decided images decided correctly."""
        return (self.true_accepted + self.true_rejected) / self.decided if self.decided else float("nan")

    @property
    def votes_per_image(self) -> float:
        return self.votes / self.images

    @property
    def votes_per_decided_image(self) -> float:
        return self.votes / self.decided if self.decided else float("nan")

    def summary(self) -> str:
        return (
            f"{self.method}: precision {shown(self.precision, '.2%')} on {self.accepted} accepted, "
            f"recall {shown(self.recall, '.2%')}, {self.undecided} undecided of {self.images}; "
            f"{shown(self.votes_per_decided_image, '.2f')} votes per decided image ({self.votes} votes, "
            f"{self.initial_votes} initial, {self.gold_votes} gold, {self.blocked_workers} workers blocked)"
        )


class _VoteLog:
    """Append-only record of the simulated votes, returned as columns (a votes table plus order/synset)."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, str, bool, str]] = []

    def add(self, task: str, worker: str, label: bool, synset: str) -> None:
        self.rows.append((task, worker, label, synset))

    def columns(self) -> dict[str, np.ndarray]:
        if not self.rows:
            return {}
        task, worker, label, synset = zip(*self.rows, strict=True)
        return {
            "task": np.asarray(task),
            "worker": np.asarray(worker),
            "label": np.asarray(label, dtype=bool),
            "synset": np.asarray(synset),
            "order": np.arange(len(self.rows)),
        }


def _admitted_pool(
    workers: Sequence[SimulatedWorker], gold: GoldPolicy | None, rng: np.random.Generator, needed: int
) -> tuple[list[SimulatedWorker], int, int]:
    admitted, blocked, gold_votes = screen_workers(workers, gold, rng)
    if len(admitted) < needed:
        raise InputError(
            f"only {len(admitted)} workers left after gold screening; need at least {needed} distinct "
            "workers per image"
        )
    return admitted, len(blocked), gold_votes


def _tally(
    method: str,
    synsets: Sequence[SimulatedSynset],
    decisions: dict[str, list[str]],
    votes_by_synset: dict[str, int],
    log: _VoteLog,
    initial_votes: int,
    gold_votes: int,
    blocked: int,
    tables: dict[str, ConfidenceTable] | None = None,
    not_easily_illustrated: tuple[str, ...] = (),
    initial_tasks: tuple[str, ...] = (),
) -> SimulationReport:
    totals = dict.fromkeys(
        ("accepted", "rejected", "undecided", "true_accepted", "true_rejected", "positives"), 0
    )
    per_synset: dict[str, dict[str, float]] = {}
    for s in synsets:
        dec = np.asarray(decisions[s.synset])
        acc, rej = dec == Decision.ACCEPT.value, dec == Decision.REJECT.value
        row = {
            "accepted": int(acc.sum()),
            "rejected": int(rej.sum()),
            "undecided": int((~acc & ~rej).sum()),
            "true_accepted": int((acc & s.truth).sum()),
            "true_rejected": int((rej & ~s.truth).sum()),
            "positives": int(s.truth.sum()),
        }
        for key, value in row.items():
            totals[key] += value
        decided = row["accepted"] + row["rejected"]
        per_synset[s.synset] = {
            **{k: float(v) for k, v in row.items()},
            "precision": row["true_accepted"] / row["accepted"] if row["accepted"] else float("nan"),
            "votes": float(votes_by_synset[s.synset]),
            "votes_per_decided_image": votes_by_synset[s.synset] / decided if decided else float("nan"),
        }
    return SimulationReport(
        method=method,
        images=sum(s.truth.shape[0] for s in synsets),
        votes=len(log.rows),
        initial_votes=initial_votes,
        gold_votes=gold_votes,
        blocked_workers=blocked,
        per_synset=per_synset,
        vote_log=log.columns(),
        accepted=totals["accepted"],
        rejected=totals["rejected"],
        undecided=totals["undecided"],
        true_accepted=totals["true_accepted"],
        true_rejected=totals["true_rejected"],
        positives=totals["positives"],
        tables=tables or {},
        not_easily_illustrated=not_easily_illustrated,
        initial_tasks=initial_tasks,
    )


def simulate_fixed_majority(
    synsets: Sequence[SimulatedSynset],
    workers: Sequence[SimulatedWorker],
    *,
    votes_per_image: int = 5,
    gold: GoldPolicy | None = None,
    seed: int = 0,
) -> SimulationReport:
    """Every image gets `votes_per_image` votes from distinct workers; accept on a yes-majority (a tie is
    not a majority: rejected, as `MajorityVote`'s lowest-label rule)."""
    if votes_per_image < 1:
        raise InputError(f"votes_per_image must be >= 1, got {votes_per_image}")
    rng = np.random.default_rng(seed)
    pool, blocked, gold_votes = _admitted_pool(workers, gold, rng, votes_per_image)
    log = _VoteLog()
    votes_by_synset: dict[str, int] = {}
    for s in synsets:
        start = len(log.rows)
        for task, truth in zip(s.task_ids(), s.truth.tolist(), strict=True):
            for j in rng.choice(len(pool), size=votes_per_image, replace=False).tolist():
                log.add(task, pool[j].worker_id, pool[j].answer(truth, rng, s.difficulty), s.synset)
        votes_by_synset[s.synset] = len(log.rows) - start
    cols = log.columns()
    mv = MajorityVote(ties="lowest").fit_predict(
        {"task": cols["task"], "worker": cols["worker"], "label": cols["label"]}, label_values=[False, True]
    )
    decided = mv.to_dict()
    decisions = {
        s.synset: [Decision.ACCEPT.value if decided[t] else Decision.REJECT.value for t in s.task_ids()]
        for s in synsets
    }
    return _tally(
        f"fixed majority ({votes_per_image} votes)",
        synsets,
        decisions,
        votes_by_synset,
        log,
        0,
        gold_votes,
        blocked,
    )


def simulate_dynamic_consensus(
    synsets: Sequence[SimulatedSynset],
    workers: Sequence[SimulatedWorker],
    *,
    consensus: DynamicConsensus | None = None,
    initial_size: int | float = 0.05,
    gold: GoldPolicy | None = None,
    seed: int = 0,
) -> SimulationReport:
    """The adaptive loop: per synset, `initial_size` random images (a count, or a fraction of the synset's
    images, at least 1) get `consensus.initial_votes` votes each and build the confidence table; then every
    image (initial ones from their votes so far) gets one vote at a time, from a worker who has not voted
    on it, until `table.decide` says accept, reject or undecided (the cap)."""
    dc = consensus or DynamicConsensus()
    rng = np.random.default_rng(seed)
    pool, blocked, gold_votes = _admitted_pool(workers, gold, rng, max(dc.initial_votes, dc.max_votes))
    log = _VoteLog()
    decisions: dict[str, list[str]] = {}
    votes_by_synset: dict[str, int] = {}
    tables: dict[str, ConfidenceTable] = {}
    flagged: list[str] = []
    initial_tasks: list[str] = []
    initial_total = 0
    for s in synsets:
        start = len(log.rows)
        tasks, truth = s.task_ids(), s.truth.tolist()
        n = len(tasks)
        k = round(initial_size * n) if isinstance(initial_size, float) else int(initial_size)
        k = min(max(k, 1), n)
        initial = set(rng.choice(n, size=k, replace=False).tolist())
        initial_tasks += [tasks[i] for i in sorted(initial)]
        counts: dict[int, tuple[int, int]] = {}
        voted: dict[int, set[str]] = {}
        for i in sorted(initial):
            yes = 0
            chosen = rng.choice(len(pool), size=dc.initial_votes, replace=False).tolist()
            voted[i] = {pool[j].worker_id for j in chosen}
            for j in chosen:
                label = pool[j].answer(truth[i], rng, s.difficulty)
                log.add(tasks[i], pool[j].worker_id, label, s.synset)
                yes += label
            counts[i] = (yes, dc.initial_votes - yes)
        initial_total += len(log.rows) - start
        init_rows = log.rows[start:]
        table = dc.build_table(
            {
                "task": np.asarray([r[0] for r in init_rows]),
                "worker": np.asarray([r[1] for r in init_rows]),
                "label": np.asarray([r[2] for r in init_rows], dtype=bool),
            },
            synset=s.synset,
        )
        tables[s.synset] = table
        majority = table.easily_illustrated  # some image with more yes than no votes (SPEC §3)
        out: list[str] = []
        for i in range(n):
            yes, no = counts.get(i, (0, 0))
            decision = table.decide(yes, no)
            seen = voted.get(i, set())
            order = [j for j in rng.permutation(len(pool)).tolist() if pool[j].worker_id not in seen]
            used = 0
            while decision is Decision.NEED_MORE:  # initial images that are still unsure continue too
                w = pool[order[used]]
                used += 1
                label = w.answer(truth[i], rng, s.difficulty)
                log.add(tasks[i], w.worker_id, label, s.synset)
                yes, no = yes + label, no + (not label)
                decision = table.decide(yes, no)
            majority = majority or yes > no
            out.append(decision.value)
        if not majority:
            flagged.append(s.synset)
        decisions[s.synset] = out
        votes_by_synset[s.synset] = len(log.rows) - start
    return _tally(
        f"dynamic consensus (threshold {dc.threshold})",
        synsets,
        decisions,
        votes_by_synset,
        log,
        initial_total,
        gold_votes,
        blocked,
        tables=tables,
        not_easily_illustrated=tuple(flagged),
        initial_tasks=tuple(initial_tasks),
    )


def answer_gold(
    workers: Sequence[SimulatedWorker], gold: GoldPolicy | None, rng: np.random.Generator
) -> tuple[list[SimulatedWorker], int, int, dict[str, list[tuple[bool, bool]]]]:
    """Like `screen_workers`, but also returns each admitted worker's (truth, answer) gold pairs, which the
    worker-aware method uses as evidence about the worker: (admitted, blocked count, gold votes, answers)."""
    if gold is None:
        return list(workers), 0, 0, {}
    if gold.questions < 1:
        raise InputError(f"gold questions must be >= 1, got {gold.questions}")
    truths = (np.arange(gold.questions) % 2 == 0).tolist()
    admitted: list[SimulatedWorker] = []
    answers: dict[str, list[tuple[bool, bool]]] = {}
    for w in workers:
        pairs = [(bool(t), w.answer(bool(t), rng, gold.difficulty)) for t in truths]
        if sum(t == a for t, a in pairs) >= gold.min_accuracy * gold.questions:
            admitted.append(w)
            answers[w.worker_id] = pairs
    return admitted, len(workers) - len(admitted), len(workers) * gold.questions, answers


def simulate_worker_aware(
    synsets: Sequence[SimulatedSynset],
    workers: Sequence[SimulatedWorker],
    *,
    estimator: OnlineDawidSkene | None = None,
    gold: GoldPolicy | None = None,
    refit_first: int = 50,
    refit_every: int = 400,
    reopen: bool = True,
    min_spread: float | None = None,
    seed: int = 0,
) -> SimulationReport:
    """Worker-aware sequential voting (`OnlineDawidSkene`), one synset (= worker-model group) at a time.

    Workers arrive at random from the admitted pool; each gets the open image whose posterior is most
    uncertain (log-odds nearest the middle of the accept and reject thresholds) among those it has not
    voted on. Each vote adds the worker's weight of evidence; an image stops at a threshold or at
    `max_votes` (undecided). Gold screening answers are evidence for every synset's worker models. The
    background refit runs after `refit_first` votes of a synset, then every time the votes double, at most
    `refit_every` votes apart; with `reopen`, a decided image that the refitted models no longer decide
    goes back to the pool (as the live service's re-decision does). With `min_spread`, a worker whose
    refitted model separates a yes from a no by less than that many nats (w_yes - w_no; 0 for a spammer,
    2 log(a / (1 - a)) for a symmetric worker of accuracy a) gets no further tasks in the synset, except
    that the estimator's `max_votes` most informative workers always stay (the live rule, which keeps an
    image from running out of workers allowed to vote on it).
    """
    import heapq

    est = estimator or OnlineDawidSkene()
    if refit_first < 1 or refit_every < 1:
        raise InputError("refit_first and refit_every must be >= 1")
    rng = np.random.default_rng(seed)
    pool, blocked, gold_votes, answers = answer_gold(workers, gold, rng)
    if not pool:
        raise InputError("no workers left after gold screening")
    centre = (logit(est.accept) + logit(est.reject)) / 2
    log = _VoteLog()
    decisions: dict[str, list[str]] = {}
    votes_by_synset: dict[str, int] = {}
    for s in synsets:
        start = len(log.rows)
        for wid, pairs in answers.items():
            for truth_, ans in pairs:
                est.observe_gold(wid, truth_, ans, group=s.synset)
        tasks, truth = s.task_ids(), s.truth.tolist()
        n = len(tasks)
        state: list[Decision] = [Decision.NEED_MORE] * n
        voters: list[set[str]] = [set() for _ in range(n)]
        version = [0] * n
        tiebreak = rng.permutation(n).tolist()
        prior0 = abs(logit(est.group_prior(s.synset)) - centre)
        heap = [(prior0, tiebreak[i], 0, i) for i in range(n)]
        heapq.heapify(heap)
        next_refit = refit_first
        active = list(pool)
        while heap:
            w = active[int(rng.integers(len(active)))]
            skipped = []
            item = -1
            while heap:
                entry = heapq.heappop(heap)
                i = entry[3]
                if entry[2] != version[i] or state[i] is not Decision.NEED_MORE:
                    continue  # stale
                if w.worker_id in voters[i]:
                    skipped.append(entry)
                    if len(skipped) > 50:
                        break
                    continue
                item = i
                break
            for entry in skipped:
                heapq.heappush(heap, entry)
            if item < 0:
                if len(active) <= min(len(v) for v in voters):
                    break  # nobody left who could vote
                continue
            label = w.answer(truth[item], rng, s.difficulty)
            log.add(tasks[item], w.worker_id, label, s.synset)
            voters[item].add(w.worker_id)
            est.observe(w.worker_id, tasks[item], label, group=s.synset)
            state[item] = est.decide(tasks[item])
            if len(voters[item]) >= len(active) and state[item] is Decision.NEED_MORE:
                state[item] = Decision.UNDECIDED  # every admitted worker has voted on it
            version[item] += 1
            if state[item] is Decision.NEED_MORE:
                pri = abs(est.log_odds(tasks[item]) - centre)
                heapq.heappush(heap, (pri, tiebreak[item], version[item], item))
            if est.votes_in(s.synset) >= next_refit:
                est.refit(s.synset)
                if min_spread is not None:  # as the live rule: the max_votes most informative stay
                    spread = {x.worker_id: est.worker_model(x.worker_id, s.synset).spread for x in pool}
                    ranked = sorted(pool, key=lambda x: -spread[x.worker_id])
                    active = ranked[: est.max_votes] + [
                        x for x in ranked[est.max_votes :] if spread[x.worker_id] >= min_spread
                    ]
                next_refit = est.votes_in(s.synset) + min(est.votes_in(s.synset), refit_every)
                heap = []
                fresh = abs(logit(est.group_prior(s.synset)) - centre)
                for i in range(n):
                    if reopen and state[i] in (Decision.ACCEPT, Decision.REJECT) and voters[i]:
                        again = est.decide(tasks[i])
                        state[i] = again if again is not Decision.NEED_MORE else Decision.NEED_MORE
                    if state[i] is Decision.NEED_MORE:
                        version[i] += 1
                        lo = abs(est.log_odds(tasks[i]) - centre) if voters[i] else fresh
                        heap.append((lo, tiebreak[i], version[i], i))
                heapq.heapify(heap)
        decisions[s.synset] = [d.value for d in state]
        votes_by_synset[s.synset] = len(log.rows) - start
    return _tally(
        f"worker-aware (accept {est.accept:g}, reject {est.reject:g})",
        synsets,
        decisions,
        votes_by_synset,
        log,
        0,
        gold_votes,
        blocked,
    )
