"""A trained network's entry for a challenge: five guesses per hidden test image, scored like any other.

The test images are the challenge's anonymous ones (never their labels); each is decoded like the run's val
images (centre crop of the decoded image). The network may know more classes than the challenge asks for
(its logits are restricted to the challenge's classes) but must know every one of them. The file goes
through the same queue as a participant's upload, so the leaderboard treats it like any entry and the
paired test compares it with its neighbours.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from synsetforge.benchmark.challenge import anonymous_test_images, get_challenge, image_blobs, val_items
from synsetforge.benchmark.data import ClassList, Submission
from synsetforge.benchmark.formats import format_classic_submission, format_kaggle_submission
from synsetforge.errors import InputError
from synsetforge.store.project import Project
from synsetforge.training.augment import decoded_size
from synsetforge.training.checkpoint import ModelMeta, load_model_file, load_weights
from synsetforge.training.engine import cpu_threads, pick_device, run_eval
from synsetforge.training.loader import DecodedImages, cache_dir, decoding_pool
from synsetforge.training.models import Classifier, build_model


@dataclass
class Prediction:
    challenge: str
    run: Path
    n_test: int
    val_top1_error: float | None
    val_top5_error: float | None
    n_val: int
    seconds: float
    file: bytes
    format: str
    submission_id: int | None = None


def load_run_model(run: Path, device: torch.device) -> tuple[ModelMeta, Classifier]:
    """The finished network of a run folder, in eval mode on `device`."""
    meta, state, _ = load_model_file(run)
    model = build_model(meta.arch, len(meta.classes), **meta.model_kwargs)
    load_weights(model, state, run)
    return meta, model.to(device).eval()


def _top5(logits: np.ndarray, model_to_challenge: np.ndarray) -> np.ndarray:
    """int32 [n, 5] challenge class indices, best first (-1 pads when fewer than 5 classes)."""
    k = min(5, int(np.isfinite(logits[0]).sum()) if len(logits) else 5)
    order = np.argsort(-logits, axis=1, kind="stable")[:, :k]
    out = np.full((len(logits), 5), -1, dtype=np.int32)
    out[:, :k] = model_to_challenge[order]
    return out


def predict(
    project: Project,
    run: Path,
    challenge: str,
    *,
    device: str = "auto",
    file_format: Literal["ilsvrc", "kaggle"] = "ilsvrc",
    submit_as: tuple[str, str] | None = None,
    workers: int | None = None,
    log: Callable[[str], None] | None = None,
) -> Prediction:
    """Top-5 guesses for the challenge's test images (and its public val score); submit when `submit_as`."""
    say = log or (lambda _m: None)
    t0 = time.perf_counter()
    dev = pick_device(device)
    torch.set_num_threads(cpu_threads())
    meta, model = load_run_model(run, dev)
    info = get_challenge(project, challenge)
    position = {c: i for i, c in enumerate(meta.classes)}
    unknown = [c for c in info.classes if c not in position]
    if unknown:
        raise InputError(
            f"the network of {run} does not know {len(unknown)} of the challenge's {len(info.classes)} classes "
            f"(e.g. {unknown[0]}); train it on the challenge's release"
        )
    mask = torch.zeros(len(meta.classes), dtype=torch.bool)
    model_to_challenge = np.full(len(meta.classes), -1, dtype=np.int32)
    for j, c in enumerate(info.classes):
        mask[position[c]] = True
        model_to_challenge[position[c]] = j
    size = decoded_size(meta.image_size, meta.crop_ratio)
    tests = anonymous_test_images(project, info.id)
    vals = val_items(project, info.id)
    keys = image_blobs(project, [i for _, i in tests] + [i for _, i, _ in vals])
    missing = [i for _, i in tests if i not in keys]
    if missing:
        raise InputError(f"{len(missing)} test images have no stored bytes (e.g. image id {missing[0]})")
    with decoding_pool(workers) as pool:

        def guesses(blobs: list[str]) -> tuple[np.ndarray, np.ndarray]:
            """Top-5 challenge classes of images decoded like the run's val images, and the rows that
            could be decoded."""
            images = DecodedImages(project.blobs, blobs, size, meta.fit, cache_dir=cache_dir(project.root))
            rows = np.arange(len(blobs))
            if not images.streaming:
                images.fill(pool)
                rows = images.ok_rows()
            logits, kept = run_eval(
                model,
                images,
                rows,
                meta.image_size,
                dev,
                class_mask=mask,
                pool=pool,
                normalize=meta.normalize,
            )
            return _top5(logits, model_to_challenge), kept

        val_top1 = val_top5 = None
        usable_vals = [(n, i, c) for n, i, c in vals if i in keys]
        if usable_vals:
            top5, kept = guesses([keys[i] for _, i, _ in usable_vals])
            truth = np.asarray([info.classes.index(c) for _, _, c in usable_vals])[kept]
            val_top1 = float(np.mean(top5[:, 0] != truth))
            val_top5 = float(np.mean(~(top5 == truth[:, None]).any(axis=1)))
            say(f"val: top-1 error {val_top1:.2%}, top-5 error {val_top5:.2%} on {len(kept)} images")
        labels, kept = guesses([keys[i] for _, i in tests])
        if len(kept) != len(tests):
            raise InputError(
                f"{len(tests) - len(kept)} test images cannot be decoded; the challenge's data is damaged"
            )
    localization = info.settings.task == "localization"
    boxes = None
    if localization:  # no box head yet: the whole image as every guess's box
        whole = np.asarray([_whole_box(project, i) for _, i in tests], dtype=np.float64)
        boxes = np.where((labels >= 0)[..., None], whole[:, None, :], np.nan)
    sub = Submission(tuple(name for name, _ in tests), labels, boxes)
    if file_format == "kaggle":
        data = format_kaggle_submission(sub, ClassList(info.classes), boxes=localization)
    else:
        data = format_classic_submission(sub, boxes=localization)
    result = Prediction(
        info.name, run, len(tests), val_top1, val_top5, len(vals), time.perf_counter() - t0, data, file_format
    )
    say(f"test: 5 guesses for each of {len(tests)} images in {result.seconds:.1f} s")
    if submit_as is not None:
        from synsetforge.baselines.classical import account_id
        from synsetforge.benchmark.submissions import submit

        receipt = submit(project, info.id, account_id(project, *submit_as), data)
        result.submission_id = receipt.id
        say(f"submission {receipt.id} queued for team {submit_as[0]!r}")
    return result


def _whole_box(project: Project, image_id: int) -> list[int]:
    from synsetforge.store import schema

    with project.session() as s:
        image = s.get(schema.Image, image_id)
        assert image is not None
        return [0, 0, int(image.width or 1) - 1, int(image.height or 1) - 1]
