"""The live decision state of each synset: who still needs votes, and the decision once enough came in.

Dynamic consensus (SPEC §3) run against the store instead of in memory: per synset a random *initial subset*
gets `initial_votes` votes per image; from those votes the aggregation helper's `DynamicConsensus.build_table`
builds the confidence table P(good | yes, no); every other image then gets one vote at a time until the table
accepts, rejects, or the vote cap leaves it undecided. Nothing here is kept only in memory: the state is
recomputed from `candidates` and `votes` (the table is cached per process under a fingerprint of the votes it
was built from), so several server processes, restarts and the batch `crowd aggregate` all agree.

The table's cells are tallied on the initial subset and smoothed towards a worker model (P(good),
P(yes | good), P(no | bad)); by default that model is fitted on every counted vote of the synset
(`votes_calibrated`), so the table is rebuilt as votes come in (each ~20% more), and every rebuild
re-decides every voted image of the synset (`CrowdService.reevaluate`): a decision is always what the
current table says about the current votes.

Weights: a vote counts as `votes.weight` of a vote (blocked workers' votes get 0 or the down-weight); counts
are rounded to whole votes to look up the table. Only full-weight votes (weight >= 1) are tallied; the
model is fitted on the counted votes at their weight.
The initial subset is chosen by hashing candidate ids, so it needs no stored state and stays put when
candidates are added (an image is initial if its hash falls below `initial_fraction`; small synsets are
topped up with the lowest hashes to `initial_min` images), and it grows while its votes show too few good
or bad images to fit a table (`choose_initial`).
"""

from __future__ import annotations

import bisect
import dataclasses
import math
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import Table, bindparam, case, func, select, update
from sqlalchemy.orm import Session

from synsetforge.crowd.aggregation import ConfidenceTable, Decision
from synsetforge.crowd.aggregation.dynamic_consensus import _ACC_RIGHT, _ACC_WRONG
from synsetforge.crowd.settings import CrowdSettings
from synsetforge.store import schema

ACCEPTED, REJECTED, UNDECIDED = "accepted", "rejected", "undecided"
_DECISION_VALUE = {Decision.ACCEPT: ACCEPTED, Decision.REJECT: REJECTED, Decision.UNDECIDED: UNDECIDED}
_MASK64 = (1 << 64) - 1


