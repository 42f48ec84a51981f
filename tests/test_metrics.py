"""ILSVRC metrics: hand-computed cases, a loop reference on random data, and agreement with torchmetrics."""

from __future__ import annotations

import numpy as np
import pytest

from synsetforge.benchmark.data import GroundTruth, Submission
from synsetforge.benchmark.metrics import (
    ConfusedPair,
    box_iou,
    confused_pairs,
    hierarchical_costs,
    score,
    top_k_correct,
)
from synsetforge.errors import InputError

IDS = tuple(f"img{i}" for i in range(6))
#            img0  img1  img2  img3  img4  img5
TRUTH = [0, 1, 2, 3, 0, 2]
LABELS = [
    [0, 1, 2, 3, 1],  # right at once
    [2, 2, 1, -1, -1],  # duplicates, right third, only 3 guesses
    [-1, -1, -1, -1, -1],  # no guess at all
    [0, 1, 2, 0, 1],  # five wrong guesses
    [1, 0, -1, -1, -1],  # right second
    [3, 1, -1, -1, -1],  # wrong, with costs 4 and 2
]
# LCA heights for 5 classes (class 4 has no image): 0 on the diagonal, largest 4
COST = np.array(
    [
        [0, 1, 2, 3, 4],
        [1, 0, 2, 3, 4],
        [2, 2, 0, 3, 4],
        [3, 3, 4, 0, 4],
        [4, 4, 4, 4, 0],
    ]
)


def make(
    labels: list[list[int]] = LABELS, truth: list[int] = TRUTH, n_classes: int = 5
) -> tuple[Submission, GroundTruth]:
    ids = IDS[: len(truth)]
    return Submission(ids, np.array(labels)), GroundTruth(ids, np.array(truth), n_classes)


def test_flat_errors_by_hand() -> None:
    s = score(*make())
    assert s.top1_correct.tolist() == [True, False, False, False, False, False]
    assert s.top5_correct.tolist() == [True, True, False, False, True, False]
    assert s.top1_error == 5 / 6
    assert s.top5_error == 3 / 6
    assert s.n_images == 6 and s.n_excluded == 0
    assert s.localization_error is None and s.hierarchical_error_raw is None


def test_hierarchical_error_by_hand_raw_and_normalized() -> None:
    s = score(*make(), cost=COST)
    # img0 0, img1 0 (third guess right), img2 4 (no guess costs the max), img3 min(3,3,4,3,3) = 3,
    # img4 0, img5 min(cost[3,2]=4, cost[1,2]=2) = 2
    assert s.hierarchical_cost is not None and s.hierarchical_cost.tolist() == [0, 0, 4, 3, 0, 2]
    assert s.hierarchical_error_raw == 9 / 6
    assert s.hierarchy_max_height == 4
    assert s.hierarchical_error_normalized == pytest.approx(9 / 6 / 4)
    # a caller-supplied largest height (e.g. the root's) changes the missing-guess cost and the divisor
    s = score(*make(), cost=COST, max_height=6)
    assert s.hierarchical_error_raw == (0 + 0 + 6 + 3 + 0 + 2) / 6
    assert s.hierarchical_error_normalized == pytest.approx(11 / 6 / 6)


def test_per_class_accuracy_by_hand() -> None:
    s = score(*make())
    assert s.per_class_images.tolist() == [2, 1, 2, 1, 0]
    assert s.per_class_top1_accuracy[:4].tolist() == [0.5, 0.0, 0.0, 0.0]
    assert s.per_class_top5_accuracy[:4].tolist() == [1.0, 1.0, 0.0, 0.0]
    assert np.isnan(s.per_class_top1_accuracy[4])  # no image of class 4


def test_exclusion_by_ids_and_by_mask() -> None:
    s = score(*make(), cost=COST, exclude=["img2", "img3"])
    assert s.image_ids == ("img0", "img1", "img4", "img5")
    assert s.n_excluded == 2
    assert s.top1_error == 3 / 4
    assert s.top5_error == 1 / 4
    assert s.hierarchical_error_raw == 2 / 4
    mask = np.array([False, False, True, True, False, False])
    assert score(*make(), exclude=mask).top5_correct.tolist() == s.top5_correct.tolist()
    with pytest.raises(InputError, match="'img9' is not a test image"):
        score(*make(), exclude=["img9"])
    with pytest.raises(InputError, match="no image left"):
        score(*make(), exclude=np.ones(6, dtype=bool))


