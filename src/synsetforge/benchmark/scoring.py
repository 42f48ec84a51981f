"""Scoring a stored submission file against a challenge's frozen test manifest.

Everything comes from stored, immutable inputs (the submission blob, the manifest and cost-matrix blobs,
the split seed), so `score_file` gives the same numbers on any machine at any later time. Parsing and the
metrics are the `formats`/`metrics`/`leaderboard` modules'; this module only wires them to the store and
cuts the per-image results into the public and private halves.
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from synsetforge.benchmark.challenge import (
    BINARY_METRICS,
    ChallengeInfo,
    get_challenge,
    hidden,
    load_cost_matrix,
    load_manifest,
)
from synsetforge.benchmark.data import ClassList, GroundTruth, Submission
from synsetforge.benchmark.formats import detect_format, parse_submission
from synsetforge.benchmark.leaderboard import bootstrap_interval, public_private_split
from synsetforge.benchmark.metrics import Scores, score
from synsetforge.errors import InputError
from synsetforge.store.project import Project

FileFormat = Literal["ilsvrc", "kaggle"]


@dataclass(frozen=True, eq=False)
class ScoringContext:
    """What scoring one challenge needs, loaded once per worker process."""

    info: ChallengeInfo
    classes: ClassList
    truth: GroundTruth
    public: np.ndarray  # bool [n_test], True = public leaderboard image
    cost: np.ndarray
    max_height: float

    @property
    def image_ids(self) -> tuple[str, ...]:
        return self.truth.image_ids


_cache: dict[tuple[int, str], ScoringContext] = {}
_cache_lock = threading.Lock()


def load_context(project: Project, challenge: str | int) -> ScoringContext:
    """The challenge's classes, hidden ground truth, split and cost matrix (cached by manifest key)."""
    info = get_challenge(project, challenge)
    keys = hidden(project, info.id)
    cache_key = (info.id, keys["test_manifest"])
    with _cache_lock:
        if cache_key in _cache:
            return _cache[cache_key]
    m = load_manifest(project, keys["test_manifest"])
    classes = ClassList(tuple(m["classes"]))
    with_boxes = info.settings.task == "localization"
    truth = GroundTruth(
        tuple(m["image_ids"]),
        np.asarray(m["labels"], dtype=np.int32),
        len(classes),
        np.asarray(m["boxes"], dtype=np.float64).reshape(-1, 4) if with_boxes else None,
        np.asarray(m["box_offsets"], dtype=np.int64) if with_boxes else None,
        np.asarray(m["box_labels"], dtype=np.int32) if with_boxes else None,
    )
    public = public_private_split(
        truth.image_ids, public_fraction=info.settings.public_fraction, seed=keys["seed"]
    )
    cost = load_cost_matrix(project, keys["cost_matrix"]).astype(np.float64)
    ctx = ScoringContext(info, classes, truth, public, cost, float(info.stats.get("max_height", cost.max())))
    with _cache_lock:
        if len(_cache) > 16:
            _cache.clear()
        _cache[cache_key] = ctx
    return ctx


def sniff_format(data: bytes) -> FileFormat:
    """'kaggle' when the file starts with the `ImageId,PredictionString` header, else 'ilsvrc'."""
    first = data[:400].lstrip(b"\xef\xbb\xbf").split(b"\n", 1)[0].decode("utf-8", "replace")
    return "kaggle" if detect_format(first) == "kaggle" else "ilsvrc"


def _kaggle_has_boxes(data: bytes) -> bool:
    """In Kaggle files class ids are wnids, so a number as the second token means boxes follow."""
    for raw in data.decode("utf-8", "replace").splitlines()[1:]:
        _, _, pred = raw.partition(",")
        tokens = pred.replace('"', " ").split()
        if len(tokens) >= 2:
            try:
                float(tokens[1])
            except ValueError:
                return False
            return True
    return False