def unit_hash(candidate_id: int) -> float:
    """A fixed pseudo-random number in [0, 1) per candidate id (splitmix64 finaliser)."""
    z = (candidate_id * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    z ^= z >> 31
    return z / 2.0**64


_RANKED: dict[tuple[int, int, int], list[tuple[float, int]]] = {}
_RANKED_LOCK = threading.Lock()


def hash_ranked(candidate_ids: Iterable[int]) -> list[tuple[float, int]]:
    """(unit_hash, id) sorted: the order in which images join the initial subset. Cached per id set."""
    ids = list(candidate_ids)
    key = (len(ids), sum(ids), sum(i * i for i in ids) & _MASK64)
    with _RANKED_LOCK:
        hit = _RANKED.get(key)
    if hit is None:
        hit = sorted((unit_hash(c), c) for c in ids)
        with _RANKED_LOCK:
            if len(_RANKED) > 256:
                _RANKED.clear()
            _RANKED[key] = hit
    return hit


def initial_subset(candidate_ids: Iterable[int], settings: CrowdSettings) -> frozenset[int]:
    """The synset's base initial images (see the module docstring), before any growth."""
    ranked = hash_ranked(candidate_ids)
    return frozenset(c for _, c in ranked[: _base_size(ranked, settings)])


def _base_size(ranked: list[tuple[float, int]], settings: CrowdSettings) -> int:
    below = bisect.bisect_left(ranked, (settings.initial_fraction, -1))
    return min(len(ranked), max(below, settings.initial_min))


def choose_initial(
    stats: dict[int, ImageStats], settings: CrowdSettings, all_ids: Iterable[int] | None = None
) -> frozenset[int]:
    """The initial subset, grown while its finished images cannot identify the table.

    A table needs both kinds of image: with (almost) no good image in the subset, P(yes | good) is not
    identifiable and the fitted table is arbitrary (seen in simulation: 20 initial images of a synset whose
    candidates are 20% good held no good one, and the table then accepted bad images). So once every
    initial image has its votes, the subset grows by `initial_min` images (next in hash order) until at least
    `initial_each` images have a yes-majority and as many a no-majority, or it reaches `initial_max` images.
    An image counts as done once it *received* `initial_votes` votes, whatever their weight now: when a
    blocked worker's votes are excluded, the subset neither shrinks back nor loses its table (the image is
    topped up like any other, see `SynsetState.wanted`).
    """
    ranked = hash_ranked(stats if all_ids is None else all_ids)
    k = _base_size(ranked, settings)
    cap = min(len(ranked), max(settings.initial_max, k))
    while True:
        chosen = [c for _, c in ranked[:k]]
        done = [stats[c] for c in chosen if stats[c].n_all >= settings.initial_votes]
        if len(done) < len(chosen) or k >= cap:
            return frozenset(chosen)
        good = sum(st.yes_w > st.no_w for st in done)
        bad = sum(st.no_w > st.yes_w for st in done)
        if good >= settings.initial_each and bad >= settings.initial_each:
            return frozenset(chosen)
        k = min(cap, k + settings.initial_min)


def playable(synset_id: str | None = None) -> Any:
    """SQL condition: a candidate that can be voted on (stored image, not a gold item)."""
    cond = (
        (schema.Candidate.status == "stored")
        & schema.Candidate.image_id.is_not(None)
        & schema.Candidate.id.not_in(select(schema.Gold.candidate_id))
    )
    if synset_id is not None:
        cond = cond & (schema.Candidate.synset_id == synset_id)
    return cond


@dataclass(slots=True)
class ImageStats:
    """One candidate's votes: full-weight, counted (weight > 0) and recorded (any weight) counts, and the
    weighted yes/no sums."""

    candidate_id: int
    decision: str | None
    confidence: float | None
    n_full: int = 0
    n_counted: int = 0
    n_all: int = 0
    yes_w: float = 0.0
    no_w: float = 0.0
    id_sum: int = 0  # sum of full-weight vote ids: part of the table fingerprint
    llr: float = 0.0  # worker-aware (C2): summed weights of evidence of the votes (crowd.worker_aware)

    @property
    def counts(self) -> tuple[int, int]:
        """(yes, no) rounded to whole votes, for the confidence table."""
        return math.floor(self.yes_w + 0.5), math.floor(self.no_w + 0.5)


class TableCache:
    """Confidence tables per synset, rebuilt only when their fingerprint changes. Thread-safe.

    Also remembers, per synset, the fingerprint of the last table this process applied to every decision
    (`applied` / `mark_applied`), so that each new table re-decides the synset once, whichever request
    happened to build it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tables: dict[str, tuple[Any, ConfidenceTable]] = {}
        self._applied: dict[str, Any] = {}

    def get(self, synset_id: str, fingerprint: Any) -> ConfidenceTable | None:
        with self._lock:
            hit = self._tables.get(synset_id)
        return hit[1] if hit is not None and hit[0] == fingerprint else None

    def put(self, synset_id: str, fingerprint: Any, table: ConfidenceTable) -> None:
        with self._lock:
            self._tables[synset_id] = (fingerprint, table)

    def applied(self, synset_id: str) -> Any:
        with self._lock:
            return self._applied.get(synset_id)

    def mark_applied(self, synset_id: str, fingerprint: Any) -> None:
        with self._lock:
            self._applied[synset_id] = fingerprint

    def peek(self, synset_id: str) -> ConfidenceTable | None:
        """The last table built for the synset, whatever its fingerprint (for ordering synsets only)."""
        with self._lock:
            hit = self._tables.get(synset_id)
        return hit[1] if hit is not None else None


class StateCache:
    """Recently loaded synset states, reused for a few seconds to *rank* candidates for assignment.

    Only the ranking uses them: the candidates actually handed out are re-read fresh (votes, decision,
    open tasks) in the assigning transaction, so a stale entry can at worst order candidates a little
    differently; it never over-assigns. Thread-safe; entries are read-only once stored.
    """

    def __init__(self, ttl_s: float = 2.0) -> None:
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._states: dict[str, tuple[float, SynsetState]] = {}

    def get(self, synset_id: str) -> SynsetState | None:
        with self._lock:
            hit = self._states.get(synset_id)
        if hit is None or time.monotonic() - hit[0] > self.ttl_s:
            return None
        return hit[1]

    def put(self, state: SynsetState) -> None:
        with self._lock:
            self._states[state.synset_id] = (time.monotonic(), state)

    def drop(self, synset_id: str) -> None:
        with self._lock:
            self._states.pop(synset_id, None)


@dataclass
class SynsetState:
    """Votes and decisions of one synset's playable candidates, and its table when there is one."""

    synset_id: str
    settings: CrowdSettings
    stats: dict[int, ImageStats]
    initial: frozenset[int]
    table: ConfidenceTable | None
    table_built: bool = False
    fingerprint: Any = None  # of the table (None while there is none)
    prior_good: float = 0.5  # worker-aware (C2): the synset group's P(good) (crowd.worker_aware)
    _cache: dict[int, tuple[str | None, float | None]] = field(default_factory=dict, repr=False)

    @property
    def initial_complete(self) -> bool:
        """Every initial image received its votes (some may since be excluded: see `choose_initial`)."""
        need = self.settings.initial_votes
        return bool(self.initial) and all(self.stats[c].n_all >= need for c in self.initial)

    @property
    def hardness(self) -> float:
        """Expected votes a fresh image needs (inf while the table is missing: initial votes come first)."""
        if self.settings.method == "fixed":
            return float(self.settings.fixed_votes)
        if self.settings.method == "worker-aware":  # worker-aware (C2): no table
            return 1.0
        return self.table.expected_votes() if self.table is not None else math.inf

    def evaluate(self, candidate_id: int) -> tuple[str | None, float | None]:
        """(decision or None while open, confidence P(good)) from the candidate's current votes."""
        if candidate_id in self._cache:
            return self._cache[candidate_id]
        st = self.stats[candidate_id]
        out = self._evaluate(st)
        self._cache[candidate_id] = out
        return out

    def _evaluate(self, st: ImageStats) -> tuple[str | None, float | None]:
        s = self.settings
        total_w = st.yes_w + st.no_w
        if s.method == "fixed":
            share = st.yes_w / total_w if total_w > 0 else None
            if st.n_counted < s.fixed_votes or share is None:
                return None, share
            return (ACCEPTED if st.yes_w > st.no_w else REJECTED), share
        if s.method == "worker-aware":  # worker-aware (C2): log-odds posterior from the votes' weights
            from synsetforge.crowd import worker_aware

            if st.n_counted == 0:
                return None, None
            return worker_aware.evaluate(st.llr, st.n_counted, self.prior_good, s)
        if self.table is None:
            return None, None
        yes, no = st.counts
        if st.candidate_id in self.initial and st.n_full < s.initial_votes:
            return None, None
        if st.n_counted == 0:
            return None, None
        decision = self.table.decide(yes, no)
        return _DECISION_VALUE.get(decision), self.table.confidence(yes, no)

    def wanted(self, candidate_id: int) -> int:
        """How many more votes the candidate should get now (before counting tasks in flight)."""
        s = self.settings
        st = self.stats[candidate_id]
        if s.method == "fixed":
            return max(s.fixed_votes - st.n_counted, 0) if self.evaluate(candidate_id)[0] is None else 0
        if s.method == "worker-aware":  # worker-aware (C2): one more vote while open and under the cap
            return 1 if st.n_counted < s.max_votes and self.evaluate(candidate_id)[0] is None else 0
        if candidate_id in self.initial and st.n_full < s.initial_votes:
            return s.initial_votes - st.n_full
        if self.table is None:
            return 0  # non-initial images wait for the table
        return 1 if self.evaluate(candidate_id)[0] is None else 0

    def priority(self, candidate_id: int) -> tuple[int, float, int]:
        """Sort key, smallest first: initial images closest to complete, then the largest expected need."""
        st = self.stats[candidate_id]
        if self.settings.method == "fixed":
            return (0, -float(st.n_counted), candidate_id)
        if self.settings.method == "worker-aware":  # worker-aware (C2): most uncertain posterior first
            from synsetforge.crowd import worker_aware

            return (1, worker_aware.uncertainty(st.llr, self.prior_good, self.settings), candidate_id)
        if candidate_id in self.initial and st.n_full < self.settings.initial_votes:
            return (0, -float(st.n_full), candidate_id)
        need = self.table.need_score(*st.counts) if self.table is not None else 0.0
        return (1, -need, candidate_id)


def load_stats(
    session: Session, synset_id: str, settings: CrowdSettings | None = None, extra: Iterable[int] = ()
) -> dict[int, ImageStats]:
    """Playable candidates of a synset with their vote sums (every candidate; see `load_scoped`)."""
    return _load(session, synset_id, settings, extra)[0]


def _load(
    session: Session,
    synset_id: str,
    settings: CrowdSettings | None,
    extra: Iterable[int],
    open_too: bool = True,
) -> tuple[dict[int, ImageStats], list[int]]:
    """(stats, ids of every playable candidate).

    With `settings`, only candidates that can matter are loaded: open ones (unless `open_too` is False),
    those that are or may become initial (the first `max(initial_max, base) + initial_min` in hash order)
    and `extra`; the others are left out entirely (they cannot be assigned and are not re-evaluated).
    Without `settings`, every candidate is loaded.
    """
    c, v = schema.Candidate, schema.Vote
    conn = session.connection()
    where = (c.synset_id == synset_id) & v.is_gold.is_(False)
    if settings is None or open_too:
        rows = conn.execute(select(c.id, c.decision, c.confidence).where(playable(synset_id))).fetchall()
        all_ids = [int(r[0]) for r in rows]
    else:  # the ids alone for the ranking; rows only for the few candidates that matter
        all_ids = [int(x) for x in conn.execute(select(c.id).where(playable(synset_id))).scalars()]
        rows = []
    if not all_ids:
        return {}, all_ids
    if settings is None:
        stats = {int(cid): ImageStats(int(cid), dec, conf) for cid, dec, conf in rows}
    else:
        ranked = hash_ranked(all_ids)
        n_prefix = max(settings.initial_max, _base_size(ranked, settings)) + settings.initial_min
        keep = {cid for _, cid in ranked[:n_prefix]} | {int(x) for x in extra}
        if open_too:
            stats = {
                int(cid): ImageStats(int(cid), dec, conf)
                for cid, dec, conf in rows
                if dec is None or int(cid) in keep
            }
            where = where & (c.decision.is_(None) | c.id.in_(sorted(keep)))
        else:
            picked = conn.execute(
                select(c.id, c.decision, c.confidence).where(playable(synset_id), c.id.in_(sorted(keep)))
            ).fetchall()
            stats = {int(cid): ImageStats(int(cid), dec, conf) for cid, dec, conf in picked}
            where = where & c.id.in_(sorted(stats))
    _sum_votes(conn, stats, where)
    return stats, all_ids


def _vote_sums() -> tuple[Any, ...]:
    v = schema.Vote
    full = v.weight >= 1.0
    return (
        func.sum(case((full, 1), else_=0)),
        func.sum(case((v.weight > 0, 1), else_=0)),
        func.sum(case((v.label.is_(True), v.weight), else_=0.0)),
        func.sum(case((v.label.is_(True), 0.0), else_=v.weight)),
        func.sum(case((full, v.id), else_=0)),
        func.count(),
    )


# A candidate's vote sums, grouped by candidate: n_full, n_counted, yes_w, no_w, id_sum, n_all (the
# recompute from scratch and the live recount, `crowd.tallies.recount`, read the same sums)
VOTE_SUMS = _vote_sums()


def _sum_votes(conn: Any, stats: dict[int, ImageStats], where: Any) -> None:
    c, v = schema.Candidate, schema.Vote
    rows = conn.execute(
        select(v.candidate_id, *VOTE_SUMS)
        .join(c, c.id == v.candidate_id)
        .where(where)
        .group_by(v.candidate_id)
    )
    fill_sums(stats, rows)


def fill_sums(stats: dict[int, ImageStats], rows: Iterable[Any]) -> None:
    """Set the tallies of `stats` from rows of (candidate id, *VOTE_SUMS); ids not in `stats` are skipped."""
    for cid, n_full, n_counted, yes_w, no_w, id_sum, n_all in rows:
        st = stats.get(int(cid))
        if st is None:
            continue
        st.n_full, st.n_counted, st.n_all = int(n_full or 0), int(n_counted or 0), int(n_all or 0)
        st.yes_w, st.no_w, st.id_sum = float(yes_w or 0.0), float(no_w or 0.0), int(id_sum or 0)


def private_copy(state: SynsetState) -> SynsetState:
    """A copy whose stats can be refreshed without touching a shared (cached) state."""
    return dataclasses.replace(state, stats=dict(state.stats), _cache={})


def refresh_stats(
    session: Session, state: SynsetState, ids: Iterable[int], decisions: dict[int, str | None]
) -> None:
    """Re-read the votes of some candidates (after locking them) so `wanted` sees votes committed since."""
    fresh = {
        int(cid): ImageStats(int(cid), decisions.get(int(cid)), None)
        for cid in ids
        if int(cid) in state.stats
    }
    if not fresh:
        return
    v = schema.Vote
    _sum_votes(session.connection(), fresh, v.candidate_id.in_(sorted(fresh)) & v.is_gold.is_(False))
    for cid, st in fresh.items():
        st.confidence = state.stats[cid].confidence
        state.stats[cid] = st
        state._cache.pop(cid, None)


def load_state(
    session: Session,
    synset_id: str,
    settings: CrowdSettings,
    cache: TableCache,
    *,
    extra: Iterable[int] = (),
    complete: bool = False,
    open_too: bool = True,
) -> SynsetState:
    """The synset's state, building (or reusing) its confidence table once the initial subset is done.

    By default only the votes that can matter are read (see `_load`); `complete=True` reads all, and
    `open_too=False` skips the open candidates that are not in `extra` (enough to re-decide `extra`).
    `state.table_built` says whether the table was (re)built now rather than found in the cache, and
    `state.fingerprint` identifies it.
    """
    stats, all_ids = _load(session, synset_id, None if complete else settings, extra, open_too)
    initial = choose_initial(stats, settings, all_ids) if settings.method == "imagenet" else frozenset()
    state = SynsetState(synset_id, settings, stats, initial, None)
    if settings.method == "worker-aware":  # worker-aware (C2): evidence and prior from the worker models
        from synsetforge.crowd import worker_aware

        state.prior_good = worker_aware.prior_of(session, synset_id, settings)
        for cid, (llr, _n) in worker_aware.image_evidence(session, stats, settings).items():
            stats[cid].llr = llr
    if settings.method == "imagenet" and state.initial_complete:
        gold = None
        grown: int | None = None
        if settings.calibration == "gold":
            gold = gold_counts(session, synset_id, skip_first=settings.block_min_gold)
            if min(gold.pos_votes, gold.neg_votes) < settings.calibration_min_gold:
                gold = None  # too few gold answers yet: the paper's table
        elif settings.calibration == "votes":
            grown = _log_bucket(synset_vote_count(session, synset_id))
        fingerprint = (
            tuple(sorted((cid, stats[cid].n_full, stats[cid].id_sum) for cid in initial)),
            None if gold is None else (_log_bucket(gold.pos_votes), _log_bucket(gold.neg_votes)),
            grown,
        )
        table = cache.get(synset_id, fingerprint)
        if table is None:
            table = build_table(session, synset_id, initial, settings, gold)
            cache.put(synset_id, fingerprint, table)
            state.table_built = True
        state.table, state.fingerprint = table, fingerprint
    return state


REBUILD_GROWTH = 1.2


def _log_bucket(n: int) -> int:
    """Counts that grow with every task rebuild the table only when they have grown by about 20%
    (`REBUILD_GROWTH`). Why not every 5%, as before: a rebuild re-decides a whole synset, and at 5% a
    synset of a few thousand votes was rebuilt every five tasks, which cost more than all the requests
    together (bench/serve_load.py); a worker model fitted on 20% fewer votes barely moves."""
    return int(math.log(max(n, 1)) / math.log(REBUILD_GROWTH))


def synset_vote_count(session: Session, synset_id: str) -> int:
    """Votes that count (weight > 0) on the synset's images, gold images included."""
    c, v = schema.Candidate, schema.Vote
    return int(
        session.scalar(
            select(func.count())
            .select_from(v)
            .join(c, c.id == v.candidate_id)
            .where(c.synset_id == synset_id, v.weight > 0)
        )
        or 0
    )


def voted_counts(session: Session, synset_id: str) -> np.ndarray:
    """(k, 2) weighted (yes, no) sums of every playable candidate of the synset with counted votes."""
    c, v = schema.Candidate, schema.Vote
    rows = session.execute(
        select(
            func.sum(case((v.label.is_(True), v.weight), else_=0.0)),
            func.sum(case((v.label.is_(True), 0.0), else_=v.weight)),
        )
        .join(c, c.id == v.candidate_id)
        .where(playable(synset_id), v.is_gold.is_(False), v.weight > 0)
        .group_by(v.candidate_id)
        .order_by(v.candidate_id)  # the EM's sums in one order on every backend and path
    ).all()
    return np.asarray([(float(y or 0.0), float(n or 0.0)) for y, n in rows], dtype=np.float64).reshape(-1, 2)


@dataclass(frozen=True)
class GoldCounts:
    """Full-weight votes on a synset's gold images: how often good ones got "yes", bad ones "no"."""

    pos_votes: int = 0
    yes_on_pos: int = 0
    neg_votes: int = 0
    no_on_neg: int = 0


def gold_counts(session: Session, synset_id: str, skip_first: int = 0) -> GoldCounts:
    """Answers on the synset's gold images by workers in good standing (weight >= 1), leaving out each
    worker's first `skip_first` gold answers.

    Why leave them out: most blocking happens on a worker's first gold answers (probation), and the workers
    kept are kept *because* they did well on those, so there the survivors look better than they are; a
    table calibrated on them is overconfident (in simulation 4 yes votes then passed as 99% sure where the
    truth was 97%). Later answers are much less tied to who was kept (some bias remains: a worker blocked
    later loses all their answers; keeping a share of gold out of blocking removes it but leaves too few
    answers early on, which in simulation cost more votes and no precision).
    """
    c, g, v = schema.Candidate, schema.Gold, schema.Vote
    rank = func.row_number().over(partition_by=v.worker_id, order_by=v.id).label("rank")
    per_vote = select(v.candidate_id, v.label, v.weight, rank).where(v.is_gold.is_(True)).subquery()
    out = {True: [0, 0], False: [0, 0]}
    for answer, label, n in session.execute(
        select(g.answer, per_vote.c.label, func.count())
        .join(c, c.id == g.candidate_id)
        .join(per_vote, per_vote.c.candidate_id == g.candidate_id)
        .where(c.synset_id == synset_id, per_vote.c.weight >= 1.0, per_vote.c.rank > skip_first)
        .group_by(g.answer, per_vote.c.label)
    ):
        pair = out[bool(answer)]
        pair[0] += int(n)
        if bool(label) == bool(answer):
            pair[1] += int(n)
    return GoldCounts(out[True][0], out[True][1], out[False][0], out[False][1])


def build_table(
    session: Session,
    synset_id: str,
    initial: Iterable[int],
    settings: CrowdSettings,
    gold: GoldCounts | None = None,
    counts: np.ndarray | None = None,
) -> ConfidenceTable:
    """P(good | yes, no) from the full-weight votes on the initial images, in the order they came.
    `counts`: `voted_counts` of the synset where the caller has them (the live engine keeps them).

    The table's worker model, towards which its cells are smoothed, depends on `settings.calibration`:
    "votes": fitted on every counted vote of the synset (`votes_calibrated`); "gold" with `gold` counts
    (enough gold answers): sensitivity and specificity from the gold answers (`gold_calibrated`);
    otherwise EM on the initial subset alone.
    """
    v = schema.Vote
    ids = sorted(initial)
    rows: list[tuple[int, int, bool, int]] = []
    for chunk in _chunks(ids, 900):
        rows.extend(
            (int(a), int(b), bool(lab), int(i))
            for a, b, lab, i in session.execute(
                select(v.candidate_id, v.worker_id, v.label, v.id).where(
                    v.candidate_id.in_(chunk), v.weight >= 1.0
                )
            )
        )
    rows.sort(key=lambda r: r[3])
    votes = {
        "task": np.asarray([r[0] for r in rows], dtype=np.int64),
        "worker": np.asarray([r[1] for r in rows], dtype=np.int64),
        "label": np.asarray([r[2] for r in rows], dtype=bool),
    }
    order = np.asarray([r[3] for r in rows], dtype=np.int64)
    table = settings.consensus().build_table(votes, synset=synset_id, order=order)
    sequences: dict[int, list[bool]] = {}
    for cid, _w, label, _i in rows:
        sequences.setdefault(cid, []).append(label)
    if settings.calibration == "votes":
        return votes_calibrated(
            table,
            list(sequences.values()),
            voted_counts(session, synset_id) if counts is None else counts,
            gold_counts(session, synset_id, skip_first=settings.block_min_gold),
            settings.initial_votes,
        )
    if gold is not None:
        return gold_calibrated(table, list(sequences.values()), gold, settings.initial_votes)
    return table


def _lower_bound(right: int, total: int, quantile: float = 0.1) -> float:
    """10% quantile of the Beta(right + 3, wrong + 1) posterior of an accuracy (prior: 3 right, 1 wrong)."""
    from scipy.stats import beta

    return float(beta.ppf(quantile, right + 3.0, total - right + 1.0))


def gold_calibrated(
    table: ConfidenceTable, sequences: list[list[bool]], gold: GoldCounts, initial_votes: int = 10
) -> ConfidenceTable:
    """The same table (tallies of the initial images' vote prefixes, smoothed towards a two-coin model), but
    the model's P(yes | good) and P(no | bad) measured on gold images, whose truth is known.

    Why: a synset's initial subset holds few good images when candidates are mostly bad (~10% good, SPEC
    §2), so EM on it estimates P(yes | good) from a handful of images and the table is miscalibrated both
    ways (in simulation: accepted images below 99% precision, and extra votes everywhere). Gold votes are
    collected anyway, from the same crowd, on images of the same synset with known answers. The prior
    P(good) is still fitted on the initial subset (EM with the gold accuracies held fixed) and the tallies
    use each initial image's posterior under that model.

    Limits (why "votes" is the default calibration): 20 gold images per synset give a few hundred answers,
    so each accuracy is known to about +-0.03, and a yes vote's weight log(s / (1 - f)) moves by about 0.17
    per vote with it: a cell of 6 yes votes carries an error of about 1 in log-odds. The lower credible
    bound taken below errs low on P(yes | good), which makes "no" votes look weaker, so mixed cells such as
    (8, 4) come out overconfident (simulation: 0.997 where the truth was 0.983).
    """
    sens = _lower_bound(gold.yes_on_pos, gold.pos_votes)
    spec = _lower_bound(gold.no_on_neg, gold.neg_votes)
    counts = _sequence_counts(sequences)
    prior = table.prior_good
    for _ in range(500):
        post = _posterior(counts, prior, sens, spec)
        new = (post.sum() + 1.0) / (post.shape[0] + 2.0)
        if abs(new - prior) < 1e-10:
            prior = new
            break
        prior = new
    return with_model(table, sequences, prior, sens, spec, initial_votes)


def votes_calibrated(
    table: ConfidenceTable,
    sequences: list[list[bool]],
    counts: np.ndarray,
    gold: GoldCounts,
    initial_votes: int = 10,
) -> ConfidenceTable:
    """The table with its model fitted on every counted vote of the synset: EM over the (yes, no) counts of
    all its voted images (`counts`), gold answers entering with their known truth.

    Why: the cells of a 0.99 table must be right to within a few parts in a thousand, and the model
    decides them (`prior_strength` 100 against a few dozen initial images per cell). Fitted on the initial
    subset alone (~50 images, ~5 good when candidates are ~10% good) or on gold answers alone (a few
    hundred), P(good) and the two accuracies are off by 0.03-0.05, a yes vote's weight by ~0.2 in
    log-odds, and a cell of 6 votes by ~1 (simulation, 40 workers of mean accuracy 0.8, 10% spammers:
    accepted images at 97.8% precision with a 0.99 threshold; tables claimed 0.997 for cells whose truth
    was 0.983). Every image the synset has voted on adds to the fit; after a few hundred images it is
    within ~0.01 of the truth (P(good) 0.101 / 0.098, P(yes | good) 0.81 / 0.80, P(no | bad) 0.825 /
    0.822). It is a likelihood fit, so it is not biased by the stopping rule (an image stops at a cell
    that depends only on its votes), and it describes the crowd whose votes count now (blocked workers'
    votes have weight 0 or the down-weight). Gold answers after each worker's probation anchor the two
    accuracies early, when few images have votes. The tallies still come from the initial subset
    (`with_model`), so cells seen by hundreds of initial images can correct a model that does not fit.
    """
    prior, sens, spec = table.prior_good, table.sensitivity, table.specificity
    yes, no = counts[:, 0], counts[:, 1]
    for _ in range(500):
        post = _posterior(counts, prior, sens, spec)
        bad = 1.0 - post
        new = (
            (post.sum() + 1.0) / (post.shape[0] + 2.0),
            (post @ yes + gold.yes_on_pos + _ACC_RIGHT)
            / (post @ (yes + no) + gold.pos_votes + _ACC_RIGHT + _ACC_WRONG),
            (bad @ no + gold.no_on_neg + _ACC_RIGHT)
            / (bad @ (yes + no) + gold.neg_votes + _ACC_RIGHT + _ACC_WRONG),
        )
        done = max(abs(a - b) for a, b in zip(new, (prior, sens, spec), strict=True)) < 1e-9
        prior, sens, spec = (float(x) for x in new)
        if done:
            break
    return with_model(table, sequences, prior, sens, spec, initial_votes)


def _sequence_counts(sequences: list[list[bool]]) -> np.ndarray:
    return np.asarray([(sum(seq), len(seq) - sum(seq)) for seq in sequences], dtype=np.float64).reshape(-1, 2)


def _posterior(counts: np.ndarray, prior: float, sens: float, spec: float) -> np.ndarray:
    """P(good | yes, no) per row of `counts` under the two-coin model."""
    logit = (
        math.log(prior)
        - math.log1p(-prior)
        + counts[:, 0] * (math.log(sens) - math.log1p(-spec))
        + counts[:, 1] * (math.log1p(-sens) - math.log(spec))
    )
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(logit, -500.0, 500.0))), dtype=np.float64)


