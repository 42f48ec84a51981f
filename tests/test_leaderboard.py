"""Leaderboard statistics: bootstrap intervals, paired tests, public/private split, the Ladder."""

from __future__ import annotations

import math

import numpy as np
import pytest

from synsetforge.benchmark.leaderboard import (
    Ladder,
    bootstrap_interval,
    bootstrap_means,
    ladder_step,
    mcnemar_exact,
    paired_test,
    parameter_free_ladder_step,
    public_private_split,
    round_to_step,
)
from synsetforge.errors import InputError


def test_bootstrap_interval_of_an_error_rate_is_close_to_the_normal_one_and_seeded() -> None:
    correct = np.zeros(2000, dtype=bool)
    correct[:1400] = True  # 30 % error
    errors = ~correct
    ci = bootstrap_interval(errors, seed=7)
    assert ci.estimate == 0.3
    half = 1.96 * math.sqrt(0.3 * 0.7 / 2000)  # 0.0201
    assert ci.low == pytest.approx(0.3 - half, abs=0.003)
    assert ci.high == pytest.approx(0.3 + half, abs=0.003)
    assert bootstrap_interval(errors, seed=7) == ci  # same seed, same interval
    assert bootstrap_interval(errors, seed=8) != ci
    wider = bootstrap_interval(errors, seed=7, confidence=0.99)
    assert wider.low < ci.low and wider.high > ci.high


def test_count_shortcut_and_index_resampling_give_the_same_distribution() -> None:
    rng = np.random.default_rng(0)
    binary = (rng.random(400) < 0.3).astype(float)  # 2 distinct values: multinomial counts
    continuous = rng.normal(size=400)  # 400 distinct values: index resampling
    for values in (binary, continuous):
        means = bootstrap_means(values, 20_000, np.random.default_rng(1))
        assert means.mean() == pytest.approx(values.mean(), abs=0.003)
        # the bootstrap standard error of a mean is the plug-in sd / sqrt(n)
        assert means.std() == pytest.approx(values.std() / math.sqrt(len(values)), rel=0.03)


def test_bootstrap_on_integer_costs() -> None:
    heights = np.array([0, 0, 3, 5, 2, 0, 1, 4] * 50, dtype=float)
    ci = bootstrap_interval(heights, n_resamples=5000, seed=1)
    assert ci.estimate == heights.mean()
    assert ci.low < ci.estimate < ci.high
    assert ci.high - ci.low == pytest.approx(2 * 1.96 * heights.std() / math.sqrt(400), rel=0.08)


def test_mcnemar_exact_by_hand() -> None:
    assert mcnemar_exact(5, 0) == pytest.approx(2 / 32)  # both tails of Binomial(5, 1/2) at 0 and 5
    assert mcnemar_exact(3, 1) == pytest.approx(2 * (1 + 4) / 16)
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(2, 2) == 1.0
    a = np.array([1, 1, 1, 1, 1, 0, 1, 0, 1], dtype=bool)
    b = np.array([0, 0, 0, 0, 0, 0, 1, 0, 1], dtype=bool)
    r = paired_test(a, b)
    assert (r.method, r.a_only, r.b_only) == ("mcnemar", 5, 0)
    assert r.p_value == pytest.approx(0.0625)
    assert r.difference == pytest.approx(5 / 9)
    assert r.mean_a == 7 / 9 and r.mean_b == 2 / 9