def parse_file(data: bytes, ctx: ScoringContext) -> tuple[Submission, FileFormat]:
    """Parse either form; raises InputError with line, field and reason.

    Localization challenges need a box after every class id. In a classification challenge the classic
    file holds class ids only, while a Kaggle file may carry boxes (they are then ignored).
    """
    fmt = sniff_format(data)
    boxes = ctx.info.settings.task == "localization"
    if fmt == "kaggle" and not boxes:
        boxes = _kaggle_has_boxes(data)
    sub = parse_submission(
        data,
        ctx.classes,
        ctx.image_ids,
        boxes=boxes,
        format="kaggle" if fmt == "kaggle" else "classic",
        max_bytes=ctx.info.settings.max_upload_bytes,
    )
    if ctx.info.settings.task != "localization" and sub.boxes is not None:
        sub = Submission(sub.image_ids, sub.labels, None)
    return sub, fmt


@dataclass(frozen=True, eq=False)
class ScoredFile:
    """Per-image losses of one submission over the whole test set, and its format."""

    format: FileFormat
    scores: Scores
    losses: dict[str, np.ndarray]  # metric -> float [n_test] per-image loss, mean = the metric


def per_image_losses(scores: Scores, max_height: float) -> dict[str, np.ndarray]:
    out = {
        "top1_error": (~scores.top1_correct).astype(np.float64),
        "top5_error": (~scores.top5_correct).astype(np.float64),
    }
    if scores.hierarchical_cost is not None:
        out["hierarchical_error_raw"] = scores.hierarchical_cost.astype(np.float64)
        out["hierarchical_error_normalized"] = scores.hierarchical_cost / max_height
    if scores.localization_correct is not None:
        out["localization_error"] = (~scores.localization_correct).astype(np.float64)
    return out


def score_file(data: bytes, ctx: ScoringContext) -> ScoredFile:
    """Parse and score a submission on every test image (the halves are cut from these vectors)."""
    sub, fmt = parse_file(data, ctx)
    scores = score(sub, ctx.truth, cost=ctx.cost, max_height=ctx.max_height)
    return ScoredFile(fmt, scores, per_image_losses(scores, ctx.max_height))


def summarize(
    losses: dict[str, np.ndarray], mask: np.ndarray, metrics: list[str], n_resamples: int
) -> dict[str, Any]:
    """{'n_images', 'metrics': {metric: {value, low, high}}} on the images selected by `mask`."""
    out: dict[str, Any] = {"n_images": int(mask.sum()), "metrics": {}}
    for name in metrics:
        if name not in losses:
            continue
        v = losses[name][mask]
        iv = bootstrap_interval(v, confidence=0.95, n_resamples=n_resamples, seed=0)
        out["metrics"][name] = {"value": iv.estimate, "low": iv.low, "high": iv.high}
    return out


def pack_losses(losses: dict[str, np.ndarray]) -> bytes:
    """Per-image losses as a compressed .npz (0/1 metrics as bits)."""
    buf = io.BytesIO()
    arrays: dict[str, np.ndarray] = {}
    for name, v in losses.items():
        if name in BINARY_METRICS:
            arrays["bits_" + name] = np.packbits(v.astype(bool))
            arrays["n_" + name] = np.asarray([len(v)])
        else:
            arrays["float_" + name] = v
    np.savez_compressed(buf, **arrays)  # type: ignore[arg-type]
    return buf.getvalue()


def unpack_losses(blob: bytes) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    with np.load(io.BytesIO(blob), allow_pickle=False) as z:
        for key in z.files:
            if key.startswith("bits_"):
                name = key[5:]
                n = int(z["n_" + name][0])
                out[name] = np.unpackbits(z[key])[:n].astype(np.float64)
            elif key.startswith("float_"):
                out[key[6:]] = np.asarray(z[key], dtype=np.float64)
    return out


def check_losses(losses: dict[str, np.ndarray], ctx: ScoringContext) -> None:
    n = len(ctx.image_ids)
    for name, v in losses.items():
        if v.shape != (n,):
            raise InputError(f"stored losses for {name} cover {len(v)} images, not {n}")
