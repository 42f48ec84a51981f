"""`synsetforge benchmark ...`: score ILSVRC-style submission files and compare two of them.

Thin layer over `formats`, `metrics` and `leaderboard`; works on plain files, no project store needed.
Errors are `SynsetforgeError`s; the top-level CLI prints them as one line.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console

from synsetforge.benchmark.data import ClassList, GroundTruth
from synsetforge.benchmark.formats import (
    parse_exclusion_list,
    parse_ground_truth,
    parse_image_ids,
    parse_submission,
    parse_synset_mapping,
)
from synsetforge.benchmark.leaderboard import bootstrap_interval, paired_test
from synsetforge.benchmark.metrics import Scores, score
from synsetforge.cliopts import typer_app
from synsetforge.clitables import Table
from synsetforge.errors import InputError, NotFoundError

app = typer_app(
    help="Score ILSVRC-style submissions (classic devkit or Kaggle CSV files).", no_args_is_help=True
)


class Format(StrEnum):
    auto = "auto"
    classic = "classic"
    kaggle = "kaggle"


class Metric(StrEnum):
    top1 = "top1"
    top5 = "top5"
    localization = "localization"
    hierarchical = "hierarchical"


class Method(StrEnum):
    mcnemar = "mcnemar"
    bootstrap = "bootstrap"


TruthOpt = Annotated[
    Path,
    typer.Option(
        "--truth",
        help="LOC_val_solution.csv, or one class id per line (e.g. ILSVRC2012_validation_ground_truth.txt).",
    ),
]
ClassesOpt = Annotated[
    Path, typer.Option("--classes", help="LOC_synset_mapping.txt: class order = ILSVRC2012_ID.")
]
ImagesOpt = Annotated[
    Path | None,
    typer.Option(
        "--images", help="Test image ids, one per line (needed when --truth is one class id per line)."
    ),
]
BoxesOpt = Annotated[
    bool, typer.Option("--boxes/--no-boxes", help="Each guess is followed by xmin ymin xmax ymax.")
]
FormatOpt = Annotated[Format, typer.Option("--format", help="Submission format (auto: by the CSV header).")]
CostOpt = Annotated[
    Path | None, typer.Option("--cost", help=".npy class x class matrix of LCA heights (hierarchical error).")
]
MaxHeightOpt = Annotated[
    float | None,
    typer.Option(
        "--max-height",
        help="Largest possible height, the 2011 divisor (default: WordNet 3.0's height when every class is "
        "a WordNet synset, as challenges use; else the largest cost).",
    ),
]
ExcludeOpt = Annotated[
    Path | None, typer.Option("--exclude", help="Images to leave out: ids or 1-based file-order indices.")
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of the bootstrap resampling.")]


def _load(
    truth: Path, classes: Path, images: Path | None, exclude: Path | None
) -> tuple[ClassList, GroundTruth, np.ndarray | None]:
    class_list = parse_synset_mapping(classes)
    gt = parse_ground_truth(truth, class_list, None if images is None else parse_image_ids(images))
    mask = None if exclude is None else parse_exclusion_list(exclude, gt.image_ids)
    return class_list, gt, mask


def _cost(path: Path | None) -> np.ndarray | None:
    if path is None:
        return None
    if not path.exists():
        raise NotFoundError(f"cost matrix: no such file: {path}")
    try:
        return np.asarray(np.load(path, allow_pickle=False))
    except (ValueError, OSError) as e:
        raise InputError(f"cost matrix: {path} is not a .npy array ({e})") from None


def _max_height(given: float | None, cost: np.ndarray | None, classes: ClassList) -> tuple[float | None, str]:
    """The largest possible height the 2011 rule divides by, and where it comes from (printed with it).

    Challenges divide by the height of their project's hierarchy; a file scored here has only class ids, so
    WordNet 3.0 (whose synsets they are, as in ILSVRC) gives that height when it holds every class.
    """
    if cost is None:
        return given, ""
    if given is not None:
        return given, "--max-height"
    from synsetforge.hierarchy import load_wordnet

    wordnet = load_wordnet()
    if not all(w in wordnet for w in classes.wnids):
        return None, "the largest cost: not every class is a WordNet 3.0 synset; --max-height sets it"
    try:
        top = float(np.max(cost)) if cost.size else 0.0
    except (TypeError, ValueError):
        top = 0.0  # score() reports what is wrong with the matrix
    return max(float(wordnet.max_height), top), "the height of WordNet 3.0, as challenges divide by"


def _per_image(s: Scores, metric: Metric) -> np.ndarray:
    """Per-image loss for the metric: 1 = wrong for the flat ones, the LCA height for the hierarchical one."""
    if metric is Metric.top1:
        return ~s.top1_correct
    if metric is Metric.top5:
        return ~s.top5_correct
    if metric is Metric.localization:
        if s.localization_correct is None:
            raise InputError("localization needs boxes in the submission (--boxes) and in the ground truth")
        return ~s.localization_correct
    if s.hierarchical_cost is None:
        raise InputError("the hierarchical error needs --cost")
    return s.hierarchical_cost


def _available(s: Scores) -> list[Metric]:
    out = [Metric.top1, Metric.top5]
    if s.hierarchical_cost is not None:
        out.append(Metric.hierarchical)
    if s.localization_correct is not None:
        out.append(Metric.localization)
    return out


@app.command("score")
def score_command(
    submission: Annotated[Path, typer.Argument(help="The submission file.")],
    truth: TruthOpt,
    classes: ClassesOpt,
    images: ImagesOpt = None,
    boxes: BoxesOpt = False,
    fmt: FormatOpt = Format.auto,
    cost: CostOpt = None,
    max_height: MaxHeightOpt = None,
    exclude: ExcludeOpt = None,
    seed: SeedOpt = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Print top-1/top-5 (and hierarchical, localization) error with 95% bootstrap intervals."""
    class_list, gt, mask = _load(truth, classes, images, exclude)
    sub = parse_submission(submission, class_list, gt.image_ids, boxes=boxes, format=fmt.value)
    matrix = _cost(cost)
    height, height_from = _max_height(max_height, matrix, class_list)
    s = score(sub, gt, cost=matrix, max_height=height, exclude=mask)
    intervals = {m: bootstrap_interval(_per_image(s, m), seed=seed) for m in _available(s)}
    confused = [
        {"truth": class_list.wnids[p.truth], "guess": class_list.wnids[p.guess], "count": p.count}
        for p in s.confused_pairs
    ]
    if as_json:
        out: dict[str, Any] = s.summary()
        out["intervals_95"] = {m.value: [iv.low, iv.high] for m, iv in intervals.items()}
        if s.hierarchy_max_height is not None:
            out["hierarchy_max_height_from"] = height_from
        out["confused_pairs"] = confused
        typer.echo(json.dumps(out, indent=2))
        return
    console = Console(highlight=False)
    table = Table(title=f"{submission.name}: {s.n_images:,} images ({s.n_excluded:,} excluded)")
    table.add_column("metric")
    table.add_column("error", justify="right")
    table.add_column("95% interval", justify="right")
    names = {
        Metric.top1: "top-1",
        Metric.top5: "top-5",
        Metric.localization: "localization",
        Metric.hierarchical: "hierarchical (mean LCA height)",
    }
    for m, iv in intervals.items():
        table.add_row(names[m], f"{iv.estimate:.4f}", f"{iv.low:.4f} - {iv.high:.4f}")
        if m is Metric.hierarchical and s.hierarchy_max_height:
            h = s.hierarchy_max_height
            interval = f"{iv.low / h:.4f} - {iv.high / h:.4f}"
            table.add_row(
                f"hierarchical / max height {h:g} ({height_from})", f"{iv.estimate / h:.4f}", interval
            )
    console.print(table)
    if confused:
        pairs = Table(title="most confused (truth -> top-1 guess)")
        pairs.add_column("truth")
        pairs.add_column("guess")
        pairs.add_column("images", justify="right")
        for p in confused:
            pairs.add_row(str(p["truth"]), str(p["guess"]), str(p["count"]))
        console.print(pairs)


