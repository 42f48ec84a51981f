"""Worker-aware decisions: the online two-coin Dawid-Skene estimator and its simulation."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from synsetforge.crowd import worker_aware
from synsetforge.crowd.aggregation.dynamic_consensus import Decision
from synsetforge.crowd.aggregation.online_ds import (
    OnlineDawidSkene,
    WorkerModel,
    decide_llr,
    fit_two_coin,
    gold_population,
    logit,
    vote_weight,
)
from synsetforge.crowd.drive import load_truth, simulate_over_http
from synsetforge.crowd.gold import gold_from_ground_truth
from synsetforge.crowd.seed import add_synthetic_candidates
from synsetforge.crowd.settings import CrowdSettings
from synsetforge.crowd.simulate import (
    GoldPolicy,
    make_synset,
    make_worker_pool,
    simulate_fixed_majority,
    simulate_worker_aware,
)
from synsetforge.errors import InputError
from synsetforge.store import Project, schema

SQUARE = "n13878634"


def synthetic_votes(
    seed: int, n_items: int = 600, rates: dict[str, tuple[float, float]] | None = None
) -> tuple[list[tuple[str, str, bool]], np.ndarray, dict[str, tuple[float, float]]]:
    """Every worker votes on every item; worker -> (sensitivity, specificity)."""
    rng = np.random.default_rng(seed)
    rates = rates or {
        "good1": (0.9, 0.85), "good2": (0.8, 0.95), "good3": (0.85, 0.9), "good4": (0.95, 0.8),
        "ok": (0.7, 0.7), "yes": (1.0, 0.0), "coin": (0.5, 0.5),
    }  # fmt: skip
    truth = rng.random(n_items) < 0.3
    votes = []
    for i in range(n_items):
        for w, (sens, spec) in rates.items():
            label = rng.random() < sens if truth[i] else rng.random() >= spec
            votes.append((f"i{i}", w, bool(label)))
    return votes, truth, rates


def test_weights_and_decision_thresholds() -> None:
    m = WorkerModel.prior(0.8, 0.9, 10.0)
    assert vote_weight(m, True) == pytest.approx(math.log(0.8 / 0.1))
    assert vote_weight(m, False) == pytest.approx(math.log(0.2 / 0.9))
    spam = WorkerModel.prior(1.0 - 1e-9, 1e-9, 10.0)  # always yes: clipped, yes weighs nothing
    assert abs(vote_weight(spam, True)) < 1e-9
    kw = {"accept": 0.99, "reject": 0.01, "max_votes": 5}
    need = logit(0.99) - logit(0.2)
    assert decide_llr(need + 1e-6, 0.2, votes=3, **kw) is Decision.ACCEPT
    assert decide_llr(need - 1e-3, 0.2, votes=3, **kw) is Decision.NEED_MORE
    assert decide_llr(need - 1e-3, 0.2, votes=5, **kw) is Decision.UNDECIDED
    assert decide_llr(logit(0.01) - logit(0.2) - 1e-6, 0.2, votes=1, **kw) is Decision.REJECT
    assert decide_llr(need + 5, 0.2, votes=1, min_votes=2, accept=0.99, reject=0.01) is Decision.NEED_MORE
    with pytest.raises(InputError, match="accept"):
        OnlineDawidSkene(accept=0.4)


def test_refit_recovers_known_sensitivity_and_specificity() -> None:
    votes, truth, rates = synthetic_votes(0)
    est = OnlineDawidSkene()
    for item, worker, label in votes:
        est.observe(worker, item, label)
    est.refit()
    for w, (sens, spec) in rates.items():
        m = est.worker_model(w)
        assert m.sensitivity == pytest.approx(sens, abs=0.05), w
        assert m.specificity == pytest.approx(spec, abs=0.05), w
    assert est.group_prior() == pytest.approx(truth.mean(), abs=0.04)
    assert abs(est.worker_model("yes").weight(True)) < 0.1  # always-yes carries ~no evidence
    post = np.asarray([est.posterior(f"i{i}") for i in range(truth.shape[0])])
    assert ((post > 0.5) == truth).mean() > 0.97
    assert (
        abs(est.worker_model("coin").weight(True)) < 0.15
        and abs(est.worker_model("coin").weight(False)) < 0.15
    )


def test_spammer_loses_weight_after_a_few_gold_answers() -> None:
    est = OnlineDawidSkene(prior_strength=4.0, start_sensitivity=0.8, start_specificity=0.8)
    fresh = est.worker_model("spam").weight(True)
    assert fresh > 1.0  # no evidence yet: weighs like the assumed population
    for k in range(10):  # always yes on 5 good and 5 bad gold images
        est.observe_gold("spam", k % 2 == 0, True)
        est.observe_gold("honest", k % 2 == 0, k % 2 == 0)
    assert est.worker_model("spam").weight(True) < 0.35 * fresh
    assert est.worker_model("honest").weight(True) > fresh
    uniform = OnlineDawidSkene(population="uniform")
    assert uniform.worker_model("new").weight(True) == pytest.approx(0.0)
    assert uniform.worker_model("new").weight(False) == pytest.approx(0.0)


def test_batch_fit_equals_online_after_refit() -> None:
    votes, _, _ = synthetic_votes(1, n_items=200)
    gold = {f"i{i}": bool(i % 2) for i in range(0, 200, 10)}  # some items are gold
    online = OnlineDawidSkene()
    for item, worker, label in votes:
        if item in gold:
            online.observe_gold(worker, gold[item], label)
        else:
            online.observe(worker, item, label)
    online.refit()
    batch = OnlineDawidSkene().fit_predict(
        {"task": [v[0] for v in votes], "worker": [v[1] for v in votes], "label": [v[2] for v in votes]},
        gold=gold,
    )
    assert len(batch.tasks) == 200 - len(gold)
    for task, p in zip(batch.tasks.tolist(), batch.probas[:, 1].tolist(), strict=True):
        assert online.posterior(task) == pytest.approx(p, abs=1e-12)
        decided = online.decide(task)
        assert batch.to_dict()[task] == {Decision.ACCEPT: True, Decision.REJECT: False}.get(decided)


def test_online_vote_adds_the_current_weight() -> None:
    est = OnlineDawidSkene(prior_good=0.2)
    before = est.worker_model("w").weight(True)
    added = est.observe("w", "img", True, group="s1")
    assert added == pytest.approx(before)
    assert est.log_odds("img") == pytest.approx(logit(0.2) + before)
    with pytest.raises(InputError, match="group"):
        est.observe("w2", "img", True, group="s2")


def test_worker_aware_beats_fixed_majority_in_simulation() -> None:
    """At 10% good candidates with 10% spammers: worker-aware reaches at least the majority's precision
    with fewer votes per decided image (both figures computed here on one fixed seed)."""
    pool = make_worker_pool(120, mean_accuracy=0.8, concentration=10.0, spammer_fraction=0.1, seed=3)
    world = [make_synset(f"s{i}", 400, positive_rate=0.1, difficulty=0.1 * i, seed=3 + i) for i in range(2)]
    gold = GoldPolicy(20, 0.9)
    wa = simulate_worker_aware(world, pool, estimator=OnlineDawidSkene(reject=0.001), gold=gold, seed=3)
    fixed = simulate_fixed_majority(world, pool, votes_per_image=5, gold=gold, seed=3)
    assert wa.decided > 0.98 * wa.images
    assert wa.precision >= fixed.precision
    assert wa.votes_per_decided_image < fixed.votes_per_decided_image
    assert wa.precision > 0.98 and wa.recall > 0.9


def test_simulated_spread_cut_keeps_the_most_informative_workers() -> None:
    """Offline as live: a bar nobody reaches leaves the `max_votes` best workers voting (it left everyone,
    and a bar few reach stalled the simulation with too few workers for an image)."""
    pool = make_worker_pool(60, mean_accuracy=0.8, concentration=10.0, spammer_fraction=0.1, seed=5)
    world = [make_synset("s0", 300, positive_rate=0.1, seed=5)]
    est = OnlineDawidSkene(reject=0.001, max_votes=6)
    wa = simulate_worker_aware(
        world, pool, estimator=est, gold=GoldPolicy(20, 0.6), min_spread=50.0, refit_first=30, seed=5
    )
    workers = wa.vote_log["worker"].tolist()
    assert len(set(workers[30:60])) == 6  # refits after 30 and 60 votes: each ranks the crowd again
    later = set(workers[30:])
    assert len(later) < 20 < len(pool) - wa.blocked_workers
    accuracy = {w.worker_id: w.accuracy if w.kind == "honest" else 0.5 for w in pool}
    assert min(accuracy[w] for w in later) > np.median(list(accuracy.values()))
    assert wa.decided > 0.95 * wa.images


# ----- live: worker models in the database (crowd.worker_aware) ---------------------------------------


def _project_with_votes(root: Path, db_url: str) -> tuple[Project, dict[int, bool], dict[str, int]]:
    """One synset, 150 candidates (10 gold); an expert, two decent workers and an always-yes spammer vote
    on every candidate. Returns the project, truth of the non-gold candidates and worker ids."""
    p = Project.init(root, db=db_url)
    p.add_synsets([SQUARE])
    add_synthetic_candidates(p, [SQUARE], 150, precision=0.3, seed=2, render=False)
    gold_from_ground_truth(p, per_synset=10, seed=2)
    truth = load_truth(p)
    rng = np.random.default_rng(5)
    rates = {"expert": 0.97, "ok1": 0.8, "ok2": 0.8, "spam": None}
    with p.session() as s:
        gold = set(s.scalars(select(schema.Gold.candidate_id)))
        ids = {}
        for name in rates:
            w = schema.Worker(name=name)
            s.add(w)
            s.flush()
            ids[name] = w.id
        rows = []
        for cid in sorted(truth):
            for name, acc in rates.items():
                label = True if acc is None else (truth[cid] if rng.random() < acc else not truth[cid])
                rows.append(
                    schema.Vote(candidate_id=cid, worker_id=ids[name], label=label, is_gold=cid in gold)
                )
        s.add_all(rows)
    return p, {c: t for c, t in truth.items() if c not in gold}, ids


def test_refit_group_stores_worker_models_and_decides_by_evidence(tmp_path: Path, db_url: str) -> None:
    p, truth, ids = _project_with_votes(tmp_path / "p", db_url)
    settings = CrowdSettings(method="worker-aware", threshold=0.99, reject_threshold=0.01)
    try:
        with p.session() as s:
            before = worker_aware.load_group(s, SQUARE, settings)
            # before any refit: the spammer's gold answers (always yes) already cut its weight
            assert before.weight(ids["spam"], True) < before.weight(ids["expert"], True)
            refit = worker_aware.refit_group(s, SQUARE, settings)
        assert refit.votes == 4 * len(truth) and set(refit.evidence) == set(truth)
        with p.session() as s:
            gm = worker_aware.load_group(s, SQUARE, settings)
            assert set(gm.fitted) == set(ids.values())
            assert abs(gm.weight(ids["spam"], True)) < 0.3

            def spread(name: str) -> float:  # evidence between a yes and a no of this worker
                return gm.weight(ids[name], True) - gm.weight(ids[name], False)

            assert spread("expert") > spread("ok1") > 1.5 and spread("ok2") > 1.5
            live = worker_aware.image_evidence(s, truth, settings)
            prior = worker_aware.prior_of(s, SQUARE, settings)
        assert prior == pytest.approx(refit.prior_good)
        right = 0
        for cid, (llr, n) in live.items():
            assert n == 4 and llr == pytest.approx(refit.evidence[cid][0])
            decision, conf = worker_aware.evaluate(llr, n, prior, settings)
            assert decision in ("accepted", "rejected", None)
            right += (conf > 0.5) == truth[cid]
        assert right >= 0.95 * len(truth)
        with p.session() as s:  # the spammer gets no more tasks of the synset; the others do
            cap1 = settings.with_(max_votes=1)  # keeps only the single best worker out of reach
            assert worker_aware.excluded_workers(s, SQUARE, cap1) == {ids["spam"]}  # spread >= 1
            assert not worker_aware.takes_tasks(s, ids["spam"], SQUARE, cap1)
            assert worker_aware.takes_tasks(s, ids["expert"], SQUARE, cap1)
            strict = cap1.with_(worker_min_spread=3.5)  # accuracy ~0.8 is not enough either
            assert worker_aware.excluded_workers(s, SQUARE, strict) == {
                ids[n] for n in ("spam", "ok1", "ok2")
            }
            assert worker_aware.excluded_workers(s, SQUARE, cap1.with_(worker_min_spread=0.0)) == set()
            # with the default cap of 20 votes, the 20 best workers always keep getting tasks
            assert worker_aware.excluded_workers(s, SQUARE, strict.with_(max_votes=20)) == set()
        with p.session() as s:  # a second refit replaces the rows (no duplicates)
            worker_aware.refit_group(s, SQUARE, settings)
            n_rows = s.scalar(select(func.count()).select_from(schema.WorkerModelRow))
        assert n_rows == len(ids)
    finally:
        p.close()


def test_evidence_bar_counts_answers_not_float_sums(tmp_path: Path, db_url: str) -> None:
    """A refitted model's answers are its pseudo-counts less the prior's; on a population like 0.868 the
    float sum of 20 answers read 19.99999 and a worker at exactly `worker_min_evidence` escaped the cut."""
    settings = CrowdSettings(
        method="worker-aware", worker_min_spread=3.5, worker_min_evidence=20, max_votes=1
    )
    prior = WorkerModel.prior(0.87, 0.86, settings.worker_prior_strength)
    weak = WorkerModel(prior.sens_a, prior.sens_b + 10, prior.spec_a + 10, prior.spec_b)  # says no to all
    strong = WorkerModel(prior.sens_a + 10, prior.sens_b, prior.spec_a + 10, prior.spec_b)
    total = weak.sens_a + weak.sens_b + weak.spec_a + weak.spec_b - 2 * settings.worker_prior_strength
    assert total != 20  # the float sum this test is about
    with Project.init(tmp_path / "p", db=db_url) as p:
        p.add_synsets([SQUARE])
        with p.session() as s:
            ids = []
            for name, model in (("strong", strong), ("weak", weak)):
                w = schema.Worker(name=name)
                s.add(w)
                s.flush()
                ids.append(w.id)
                s.add(
                    schema.WorkerModelRow(
                        synset_group=SQUARE, worker_id=w.id, sens_a=model.sens_a, sens_b=model.sens_b,
                        spec_a=model.spec_a, spec_b=model.spec_b,
                    )
                )  # fmt: skip
        with p.session() as s:
            assert worker_aware.excluded_workers(s, SQUARE, settings) == {ids[1]}
            assert not worker_aware.takes_tasks(s, ids[1], SQUARE, settings)
            assert worker_aware.takes_tasks(s, ids[0], SQUARE, settings)


def test_gold_population_centres_the_prior_on_every_workers_gold() -> None:
    """`population="gold"`: the prior's centre is the crowd's pooled gold answers, not the pooled rates of
    the votes, which come mostly from the workers let vote (here two experts: ~0.97)."""
    gold = {"a": (8.0, 2.0, 1.0, 9.0), "b": (5.0, 5.0, 5.0, 5.0), "c": (6.0, 4.0, 4.0, 6.0)}
    assert gold_population(gold, (0.7, 0.7)) == pytest.approx((20.4 / 32, 21.4 / 32))
    assert gold_population({}, (0.7, 0.7)) == pytest.approx((0.7, 0.7))
    votes, _, _ = synthetic_votes(3, n_items=200, rates={"x1": (0.97, 0.97), "x2": (0.97, 0.97)})
    items, workers, labels = zip(*votes, strict=True)
    fitted = {}
    for population in ("group", "gold"):
        est = OnlineDawidSkene(population=population)  # type: ignore[arg-type]
        for worker, (gy, gn, by, bn) in gold.items():
            for truth_, label, n in (
                (True, True, gy),
                (True, False, gn),
                (False, True, by),
                (False, False, bn),
            ):
                for _ in range(int(n)):
                    est.observe_gold(worker, truth_, label, group="g")
        for item, worker, label in votes:
            est.observe(worker, item, label, group="g")
        est.refit("g")
        fitted[population] = est.worker_model("newcomer", "g")
    centre = gold_population(gold, (0.7, 0.7))
    assert fitted["gold"].sensitivity == pytest.approx(centre[0])
    assert fitted["gold"].specificity == pytest.approx(centre[1])
    assert fitted["group"].sensitivity > 0.85  # the voters' rates: a newcomer would be taken for an expert
    fit = fit_two_coin(
        list(items), list(workers), np.asarray(labels), gold, prior_good=0.5, start=(0.7, 0.7), strength=4,
        centre=centre,
    )  # fmt: skip
    assert fit.population == pytest.approx(centre)
    with pytest.raises(InputError, match="population"):
        OnlineDawidSkene(population="crowd")  # type: ignore[arg-type]


def test_worker_aware_settings_are_checked() -> None:
    assert CrowdSettings.from_mapping({"crowd_method": "worker-aware"}).method == "worker-aware"
    for key, value in (("crowd_worker_group", "planet"), ("crowd_worker_prior_good", "1.5")):
        with pytest.raises(InputError, match=key.removeprefix("crowd_")):
            CrowdSettings.from_mapping({key: value})


# ----- live, over HTTP ----------------------------------------------------------------------------------


def test_worker_aware_over_http_decides_every_image_and_learns_the_workers(tmp_path: Path) -> None:
    """A small campaign through the real API with `crowd_method = "worker-aware"`: nearly every image ends
    decided (an image can stay open when every worker still allowed to work has voted on it), the refit
    stored worker models, and accepted images are mostly good (the must-show figures come from
    bench/crowd_methods_http.py on larger campaigns)."""
    with Project.init(tmp_path / "p") as p:
        p.add_synsets([SQUARE])
        add_synthetic_candidates(p, [SQUARE], 160, precision=0.3, seed=4, render=False)
        settings = CrowdSettings(
            method="worker-aware", threshold=0.99, reject_threshold=0.01, grid_size=12, worker_min_spread=1.0
        )
        sim = simulate_over_http(p, workers=12, accuracy=0.85, spammers=0.2, seed=4, settings=settings)
        with p.session() as s:
            models = s.scalar(select(func.count()).select_from(schema.WorkerModelRow))
            group = s.get(schema.WorkerGroup, SQUARE)
    r = sim.report
    assert r.accepted + r.rejected >= 0.97 * r.images
    assert r.accepted > 0 and r.precision >= 0.9 and r.recall >= 0.8
    assert models and group is not None and 0.1 < group.prior_good < 0.6


def test_simulate_offline_compares_methods_over_seeds() -> None:
    from typer.testing import CliRunner

    from synsetforge.crowd.aggregation.cli import app

    runner = CliRunner()
    args = ["simulate", "--synsets", "1", "--images", "300", "--workers", "60", "--gold-min", "0.8"]
    result = runner.invoke(
        app, [*args, "--method", "worker-aware,fixed", "--seeds", "2", "--positive-rate", "0.1"]
    )
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert "worker-aware 0.99/0.001" in out and "majority of 5" in out and "dynamic consensus" not in out
    assert "per seed" in out and "min precision" in out and "10% good" in out
    bad = runner.invoke(app, [*args, "--method", "wisdom"])
    assert isinstance(bad.exception, InputError) and "--method" in str(bad.exception)
    gold = runner.invoke(
        app, [*args, "--method", "worker-aware", "--population", "gold", "--prior-strength", "20"]
    )
    assert gold.exit_code == 0, gold.output
    assert "prior gold x 20" in " ".join(gold.output.split())
    bad = runner.invoke(app, [*args, "--method", "worker-aware", "--population", "crowd"])
    assert isinstance(bad.exception, InputError) and "--population" in str(bad.exception)