def test_confused_pairs_counts_and_tie_order() -> None:
    truth = np.array([1, 1, 1, 2, 2, 0, 0, 3])
    top1 = np.array([2, 2, 1, 0, 0, 3, -1, 1])
    # wrong top-1: (1,2) x2, (2,0) x2, (0,3) x1, (3,1) x1; img6 made no guess; img2 is right
    assert confused_pairs(top1, truth, 4) == (
        ConfusedPair(1, 2, 2),
        ConfusedPair(2, 0, 2),
        ConfusedPair(0, 3, 1),
        ConfusedPair(3, 1, 1),
    )
    assert confused_pairs(top1, truth, 4, limit=1) == (ConfusedPair(1, 2, 2),)
    # in the hand case: img1 (1->2), img3 (3->0), img4 (0->1), img5 (2->3); img2 made no guess
    assert [(p.truth, p.guess, p.count) for p in score(*make()).confused_pairs] == [
        (0, 1, 1),
        (1, 2, 1),
        (2, 3, 1),
        (3, 0, 1),
    ]


# -- localization -------------------------------------------------------------------------------------


def test_iou_uses_inclusive_pixel_coordinates() -> None:
    a = np.array([0, 0, 9, 9])  # 10 x 10 = 100 pixels
    assert box_iou(a, np.array([0, 0, 4, 9])) == 0.5  # 50 / 100 (exclusive corners would give 36/81)
    assert box_iou(a, np.array([0, 0, 3, 9])) == 0.4
    assert box_iou(a, np.array([5, 0, 14, 9])) == pytest.approx(50 / 150)
    assert box_iou(a, np.array([10, 0, 19, 9])) == 0.0  # touching, no shared pixel
    assert box_iou(a, np.array([9, 9, 18, 18])) == 1 / 199  # one shared pixel
    assert box_iou(np.array([3, 3, 3, 3]), np.array([3, 3, 3, 3])) == 1.0  # a one-pixel box


NAN = [np.nan] * 4


def test_localization_by_hand_with_boundary_iou_and_several_boxes() -> None:
    ids = tuple(f"img{i}" for i in range(6))
    truth = np.array([0, 0, 1, 1, 2, 2])
    gt_boxes = np.array(
        [
            [0, 0, 9, 9],  # img0
            [0, 0, 9, 9],  # img1
            [0, 0, 9, 9],  # img2 (two boxes)
            [20, 20, 29, 29],
            [0, 0, 9, 9],  # img3
            [0, 0, 9, 9],  # img4
            [0, 0, 9, 9],  # img5
        ],
        dtype=float,
    )
    gt = GroundTruth(ids, truth, 3, gt_boxes, np.array([0, 1, 2, 4, 5, 6, 7]))
    labels = np.array(
        [
            [0, -1],  # IoU exactly 0.5 -> right
            [0, -1],  # IoU 0.4 -> wrong
            [1, -1],  # matches the second ground-truth box at exactly 0.5 -> right
            [0, 1],  # first guess: perfect box, wrong label; second: right label, box far off -> wrong
            [2, 2],  # right label twice: bad box first, good box second -> right
            [0, -1],  # wrong label only -> wrong
        ]
    )
    boxes = np.array(
        [
            [[0, 0, 4, 9], NAN],
            [[0, 0, 3, 9], NAN],
            [[20, 20, 24, 29], NAN],
            [[0, 0, 9, 9], [50, 50, 60, 60]],
            [[0, 0, 2, 2], [1, 1, 9, 9]],
            [[0, 0, 9, 9], NAN],
        ],
        dtype=float,
    )
    s = score(Submission(ids, labels, boxes), gt)
    assert s.localization_correct is not None
    assert s.localization_correct.tolist() == [True, False, True, False, True, False]
    assert s.localization_error == 3 / 6
    assert s.per_class_localization_accuracy is not None
    assert s.per_class_localization_accuracy.tolist() == [0.5, 0.5, 0.5]
    # a stricter threshold turns the two exact-0.5 cases wrong
    strict = score(Submission(ids, labels, boxes), gt, iou_threshold=0.51)
    assert strict.localization_correct is not None
    assert strict.localization_correct.tolist() == [False, False, False, False, True, False]


