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

from synsetforge.benchmark.challenge import (
    ChallengeInfo,
    anonymous_test_images,
    get_challenge,
    image_blobs,
    val_items,
)
from synsetforge.benchmark.data import ClassList, Submission
from synsetforge.benchmark.formats import format_classic_submission, format_kaggle_submission
from synsetforge.errors import InputError
from synsetforge.store.project import Project
from synsetforge.training.augment import decoded_size
from synsetforge.training.checkpoint import ModelMeta, load_model_file, load_weights
from synsetforge.training.engine import cpu_threads, pick_device, run_eval
from synsetforge.training.loader import DecodedImages, cache_dir, decoding_pool
from synsetforge.training.models import Classifier, build_model

BoxSource = Literal["auto", "head", "centre", "whole"]
BOX_SOURCES = ("auto", "head", "centre", "whole")


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
    box_source: str | None = None  # localization: "head", "centre" or "whole" (how each guess got its box)
    val_localization_error: float | None = None


def load_run_model(run: Path, device: torch.device) -> tuple[ModelMeta, Classifier]:
    """The finished network of a run folder, in eval mode on `device`."""
    meta, state, _ = load_model_file(run)
    model = build_model(meta.arch, len(meta.classes), **meta.model_kwargs)
    if meta.boxes:
        from synsetforge.training.localize import add_box_head

        add_box_head(model)
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
    boxes: BoxSource = "auto",
) -> Prediction:
    """Top-5 guesses for the challenge's test images (and its public val score); submit when `submit_as`.

    In a localization challenge every guess carries a box (`boxes`): ``head`` the network's box head
    (`train --boxes`), ``centre`` a centred box of the median train-box size of the challenge's release
    (a baseline that knows no image), ``whole`` the whole image; ``auto`` is ``head`` when the network
    has a box head, else ``whole``.
    """
    say = log or (lambda _m: None)
    t0 = time.perf_counter()
    dev = pick_device(device)
    torch.set_num_threads(cpu_threads())
    meta, model = load_run_model(run, dev)
    info = get_challenge(project, challenge)
    localization = info.settings.task == "localization"
    box_source = _box_source(boxes, meta, localization)
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

        def guesses(blobs: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
            """Top-5 challenge classes of images decoded like the run's val images, the rows that could
            be decoded, and (box head) each kept row's box in the eval input's unit frame."""
            images = DecodedImages(project.blobs, blobs, size, meta.fit, cache_dir=cache_dir(project.root))
            rows = np.arange(len(blobs))
            if not images.streaming:
                images.fill(pool)
                rows = images.ok_rows()
            if box_source == "head":
                from synsetforge.training.localize import run_localize

                logits, unit, kept = run_localize(
                    model, images, rows, meta.image_size, dev, pool=pool, normalize=meta.normalize
                )
                logits[:, ~mask.numpy()] = -np.inf
                return _top5(logits, model_to_challenge), kept, unit
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
            return _top5(logits, model_to_challenge), kept, None

        val_top1 = val_top5 = None
        usable_vals = [(n, i, c) for n, i, c in vals if i in keys]
        val_loc = None
        if usable_vals:
            top5, kept, val_unit = guesses([keys[i] for _, i, _ in usable_vals])
            truth = np.asarray([info.classes.index(c) for _, _, c in usable_vals])[kept]
            val_top1 = float(np.mean(top5[:, 0] != truth))
            val_top5 = float(np.mean(~(top5 == truth[:, None]).any(axis=1)))
            say(f"val: top-1 error {val_top1:.2%}, top-5 error {val_top5:.2%} on {len(kept)} images")
            if localization:
                kept_vals = [usable_vals[k] for k in kept]
                val_loc = _val_localization(project, info, meta, box_source, kept_vals, top5, truth, val_unit)
                if val_loc is not None:
                    err, n_boxed = val_loc
                    say(
                        f"val: localization error {err:.2%} on {n_boxed} images with boxes ({box_source} box)"
                    )
        labels, kept, unit = guesses([keys[i] for _, i in tests])
        if len(kept) != len(tests):
            raise InputError(
                f"{len(tests) - len(kept)} test images cannot be decoded; the challenge's data is damaged"
            )
    guess_boxes = None
    if localization:
        sizes = image_sizes(project, [i for _, i in tests])
        one = _image_boxes(project, info, meta, box_source, sizes, unit)
        guess_boxes = np.where((labels >= 0)[..., None], one[:, None, :], np.nan)
    sub = Submission(tuple(name for name, _ in tests), labels, guess_boxes)
    if file_format == "kaggle":
        data = format_kaggle_submission(sub, ClassList(info.classes), boxes=localization)
    else:
        data = format_classic_submission(sub, boxes=localization)
    result = Prediction(
        info.name, run, len(tests), val_top1, val_top5, len(vals), time.perf_counter() - t0, data, file_format
    )
    if localization:
        result.box_source = box_source
        result.val_localization_error = val_loc[0] if val_loc is not None else None
    say(f"test: 5 guesses for each of {len(tests)} images in {result.seconds:.1f} s")
    if submit_as is not None:
        from synsetforge.baselines.classical import account_id
        from synsetforge.benchmark.submissions import submit

        receipt = submit(project, info.id, account_id(project, *submit_as), data)
        result.submission_id = receipt.id
        say(f"submission {receipt.id} queued for team {submit_as[0]!r}")
    return result


def _box_source(choice: str, meta: ModelMeta, localization: bool) -> str | None:
    """Where each guess's box comes from; None in a classification challenge (no boxes)."""
    if choice not in BOX_SOURCES:
        raise InputError(f"--boxes must be one of {', '.join(BOX_SOURCES)}, got {choice!r}")
    if not localization:
        if choice != "auto":
            raise InputError(f"--boxes {choice}: this challenge scores classification, not localization")
        return None
    if choice == "auto":
        return "head" if meta.boxes else "whole"
    if choice == "head" and not meta.boxes:
        raise InputError("this network has no box head (train it with --boxes); use --boxes centre or whole")
    return choice


def image_sizes(project: Project, image_ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(widths, heights) of the stored images, the frame a challenge's boxes are scored in."""
    from sqlalchemy import select

    from synsetforge.store import schema

    found: dict[int, tuple[int, int]] = {}
    with project.session() as s:
        for start in range(0, len(image_ids), 500):
            chunk = image_ids[start : start + 500]
            rows = s.execute(
                select(schema.Image.id, schema.Image.width, schema.Image.height, schema.Image.blob).where(
                    schema.Image.id.in_(chunk)
                )
            )
            for image_id, width, height, blob in rows:
                found[int(image_id)] = (
                    (int(width), int(height)) if width and height else _blob_size(project, blob)
                )
    w = np.asarray([found[i][0] for i in image_ids], dtype=np.int64)
    h = np.asarray([found[i][1] for i in image_ids], dtype=np.int64)
    return w, h


def _blob_size(project: Project, blob: str | None) -> tuple[int, int]:
    import io

    from PIL import Image

    if not blob:
        return 1, 1
    with Image.open(io.BytesIO(project.blobs.get(blob))) as im:
        return im.width, im.height


def _image_boxes(
    project: Project,
    info: ChallengeInfo,
    meta: ModelMeta,
    box_source: str | None,
    sizes: tuple[np.ndarray, np.ndarray],
    unit: np.ndarray | None,
) -> np.ndarray:
    """One inclusive pixel box per image [n, 4] in its stored image's frame, from `box_source`."""
    from synsetforge.training.localize import centre_boxes, to_image_boxes

    w, h = sizes
    if box_source == "head":
        assert unit is not None
        side = decoded_size(meta.image_size, meta.crop_ratio)
        return to_image_boxes(unit, w, h, side, meta.image_size, meta.fit)
    if box_source == "centre":
        return centre_boxes(w, h, _release_box_share(project, info))
    return np.stack([np.zeros_like(w), np.zeros_like(h), w - 1, h - 1], axis=1).astype(np.float64)


def _release_box_share(project: Project, info: ChallengeInfo) -> tuple[float, float]:
    """The centre box's size: the median of the challenge release's train boxes (largest per image)."""
    from synsetforge.training.data import open_release
    from synsetforge.training.localize import split_boxes, typical_box_share

    data = open_release(
        project, info.release, classes=list(info.classes), splits=("train",), require_train=False
    )
    return typical_box_share(split_boxes(project, data, data.split("train")))


def _val_localization(
    project: Project,
    info: ChallengeInfo,
    meta: ModelMeta,
    box_source: str | None,
    vals: list[tuple[str, int, str]],
    top5: np.ndarray,
    truth: np.ndarray,
    unit: np.ndarray | None,
) -> tuple[float, int] | None:
    """(localization error, images) on the val images that have boxes in the challenge's release."""
    from synsetforge.training.localize import boxes_by_image, localization_hits

    by_image = boxes_by_image(project, info.release, "val", list(info.classes))
    gt = [[b[1:] for b in by_image.get(i, []) if b[0] == truth[k]] for k, (_, i, _) in enumerate(vals)]
    have = np.asarray([bool(g) for g in gt], dtype=bool)
    if not have.any():
        return None
    sizes = image_sizes(project, [i for _, i, _ in vals])
    one = _image_boxes(project, info, meta, box_source, sizes, unit)
    hits = localization_hits(top5[have], truth[have], one[have], [g for g in gt if g])
    return 1 - float(hits.mean()), int(have.sum())
