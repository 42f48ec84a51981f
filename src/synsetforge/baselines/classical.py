"""A classical baseline like the 2010-2011 entries: hand-engineered features and a linear classifier.

Features (`features`, on every image resized to `size` x `size`): numpy HOG (9 unsigned orientation bins,
8 x 8-pixel cells, 2 x 2-cell L2-Hys blocks) on the grey image, plus a 64-bin joint RGB colour histogram.

Classifier: one-vs-rest linear SVM (scikit-learn `LinearSVC`) on standardised features, trained on the
release's train split (at most `per_class` images per class, like the 2010 devkit demo's 100). The five
largest decision values give the top-5 guesses; for localization each guess gets the whole image as box.
The val split, whose labels are public, gives an honest estimate before anything is submitted.
"""

from __future__ import annotations

import io
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from PIL import Image
from sqlalchemy import select

from synsetforge.baselines.features import colour_histogram, hog
from synsetforge.benchmark.challenge import (
    anonymous_test_images,
    get_challenge,
    image_blobs,
    train_items,
    val_items,
)
from synsetforge.benchmark.data import ClassList, GroundTruth, Submission
from synsetforge.benchmark.formats import format_classic_submission, format_kaggle_submission
from synsetforge.benchmark.metrics import score
from synsetforge.errors import InputError
from synsetforge.store import schema
from synsetforge.store.project import Project

DEFAULT_SIZE = 64
DEFAULT_PER_CLASS = 100
BATCH = 256


# -- images -> features ---------------------------------------------------------------------------


def load_images(blobs: Sequence[bytes], size: int) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Decode to RGB uint8 [B, size, size, 3] and return each image's stored (width, height)."""
    out = np.empty((len(blobs), size, size, 3), dtype=np.uint8)
    sizes: list[tuple[int, int]] = []
    for i, data in enumerate(blobs):
        try:
            with Image.open(io.BytesIO(data)) as im:
                sizes.append(im.size)
                im.draft("RGB", (size * 2, size * 2))  # JPEG: decode at a reduced scale, much faster
                out[i] = np.asarray(im.convert("RGB").resize((size, size), Image.Resampling.BILINEAR))
        except OSError as exc:
            raise InputError(f"image {i} of the batch cannot be decoded: {exc}") from None
    return out, sizes


def features(rgb: np.ndarray) -> np.ndarray:
    """HOG on the grey image plus the colour histogram: [B, D]."""
    gray = rgb.astype(np.float64) @ np.asarray([0.299, 0.587, 0.114]) / 255.0
    return np.hstack([hog(gray), colour_histogram(rgb)])


