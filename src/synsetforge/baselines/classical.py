"""A classical baseline like the 2010-2011 ILSVRC entries: hand-engineered features and linear classifiers.

Features `bow` (the default) follow the 2010 devkit's demo (dense SIFT, a bag of visual words, one-vs-all
linear SVMs; SPEC 5) with the spatial pyramid of the NEC winner and its peers:

* every image is resized so that its longer side is `size` pixels, keeping its aspect ratio (the shorter side
  is rounded to a multiple of 8, so that a batch holds few distinct shapes);
* dense SIFT-like descriptors (`features.dense_sift`): 4 x 4 cells x 8 orientations, on patches of two sizes
  (cells of 4 and 6 pixels) every half cell. The gradient is the colour gradient (the channels' structure
  tensor) and orientations are unsigned, so a figure gives the same descriptors whatever its colour and
  whichever of figure and background is darker;
* a codebook of `words` visual words: PCA to 64 dimensions (half the cost of every distance, no measurable
  loss) and k-means on a sample of train descriptors (`bow.fit_codebook`); per image the histogram of
  nearest words over the whole image and its 2 x 2 quarters, square-rooted (Hellinger kernel map) and
  L2-normalised (`bow.Codebook.encode`).

Local descriptors pooled into a histogram do not care where a figure is, and a codebook learned from figures
at every angle covers every angle, which is what the demo's figures (random colours, positions, rotations
and sizes) need. Measured there (140 train and 60 val images per class, 12 classes): 22% val top-1 error
(4% top-5) in about 16 s for 2,400 images on 2 shared cores; 1,000 words give 27% in 12 s, 4,000 words 19%
in 23 s. `hog` stays near chance (85% top-1) on the same images.

Features `hog` are the earlier entry, kept for comparison: numpy HOG (9 unsigned orientation bins, 8 x 8-pixel
cells, 2 x 2-cell L2-Hys blocks) on the grey image squashed to `size` x `size`, plus a 64-bin joint RGB colour
histogram, standardised. HOG on a fixed grid is tied to where a figure is and how it is turned, and a colour
histogram says nothing when colours are random: on the demo's figures it is at chance.

Classifier: one-vs-rest linear SVM (scikit-learn `LinearSVC`) trained on the release's train split (at most
`per_class` images per class, like the devkit demo's 100). The five largest decision values give the top-5
guesses; for localization each guess gets the whole image as box. The val split, whose labels are public,
gives an honest estimate before anything is submitted.
"""

from __future__ import annotations

import io
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from PIL import Image
from sqlalchemy import select

from synsetforge.baselines.bow import Codebook, fit_codebook
from synsetforge.baselines.features import colour_histogram, dense_sift, hog
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

FeatureKind = Literal["bow", "hog"]
DEFAULT_FEATURES: FeatureKind = "bow"
DEFAULT_SIZE = 64  # pixels: the longer side for bow, both sides for hog
DEFAULT_PER_CLASS = 100
DEFAULT_WORDS = 2000
DEFAULT_C: dict[str, float] = {"bow": 1.0, "hog": 0.01}
SIFT_CELLS = (4, 6)  # cell sizes in pixels, one patch scale each; patches every half cell
PCA_DIMS = 64
CODEBOOK_IMAGES = 400  # train images whose descriptors are sampled for k-means
CODEBOOK_SAMPLE = 50_000  # descriptors k-means clusters
BATCH = 256
ACCOUNTS = {"bow": "dense-sift-bow-linear-svm", "hog": "hog-colour-linear-svm"}


# -- images -> features ---------------------------------------------------------------------------


def _decode(data: bytes, i: int, size: int) -> tuple[Image.Image, tuple[int, int]]:
    """The image in RGB, decoded at a reduced scale where JPEG allows, and its stored (width, height)."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            stored = im.size
            im.draft("RGB", (size * 2, size * 2))  # JPEG: decode at a reduced scale, much faster
            return im.convert("RGB"), stored
    except OSError as exc:
        raise InputError(f"image {i} of the batch cannot be decoded: {exc}") from None


def load_images(blobs: Sequence[bytes], size: int) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Decode to RGB uint8 [B, size, size, 3] (squashed) and return each image's stored (width, height)."""
    out = np.empty((len(blobs), size, size, 3), dtype=np.uint8)
    sizes: list[tuple[int, int]] = []
    for i, data in enumerate(blobs):
        im, stored = _decode(data, i, size)
        sizes.append(stored)
        out[i] = np.asarray(im.resize((size, size), Image.Resampling.BILINEAR))
    return out, sizes