def test_paired_bootstrap() -> None:
    rng = np.random.default_rng(2)
    a = rng.random(1000) < 0.7
    same = paired_test(a, a, method="bootstrap")
    assert same.difference == 0 and same.p_value == 1.0
    b = a.copy()
    flip = np.flatnonzero(a)[:100]
    b[flip] = False  # B loses 100 images A got right: a 10-point gap
    far = paired_test(a, b, method="bootstrap", n_resamples=2000)
    assert far.difference == pytest.approx(0.1)
    assert far.p_value == 1 / 2001
    assert far.low is not None and far.high is not None and far.low < 0.1 < far.high
    b2 = a.copy()
    b2[flip[:3]] = False  # a 0.3-point gap on 3 images: not significant
    assert paired_test(a, b2, method="bootstrap").p_value > 0.05
    assert paired_test(a, b2).p_value == pytest.approx(0.25)  # McNemar 3 vs 0
    # continuous per-image costs are fine for the bootstrap, not for McNemar
    costs = rng.random(1000)
    assert 0 < paired_test(costs, costs + 0.01, method="bootstrap").p_value < 0.01
    with pytest.raises(InputError, match="0/1 per-image values"):
        paired_test(costs, costs)
    with pytest.raises(InputError, match="different image sets"):
        paired_test(a, a[:10])
    with pytest.raises(InputError, match="unknown paired test"):
        paired_test(a, a, method="t")


def test_public_private_split_is_deterministic_and_order_free() -> None:
    ids = [f"ILSVRC2012_test_{i:08d}" for i in range(1000)]
    public = public_private_split(ids, public_fraction=0.3, seed=42)
    assert public.sum() == 300
    again = public_private_split(list(reversed(ids)), public_fraction=0.3, seed=42)
    assert set(np.array(ids)[public]) == set(np.array(ids[::-1])[again])
    other = public_private_split(ids, public_fraction=0.3, seed=43)
    assert 50 < (public & other).sum() < 150  # independent draws overlap ~90
    assert public_private_split(ids[:7], public_fraction=0.5, seed=1).sum() == 4  # round half up
    assert not public_private_split(ids, public_fraction=0.0, seed=1).any()
    assert public_private_split(ids, public_fraction=1.0, seed=1).all()
    with pytest.raises(InputError):
        public_private_split(ids, public_fraction=1.5, seed=1)
    with pytest.raises(InputError, match="distinct"):
        public_private_split(["a", "a"], public_fraction=0.5, seed=1)


def test_fixed_ladder_by_hand() -> None:
    assert round_to_step(0.4649, 0.01) == 0.46
    assert round_to_step(0.4651, 0.01) == 0.47
    ladder = Ladder(step=0.01)
    released = []
    for loss in (0.5, 0.495, 0.48, 0.4712, 0.4649, 0.47):
        released.append(ladder.submit(np.full(100, loss)).released)
    # 0.495 and 0.4712 do not beat the released score by more than 0.01; 0.4649 is shown rounded
    assert released == [0.5, 0.5, 0.48, 0.48, 0.46, 0.46]
    assert ladder_step(0.3, None, step=0.05).improved
    step = ladder_step(0.26, 0.3, step=0.05)
    assert (step.improved, step.released, step.loss) == (False, 0.3, 0.26)
    with pytest.raises(InputError):
        Ladder(step=0)


def test_parameter_free_ladder_by_hand() -> None:
    first = parameter_free_ladder_step([1, 1, 0, 0], None)
    assert (first.improved, first.released) == (True, 0.5)
    # one more image right: diff (-1, 0, 0, 0) has sd 0.5, margin 0.5 / sqrt(4) = 0.25; 0.25 is not < 0.25
    tie = parameter_free_ladder_step([0, 1, 0, 0], np.array([1, 1, 0, 0.0]))
    assert (tie.improved, tie.released, tie.loss) == (False, 0.5, 0.25)
    # two more right: diff sd 0.577, margin 0.289; 0.0 < 0.211
    better = parameter_free_ladder_step([0, 0, 0, 0], np.array([1, 1, 0, 0.0]))
    assert (better.improved, better.released) == (True, 0.0)
    ladder = Ladder()
    assert ladder.submit([1, 1, 0, 0]).improved
    assert not ladder.submit([1, 1, 0, 0]).improved  # the same again: no news
    assert ladder.submit([0, 0, 0, 0]).released == 0.0
    with pytest.raises(InputError, match="different image sets"):
        ladder.submit([0, 0, 0])