@app.command("compare")
def compare_command(
    a: Annotated[Path, typer.Argument(help="Submission A.")],
    b: Annotated[Path, typer.Argument(help="Submission B.")],
    truth: TruthOpt,
    classes: ClassesOpt,
    images: ImagesOpt = None,
    boxes: BoxesOpt = False,
    fmt: FormatOpt = Format.auto,
    cost: CostOpt = None,
    max_height: MaxHeightOpt = None,
    exclude: ExcludeOpt = None,
    metric: Annotated[Metric, typer.Option("--metric", help="Which error to compare.")] = Metric.top5,
    method: Annotated[
        Method, typer.Option("--method", help="mcnemar (exact, flat metrics) or bootstrap (any metric).")
    ] = Method.mcnemar,
    seed: SeedOpt = 0,
) -> None:
    """Paired test of two submissions on the same images: errors, difference (A - B) and p-value."""
    class_list, gt, mask = _load(truth, classes, images, exclude)
    matrix = _cost(cost)
    max_height, _ = _max_height(max_height, matrix, class_list)
    losses = []
    for path in (a, b):
        sub = parse_submission(path, class_list, gt.image_ids, boxes=boxes, format=fmt.value)
        losses.append(_per_image(score(sub, gt, cost=matrix, max_height=max_height, exclude=mask), metric))
    if metric is Metric.hierarchical and method is Method.mcnemar:
        method = Method.bootstrap  # McNemar needs right/wrong per image
    r = paired_test(losses[0], losses[1], method=method.value, seed=seed)
    console = Console(highlight=False)
    table = Table(title=f"{metric.value} error, {len(losses[0]):,} images")
    table.add_column("entry")
    table.add_column("error", justify="right")
    table.add_column("95% interval", justify="right")
    for name, v in ((a.name, losses[0]), (b.name, losses[1])):
        iv = bootstrap_interval(v, seed=seed)
        table.add_row(name, f"{iv.estimate:.4f}", f"{iv.low:.4f} - {iv.high:.4f}")
    console.print(table)
    detail = f" (A only wrong on {r.a_only:,}, B only on {r.b_only:,})" if r.a_only is not None else ""
    console.print(f"difference A - B: {r.difference:+.4f}{detail}")
    console.print(f"{r.method} p-value: {r.p_value:.4g}")
