"""Dynamic consensus (ImageNet, SPEC §3): precision vs cost against fixed majority, Fig. 7's shape, the
live-loop table API and the batch fit that replays it."""

from __future__ import annotations

import numpy as np
import pytest

from synsetforge.crowd.aggregation import Decision, DynamicConsensus
from synsetforge.crowd.simulate import (
    GoldPolicy,
    make_synset,
    make_worker_pool,
    simulate_dynamic_consensus,
    simulate_fixed_majority,
)
from synsetforge.errors import InputError


def test_dynamic_consensus_beats_fixed_majority_on_precision_and_cost() -> None:
    """Mean worker accuracy 0.8, 10% spammers (half always-yes, half random), 40% good candidates, four
    synsets from easy to hard; known-answer screening (20 gold questions, 19 right to work) for both."""
    pool = make_worker_pool(300, mean_accuracy=0.8, concentration=10, spammer_fraction=0.1, seed=0)
    synsets = [
        make_synset(f"n0{i}", 2000, positive_rate=0.4, difficulty=d, seed=i)
        for i, d in enumerate([0.0, 0.1, 0.15, 0.2])
    ]
    gold = GoldPolicy(questions=20, min_accuracy=0.95)
    dynamic = simulate_dynamic_consensus(
        synsets, pool, consensus=DynamicConsensus(threshold=0.99), initial_size=50, gold=gold, seed=0
    )
    fixed = simulate_fixed_majority(synsets, pool, votes_per_image=5, gold=gold, seed=0)
    print()
    print(dynamic.summary())
    print(fixed.summary())
    for name, row in dynamic.per_synset.items():
        print(
            f"  {name}: precision {row['precision']:.2%}, {row['votes_per_decided_image']:.2f} votes/decided"
        )

    assert dynamic.blocked_workers > 30  # the always-yes and random spammers among them
    assert dynamic.precision >= 0.99
    assert dynamic.votes_per_decided_image < fixed.votes_per_decided_image == 5.0
    assert dynamic.precision > fixed.precision
    assert dynamic.recall > 0.9 and dynamic.undecided < 0.02 * dynamic.images
    # the votes of the initial subsets are paid for and counted
    assert dynamic.initial_votes == 4 * 50 * 10
    assert dynamic.votes == int(dynamic.vote_log["task"].shape[0])
    # harder synsets cost more votes
    costs = [row["votes_per_decided_image"] for row in dynamic.per_synset.values()]
    assert costs[0] < costs[-1]


def test_fig7_shape_easy_synset_is_surer_and_cheaper_than_hard() -> None:
    """Paper's Fig. 7: P(good | 2 yes, 0 no) is 0.97 for "cat" but 0.83 for "Burmese cat"."""
    pool = make_worker_pool(60, mean_accuracy=0.9, concentration=None, seed=1)
    easy = make_synset("cat", 600, difficulty=0.0, seed=2)
    hard = make_synset("burmese_cat", 600, difficulty=0.5, seed=3)  # effective accuracy 0.7
    report = simulate_dynamic_consensus([easy, hard], pool, initial_size=100, seed=4)
    cat, burmese = report.tables["cat"], report.tables["burmese_cat"]
    print()
    print("yes no   cat    burmese_cat")
    for a, b in zip(cat.to_rows(3), burmese.to_rows(3), strict=True):
        print(f"{a['yes']:>3} {a['no']:>2}  {a['confidence']:.3f}  {b['confidence']:.3f}")

    assert cat.confidence(2, 0) > burmese.confidence(2, 0) + 0.05
    assert cat.confidence(3, 0) > burmese.confidence(3, 0)
    assert cat.confidence(0, 2) < burmese.confidence(0, 2)
    assert cat.confidence(0, 1) < cat.confidence(1, 1) < cat.confidence(1, 0)  # monotone in the votes
    assert burmese.expected_votes() > cat.expected_votes()
    per = report.per_synset
    assert per["burmese_cat"]["votes_per_decided_image"] > per["cat"]["votes_per_decided_image"] + 1
    assert cat.sensitivity == pytest.approx(0.9, abs=0.05)
    assert burmese.specificity == pytest.approx(0.7, abs=0.06)