def extract(
    project: Project, image_ids: Sequence[int], size: int
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Features and stored sizes of project images, decoded in batches."""
    keys = image_blobs(project, image_ids)
    missing = [i for i in image_ids if i not in keys]
    if missing:
        raise InputError(f"{len(missing)} images have no stored bytes (e.g. image id {missing[0]})")
    parts: list[np.ndarray] = []
    sizes: list[tuple[int, int]] = []
    for start in range(0, len(image_ids), BATCH):
        chunk = image_ids[start : start + BATCH]
        rgb, got = load_images([project.blobs.get(keys[i]) for i in chunk], size)
        parts.append(features(rgb))
        sizes += got
    return np.vstack(parts), sizes


# -- classifier -----------------------------------------------------------------------------------


@dataclass
class LinearModel:
    """A fitted scaler + one-vs-rest linear SVM over class indices 0..n_classes-1."""

    pipeline: Any
    n_classes: int
    converged: bool

    def top_k(self, x: np.ndarray, k: int = 5) -> np.ndarray:
        """int32 [n, min(k, classes seen)] class indices, best first."""
        scores = np.asarray(self.pipeline.decision_function(x))
        seen = np.asarray(self.pipeline.classes_)
        if scores.ndim == 1:  # two classes: one decision value, positive means seen[1]
            scores = np.stack([-scores, scores], axis=1)
        order = np.argsort(-scores, axis=1, kind="stable")[:, : min(k, len(seen))]
        return np.asarray(seen[order], dtype=np.int32)


def train_linear(
    x: np.ndarray, y: np.ndarray, n_classes: int, *, c: float = 0.01, seed: int = 0
) -> LinearModel:
    """Standardise, then a one-vs-rest linear SVM (the 2010 devkit demo's classifier)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    if len(np.unique(y)) < 2:
        raise InputError("the train split needs images of at least 2 classes")
    pipeline = make_pipeline(StandardScaler(), LinearSVC(C=c, max_iter=5000, random_state=seed))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        pipeline.fit(x, y)
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    return LinearModel(pipeline, n_classes, converged)


# -- the whole baseline ---------------------------------------------------------------------------


@dataclass
class BaselineResult:
    challenge: str
    n_classes: int
    n_train: int
    n_val: int
    n_test: int
    feature_dim: int
    seconds_features: float
    seconds_training: float
    converged: bool
    val_top1_error: float | None
    val_top5_error: float | None
    file: bytes
    format: str
    submission_id: int | None = None


def _padded(guesses: np.ndarray) -> np.ndarray:
    out = np.full((guesses.shape[0], 5), -1, dtype=np.int32)
    out[:, : guesses.shape[1]] = guesses
    return out


def account_id(project: Project, team: str, name: str) -> int:
    """The participant `name` of `team`, both created when missing (baselines submit like anyone else)."""
    from synsetforge.benchmark.participants import create_account, ensure_team

    team_id = ensure_team(project, team)
    with project.session() as s:
        pid = s.scalar(
            select(schema.Participant.id).where(
                schema.Participant.team_id == team_id, schema.Participant.name == name
            )
        )
    if pid is not None:
        return int(pid)
    return create_account(project, team_id, name)[0].id


def run_classical_baseline(
    project: Project,
    challenge: str,
    *,
    release: str | None = None,
    per_class: int = DEFAULT_PER_CLASS,
    size: int = DEFAULT_SIZE,
    c: float = 0.01,
    file_format: Literal["ilsvrc", "kaggle"] = "ilsvrc",
    submit_as: tuple[str, str] | None = ("classical-baseline", "hog-colour-linear-svm"),
    log: Callable[[str], None] | None = None,
) -> BaselineResult:
    """Train on the release's train split, report val error, write (and by default submit) a test file.

    `submit_as` = (team, account), created when missing; None only builds the file.
    """
    say = log or (lambda _msg: None)
    info = get_challenge(project, challenge)
    if release is not None and release != info.release:
        raise InputError(f"challenge {info.name!r} is on release {info.release!r}, not {release!r}")
    if per_class < 1:
        raise InputError(f"--per-class must be at least 1, not {per_class}")
    if size < 16:
        raise InputError(f"--size must be at least 16 pixels, not {size}")
    index = {sid: i for i, sid in enumerate(info.classes)}
    train = train_items(project, info.id, per_class=per_class)
    if not train:
        raise InputError(f"release {info.release!r} has no train images of the challenge's classes")
    t0 = time.perf_counter()
    x_train, _ = extract(project, [i for i, _ in train], size)
    y_train = np.asarray([index[sid] for _, sid in train], dtype=np.int64)
    val = val_items(project, info.id)
    tests = anonymous_test_images(project, info.id)
    x_val = extract(project, [i for _, i, _ in val], size)[0] if val else None
    x_test, test_sizes = extract(project, [i for _, i in tests], size)
    t1 = time.perf_counter()
    say(
        f"features: {x_train.shape[1]} per image (HOG + colour histogram) for {len(train)} train, "
        f"{len(val)} val, {len(tests)} test images in {t1 - t0:.1f} s"
    )
    model = train_linear(x_train, y_train, len(info.classes), c=c)
    t2 = time.perf_counter()
    say(f"linear SVM on {len(train)} images of {len(np.unique(y_train))} classes in {t2 - t1:.1f} s")
    classes = ClassList(info.classes)
    val_top1 = val_top5 = None
    if val and x_val is not None:
        truth = GroundTruth(
            tuple(name for name, _, _ in val), np.asarray([index[s] for _, _, s in val]), len(classes)
        )
        scores = score(Submission(truth.image_ids, _padded(model.top_k(x_val))), truth)
        val_top1, val_top5 = scores.top1_error, scores.top5_error
        say(f"val: top-1 error {val_top1:.2%}, top-5 error {val_top5:.2%} on {len(val)} images")
    labels = _padded(model.top_k(x_test))
    localization = info.settings.task == "localization"
    boxes = None
    if localization:
        whole = np.asarray([[0, 0, w - 1, h - 1] for w, h in test_sizes], dtype=np.float64)
        boxes = np.where((labels >= 0)[..., None], whole[:, None, :], np.nan)
    sub = Submission(tuple(name for name, _ in tests), labels, boxes)
    if file_format == "kaggle":
        data = format_kaggle_submission(sub, classes, boxes=localization)
    else:
        data = format_classic_submission(sub, boxes=localization)
    result = BaselineResult(
        info.name,
        len(info.classes),
        len(train),
        len(val),
        len(tests),
        int(x_train.shape[1]),
        t1 - t0,
        t2 - t1,
        model.converged,
        val_top1,
        val_top5,
        data,
        file_format,
    )
    if submit_as is not None:
        from synsetforge.benchmark.submissions import submit

        receipt = submit(project, info.id, account_id(project, *submit_as), data)
        result.submission_id = receipt.id
        say(f"submission {receipt.id} queued for team {submit_as[0]!r}")
    return result
