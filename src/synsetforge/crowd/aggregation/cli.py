"""Typer sub-app for the in-memory aggregation tools: simulate a crowd, aggregate a votes CSV.

Meant to be mounted under the crowd command group (e.g. `synsetforge crowd simulate`,
`synsetforge crowd votes FILE.csv`). No project store needed: both work on plain data. Errors are
`SynsetforgeError`s; the top-level CLI prints them as one line.
"""

from __future__ import annotations

import contextlib
import csv
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, cast

import numpy as np
import typer
from rich.console import Console

from synsetforge.cliopts import typer_app
from synsetforge.clitables import Table
from synsetforge.crowd.aggregation.dawid_skene import DawidSkene
from synsetforge.crowd.aggregation.dynamic_consensus import ConfidenceTable, DynamicConsensus
from synsetforge.crowd.aggregation.majority import MajorityVote
from synsetforge.errors import InputError, NotFoundError

app = typer_app(
    help="Aggregate crowd votes and simulate crowds (no project store needed).", no_args_is_help=True
)
console = Console(highlight=False)

_TRUE, _FALSE = {"1", "true", "yes", "y", "t"}, {"0", "false", "no", "n", "f"}


class Method(StrEnum):
    majority = "majority"
    dawid_skene = "dawid-skene"
    dynamic = "dynamic"