def test_localization_needs_a_box_of_the_guessed_label() -> None:
    # ground truth built directly with boxes of two classes in one image: only same-label boxes count
    ids = ("a",)
    gt = GroundTruth(
        ids,
        np.array([0]),
        2,
        np.array([[0, 0, 9, 9], [50, 50, 59, 59.0]]),
        np.array([0, 2]),
        np.array([1, 0]),
    )
    hit_other = Submission(ids, np.array([[0]]), np.array([[[0, 0, 9, 9.0]]]))
    hit_own = Submission(ids, np.array([[0]]), np.array([[[50, 50, 59, 59.0]]]))
    assert score(hit_other, gt).localization_error == 1.0
    assert score(hit_own, gt).localization_error == 0.0
    no_box = Submission(ids, np.array([[0]]), np.array([[NAN]]))
    assert score(no_box, gt).localization_error == 1.0


def reference_scores(
    labels: np.ndarray, boxes: np.ndarray, gt: GroundTruth, cost: np.ndarray
) -> tuple[list[bool], list[float]]:
    """Loops, straight from the SPEC wording, for comparison on random data."""
    assert gt.boxes is not None and gt.box_offsets is not None and gt.box_labels is not None
    loc, hier = [], []
    height = cost.max()
    for i, t in enumerate(gt.labels.tolist()):
        ok = False
        costs = []
        for j, g in enumerate(labels[i].tolist()):
            costs.append(height if g < 0 else cost[g, t])
            if g != t:
                continue
            for b in range(gt.box_offsets[i], gt.box_offsets[i + 1]):
                p, q = boxes[i, j], gt.boxes[b]
                iw = min(p[2], q[2]) - max(p[0], q[0]) + 1
                ih = min(p[3], q[3]) - max(p[1], q[1]) + 1
                inter = iw * ih if iw > 0 and ih > 0 else 0
                union = (p[2] - p[0] + 1) * (p[3] - p[1] + 1) + (q[2] - q[0] + 1) * (q[3] - q[1] + 1) - inter
                ok |= gt.box_labels[b] == g and inter / union >= 0.5
        loc.append(bool(ok))
        hier.append(float(min(costs)))
    return loc, hier


def test_random_data_matches_a_loop_reference() -> None:
    rng = np.random.default_rng(11)
    n, c = 400, 7
    ids = tuple(f"i{k}" for k in range(n))
    truth = rng.integers(0, c, n)
    counts = rng.integers(0, 4, n)  # some images without any box
    offsets = np.concatenate([[0], np.cumsum(counts)])
    lo = rng.integers(0, 20, (offsets[-1], 2))
    gt_boxes = np.concatenate([lo, lo + rng.integers(0, 15, lo.shape)], axis=1).astype(float)
    box_labels = np.where(
        rng.random(offsets[-1]) < 0.8, np.repeat(truth, counts), rng.integers(0, c, offsets[-1])
    )
    gt = GroundTruth(ids, truth, c, gt_boxes, offsets, box_labels)
    labels = rng.integers(-1, c, (n, 5))
    glo = rng.integers(0, 20, (n, 5, 2))
    boxes = np.concatenate([glo, glo + rng.integers(0, 15, glo.shape)], axis=2).astype(float)
    heights = rng.integers(1, 6, (c, c))
    np.fill_diagonal(heights, 0)
    s = score(Submission(ids, labels, boxes), gt, cost=heights)
    loc, hier = reference_scores(labels, boxes, gt, heights)
    assert s.localization_correct is not None and s.localization_correct.tolist() == loc
    assert 0 < sum(loc) < n  # the case is not trivial
    assert s.hierarchical_cost is not None and s.hierarchical_cost.tolist() == hier
    assert s.top5_correct.tolist() == [
        t in row for t, row in zip(truth.tolist(), labels.tolist(), strict=True)
    ]


