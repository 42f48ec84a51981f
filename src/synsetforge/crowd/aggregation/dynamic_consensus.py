"""ImageNet's dynamic consensus (Deng et al. 2009; SPEC §3): adaptive number of yes/no votes per image.

Why: a fixed number of votes wastes money on easy synsets ("cat") and is not enough for hard ones
("Burmese cat"). Per synset, an initial random subset of images gets >= `initial_votes` votes each; from it a
confidence table P(good | #yes, #no) is built; every other image gets votes until its cell in the table
passes `threshold` (accept), falls to `reject_threshold` (reject; by default the mirror `1 - threshold`) or
`max_votes` is reached (undecided).

How the table is built (our design, SPEC §3):
0. the table's data is each initial image's first `initial_votes` votes (what the live loop has when it
   builds the table; an initial image that is still unsure afterwards gets more votes like any other);
1. each initial image's truth is estimated from those votes. Default `truth="posterior"`: its
   posterior P(good | all its votes) under the synset's two-coin model below, fitted by EM on the initial
   subset. A *soft* posterior keeps the tally calibrated: by the tower rule the average of
   P(good | all votes) over the images that passed through a cell is P(good | that cell), whereas a hard
   majority label is circular (the prefix is part of the majority) and makes short prefixes look far
   too sure. Also offered: `"majority"` (yes-majority -> good, tie -> half) and `"dawid_skene"` (per-worker
   DS posterior over all initial votes);
2. every vote *prefix* of every initial image (its first n votes in time order, n = 0..10) lands in a cell
   (yes, no); the cell tallies how many images passed through it (`seen`) and how many of those are good;
3. each cell is smoothed with a Beta prior centred on a per-synset model posterior, with `prior_strength`
   pseudo-images: confidence = (good + a * model) / (seen + a). Cells never observed (e.g. (0, 4) when all
   initial images had yes votes) therefore fall back to the model.

The model ("two-coin", fitted on the initial subset): prior P(good) = pi, P(yes | good) = sensitivity,
P(no | bad) = specificity, each with weak pseudo-counts (pi ~ 1/2, the two accuracies ~ 0.75, 4 votes), so
model(yes, no) = pi s^yes (1-s)^no / (pi s^yes (1-s)^no + (1-pi) (1-f)^yes f^no), computed in log space.

Why `prior_strength` defaults to 100: deciding at the 0.99 level needs each cell's probability to within
about a percent, and a cell seen by ~40 initial images cannot give that (in simulation, a=10 let cells
such as (2, 0) read 0.996 where the truth was 0.974, and precision fell to ~98%). The 3-parameter model
uses every initial vote and is far steadier, so the raw tally only takes over in cells seen by hundreds of
images, where it corrects a model that does not fit (e.g. images that are ambiguous to everyone).
Residual risk: the prior P(good) comes from a few dozen initial images, so a synset's precision can land
somewhat under `threshold` (simulation: 50 initial images per synset, threshold 0.99 -> 98.9-99.7%).

Live loop (what a web assigner calls): `table = DynamicConsensus().build_table(initial_votes, synset=s)`,
then per image `table.decide(yes, no)` after each vote, and `table.need_score(yes, no)` to rank open images
(expected further votes, so hard synsets and unsure images come first). Batch: `fit(votes, synset_of_task,
order=..., initial=...)` replays that loop over recorded votes and returns a `ConsensusResult`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

import numpy as np

from synsetforge.crowd.aggregation.dawid_skene import DawidSkene
from synsetforge.crowd.aggregation.votes import Votes, _factorize, _obj_or_native
from synsetforge.errors import InputError

TruthRule = Literal["posterior", "majority", "dawid_skene"]
# Pseudo-counts of the per-synset model: accuracies start at 3 right / 1 wrong, the prior at 1 good / 1 bad.
_ACC_RIGHT, _ACC_WRONG = 3.0, 1.0


class Decision(StrEnum):
    """What to do with an image after its current votes."""

    ACCEPT = "accept"
    REJECT = "reject"
    NEED_MORE = "need_more"
    UNDECIDED = "undecided"  # vote cap reached without enough confidence either way


_DECISIONS = (Decision.ACCEPT, Decision.REJECT, Decision.NEED_MORE, Decision.UNDECIDED)
_CODE = {d: i for i, d in enumerate(_DECISIONS)}
_NEED_MORE = _CODE[Decision.NEED_MORE]


@dataclass(frozen=True, eq=False)
class ConfidenceTable:
    """P(good | yes, no) for one synset, and the decision rule built on it (the live-loop object).

    `seen[y, n]` / `good[y, n]`: initial images whose vote prefix passed through (y, n), and how many of
    them are (estimated) good. `grid[y, n]` is the smoothed confidence; `remaining[y, n]` the expected number
    of further votes an image at (y, n) needs under the model (0 once decided).
    """

    synset: Any
    threshold: float
    min_votes: int
    max_votes: int
    prior_strength: float
    prior_good: float
    sensitivity: float
    specificity: float
    n_initial: int
    easily_illustrated: bool
    seen: np.ndarray
    good: np.ndarray
    reject_threshold: float | None = None  # None: the mirror 1 - threshold
    grid: np.ndarray = field(init=False)
    remaining: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        if self.reject_threshold is None:
            object.__setattr__(self, "reject_threshold", 1.0 - self.threshold)
        size = self.seen.shape[0]
        ys, ns = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
        model = self._model(ys, ns)
        a = self.prior_strength
        with np.errstate(invalid="ignore", divide="ignore"):
            grid = np.where(self.seen + a > 0, (self.good + a * model) / (self.seen + a), model)
        object.__setattr__(self, "grid", grid)
        object.__setattr__(self, "remaining", self._expected_remaining())

    def _model(self, yes: Any, no: Any) -> Any:
        s, f, pi = self.sensitivity, self.specificity, self.prior_good
        logit = (
            np.log(pi) - np.log1p(-pi) + yes * (np.log(s) - np.log1p(-f)) + no * (np.log1p(-s) - np.log(f))
        )
        return 1.0 / (1.0 + np.exp(-logit))

    def model_confidence(self, yes: int, no: int) -> float:
        """The analytic two-coin posterior, used where the table has no data."""
        return float(self._model(yes, no))

    def confidence(self, yes: int, no: int) -> float:
        """P(image is good | it has `yes` yes votes and `no` no votes)."""
        if yes < 0 or no < 0:
            raise InputError(f"vote counts must be >= 0, got yes={yes}, no={no}")
        size = self.grid.shape[0]
        if yes < size and no < size:
            return float(self.grid[yes, no])
        return self.model_confidence(yes, no)

    def decide(self, yes: int, no: int) -> Decision:
        """accept / reject / need_more / undecided for an image with these votes."""
        c = self.confidence(yes, no)
        total = yes + no
        if total >= self.min_votes:
            if c >= self.threshold:
                return Decision.ACCEPT
            if c <= self.reject_cut:
                return Decision.REJECT
        if total >= self.max_votes:
            return Decision.UNDECIDED
        return Decision.NEED_MORE

    @property
    def reject_cut(self) -> float:
        """Reject at confidence <= this (`reject_threshold`, set in `__post_init__`)."""
        return float(self.reject_threshold if self.reject_threshold is not None else 1.0 - self.threshold)

    def expected_votes(self) -> float:
        """Expected votes a fresh image of this synset needs until a decision (the synset's hardness)."""
        return float(self.remaining[0, 0])

    def need_score(self, yes: int, no: int) -> float:
        """Expected further votes for an image at (yes, no); 0 once it is decided or capped."""
        m = self.remaining.shape[0]
        if yes < 0 or no < 0 or yes + no >= m:
            return 0.0
        return float(self.remaining[yes, no])

    def decision_grid(self) -> np.ndarray:
        """(max_votes+1)^2 int codes of `decide` (order: accept, reject, need_more, undecided)."""
        m = self.max_votes + 1
        out = np.full((m, m), _CODE[Decision.UNDECIDED], dtype=np.int8)
        for y in range(m):
            for n in range(m - y):
                out[y, n] = _CODE[self.decide(y, n)]
        return out

    def _expected_remaining(self) -> np.ndarray:
        """Backward induction over cells with yes + no <= max_votes; P(next yes) from the confidence."""
        m = self.max_votes + 1
        rem = np.zeros((m + 1, m + 1))
        s, f = self.sensitivity, self.specificity
        for total in range(self.max_votes - 1, -1, -1):
            for y in range(total + 1):
                n = total - y
                if self.decide(y, n) is not Decision.NEED_MORE:
                    continue
                c = self.confidence(y, n)
                p_yes = c * s + (1.0 - c) * (1.0 - f)
                rem[y, n] = 1.0 + p_yes * rem[y + 1, n] + (1.0 - p_yes) * rem[y, n + 1]
        return rem[:m, :m]

    def to_rows(self, max_total: int = 3) -> list[dict[str, Any]]:
        """Cells with yes + no <= max_total (like the paper's Fig. 7): yes, no, confidence, seen, decision."""
        rows = []
        for total in range(max_total + 1):
            for y in range(total, -1, -1):
                n = total - y
                size = self.seen.shape[0]
                rows.append(
                    {
                        "yes": y,
                        "no": n,
                        "confidence": self.confidence(y, n),
                        "seen": int(self.seen[y, n]) if y < size and n < size else 0,
                        "decision": str(self.decide(y, n)),
                    }
                )
        return rows


@dataclass(frozen=True, eq=False)
class ConsensusResult:
    """Batch outcome per task (image): decision, confidence at the stopping cell, votes used.

    Each image stops at its first vote prefix whose table cell is final (accept, reject, or undecided at
    the cap); later votes are ignored (`votes_used <= votes_total`). Initial images are judged from their
    first `initial_votes` votes on (the table is built from exactly those votes). `need[i]` is the expected number of further votes (0 once decided):
    sort by it to serve the hardest open images first (`next_tasks`).
    """

    tasks: np.ndarray
    synsets: np.ndarray
    decisions: np.ndarray
    confidence: np.ndarray
    yes: np.ndarray
    no: np.ndarray
    votes_used: np.ndarray
    votes_total: np.ndarray
    initial: np.ndarray
    need: np.ndarray
    tables: dict[Any, ConfidenceTable]
    not_easily_illustrated: tuple[Any, ...]
    untabled: tuple[Any, ...]

    def count(self, decision: Decision | str) -> int:
        return int((self.decisions == str(decision)).sum())

    def accepted(self) -> list[Any]:
        return self.tasks[self.decisions == Decision.ACCEPT.value].tolist()

    def next_tasks(self, limit: int | None = None) -> list[Any]:
        """Open tasks ordered by need (most expected further votes first)."""
        open_ = np.flatnonzero(self.need > 0)
        order = open_[np.argsort(-self.need[open_], kind="stable")]
        if limit is not None:
            order = order[:limit]
        return self.tasks[order].tolist()

    def to_dict(self) -> dict[Any, str]:
        return dict(zip(self.tasks.tolist(), self.decisions.tolist(), strict=True))

    def to_rows(self) -> list[dict[str, Any]]:
        cols = {
            "task": self.tasks.tolist(),
            "synset": self.synsets.tolist(),
            "decision": self.decisions.tolist(),
            "confidence": self.confidence.tolist(),
            "yes": self.yes.tolist(),
            "no": self.no.tolist(),
            "votes_used": self.votes_used.tolist(),
            "votes_total": self.votes_total.tolist(),
            "initial": self.initial.tolist(),
            "need": self.need.tolist(),
        }
        return [dict(zip(cols, vals, strict=True)) for vals in zip(*cols.values(), strict=True)]


class DynamicConsensus:
    """Settings + fitting of dynamic consensus.

    threshold: accept at confidence >= threshold (paper: unpublished; 0.99).
    reject_threshold: reject at confidence <= reject_threshold; None (default): the mirror 1 - threshold.
        A lower accept than reject risk (e.g. 0.997 / 0.01) buys precision without paying the extra votes
        that rejecting the many bad candidates at 0.003 would cost (a wrong rejection only loses recall).
    initial_votes: votes per image of the initial subset (paper: at least 10).
    max_votes: vote cap after which an image is `undecided`.
    min_votes: never decide on fewer votes (1: the prior alone never decides).
    prior_strength: pseudo-images of the Beta prior that smooths each table cell towards the model.
    truth: how an initial image's truth is estimated from its full votes ("posterior", "majority",
        "dawid_skene"; see the module docstring).
    positive: the label value meaning "yes, the image shows the synset".
    """

    def __init__(
        self,
        threshold: float = 0.99,
        *,
        initial_votes: int = 10,
        max_votes: int = 20,
        min_votes: int = 1,
        prior_strength: float = 100.0,
        truth: TruthRule = "posterior",
        positive: Any = True,
        reject_threshold: float | None = None,
    ) -> None:
        if not 0.5 < threshold < 1.0:
            raise InputError(f"threshold must be in (0.5, 1), got {threshold}")
        if reject_threshold is not None and not 0.0 < reject_threshold < 0.5:
            raise InputError(f"reject_threshold must be in (0, 0.5), got {reject_threshold}")
        if initial_votes < 1:
            raise InputError(f"initial_votes must be >= 1, got {initial_votes}")
        if max_votes < 1:
            raise InputError(f"max_votes must be >= 1, got {max_votes}")
        if not 0 <= min_votes <= max_votes:
            raise InputError(f"min_votes must be in [0, max_votes={max_votes}], got {min_votes}")
        if not prior_strength >= 0:
            raise InputError(f"prior_strength must be >= 0, got {prior_strength}")
        if truth not in ("posterior", "majority", "dawid_skene"):
            raise InputError(f"truth must be 'posterior', 'majority' or 'dawid_skene', not {truth!r}")
        self.threshold = float(threshold)
        self.reject_threshold = 1.0 - self.threshold if reject_threshold is None else float(reject_threshold)
        self.initial_votes = int(initial_votes)
        self.max_votes = int(max_votes)
        self.min_votes = int(min_votes)
        self.prior_strength = float(prior_strength)
        self.truth: TruthRule = truth
        self.positive = positive
        self.tables_: dict[Any, ConfidenceTable] = {}
        self.result_: ConsensusResult | None = None

    # ----- live loop -----------------------------------------------------------------------------------
    def build_table(self, votes: Any, *, synset: Any = None, order: Any = None) -> ConfidenceTable:
        """The confidence table of one synset from the votes on its initial images (all of them initial)."""
        v, is_yes, sort = self._prepare(votes, order)
        task_syn = np.zeros(v.n_tasks, dtype=np.int64)
        initial = np.ones(v.n_tasks, dtype=bool)
        return self._tables(v, is_yes, sort, task_syn, np.asarray([synset], dtype=object), initial)[synset]

    def fit_tables(
        self, votes: Any, synset_of_task: Any, *, order: Any = None, initial: Iterable[Any] | None = None
    ) -> dict[Any, ConfidenceTable]:
        """One confidence table per synset that has initial images (see `fit` for the arguments)."""
        return self.fit(votes, synset_of_task, order=order, initial=initial).tables_

    # ----- batch ---------------------------------------------------------------------------------------
    def fit(
        self, votes: Any, synset_of_task: Any, *, order: Any = None, initial: Iterable[Any] | None = None
    ) -> DynamicConsensus:
        """Build every synset's table and decide every task as the live loop would have.

        votes: yes/no votes (task, worker, label) with labels `positive` / anything else (two values max).
        synset_of_task: a mapping task -> synset (dict; for a pandas Series pass `.to_dict()`), or one
            synset per vote (array-like, same length as votes).
        order: one sortable value per vote (time or sequence number); default: the rows' order.
        initial: task keys of the initial subsets; default: every task with >= `initial_votes` votes
            (pass it whenever other images can reach that many votes, e.g. max_votes >= initial_votes).
        """
        v, is_yes, sort = self._prepare(votes, order)
        syn_keys, task_syn = _synset_per_task(v, synset_of_task)
        n_total = np.bincount(v.task_codes, minlength=v.n_tasks)
        n_yes = np.bincount(v.task_codes, weights=is_yes, minlength=v.n_tasks).astype(np.int64)
        if initial is None:
            init = n_total >= self.initial_votes
        else:
            wanted = set(_obj_or_native(tuple(initial)).tolist())
            init = np.fromiter((t in wanted for t in v.tasks.tolist()), dtype=bool, count=v.n_tasks)
        tables = self._tables(v, is_yes, sort, task_syn, syn_keys, init)
        self.tables_ = tables
        self.result_ = self._decide_all(v, is_yes, sort, task_syn, syn_keys, init, n_total, n_yes, tables)
        return self

    def predict(self) -> ConsensusResult:
        if self.result_ is None:
            raise InputError("DynamicConsensus.predict() called before fit()")
        return self.result_

    def fit_predict(
        self, votes: Any, synset_of_task: Any, *, order: Any = None, initial: Iterable[Any] | None = None
    ) -> ConsensusResult:
        return self.fit(votes, synset_of_task, order=order, initial=initial).predict()

    # ----- internals -----------------------------------------------------------------------------------
    def _prepare(self, votes: Any, order: Any) -> tuple[Votes, np.ndarray, np.ndarray]:
        """Votes, a yes mask per vote, and the permutation sorting votes by (task, order)."""
        v = Votes.from_any(votes)
        values = v.label_values.tolist()
        if len(values) > 2:
            raise InputError(f"dynamic consensus needs yes/no votes, got {len(values)} label values {values}")
        pos = [i for i, x in enumerate(values) if x == self.positive]
        if len(values) == 2 and not pos:
            raise InputError(f"positive label {self.positive!r} is not one of the vote labels {values}")
        is_yes = v.label_codes == pos[0] if pos else np.zeros(v.n_votes, dtype=bool)
        if order is None:
            key = np.arange(v.n_votes)
        else:
            key = np.asarray(order.to_numpy() if hasattr(order, "to_numpy") else order)
            if key.shape != (v.n_votes,):
                raise InputError(f"order must have one value per vote ({v.n_votes}), got shape {key.shape}")
        try:
            sort = np.lexsort((key, v.task_codes))
        except TypeError as exc:
            raise InputError(f"order values cannot be sorted ({exc})") from None
        return v, is_yes, sort

    def _tables(
        self,
        v: Votes,
        is_yes: np.ndarray,
        sort: np.ndarray,
        task_syn: np.ndarray,
        syn_keys: np.ndarray,
        init: np.ndarray,
    ) -> dict[Any, ConfidenceTable]:
        n_syn = syn_keys.shape[0]
        if not init.any():
            return {}
        # the table's data: each initial image's first `initial_votes` votes in time order (what the live
        # loop had when it built the table; later votes on an initial image only decide that image)
        t_sorted, y_sorted, w_sorted = v.task_codes[sort], is_yes[sort], v.worker_codes[sort]
        keep = init[t_sorted]
        t_sorted, y_sorted, w_sorted = t_sorted[keep], y_sorted[keep], w_sorted[keep]
        cy, cn = _prefix_counts(t_sorted, y_sorted)
        early = (cy + cn) <= self.initial_votes
        t_sorted, y_sorted, w_sorted, cy, cn = (x[early] for x in (t_sorted, y_sorted, w_sorted, cy, cn))
        n_total = np.bincount(t_sorted, minlength=v.n_tasks)
        n_yes = np.bincount(t_sorted, weights=y_sorted, minlength=v.n_tasks).astype(np.int64)

        init_tasks = np.flatnonzero(init)
        s_of = task_syn[init_tasks]
        yi, ni = n_yes[init_tasks], n_total[init_tasks] - n_yes[init_tasks]
        n_init = np.bincount(s_of, minlength=n_syn)
        gi = np.where(yi > ni, 1.0, np.where(yi < ni, 0.0, 0.5))  # majority of all votes, tie = half
        if self.truth == "dawid_skene":
            ds = DawidSkene().fit_predict({"task": t_sorted, "worker": w_sorted, "label": y_sorted})
            g_all = np.zeros(v.n_tasks)
            g_all[ds.tasks] = ds.probas[:, 1]
            gi = g_all[init_tasks]
        prior, sens, spec, post = _two_coin(s_of, yi, ni, gi, n_syn, em=self.truth == "posterior")
        if self.truth == "posterior":
            gi = post
        g = np.zeros(v.n_tasks)
        g[init_tasks] = gi

        # tally the prefix cells of those votes
        size = max(self.max_votes, self.initial_votes) + 1
        flat = task_syn[t_sorted] * size * size + cy * size + cn
        flat = np.concatenate([flat, s_of * size * size])  # every image passes through (0, 0)
        weights = np.concatenate([g[t_sorted], gi])
        seen = np.bincount(flat, minlength=n_syn * size * size).reshape(n_syn, size, size)
        good = np.bincount(flat, weights=weights, minlength=n_syn * size * size).reshape(n_syn, size, size)
        majority = np.bincount(s_of, weights=yi > ni, minlength=n_syn) > 0

        tables = {}
        for s in np.flatnonzero(n_init > 0).tolist():
            key = syn_keys[s]
            tables[key] = ConfidenceTable(
                synset=key,
                threshold=self.threshold,
                min_votes=self.min_votes,
                max_votes=self.max_votes,
                prior_strength=self.prior_strength,
                prior_good=float(prior[s]),
                sensitivity=float(sens[s]),
                specificity=float(spec[s]),
                n_initial=int(n_init[s]),
                easily_illustrated=bool(majority[s]),
                seen=seen[s],
                good=good[s],
                reject_threshold=self.reject_threshold,
            )
        return tables

    def _decide_all(
        self,
        v: Votes,
        is_yes: np.ndarray,
        sort: np.ndarray,
        task_syn: np.ndarray,
        syn_keys: np.ndarray,
        init: np.ndarray,
        n_total: np.ndarray,
        n_yes: np.ndarray,
        tables: dict[Any, ConfidenceTable],
    ) -> ConsensusResult:
        n_tasks, n_syn, m = v.n_tasks, syn_keys.shape[0], self.max_votes + 1
        codes = np.full((n_syn, m, m), _NEED_MORE, dtype=np.int8)  # synsets without a table: need more
        conf_grid = np.full((n_syn, m, m), np.nan)
        need_grid = np.zeros((n_syn, m, m))
        has_table = np.zeros(n_syn, dtype=bool)
        syn_index = {key: i for i, key in enumerate(syn_keys.tolist())}
        for key, table in tables.items():
            s = syn_index[key]
            has_table[s] = True
            codes[s] = table.decision_grid()
            conf_grid[s] = table.grid[:m, :m]  # the grid spans max(max_votes, initial_votes) + 1 >= m
            need_grid[s] = table.remaining

        # replay: each task stops at its first terminal vote prefix, counting from 1 vote for ordinary
        # images and from `initial_votes` for initial ones (they are judged once the table exists)
        t_sorted, y_sorted = v.task_codes[sort], is_yes[sort]
        cy, cn = _prefix_counts(t_sorted, y_sorted)
        length = cy + cn
        start = np.where(init, np.minimum(self.initial_votes, n_total), 1)
        eligible = (length >= start[t_sorted]) & has_table[task_syn[t_sorted]]
        in_grid = length < m
        pcode = np.full(length.shape[0], _NEED_MORE, dtype=np.int8)
        sel = eligible & in_grid
        pcode[sel] = codes[task_syn[t_sorted[sel]], cy[sel], cn[sel]]
        terminal = (sel & (pcode != _NEED_MORE)) | (eligible & ~in_grid)  # past the cap: always final
        term = np.flatnonzero(terminal)
        first_task, first_pos = np.unique(t_sorted[term], return_index=True)
        hit = term[first_pos]
        yes_n, no_n = n_yes.copy(), n_total - n_yes  # no terminal prefix: all votes, still need more
        yes_n[first_task], no_n[first_task] = cy[hit], cn[hit]
        dec = np.full(n_tasks, _NEED_MORE, dtype=np.int8)
        dec[first_task] = pcode[hit]

        conf = np.full(n_tasks, np.nan)
        need = np.zeros(n_tasks)
        grid_ok = has_table[task_syn] & (yes_n + no_n < m)
        conf[grid_ok] = conf_grid[task_syn[grid_ok], yes_n[grid_ok], no_n[grid_ok]]
        need[grid_ok] = need_grid[task_syn[grid_ok], yes_n[grid_ok], no_n[grid_ok]]
        for i in np.flatnonzero(has_table[task_syn] & ~grid_ok).tolist():  # stopped past the cap
            tab = tables[syn_keys[task_syn[i]]]
            y, n = int(yes_n[i]), int(no_n[i])
            conf[i] = tab.confidence(y, n)
            dec[i] = _CODE[tab.decide(y, n)]
        untabled_task = ~has_table[task_syn]
        need[untabled_task] = np.maximum(self.initial_votes - n_total[untabled_task], 0).astype(float)

        illustrated = np.bincount(task_syn, weights=n_yes > (n_total - n_yes), minlength=n_syn) > 0
        decisions = np.asarray([d.value for d in _DECISIONS])[dec]
        return ConsensusResult(
            tasks=v.tasks,
            synsets=syn_keys[task_syn],
            decisions=decisions,
            confidence=conf,
            yes=yes_n,
            no=no_n,
            votes_used=yes_n + no_n,
            votes_total=n_total,
            initial=init,
            need=need,
            tables=tables,
            not_easily_illustrated=tuple(syn_keys[~illustrated].tolist()),
            untabled=tuple(syn_keys[~has_table].tolist()),
        )


def _two_coin(
    s_of: np.ndarray,
    yes: np.ndarray,
    no: np.ndarray,
    g: np.ndarray,
    n_syn: int,
    *,
    em: bool,
    max_iter: int = 200,
    tol: float = 1e-7,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-synset prior, sensitivity, specificity from images' (yes, no) counts and truth weights `g`.

    With `em`, alternate with g = P(good | the image's votes) until stable: a two-coin Dawid-Skene with
    all workers pooled, vectorised over every synset at once (bincount by synset). Returns the final
    per-image posteriors too. Weak pseudo-counts keep every estimate strictly inside (0, 1).
    """
    n_img = np.bincount(s_of, minlength=n_syn).astype(np.float64)
    votes = (yes + no).astype(np.float64)
    post = g
    for _ in range(max_iter if em else 1):

        def per_syn(w: np.ndarray) -> np.ndarray:
            return np.bincount(s_of, weights=w, minlength=n_syn)

        prior = (per_syn(g) + 1.0) / (n_img + 2.0)
        sens = (per_syn(g * yes) + _ACC_RIGHT) / (per_syn(g * votes) + _ACC_RIGHT + _ACC_WRONG)
        spec = (per_syn((1 - g) * no) + _ACC_RIGHT) / (per_syn((1 - g) * votes) + _ACC_RIGHT + _ACC_WRONG)
        logit = (
            np.log(prior / (1 - prior))[s_of]
            + yes * np.log(sens / (1 - spec))[s_of]
            + no * np.log((1 - sens) / spec)[s_of]
        )
        post = 1.0 / (1.0 + np.exp(-logit))
        if not em:
            break
        done = np.abs(post - g).max(initial=0.0) < tol
        g = post
        if done:
            break
    return prior, sens, spec, post


def _prefix_counts(task_sorted: np.ndarray, yes_sorted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(yes, no) after each vote of votes grouped by task in time order: the vote-prefix cells."""
    n = task_sorted.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    boundary = np.ones(n, dtype=bool)
    boundary[1:] = task_sorted[1:] != task_sorted[:-1]
    starts = np.flatnonzero(boundary)
    group = np.cumsum(boundary) - 1
    cum = np.cumsum(yes_sorted, dtype=np.int64)
    before = cum[starts] - yes_sorted[starts]
    cy = cum - before[group]
    length = np.arange(n, dtype=np.int64) - starts[group] + 1
    return cy, length - cy


def _synset_per_task(v: Votes, synset_of_task: Any) -> tuple[np.ndarray, np.ndarray]:
    """Synset keys and each task's synset code, from a mapping task -> synset or one synset per vote."""
    if isinstance(synset_of_task, Mapping):
        mapping = synset_of_task
        missing = [t for t in v.tasks.tolist() if t not in mapping]
        if missing:
            raise InputError(f"{len(missing)} task(s) have no synset, e.g. {missing[0]!r}")
        per_task = _obj_or_native(tuple(mapping[t] for t in v.tasks.tolist()))
        keys, codes = _factorize(per_task, "synset")
        return keys, codes
    per_vote = np.asarray(
        synset_of_task.to_numpy() if hasattr(synset_of_task, "to_numpy") else synset_of_task
    )
    if per_vote.shape != (v.n_votes,):
        raise InputError(
            f"synset_of_task must be a mapping task -> synset or one synset per vote ({v.n_votes}), "
            f"got shape {per_vote.shape}"
        )
    keys, codes = _factorize(per_vote, "synset")
    task_syn = np.full(v.n_tasks, -1, dtype=np.int64)
    task_syn[v.task_codes] = codes
    if (task_syn[v.task_codes] != codes).any():
        bad = v.tasks[v.task_codes[np.flatnonzero(task_syn[v.task_codes] != codes)[0]]]
        raise InputError(f"task {bad!r} has votes under more than one synset")
    return keys, task_syn