def with_model(
    table: ConfidenceTable,
    sequences: list[list[bool]],
    prior: float,
    sens: float,
    spec: float,
    initial_votes: int = 10,
) -> ConfidenceTable:
    """The table re-tallied under another two-coin model: each initial image counts as good with its
    posterior (from all its votes) under the model, in every cell its first `initial_votes` votes pass
    through (what `DynamicConsensus` tallies: `seen` and `good` must count the same prefixes, else cells
    past `initial_votes` votes would hold good images that were never seen there)."""
    post = _posterior(_sequence_counts(sequences), prior, sens, spec)
    cap = table.seen.shape[0] - 1
    seen = np.zeros_like(table.seen)
    good = np.zeros_like(table.seen, dtype=np.float64)
    for seq, p in zip(sequences, post.tolist(), strict=True):
        y = n = 0
        seen[0, 0] += 1
        good[0, 0] += p
        for label in seq[:initial_votes]:
            y, n = y + int(label), n + int(not label)
            if y + n > cap:
                break
            seen[y, n] += 1
            good[y, n] += p
    return dataclasses.replace(
        table, prior_good=float(prior), sensitivity=float(sens), specificity=float(spec), seen=seen, good=good
    )


def apply_decisions(session: Session, state: SynsetState, targets: Iterable[int] | None = None) -> int:
    """Write the live decision and confidence of `targets` (default: every loaded candidate) where they
    changed. Returns how many rows changed. Rows are updated in id order (no deadlocks between writers)."""
    ids = state.stats.keys() if targets is None else [t for t in targets if t in state.stats]
    changes = []
    for cid in sorted(set(ids)):
        st = state.stats[cid]
        decision, confidence = state.evaluate(cid)
        same_conf = (confidence is None and st.confidence is None) or (
            confidence is not None and st.confidence is not None and abs(confidence - st.confidence) < 1e-9
        )
        if decision == st.decision and same_conf:
            continue
        changes.append({"_id": cid, "_decision": decision, "_confidence": confidence})
        st.decision, st.confidence = decision, confidence
    if changes:
        t = schema.Candidate.__table__
        assert isinstance(t, Table)
        session.connection().execute(
            update(t)
            .where(t.c.id == bindparam("_id"))
            .values(decision=bindparam("_decision"), confidence=bindparam("_confidence")),
            changes,
        )
    return len(changes)


def refresh_synset(session: Session, synset_id: str, settings: CrowdSettings, cache: TableCache) -> int:
    """Re-evaluate every playable candidate of a synset that has votes or is still open."""
    state = load_state(session, synset_id, settings, cache, complete=True)
    targets = [cid for cid, st in state.stats.items() if st.n_counted > 0 or st.decision is not None]
    return apply_decisions(session, state, targets)


def _chunks(values: list[int], size: int) -> Iterable[list[int]]:
    for i in range(0, len(values), size):
        yield values[i : i + size]
