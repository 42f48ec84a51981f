"""The simulated crowd: worker behaviour, pools, gold screening and the fixed-majority driver."""

from __future__ import annotations

import numpy as np
import pytest

from synsetforge.crowd.aggregation import MajorityVote
from synsetforge.crowd.simulate import (
    GoldPolicy,
    SimulatedWorker,
    make_synset,
    make_worker_pool,
    screen_workers,
    simulate_dynamic_consensus,
    simulate_fixed_majority,
)
from synsetforge.errors import InputError


def share_yes(worker: SimulatedWorker, truth: bool, difficulty: float = 0.0, n: int = 4000) -> float:
    rng = np.random.default_rng(0)
    return float(np.mean([worker.answer(truth, rng, difficulty) for _ in range(n)]))


def test_worker_kinds_answer_as_described() -> None:
    honest = SimulatedWorker("h", "honest", 0.9)
    assert share_yes(honest, True) == pytest.approx(0.9, abs=0.02)
    assert share_yes(honest, False) == pytest.approx(0.1, abs=0.02)
    # difficulty pulls accuracy towards a coin flip: 0.5 + 0.4 * (1 - 0.5) = 0.7
    assert share_yes(honest, True, difficulty=0.5) == pytest.approx(0.7, abs=0.02)
    assert share_yes(SimulatedWorker("y", "always_yes"), False) == 1.0
    assert share_yes(SimulatedWorker("r", "random"), False) == pytest.approx(0.5, abs=0.03)
    assert share_yes(SimulatedWorker("r", "random"), True) == pytest.approx(0.5, abs=0.03)
    adversary = SimulatedWorker("a", "adversary", 0.9)
    assert share_yes(adversary, True) == pytest.approx(0.1, abs=0.02)
    with pytest.raises(InputError, match="kind"):
        SimulatedWorker("x", "lazy")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="accuracy"):
        SimulatedWorker("x", "honest", 1.5)


def test_worker_pool_composition_and_determinism() -> None:
    pool = make_worker_pool(
        1000, mean_accuracy=0.8, spammer_fraction=0.1, adversary_fraction=0.05, always_yes_share=0.4, seed=3
    )
    kinds = [w.kind for w in pool]
    assert kinds.count("always_yes") == 40 and kinds.count("random") == 60 and kinds.count("adversary") == 50
    assert np.mean([w.accuracy for w in pool]) == pytest.approx(0.8, abs=0.02)
    assert len({w.worker_id for w in pool}) == 1000
    assert pool == make_worker_pool(
        1000, mean_accuracy=0.8, spammer_fraction=0.1, adversary_fraction=0.05, always_yes_share=0.4, seed=3
    )
    fixed = make_worker_pool(5, mean_accuracy=0.7, concentration=None)
    assert {w.accuracy for w in fixed} == {0.7}
    for kwargs in (
        {"n": 0},
        {"n": 5, "mean_accuracy": 1.0},
        {"n": 5, "spammer_fraction": 0.7, "adversary_fraction": 0.5},
        {"n": 5, "concentration": -1.0},
    ):
        with pytest.raises(InputError):
            make_worker_pool(**kwargs)  # type: ignore[arg-type]


def test_gold_screening_blocks_spammers_and_adversaries() -> None:
    pool = make_worker_pool(
        400, mean_accuracy=0.9, concentration=50, spammer_fraction=0.2, adversary_fraction=0.1, seed=4
    )
    admitted, blocked, spent = screen_workers(
        pool, GoldPolicy(questions=20, min_accuracy=0.8), np.random.default_rng(1)
    )
    assert spent == 400 * 20
    assert {w.kind for w in blocked} >= {"always_yes", "random", "adversary"}
    assert all(w.kind != "always_yes" and w.kind != "adversary" for w in admitted)
    assert sum(w.kind == "random" for w in admitted) <= 2  # 16+/20 right by luck is rare
    honest_admitted = sum(w.kind == "honest" for w in admitted) / sum(w.kind == "honest" for w in pool)
    assert honest_admitted > 0.9
    assert screen_workers(pool, None, np.random.default_rng(1)) == (pool, [], 0)


def test_fixed_majority_report_matches_its_vote_log() -> None:
    pool = make_worker_pool(50, mean_accuracy=0.75, spammer_fraction=0.1, seed=5)
    synsets = [make_synset("a", 200, seed=6), make_synset("b", 100, difficulty=0.3, seed=7)]
    report = simulate_fixed_majority(synsets, pool, votes_per_image=3, seed=8)
    assert report.votes == 900 and report.votes_per_decided_image == 3.0 and report.undecided == 0
    log = report.vote_log
    assert set(log) == {"task", "worker", "label", "synset", "order"}
    # each image's 3 votes come from 3 different workers
    pairs = set(zip(log["task"].tolist(), log["worker"].tolist(), strict=True))
    assert len(pairs) == 900
    # the report's accept count is what MajorityVote decides on the same votes
    mv = MajorityVote().fit_predict({k: log[k] for k in ("task", "worker", "label")})
    assert report.accepted == int(mv.labels.sum())
    truth = np.concatenate([s.truth for s in synsets])
    assert report.positives == int(truth.sum())
    assert 0.5 < report.precision < 1.0 and 0.5 < report.accuracy < 1.0
    assert report.per_synset["b"]["votes"] == 300
    assert "fixed majority (3 votes)" in report.summary()
    again = simulate_fixed_majority(synsets, pool, votes_per_image=3, seed=8)
    assert again.accepted == report.accepted and np.array_equal(again.vote_log["label"], log["label"])


def test_simulation_input_errors() -> None:
    pool = make_worker_pool(8, seed=0)
    synset = make_synset("s", 20, seed=1)
    with pytest.raises(InputError, match="votes_per_image"):
        simulate_fixed_majority([synset], pool, votes_per_image=0)
    with pytest.raises(InputError, match="distinct"):
        simulate_fixed_majority([synset], pool, votes_per_image=9)
    with pytest.raises(InputError, match="distinct"):  # 10 initial votes need 10+ workers
        simulate_dynamic_consensus([synset], pool)
    always_yes = [SimulatedWorker(f"y{i}", "always_yes") for i in range(30)]
    with pytest.raises(InputError, match="after gold screening"):
        simulate_fixed_majority([synset], always_yes, gold=GoldPolicy())
    with pytest.raises(InputError, match="difficulty"):
        make_synset("s", 10, difficulty=1.0)
    with pytest.raises(InputError, match="at least one image"):
        make_synset("s", 0)
    with pytest.raises(InputError, match="gold questions"):
        screen_workers(pool, GoldPolicy(questions=0), np.random.default_rng(0))


def test_dynamic_simulation_flags_a_synset_nobody_recognises() -> None:
    pool = make_worker_pool(40, mean_accuracy=0.9, concentration=None, seed=2)
    empty = make_synset("abstraction", 60, positive_rate=0.0, seed=3)  # no candidate shows it
    full = make_synset("dog", 60, positive_rate=0.5, seed=4)
    report = simulate_dynamic_consensus([empty, full], pool, initial_size=20, seed=5)
    assert report.not_easily_illustrated == ("abstraction",)
    assert report.per_synset["abstraction"]["accepted"] == 0
    assert report.per_synset["dog"]["precision"] == 1.0
    assert len(report.initial_tasks) == 40
