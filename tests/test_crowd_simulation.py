"""A simulated crowd (the aggregation helper's SimulatedWorker) drives the real HTTP API of a loopback server
on synthetic candidates with ground truth; dynamic consensus is compared with a fixed 5-vote majority.

Two synsets of 500 synthetic candidates, 40 workers, 10% of them spammers, gold from ground truth. Figures
are printed (run with `pytest -s` to see them). What the runs showed (README, crowd section): with workers
of mean accuracy 0.8 dynamic consensus reaches >= 99% precision where a 5-vote majority does not, but
needs about as many votes or more; with 0.9-accurate workers and mostly bad candidates it needs fewer.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from synsetforge.crowd.drive import Simulation, simulate_over_http
from synsetforge.crowd.seed import add_synthetic_candidates
from synsetforge.crowd.settings import CrowdSettings
from synsetforge.errors import InputError
from synsetforge.store import Project

SYNSETS = ["n13878634", "n13879320"]  # square, triangle


def campaign(root: Path, method: str, *, accuracy: float, good: float, threshold: float = 0.99) -> Simulation:
    with Project.init(root) as p:
        p.add_synsets(SYNSETS)
        add_synthetic_candidates(p, SYNSETS, 500, precision=good, seed=1, render=False)
        settings = CrowdSettings(method=method, fixed_votes=5, threshold=threshold)
        return simulate_over_http(p, workers=40, accuracy=accuracy, spammers=0.1, seed=1, settings=settings)


def show(label: str, sim: Simulation) -> None:
    r = sim.report
    print(
        f"\n{label}: precision {r.precision:.2%} on {r.accepted} accepted, recall {r.recall:.2%}, "
        f"{r.votes_per_decided:.2f} votes per decided image ({r.votes} votes, {r.votes_excluded} excluded, "
        f"{r.undecided} undecided, {r.open} open); {sim.run.summary()}"
    )


@pytest.mark.slow
def test_dynamic_consensus_reaches_99_percent_precision_where_5_votes_do_not(tmp_path: Path) -> None:
    # the synthetic source's default 40% good candidates: enough accepted images to measure 99%
    dynamic = campaign(tmp_path / "dynamic", "imagenet", accuracy=0.8, good=0.4, threshold=0.995)
    fixed = campaign(tmp_path / "fixed", "fixed", accuracy=0.8, good=0.4)
    show("dynamic consensus, threshold 0.995 (accuracy 0.8, 10% spammers, 40% good)", dynamic)
    show("fixed 5-vote majority (accuracy 0.8, 10% spammers, 40% good)", fixed)
    d, f = dynamic.report, fixed.report
    assert dynamic.run.stopped == "no work" and d.open == 0 and d.decided >= 0.98 * d.images
    assert d.accepted >= 250 and d.precision >= 0.99
    assert f.precision < 0.99 and f.precision < d.precision
    assert dynamic.run.blocked >= 4  # the spammers


@pytest.mark.slow
def test_dynamic_consensus_needs_fewer_votes_than_5_with_better_workers(tmp_path: Path) -> None:
    # mostly bad candidates (SPEC §2: about 10% good) and 0.9-accurate workers
    dynamic = campaign(tmp_path / "dynamic", "imagenet", accuracy=0.9, good=0.1)
    fixed = campaign(tmp_path / "fixed", "fixed", accuracy=0.9, good=0.1)
    show("dynamic consensus, threshold 0.99 (accuracy 0.9, 10% spammers, 10% good)", dynamic)
    show("fixed 5-vote majority (accuracy 0.9, 10% spammers, 10% good)", fixed)
    d, f = dynamic.report, fixed.report
    assert d.precision >= 0.99 and d.decided >= 0.98 * d.images
    assert d.votes_per_decided < f.votes_per_decided and f.votes_per_decided >= 5.0
    assert f.precision < d.precision


def test_simulation_needs_ground_truth(tmp_path: Path) -> None:
    with Project.init(tmp_path / "p") as p, pytest.raises(InputError, match="no ground truth"):
        simulate_over_http(p, workers=3)