# -- agreement with torchmetrics ------------------------------------------------------------------------


def test_top1_top5_and_per_class_agree_with_torchmetrics() -> None:
    import torch  # test dependency (CPU wheel): imported here because it takes seconds
    from torchmetrics.functional import accuracy

    rng = np.random.default_rng(5)
    n, c = 3000, 40
    truth = rng.permutation(np.arange(n) % c)  # every class present
    # 5 distinct guesses per image, right with some probability, then logits ranking them first
    guesses = np.argsort(rng.random((n, c)), axis=1)[:, :5]
    plant = rng.random(n) < 0.5
    slot = rng.integers(0, 5, n)
    already = (guesses == truth[:, None]).any(axis=1)
    fix = plant & ~already
    guesses[fix, slot[fix]] = truth[fix]
    logits = rng.random((n, c)) * 0.5
    logits[np.arange(n)[:, None], guesses] = np.array([5.0, 4.0, 3.0, 2.0, 1.0])
    assert (np.argsort(-logits, axis=1)[:, :5] == guesses).all()

    ids = tuple(str(i) for i in range(n))
    s = score(Submission(ids, guesses), GroundTruth(ids, truth, c))
    preds, target = torch.tensor(logits), torch.tensor(truth)
    for k, err in ((1, s.top1_error), (5, s.top5_error)):
        tm = accuracy(preds, target, task="multiclass", num_classes=c, top_k=k, average="micro")
        assert 1 - err == pytest.approx(float(tm), abs=1e-6)
    for k, per_class in ((1, s.per_class_top1_accuracy), (5, s.per_class_top5_accuracy)):
        tm_per_class = accuracy(preds, target, task="multiclass", num_classes=c, top_k=k, average="none")
        assert np.allclose(per_class, tm_per_class.numpy(), atol=1e-6)
    assert 0.3 < s.top5_error < 0.7  # neither trivial nor perfect


# -- building blocks and bad input ---------------------------------------------------------------------


def test_building_blocks_on_plain_arrays() -> None:
    labels = np.array([[3, 1, -1], [-1, -1, -1]])
    truth = np.array([1, 0])
    assert top_k_correct(labels, truth, 1).tolist() == [False, False]
    assert top_k_correct(labels, truth, 2).tolist() == [True, False]
    cost = np.array([[0, 2, 2, 2], [2, 0, 1, 3], [2, 1, 0, 3], [2, 3, 3, 0]])
    assert hierarchical_costs(labels, truth, cost).tolist() == [0, 3]
    assert hierarchical_costs(np.array([[2]]), np.array([1]), cost).tolist() == [1]


def test_score_refuses_bad_input() -> None:
    sub, gt = make()
    with pytest.raises(InputError, match="different order"):
        score(Submission(IDS[::-1], np.array(LABELS)[::-1]), gt)
    with pytest.raises(InputError, match="different images"):
        score(Submission(("x", *IDS[1:]), np.array(LABELS)), gt)
    with pytest.raises(InputError, match="out of range"):
        score(Submission(IDS, np.full((6, 5), 5)), gt)
    with pytest.raises(InputError, match="5 x 5"):
        score(sub, gt, cost=np.zeros((4, 4)))
    bad_diag = COST.copy()
    bad_diag[1, 1] = 1
    with pytest.raises(InputError, match="diagonal"):
        score(sub, gt, cost=bad_diag)
    with pytest.raises(InputError, match="finite, non-negative"):
        score(sub, gt, cost=COST - 1)
    with pytest.raises(InputError, match="below the largest cost"):
        score(sub, gt, cost=COST, max_height=3)


def test_summary_is_plain_json() -> None:
    import json

    summary = score(*make(), cost=COST).summary()
    assert json.loads(json.dumps(summary))["top5_error"] == 0.5