def test_batch_fit_replays_the_live_loop_exactly() -> None:
    pool = make_worker_pool(80, mean_accuracy=0.85, concentration=20, spammer_fraction=0.05, seed=5)
    synsets = [make_synset("a", 300, difficulty=0.0, seed=6), make_synset("b", 300, difficulty=0.3, seed=7)]
    dc = DynamicConsensus(threshold=0.98, max_votes=12)
    live = simulate_dynamic_consensus(synsets, pool, consensus=dc, initial_size=30, seed=8)
    log = live.vote_log
    initial = live.initial_tasks
    assert len(initial) == 60
    # shuffle the rows: the batch fit must rely on `order`, not on row order
    perm = np.random.default_rng(0).permutation(log["task"].shape[0])
    votes = {k: log[k][perm] for k in ("task", "worker", "label")}
    result = dc.fit_predict(votes, log["synset"][perm], order=log["order"][perm], initial=initial)

    live_accepted = sum(int(r["accepted"]) for r in live.per_synset.values())
    assert result.count(Decision.ACCEPT) == live_accepted
    assert result.count(Decision.REJECT) == sum(int(r["rejected"]) for r in live.per_synset.values())
    for name in ("a", "b"):
        assert result.tables[name].grid == pytest.approx(live.tables[name].grid)
    assert int(result.votes_used.sum()) == live.votes  # the live loop stops right at each decision
    assert result.count(Decision.NEED_MORE) == 0

    # a task map works as well as per-vote synsets; default `initial` = tasks with >= initial_votes votes
    task_map = dict(zip(log["task"].tolist(), log["synset"].tolist(), strict=True))
    again = dc.fit_predict(votes, task_map, order=log["order"][perm])
    assert again.initial.sum() >= len(initial)
    assert set(again.tables) == {"a", "b"}


def table_from_counts(dc: DynamicConsensus, per_image: list[tuple[int, int]], synset: str = "s"):
    """A table from initial images given as (yes, no) vote counts (yes votes first)."""
    rows = []
    for i, (y, n) in enumerate(per_image):
        rows += [(f"{synset}{i}", f"w{j}", j < y) for j in range(y + n)]
    return dc.build_table(rows, synset=synset)


def test_table_decisions_thresholds_cap_and_unseen_cells() -> None:
    dc = DynamicConsensus(threshold=0.95, max_votes=6)
    table = table_from_counts(dc, [(8, 2)] * 20 + [(2, 8)] * 30)
    assert table.n_initial == 50 and table.easily_illustrated
    assert table.decide(0, 0) is Decision.NEED_MORE  # min_votes=1: the prior alone never decides
    assert table.decide(4, 0) is Decision.ACCEPT
    assert table.decide(0, 4) is Decision.REJECT
    assert table.decide(3, 3) is Decision.UNDECIDED  # cap reached, still unsure
    assert table.decide(2, 2) is Decision.NEED_MORE
    # mirror thresholds
    for y in range(7):
        for n in range(7 - y):
            c, d = table.confidence(y, n), table.decide(y, n)
            assert (d is Decision.ACCEPT) == (c >= 0.95 and y + n >= 1)
            assert (d is Decision.REJECT) == (c <= 0.05 and y + n >= 1)
    # every initial image got its "yes" votes first, so no prefix ever passed through (0, 2) or (3, 1):
    # those cells come from the model alone; observed cells are pulled towards the tally
    assert table.sensitivity == pytest.approx(0.8, abs=0.01) and table.specificity == pytest.approx(
        0.8, abs=0.01
    )
    assert table.seen[0, 2] == 0 and table.seen[3, 1] == 0 and table.seen[2, 1] == 30
    assert table.confidence(0, 2) == pytest.approx(table.model_confidence(0, 2))
    assert table.confidence(3, 1) == pytest.approx(table.model_confidence(3, 1))
    assert table.confidence(2, 1) != pytest.approx(table.model_confidence(2, 1))
    assert table.confidence(40, 0) == table.model_confidence(40, 0) > 0.999  # beyond the grid
    assert table.need_score(4, 0) == 0.0 and table.need_score(2, 2) > 0
    with pytest.raises(InputError, match=">= 0"):
        table.confidence(-1, 0)
    fig = table.to_rows(2)
    assert [(r["yes"], r["no"]) for r in fig] == [(0, 0), (1, 0), (0, 1), (2, 0), (1, 1), (0, 2)]


def test_not_easily_illustrated_and_untabled_synsets() -> None:
    dc = DynamicConsensus(initial_votes=4, max_votes=8)
    rows, syn = [], {}
    for i in range(6):  # "abstraction": nobody ever says yes more than no
        syn[f"x{i}"] = "abstraction"
        rows += [(f"x{i}", f"w{j}", j == 0) for j in range(4)]
    for i in range(6):  # "dog": clear
        syn[f"d{i}"] = "dog"
        rows += [(f"d{i}", f"w{j}", i % 2 == 0) for j in range(4)]
    syn["lonely"] = "unseen_synset"  # no initial images: no table
    rows.append(("lonely", "w0", True))
    res = dc.fit_predict(rows, syn)
    assert res.not_easily_illustrated == ("abstraction",)
    assert not res.tables["abstraction"].easily_illustrated and res.tables["dog"].easily_illustrated
    assert res.untabled == ("unseen_synset",)
    out = res.to_dict()
    assert out["lonely"] == "need_more"
    assert res.need[res.tasks.tolist().index("lonely")] == 3.0  # initial votes still to collect
    assert all(out[f"x{i}"] != "accept" for i in range(6))
    rows_out = res.to_rows()
    assert {r["task"] for r in rows_out} == set(syn) and rows_out[0].keys() >= {"decision", "need", "synset"}