def _floats(text: str, name: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InputError(f"{name} must be comma-separated numbers, got {text!r}") from None


def _fig7(tables: dict[str, ConfidenceTable], names: list[str]) -> Table:
    out = Table(title="P(good | yes, no) per synset (the paper's Fig. 7)")
    out.add_column("yes", justify="right")
    out.add_column("no", justify="right")
    for n in names:
        out.add_column(n, justify="right")
    rows = [tables[n].to_rows(3) for n in names]
    for cells in zip(*rows, strict=True):
        out.add_row(str(cells[0]["yes"]), str(cells[0]["no"]), *(f"{c['confidence']:.3f}" for c in cells))
    return out


SIM_METHODS = ("dynamic", "fixed", "worker-aware")


def _methods(text: str) -> list[str]:
    wanted = [m.strip() for m in text.split(",") if m.strip()]
    if "all" in wanted:
        return list(SIM_METHODS)
    bad = [m for m in wanted if m not in SIM_METHODS]
    if bad or not wanted:
        raise InputError(
            f"--method must be 'all' or a comma-separated list of {list(SIM_METHODS)}, got {text!r}"
        )
    return [m for m in SIM_METHODS if m in wanted]


@app.command()
def simulate(
    synsets: Annotated[int, typer.Option(help="Number of synsets.")] = 4,
    images: Annotated[int, typer.Option(help="Candidate images per synset.")] = 2000,
    difficulties: Annotated[
        str, typer.Option(help="Comma-separated synset difficulties in [0, 1), cycled over the synsets.")
    ] = "0,0.1,0.15,0.2",
    positive_rate: Annotated[float, typer.Option(help="Share of good candidates.")] = 0.4,
    workers: Annotated[int, typer.Option(help="Worker pool size.")] = 300,
    mean_accuracy: Annotated[float, typer.Option(help="Mean accuracy of honest workers.")] = 0.8,
    concentration: Annotated[
        float, typer.Option(help="Beta concentration of accuracies (0: all equal).")
    ] = 10.0,
    spammers: Annotated[float, typer.Option(help="Share of spammers (half always-yes, half random).")] = 0.1,
    adversaries: Annotated[float, typer.Option(help="Share of adversaries (flip their answers).")] = 0.0,
    gold_questions: Annotated[int, typer.Option(help="Gold questions per worker (0: no screening).")] = 20,
    gold_min: Annotated[float, typer.Option(help="Share of gold answers a worker must get right.")] = 0.95,
    threshold: Annotated[float, typer.Option(help="Dynamic consensus confidence threshold.")] = 0.99,
    initial_size: Annotated[int, typer.Option(help="Initial-subset images per synset.")] = 50,
    fixed_votes: Annotated[int, typer.Option(help="Votes per image of the fixed-majority baseline.")] = 5,
    method: Annotated[
        str, typer.Option(help="all, or a comma-separated list of dynamic, fixed, worker-aware.")
    ] = "all",
    accept: Annotated[
        float | None, typer.Option(help="Worker-aware: accept at this posterior (default: --threshold).")
    ] = None,
    reject: Annotated[float, typer.Option(help="Worker-aware: reject at this posterior.")] = 0.001,
    prior_strength: Annotated[
        float, typer.Option(help="Worker-aware: pseudo-votes of each worker's Beta prior.")
    ] = 4.0,
    population: Annotated[
        str,
        typer.Option(
            help="Worker-aware: centre of the workers' prior: group (pooled rates of the votes), gold (pooled "
            "gold answers of every worker) or uniform (0.5)."
        ),
    ] = "group",
    max_votes: Annotated[int, typer.Option(help="Worker-aware: vote cap per image.")] = 20,
    min_spread: Annotated[
        float,
        typer.Option(
            help="Worker-aware: after a refit, workers whose yes and no weights differ by less (nats) get "
            "no more tasks in the synset (0: keep everyone; 3.5 ~ accuracy 0.85)."
        ),
    ] = 3.5,
    seeds: Annotated[int, typer.Option(help="Run seeds seed .. seed+N-1 and report each and the mean.")] = 1,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """Compare dynamic consensus, a fixed-size majority vote and worker-aware decisions on a simulated crowd."""
    from synsetforge.crowd.aggregation.online_ds import POPULATIONS, OnlineDawidSkene, Population
    from synsetforge.crowd.simulate import (
        GoldPolicy,
        SimulationReport,
        make_synset,
        make_worker_pool,
        simulate_dynamic_consensus,
        simulate_fixed_majority,
        simulate_worker_aware,
    )

    diffs = _floats(difficulties, "--difficulties") or [0.0]
    if synsets < 1:
        raise InputError(f"--synsets must be >= 1, got {synsets}")
    if seeds < 1:
        raise InputError(f"--seeds must be >= 1, got {seeds}")
    chosen = _methods(method)
    if population not in POPULATIONS:
        raise InputError(f"--population must be one of {list(POPULATIONS)}, got {population!r}")
    wa_accept = threshold if accept is None else accept
    gold = GoldPolicy(gold_questions, gold_min) if gold_questions > 0 else None
    names = {
        "dynamic": f"dynamic consensus {threshold:g}",
        "fixed": f"majority of {fixed_votes}",
        "worker-aware": f"worker-aware {wa_accept:g}/{reject:g}"
        + (f", spread >= {min_spread:g}" if min_spread else "")
        + (
            f", prior {population} x {prior_strength:g}"
            if (population, prior_strength) != ("group", 4.0)
            else ""
        ),
    }
    runs: dict[str, list[SimulationReport]] = {m: [] for m in chosen}
    world: list[Any] = []
    for k in range(seeds):
        sd = seed + k
        pool = make_worker_pool(
            workers,
            mean_accuracy=mean_accuracy,
            concentration=concentration or None,
            spammer_fraction=spammers,
            adversary_fraction=adversaries,
            seed=sd,
        )
        world = [
            make_synset(
                f"s{i}", images, positive_rate=positive_rate, difficulty=diffs[i % len(diffs)], seed=sd + i
            )
            for i in range(synsets)
        ]
        if "dynamic" in runs:
            runs["dynamic"].append(
                simulate_dynamic_consensus(
                    world, pool, consensus=DynamicConsensus(threshold), initial_size=initial_size, gold=gold,
                    seed=sd,
                )
            )  # fmt: skip
        if "fixed" in runs:
            runs["fixed"].append(
                simulate_fixed_majority(world, pool, votes_per_image=fixed_votes, gold=gold, seed=sd)
            )
        if "worker-aware" in runs:
            est = OnlineDawidSkene(
                accept=wa_accept,
                reject=reject,
                prior_strength=prior_strength,
                max_votes=max_votes,
                population=cast(Population, population),  # checked above
            )
            runs["worker-aware"].append(
                simulate_worker_aware(
                    world, pool, estimator=est, gold=gold, min_spread=min_spread or None, seed=sd
                )
            )

    screen = (
        f"gold screening {gold_questions} questions, >= {gold_min:.0%} right" if gold else "no gold screening"
    )
    console.print(
        f"crowd: {workers} workers, mean accuracy {mean_accuracy:g} (Beta concentration {concentration:g}), "
        f"{spammers:.0%} spammers, {adversaries:.0%} adversaries; {screen}; {synsets} synsets x {images} "
        f"images, {positive_rate:.0%} good, difficulties {difficulties}; seeds {seed}..{seed + seeds - 1}"
    )
    first = next(iter(runs.values()))[0]
    title = f"{synsets} synsets x {images} images, {workers} workers ({first.blocked_workers} blocked)"
    if seeds > 1:
        title = f"mean over {seeds} seeds: {synsets} synsets x {images} images, {workers} workers"
    summary = Table(title=title)
    cols = ["method", "precision", "recall", "undecided", "votes/decided image", "votes", "gold votes"]
    if seeds > 1:
        cols[1:1] = ["min precision", "min recall"]
        cols.insert(cols.index("votes/decided image") + 1, "max votes/decided")
    for col in cols:
        summary.add_column(col, justify="left" if col == "method" else "right")
    for m, reports in runs.items():
        prec = [r.precision for r in reports]
        rec = [r.recall for r in reports]
        vpd = [r.votes_per_decided_image for r in reports]
        cells = [
            names[m],
            f"{np.nanmean(prec):.2%}",
            f"{np.nanmean(rec):.2%}",
            f"{np.mean([r.undecided for r in reports]):g}",
            f"{np.nanmean(vpd):.2f}",
            f"{np.mean([r.votes for r in reports]):g}",
            f"{np.mean([r.gold_votes for r in reports]):g}",
        ]
        if seeds > 1:
            cells[1:1] = [f"{np.nanmin(prec):.2%}", f"{np.nanmin(rec):.2%}"]
            cells.insert(cols.index("max votes/decided"), f"{np.nanmax(vpd):.2f}")
        summary.add_row(*cells)
    console.print(summary)
    if seeds > 1:
        per_seed = Table(title="per seed: precision / recall / votes per decided image")
        per_seed.add_column("seed", justify="right")
        for m in runs:
            per_seed.add_column(names[m], justify="right")
        for k in range(seeds):
            per_seed.add_row(
                str(seed + k),
                *(
                    f"{r.precision:.2%} / {r.recall:.2%} / {r.votes_per_decided_image:.2f}"
                    for r in (runs[m][k] for m in runs)
                ),
            )
        console.print(per_seed)
        return
    if "dynamic" not in runs:
        return
    dynamic = runs["dynamic"][0]
    per = Table(title="dynamic consensus per synset")
    for col in ("synset", "difficulty", "precision", "votes/decided image", "undecided"):
        per.add_column(col, justify="left" if col == "synset" else "right")
    for s in world:
        row = dynamic.per_synset[s.synset]
        per.add_row(
            s.synset,
            f"{s.difficulty:g}",
            f"{row['precision']:.2%}",
            f"{row['votes_per_decided_image']:.2f}",
            str(int(row["undecided"])),
        )
    console.print(per)
    console.print(_fig7(dynamic.tables, [s.synset for s in world]))
    if dynamic.not_easily_illustrated:
        console.print(f"not easily illustrated: {', '.join(dynamic.not_easily_illustrated)}")


def _read_votes(path: Path, synset_column: str | None, order_column: str | None) -> dict[str, Any]:
    if not path.is_file():
        raise NotFoundError(f"votes file not found: {path}")
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        wanted = ["task", "worker", "label"] + [c for c in (synset_column, order_column) if c]
        missing = [c for c in wanted if c not in (reader.fieldnames or [])]
        if missing:
            raise InputError(f"{path}: missing column(s) {missing}; has {reader.fieldnames}")
        cols: dict[str, list[str]] = {c: [] for c in wanted}
        for row in reader:
            for c in wanted:
                cols[c].append(row[c])
    labels = cols["label"]
    lowered = {x.strip().lower() for x in labels}
    data: dict[str, Any] = {k: np.asarray(v) for k, v in cols.items()}
    if lowered <= _TRUE | _FALSE:
        data["label"] = np.asarray([x.strip().lower() in _TRUE for x in labels], dtype=bool)
    if order_column:
        with contextlib.suppress(ValueError):  # else sorted as text (e.g. ISO timestamps)
            data[order_column] = np.asarray([float(x) for x in cols[order_column]])
    return data


@app.command()
def votes(
    path: Annotated[
        Path, typer.Argument(help="CSV with columns task, worker, label (yes/no, 1/0 or classes).")
    ],
    method: Annotated[Method, typer.Option(help="Aggregation method.")] = Method.dawid_skene,
    synset_column: Annotated[
        str | None, typer.Option(help="Column with each vote's synset (needed for --method dynamic).")
    ] = None,
    order_column: Annotated[str | None, typer.Option(help="Column giving the votes' time order.")] = None,
    threshold: Annotated[float, typer.Option(help="Dynamic consensus threshold.")] = 0.99,
    out: Annotated[Path | None, typer.Option(help="Write one row per task to this CSV.")] = None,
) -> None:
    """Aggregate a votes CSV into one decision per task; print a summary, optionally write the rows."""
    data = _read_votes(path, synset_column, order_column)
    table = {k: data[k] for k in ("task", "worker", "label")}
    rows: list[dict[str, Any]]
    if method is Method.dynamic:
        if not synset_column:
            raise InputError("--method dynamic needs --synset-column")
        order = data[order_column] if order_column else None
        res = DynamicConsensus(threshold).fit_predict(table, data[synset_column], order=order)
        rows = res.to_rows()
        console.print(
            f"{len(rows)} tasks in {len(res.tables) + len(res.untabled)} synsets: "
            + ", ".join(f"{d} {res.count(d)}" for d in ("accept", "reject", "need_more", "undecided"))
        )
        if res.not_easily_illustrated:
            console.print(f"not easily illustrated: {', '.join(map(str, res.not_easily_illustrated))}")
    else:
        est = MajorityVote() if method is Method.majority else DawidSkene()
        agg = est.fit_predict(table)
        rows = agg.to_rows()
        counts = {str(v): int((agg.labels == v).sum()) for v in agg.label_values.tolist()}
        console.print(
            f"{len(rows)} tasks, {agg.workers.shape[0]} workers, {method.value}: "
            + ", ".join(f"{k} {v}" for k, v in counts.items())
            + f"; mean confidence {float(np.mean(agg.confidence)):.3f}"
        )
        worst = np.argsort(agg.worker_accuracy)[:5]
        console.print(
            "least accurate workers: "
            + ", ".join(f"{agg.workers[i]} {agg.worker_accuracy[i]:.2f}" for i in worst.tolist())
        )
    if out is not None:
        with out.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        console.print(f"wrote {len(rows)} rows to {out}")