def load_images_keep_aspect(
    blobs: Sequence[bytes], size: int, min_side: int = 16
) -> tuple[list[np.ndarray], list[tuple[int, int]]]:
    """Decode to RGB uint8 arrays whose longer side is `size` and whose shorter side keeps the aspect ratio,
    rounded to a multiple of 8 (so that a batch holds few distinct shapes) and at least `min_side`."""
    out: list[np.ndarray] = []
    sizes: list[tuple[int, int]] = []
    for i, data in enumerate(blobs):
        im, stored = _decode(data, i, size)
        sizes.append(stored)
        w, h = im.size
        short = min(size, max(min_side, round(min(w, h) * size / max(w, h) / 8) * 8))
        out.append(
            np.asarray(im.resize((size, short) if w >= h else (short, size), Image.Resampling.BILINEAR))
        )
    return out, sizes


def hog_colour_features(rgb: np.ndarray) -> np.ndarray:
    """The `hog` entry's features: HOG on the grey image plus the colour histogram, [B, D]."""
    gray = rgb.astype(np.float64) @ np.asarray([0.299, 0.587, 0.114]) / 255.0
    return np.hstack([hog(gray), colour_histogram(rgb)])


def sift_span() -> int:
    """Pixels the largest dense-SIFT patch covers: the smallest image side the bow features accept."""
    return 5 * max(SIFT_CELLS) - 1  # 4 x 4 cells plus half a cell on each side (the triangular windows)


