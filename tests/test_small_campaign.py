"""A small simulated campaign (the demo's `--per-synset 20`): gold never takes every candidate, and a
campaign that decided nothing reports `n/a`, not `nan`."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console
from sqlalchemy import func, select

from synsetforge.crowd.cli import print_simulation
from synsetforge.crowd.drive import simulate_over_http
from synsetforge.crowd.gold import gold_from_ground_truth
from synsetforge.crowd.seed import add_synthetic_candidates
from synsetforge.crowd.settings import CrowdSettings
from synsetforge.store import Project, schema

SYNSETS = ["n13878634", "n13879320"]  # square, triangle


def _project(root: Path, db_url: str, per_synset: int) -> Project:
    p = Project.init(root, db=db_url)
    p.add_synsets(SYNSETS)
    add_synthetic_candidates(p, SYNSETS, per_synset, precision=0.4, seed=1, render=False)
    return p


def _printed(sim: object, settings: CrowdSettings) -> str:
    buf = io.StringIO()
    print_simulation(sim, settings, Console(file=buf, width=200, highlight=False))
    return buf.getvalue()


def test_gold_leaves_a_share_to_verify(tmp_path: Path, db_url: str) -> None:
    with _project(tmp_path / "p", db_url, 20) as p:
        added = gold_from_ground_truth(p, per_synset=20, max_share=0.5)
        assert added == 20  # 10 of each synset's 20
        with p.session() as s:
            per_synset = dict(
                s.execute(
                    select(schema.Candidate.synset_id, func.count())
                    .join(schema.Gold, schema.Gold.candidate_id == schema.Candidate.id)
                    .group_by(schema.Candidate.synset_id)
                ).all()
            )
        assert per_synset == {SYNSETS[0]: 10, SYNSETS[1]: 10}


def test_simulation_on_20_candidates_per_synset_decides_images(tmp_path: Path, db_url: str) -> None:
    """The demo's `--per-synset 20` used to turn all 20 into gold (20 per synset), leaving nothing to verify."""
    settings = CrowdSettings()
    with _project(tmp_path / "p", db_url, 20) as p:
        sim = simulate_over_http(p, workers=20, seed=1, settings=settings, max_seconds=60)
    assert 0 < sim.gold_added <= 20
    assert sim.report.images >= 20
    assert sim.report.decided > 0
    out = _printed(sim, settings)
    assert "nan" not in out
    assert "per decided image" in out


def test_campaign_that_decides_nothing_prints_n_a(tmp_path: Path, db_url: str) -> None:
    settings = CrowdSettings()
    with _project(tmp_path / "p", db_url, 4) as p:
        gold_from_ground_truth(p, per_synset=4)  # every candidate is gold: no work for the crowd
        sim = simulate_over_http(p, workers=5, seed=1, settings=settings, max_seconds=30)
    assert sim.report.decided == 0
    out = _printed(sim, settings)
    assert "nan" not in out
    assert "= n/a per decided image" in out
    assert "n/a" in sim.report.summary() and "nan" not in sim.report.summary()
