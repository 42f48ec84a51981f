"""Benchmark: parse + score an ILSVRC-size localization submission, against a plain-Python reference.

Synthesises N test images x 5 guesses with boxes for C classes, writes the submission in both formats
(Kaggle CSV and classic devkit text), the ground truth (LOC_val_solution.csv style) and a random matrix of
LCA heights to a temporary directory, then times

* synsetforge: parse the submission + `metrics.score` with every metric (goal: < 2 s for 100,000 images);
* the reference: loops over lines and images, no numpy, on the same files.

It checks that both agree exactly (errors, per-image vectors, per-class accuracies, confused pairs) and
prints both times, their ratio and the peak RSS.

    python bench/evaluate.py                     # 100,000 images, 1,000 classes
    python bench/evaluate.py --images 5000       # quick run
"""

from __future__ import annotations

import argparse
import math
import resource
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

from synsetforge.benchmark.data import ClassList, GroundTruth, Submission
from synsetforge.benchmark.formats import (
    format_classic_submission,
    format_ground_truth_csv,
    format_kaggle_submission,
    parse_classic_submission,
    parse_ground_truth_csv,
    parse_kaggle_submission,
)
from synsetforge.benchmark.metrics import Scores, score

Box = tuple[float, float, float, float]
Guesses = list[list[tuple[int, Box]]]


# -- synthetic data ------------------------------------------------------------------------------------


def synthesise(
    n_images: int, n_classes: int, seed: int
) -> tuple[ClassList, GroundTruth, Submission, np.ndarray]:
    """Ground truth with 1-4 boxes per image and a submission that is right ~60% of the time."""
    rng = np.random.default_rng(seed)
    classes = ClassList(tuple(f"n{10_000_000 + i:08d}" for i in range(n_classes)))
    image_ids = tuple(f"ILSVRC2012_test_{i + 1:08d}" for i in range(n_images))
    truth = rng.integers(0, n_classes, n_images)
    n_boxes = rng.integers(1, 5, n_images)
    offsets = np.concatenate([[0], np.cumsum(n_boxes)])
    x1 = rng.integers(0, 300, offsets[-1])
    y1 = rng.integers(0, 300, offsets[-1])
    w = rng.integers(10, 200, offsets[-1])
    h = rng.integers(10, 200, offsets[-1])
    gt_boxes = np.stack([x1, y1, x1 + w, y1 + h], axis=1).astype(np.float64)
    gt = GroundTruth(image_ids, truth, n_classes, gt_boxes, offsets)

    labels = rng.integers(0, n_classes, (n_images, 5))
    labels[:, 1] = labels[:, 0]  # duplicate guesses happen
    hit = rng.random(n_images) < 0.6
    labels[hit, rng.integers(0, 5, n_images)[hit]] = truth[hit]
    n_guesses = np.where(rng.random(n_images) < 0.1, rng.integers(0, 5, n_images), 5)
    labels[np.arange(5)[None, :] >= n_guesses[:, None]] = -1
    # boxes: a jittered copy of one of the image's ground-truth boxes, so IoU spreads around 0.5
    pick = offsets[:-1, None] + rng.integers(0, 1 << 30, (n_images, 5)) % n_boxes[:, None]
    base = gt_boxes[pick]
    size = np.concatenate([base[..., 2:] - base[..., :2]] * 2, axis=-1)
    boxes = np.rint(base + rng.uniform(-0.35, 0.35, base.shape) * size).clip(0, None)
    boxes[..., 2:] = np.maximum(boxes[..., 2:], boxes[..., :2])
    boxes[labels < 0] = np.nan
    sub = Submission(image_ids, labels, boxes)

    heights = rng.integers(1, 19, (n_classes, n_classes))
    cost = np.triu(heights, 1) + np.triu(heights, 1).T
    return classes, gt, sub, cost


# -- plain-Python reference ------------------------------------------------------------------------------


def ref_lines(path: Path) -> list[str]:
    return path.read_bytes().decode("utf-8-sig").splitlines()


def ref_guess(tokens: list[str], k: int, cls: int) -> tuple[int, Box]:
    x1, y1, x2, y2 = (float(t) for t in tokens[k + 1 : k + 5])
    for v in (x1, y1, x2, y2):
        if not math.isfinite(v) or v < 0:
            raise ValueError(f"bad coordinate {v}")
    if x1 > x2 or y1 > y2:
        raise ValueError("inverted box")
    return cls, (x1, y1, x2, y2)