def _by_shape(images: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Indices of the images of each distinct shape (dense SIFT runs on one shape at a time)."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, im in enumerate(images):
        groups.setdefault(im.shape, []).append(i)
    return [np.asarray(ix) for ix in groups.values()]


def codebook_from_train(
    blobs: Sequence[bytes], size: int, words: int, *, seed: int = 0
) -> tuple[Codebook, int, float]:
    """Fit the visual words on dense SIFT descriptors sampled evenly from these train images.

    Returns the codebook, the number of descriptors sampled and the mean number of patches per image."""
    images, _ = load_images_keep_aspect(blobs, size, sift_span())
    rng = np.random.default_rng(seed)
    per_image = math.ceil(CODEBOOK_SAMPLE / max(1, len(images)))
    sample: list[np.ndarray] = []
    patches = 0
    for ix in _by_shape(images):
        d, _ = dense_sift(np.stack([images[i] for i in ix]), cell=SIFT_CELLS)
        patches += d.shape[0] * d.shape[1]
        keep = np.argsort(rng.random(d.shape[:2]), axis=1)[:, :per_image]
        sample.append(np.take_along_axis(d, keep[..., None], axis=1).reshape(-1, d.shape[2]))
    x = np.concatenate(sample)
    book = fit_codebook(x, words, dims=PCA_DIMS, seed=seed)
    return book, len(x), patches / max(1, len(images))


def bow_features(
    blobs: Sequence[bytes], size: int, book: Codebook
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Bag-of-words vectors [B, book.dim] of images (dense SIFT -> nearest words -> pyramid histograms)."""
    images, sizes = load_images_keep_aspect(blobs, size, sift_span())
    out = np.empty((len(images), book.dim), dtype=np.float32)
    for ix in _by_shape(images):
        out[ix] = book.encode(*dense_sift(np.stack([images[i] for i in ix]), cell=SIFT_CELLS))
    return out, sizes


def fetch_blobs(project: Project, image_ids: Sequence[int]) -> list[bytes]:
    """The stored bytes of project images, in order."""
    keys = image_blobs(project, image_ids)
    missing = [i for i in image_ids if i not in keys]
    if missing:
        raise InputError(f"{len(missing)} images have no stored bytes (e.g. image id {missing[0]})")
    return [project.blobs.get(keys[i]) for i in image_ids]


def extract(
    project: Project,
    image_ids: Sequence[int],
    featurize: Callable[[list[bytes]], tuple[np.ndarray, list[tuple[int, int]]]],
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Features and stored sizes of project images, read and featurized `BATCH` at a time."""
    parts: list[np.ndarray] = []
    sizes: list[tuple[int, int]] = []
    for start in range(0, len(image_ids), BATCH):
        x, got = featurize(fetch_blobs(project, image_ids[start : start + BATCH]))
        parts.append(x)
        sizes += got
    return np.vstack(parts), sizes


# -- classifier -----------------------------------------------------------------------------------


@dataclass
class LinearModel:
    """A fitted one-vs-rest linear SVM (after a scaler, for `hog`) over class indices 0..n_classes-1."""

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
    x: np.ndarray, y: np.ndarray, n_classes: int, *, c: float = 0.01, seed: int = 0, standardise: bool = True
) -> LinearModel:
    """A one-vs-rest linear SVM (the 2010 devkit demo's classifier), after standardising the features unless
    `standardise` is False (bag-of-words vectors are already normalised histograms)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    if len(np.unique(y)) < 2:
        raise InputError("the train split needs images of at least 2 classes")
    svm = LinearSVC(C=c, max_iter=5000, random_state=seed)
    pipeline = make_pipeline(StandardScaler(), svm) if standardise else make_pipeline(svm)
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
    features: str = DEFAULT_FEATURES
    words: int | None = None  # visual words of the codebook (bow)
    seconds_codebook: float = 0.0  # part of seconds_features


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
    features: FeatureKind = DEFAULT_FEATURES,
    words: int = DEFAULT_WORDS,
    size: int = DEFAULT_SIZE,
    c: float | None = None,
    seed: int = 0,
    file_format: Literal["ilsvrc", "kaggle"] = "ilsvrc",
    submit_as: tuple[str, str | None] | None = ("classical-baseline", None),
    log: Callable[[str], None] | None = None,
) -> BaselineResult:
    """Train on the release's train split, report val error, write (and by default submit) a test file.

    `features`: "bow" (dense SIFT, `words` visual words, spatial pyramid) or "hog" (HOG + colour histogram).
    `c`: the SVM's C, by default 1.0 for bow and 0.01 for hog. `submit_as` = (team, account), created when
    missing; account None names it after the features (`ACCOUNTS`); None only builds the file.
    """
    say = log or (lambda _msg: None)
    info = get_challenge(project, challenge)
    if release is not None and release != info.release:
        raise InputError(f"challenge {info.name!r} is on release {info.release!r}, not {release!r}")
    if features not in ACCOUNTS:
        raise InputError(f"--features must be one of {', '.join(ACCOUNTS)}, not {features!r}")
    if per_class < 1:
        raise InputError(f"--per-class must be at least 1, not {per_class}")
    smallest = sift_span() if features == "bow" else 16
    if size < smallest:
        raise InputError(f"--size must be at least {smallest} pixels for {features} features, not {size}")
    if features == "bow" and words < 2:
        raise InputError(f"--words must be at least 2, not {words}")
    c = DEFAULT_C[features] if c is None else c
    if not c > 0:
        raise InputError(f"--c must be positive, not {c}")
    index = {sid: i for i, sid in enumerate(info.classes)}
    train = train_items(project, info.id, per_class=per_class)
    if not train:
        raise InputError(f"release {info.release!r} has no train images of the challenge's classes")
    val = val_items(project, info.id)
    tests = anonymous_test_images(project, info.id)
    t0 = time.perf_counter()
    book = None
    t_book = 0.0
    if features == "bow":
        picked = np.random.default_rng(seed).permutation(len(train))[:CODEBOOK_IMAGES]
        book, sampled, patches = codebook_from_train(
            fetch_blobs(project, [train[i][0] for i in sorted(picked)]), size, words, seed=seed
        )
        t_book = time.perf_counter() - t0
        say(
            f"codebook: {book.words} visual words, k-means on {sampled:,} dense SIFT descriptors of "
            f"{len(picked)} train images ({patches:.0f} patches per image, PCA to {PCA_DIMS} dims) "
            f"in {t_book:.1f} s"
        )
        codebook = book

        def featurize(blobs: list[bytes]) -> tuple[np.ndarray, list[tuple[int, int]]]:
            return bow_features(blobs, size, codebook)

        what = f"bag of {book.words} words over a 1x1 + 2x2 pyramid, images {size} px on the longer side"
    else:

        def featurize(blobs: list[bytes]) -> tuple[np.ndarray, list[tuple[int, int]]]:
            rgb, sizes = load_images(blobs, size)
            return hog_colour_features(rgb), sizes

        what = f"HOG + colour histogram of {size} x {size} images"
    x_train, _ = extract(project, [i for i, _ in train], featurize)
    y_train = np.asarray([index[sid] for _, sid in train], dtype=np.int64)
    x_val = extract(project, [i for _, i, _ in val], featurize)[0] if val else None
    x_test, test_sizes = extract(project, [i for _, i in tests], featurize)
    t1 = time.perf_counter()
    say(
        f"features: {x_train.shape[1]:,} per image ({what}) for {len(train)} train, "
        f"{len(val)} val, {len(tests)} test images in {t1 - t0:.1f} s"
    )
    model = train_linear(x_train, y_train, len(info.classes), c=c, seed=seed, standardise=features == "hog")
    t2 = time.perf_counter()
    say(
        f"linear SVM (one-vs-rest, C={c:g}) on {len(train)} images of {len(np.unique(y_train))} classes "
        f"in {t2 - t1:.1f} s"
    )
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
        features=features,
        words=book.words if book is not None else None,
        seconds_codebook=t_book,
    )
    if submit_as is not None:
        from synsetforge.benchmark.submissions import submit

        team, account = submit_as
        receipt = submit(project, info.id, account_id(project, team, account or ACCOUNTS[features]), data)
        result.submission_id = receipt.id
        say(f"submission {receipt.id} queued for team {submit_as[0]!r}")
    return result