def test_next_need_serves_hard_synsets_first() -> None:
    pool = make_worker_pool(60, mean_accuracy=0.9, concentration=None, seed=9)
    easy, hard = make_synset("easy", 200, seed=10), make_synset("hard", 200, difficulty=0.5, seed=11)
    report = simulate_dynamic_consensus([easy, hard], pool, initial_size=60, seed=12)
    log = report.vote_log
    keep = np.isin(log["task"], report.initial_tasks)
    votes = {k: log[k][keep].tolist() for k in ("task", "worker", "label", "synset")}
    # open images: one "yes" vote each, in both synsets
    for name in ("easy", "hard"):
        for i in range(3):
            for key, value in zip(
                ("task", "worker", "label", "synset"), (f"{name}-new{i}", "w0", True, name), strict=True
            ):
                votes[key].append(value)
    res = DynamicConsensus().fit_predict(votes, votes["synset"])
    nxt = res.next_tasks()
    new = [t for t in nxt if "-new" in t]
    assert len(new) == 6  # plus initial images still unsure after their 10 votes
    assert all(t.startswith("hard-new") for t in new[:3])
    need = dict(zip(res.tasks.tolist(), res.need.tolist(), strict=True))
    assert need["hard-new0"] > need["easy-new0"] > 0
    assert res.next_tasks(limit=2) == nxt[:2]
    assert res.tables["hard"].expected_votes() > res.tables["easy"].expected_votes()


@pytest.mark.parametrize("truth", ["majority", "dawid_skene", "posterior"])
def test_truth_estimators_all_give_sensible_tables(truth: str) -> None:
    pool = make_worker_pool(40, mean_accuracy=0.85, concentration=None, seed=13)
    report = simulate_dynamic_consensus(
        [make_synset("s", 100, seed=14)],
        pool,
        consensus=DynamicConsensus(truth=truth),  # type: ignore[arg-type]
        initial_size=40,
        seed=15,
    )
    table = report.tables["s"]
    assert table.confidence(3, 0) > 0.9 > 0.1 > table.confidence(0, 3)
    assert report.precision > 0.95


def test_dynamic_consensus_rejects_bad_input() -> None:
    dc = DynamicConsensus()
    with pytest.raises(InputError, match="yes/no"):
        dc.fit([(1, "a", "x"), (2, "a", "y"), (3, "a", "z")], {1: "s", 2: "s", 3: "s"})
    with pytest.raises(InputError, match="positive label"):
        dc.fit([(1, "a", "yes"), (2, "a", "no")], {1: "s", 2: "s"})
    with pytest.raises(InputError, match="no synset"):
        dc.fit([(1, "a", True), (2, "a", False)], {1: "s"})
    with pytest.raises(InputError, match="more than one synset"):
        dc.fit([(1, "a", True), (1, "b", False)], ["s", "t"])
    with pytest.raises(InputError, match="one synset per vote"):
        dc.fit([(1, "a", True), (1, "b", False)], ["s"])
    with pytest.raises(InputError, match="order"):
        dc.fit([(1, "a", True), (1, "b", False)], ["s", "s"], order=[1])
    with pytest.raises(InputError, match="empty"):
        dc.fit([], {})
    with pytest.raises(InputError, match="before fit"):
        dc.predict()
    for kwargs in (
        {"threshold": 0.4},
        {"threshold": 1.0},
        {"initial_votes": 0},
        {"max_votes": 0},
        {"min_votes": 30},
        {"prior_strength": -1},
        {"truth": "oracle"},
    ):
        with pytest.raises(InputError):
            DynamicConsensus(**kwargs)  # type: ignore[arg-type]
    # string labels work once `positive` says which one means yes
    ok = DynamicConsensus(positive="yes", initial_votes=2).fit_predict(
        [(1, "a", "yes"), (1, "b", "yes"), (2, "a", "no"), (2, "b", "no")], {1: "s", 2: "s"}
    )
    assert ok.tables["s"].confidence(2, 0) > ok.tables["s"].confidence(0, 2)