def ref_parse_kaggle(path: Path, wnids: tuple[str, ...], image_ids: tuple[str, ...]) -> Guesses:
    index = {w: i for i, w in enumerate(wnids)}
    row = {image: i for i, image in enumerate(image_ids)}
    out: list[list[tuple[int, Box]] | None] = [None] * len(image_ids)
    lines = ref_lines(path)
    if lines[0] != "ImageId,PredictionString":
        raise ValueError("header")
    for line in lines[1:]:
        image, pred = line.split(",", 1)
        tokens = pred.split()
        if len(tokens) % 5 or len(tokens) > 25:
            raise ValueError("fields")
        guesses = [ref_guess(tokens, k, index[tokens[k]]) for k in range(0, len(tokens), 5)]
        if out[row[image]] is not None:
            raise ValueError("duplicate")
        out[row[image]] = guesses
    if any(g is None for g in out):
        raise ValueError("missing")
    return [g or [] for g in out]


def ref_parse_classic(path: Path, n_classes: int, image_ids: tuple[str, ...]) -> Guesses:
    lines = ref_lines(path)
    if len(lines) != len(image_ids):
        raise ValueError("line count")
    row = {image: i for i, image in enumerate(image_ids)}
    out: Guesses = [[] for _ in image_ids]
    for image, line in zip(sorted(image_ids), lines, strict=True):
        tokens = line.split()
        if len(tokens) % 5 or len(tokens) > 25:
            raise ValueError("fields")
        for k in range(0, len(tokens), 5):
            cls = int(tokens[k])
            if not 1 <= cls <= n_classes:
                raise ValueError("class id")
            out[row[image]].append(ref_guess(tokens, k, cls - 1))
    return out


def ref_parse_ground_truth(
    path: Path, wnids: tuple[str, ...]
) -> tuple[list[str], list[int], list[list[Box]]]:
    index = {w: i for i, w in enumerate(wnids)}
    rows = []
    for line in ref_lines(path)[1:]:
        image, pred = line.split(",", 1)
        tokens = pred.split()
        boxes = [ref_guess(tokens, k, index[tokens[k]]) for k in range(0, len(tokens), 5)]
        rows.append((image, boxes[0][0], [b for _, b in boxes]))
    rows.sort()
    return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]


def ref_iou(a: Box, b: Box) -> float:
    iw = min(a[2], b[2]) - max(a[0], b[0]) + 1
    ih = min(a[3], b[3]) - max(a[1], b[1]) + 1
    inter = iw * ih if iw > 0 and ih > 0 else 0.0
    union = (a[2] - a[0] + 1) * (a[3] - a[1] + 1) + (b[2] - b[0] + 1) * (b[3] - b[1] + 1) - inter
    return inter / union


def ref_score(
    guesses: Guesses, truth: list[int], gt_boxes: list[list[Box]], cost: list[list[int]], n_classes: int
) -> dict[str, object]:
    max_height = max(max(r) for r in cost)
    top1, top5, hier, loc = [], [], [], []
    for g, t, boxes in zip(guesses, truth, gt_boxes, strict=True):
        labels = [c for c, _ in g]
        top1.append(bool(labels) and labels[0] == t)
        top5.append(t in labels[:5])
        hier.append(float(min([cost[c][t] for c in labels] + [max_height] * (5 - len(labels)))))
        loc.append(any(c == t and any(ref_iou(b, gb) >= 0.5 for gb in boxes) for c, b in g))
    n = len(truth)
    images = Counter(truth)

    def per_class(correct: list[bool]) -> list[float]:
        hits = Counter(t for t, ok in zip(truth, correct, strict=True) if ok)
        return [hits[c] / images[c] if images[c] else math.nan for c in range(n_classes)]

    confused = Counter((t, g[0][0]) for g, t in zip(guesses, truth, strict=True) if g and g[0][0] != t)
    return {
        "top1_correct": top1,
        "top5_correct": top5,
        "localization_correct": loc,
        "hierarchical_cost": hier,
        "top1_error": (n - sum(top1)) / n,
        "top5_error": (n - sum(top5)) / n,
        "localization_error": (n - sum(loc)) / n,
        "hierarchical_error_raw": sum(hier) / n,
        "hierarchical_error_normalized": sum(hier) / n / max_height,
        "per_class_top1_accuracy": per_class(top1),
        "per_class_top5_accuracy": per_class(top5),
        "per_class_localization_accuracy": per_class(loc),
        "confused_pairs": sorted(confused.items(), key=lambda kv: (-kv[1], kv[0]))[:10],
    }


def disagreements(fast: Scores, ref: dict[str, object]) -> list[str]:
    bad = []
    for name, expected in ref.items():
        got = getattr(fast, name)
        if name == "confused_pairs":
            got = [((p.truth, p.guess), p.count) for p in got]
            same = got == expected
        elif isinstance(expected, list):
            same = np.array_equal(
                np.asarray(got, dtype=np.float64), np.asarray(expected, dtype=np.float64), equal_nan=True
            )
        else:
            same = got == expected
        if not same:
            bad.append(name)
    return bad


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=100_000)
    ap.add_argument("--classes", type=int, default=1_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-reference", action="store_true", help="time synsetforge only")
    args = ap.parse_args()

    classes, gt, sub, cost = synthesise(args.images, args.classes, args.seed)
    with tempfile.TemporaryDirectory(prefix="synsetforge-bench-") as tmp:
        d = Path(tmp)
        kaggle, classic, solution = d / "submission.csv", d / "submission.txt", d / "LOC_val_solution.csv"
        kaggle.write_bytes(format_kaggle_submission(sub, classes, boxes=True))
        classic.write_bytes(format_classic_submission(sub, boxes=True))
        solution.write_bytes(format_ground_truth_csv(gt, classes))
        mb = 1024 * 1024
        print(
            f"synthetic: {args.images:,} images x up to 5 guesses with boxes, {args.classes:,} classes, "
            f"{len(gt.boxes) / args.images:.2f} ground-truth boxes/image"
        )
        sizes = [p.stat().st_size / mb for p in (kaggle, classic, solution)]
        print(f"files: kaggle {sizes[0]:.1f} MB, classic {sizes[1]:.1f} MB, ground truth {sizes[2]:.1f} MB")

        t = time.perf_counter()
        truth = parse_ground_truth_csv(solution, classes)
        t_gt = time.perf_counter() - t
        results: dict[str, tuple[float, float, Scores]] = {}
        for name, path in (("kaggle", kaggle), ("classic", classic)):
            t0 = time.perf_counter()
            if name == "kaggle":
                parsed = parse_kaggle_submission(path, classes, truth.image_ids, boxes=True)
            else:
                parsed = parse_classic_submission(path, classes, truth.image_ids, boxes=True)
            t1 = time.perf_counter()
            scores = score(parsed, truth, cost=cost)
            t2 = time.perf_counter()
            results[name] = (t1 - t0, t2 - t1, scores)
        rss_fast = peak_rss_mb()
        s = results["kaggle"][2]
        print(f"ground truth parse: {t_gt:.3f} s (once per challenge, not counted below)")
        print(
            f"scores: top-1 {s.top1_error:.4f}  top-5 {s.top5_error:.4f}  hierarchical raw "
            f"{s.hierarchical_error_raw:.4f} / normalized {s.hierarchical_error_normalized:.4f}  "
            f"localization {s.localization_error:.4f}"
        )
        for name, (tp, ts, _) in results.items():
            verdict = "ok" if tp + ts < 2.0 else "over the 2 s goal"
            print(f"synsetforge {name:7s}: parse {tp:.3f} s + score {ts:.3f} s = {tp + ts:.3f} s ({verdict})")
        print(f"peak RSS after synsetforge: {rss_fast:.0f} MB")
        if args.skip_reference:
            return

        cost_rows = cost.tolist()
        t = time.perf_counter()
        ref_ids, ref_truth, ref_boxes = ref_parse_ground_truth(solution, classes.wnids)
        t_ref_gt = time.perf_counter() - t
        assert tuple(ref_ids) == truth.image_ids
        print(f"reference ground truth parse: {t_ref_gt:.3f} s (ratio {t_ref_gt / t_gt:.1f}x)")
        all_agree = True
        for name, path in (("kaggle", kaggle), ("classic", classic)):
            t0 = time.perf_counter()
            if name == "kaggle":
                guesses = ref_parse_kaggle(path, classes.wnids, truth.image_ids)
            else:
                guesses = ref_parse_classic(path, len(classes), truth.image_ids)
            t1 = time.perf_counter()
            ref = ref_score(guesses, ref_truth, ref_boxes, cost_rows, len(classes))
            t2 = time.perf_counter()
            rp, rs = t1 - t0, t2 - t1
            tp, ts, fast = results[name]
            bad = disagreements(fast, ref)
            all_agree &= not bad
            print(
                f"reference   {name:7s}: parse {rp:.3f} s + score {rs:.3f} s = {rp + rs:.3f} s; "
                f"ratio reference/synsetforge: total {(rp + rs) / (tp + ts):.1f}x "
                f"(parse {rp / tp:.1f}x, score {rs / ts:.1f}x); "
                f"agree exactly: {'yes' if not bad else 'NO: ' + ', '.join(bad)}"
            )
        print(f"peak RSS after reference: {peak_rss_mb():.0f} MB")
        if not all_agree:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
