"""What pretraining buys: the same network on K images per class of another release, pretrained or not.

The experiment of DeCAF (Donahue et al. 2014) and Kornblith et al. 2019 (SPEC section 7): take a network
trained on one release (a run folder, or torchvision-layout weights a user brings), give it a new head for
release R2's classes and train on K images per class, either the head alone on frozen features (`linear`,
a linear probe) or everything (`finetune`); train the same architecture from random weights on the same K
images with the same budget; compare both on R2's val split. Errors come with 95% Wilson intervals, and an
exact McNemar test on the images where the two disagree says whether the gap could be luck.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from synsetforge.benchmark.leaderboard import mcnemar_exact
from synsetforge.errors import InputError, SynsetforgeError
from synsetforge.releases.quality import wilson
from synsetforge.store.project import Project
from synsetforge.training.checkpoint import MODEL, ModelMeta, load_model_file, load_weights, save_model
from synsetforge.training.config import TrainConfig
from synsetforge.training.data import few_shot, open_release
from synsetforge.training.engine import EvalResult, cpu_threads, evaluate, pick_device
from synsetforge.training.loader import decoding_pool
from synsetforge.training.models import Classifier, build_model, load_torchvision_weights
from synsetforge.training.train import Fitting, decode_split, fit, make_optimizer

MODES = ("linear", "finetune")


@dataclass
class Arm:
    """One side of the comparison: its val error with a 95% interval, and which val images it got right."""

    name: str
    top1_error: float
    top5_error: float
    interval: tuple[float, float]
    seconds: float
    correct: np.ndarray = field(repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "top1_error": self.top1_error,
            "top5_error": self.top5_error,
            "top1_error_95ci": list(self.interval),
            "seconds": round(self.seconds, 2),
        }


@dataclass
class TransferResult:
    release: str
    source: str
    mode: str
    shots: int
    classes: int
    train_images: int
    val_images: int
    pretrained: Arm
    scratch: Arm
    p_value: float  # exact McNemar test on the val images where the arms disagree

    def line(self) -> str:
        p, s = self.pretrained, self.scratch
        return (
            f"transfer to {self.release} ({self.classes} classes, {self.shots} images each, {self.mode}): "
            f"top-1 error pretrained {p.top1_error:.1%} [{p.interval[0]:.1%}, {p.interval[1]:.1%}] vs "
            f"from scratch {s.top1_error:.1%} [{s.interval[0]:.1%}, {s.interval[1]:.1%}] "
            f"on {self.val_images} val images (McNemar p = {self.p_value:.2g})"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "release": self.release,
            "source": self.source,
            "mode": self.mode,
            "shots": self.shots,
            "classes": self.classes,
            "train_images": self.train_images,
            "val_images": self.val_images,
            "pretrained": self.pretrained.to_json(),
            "scratch": self.scratch.to_json(),
            "mcnemar_p": self.p_value,
        }


def _pretrained(source: Path, arch: str | None, device: torch.device) -> tuple[Classifier, ModelMeta | None]:
    """The source network: a run folder (or its model.pt), or a torchvision `.pth` with `arch`."""
    if source.is_dir() or arch is None:
        meta, state, _ = load_model_file(source)
        if arch is not None and arch != meta.arch:
            raise InputError(f"{source} holds a {meta.arch} network, not a {arch}")
        model = build_model(meta.arch, len(meta.classes), **meta.model_kwargs)
        state = {k: v for k, v in state.items() if not k.startswith("box_head.")}  # transfer: classes only
        load_weights(model, state, source)
        return model.to(device), meta
    model = build_model(arch, 1000)
    load_torchvision_weights(model, source)
    return model.to(device), None


def _source_config(source: Path) -> TrainConfig | None:
    """The training settings of the source run, when its run.json is there."""
    from synsetforge.training.checkpoint import read_run_json

    try:
        return TrainConfig.from_json(read_run_json(source if source.is_dir() else source.parent)["config"])
    except (KeyError, TypeError, ValueError, OSError, SynsetforgeError):
        return None


def transfer(
    project: Project,
    source: Path,
    release: str,
    *,
    arch: str | None = None,
    mode: str = "linear",
    shots: int = 5,
    epochs: int = 30,
    batch_size: int = 64,
    lr: float | None = None,
    seed: int = 0,
    device: str = "auto",
    workers: int | None = None,
    out: Path | None = None,
    log: Callable[[str], None] | None = None,
) -> TransferResult:
    """Pretrained vs from scratch on `shots` train images per class of `release`, scored on its val split."""
    say = log or (lambda _m: None)
    if mode not in MODES:
        raise InputError(f"--mode must be linear or finetune, got {mode!r}")
    dev = pick_device(device)
    torch.set_num_threads(cpu_threads())
    pretrained, meta = _pretrained(source, arch, dev)
    arch = pretrained.arch
    data = open_release(project, release, splits=("train", "val"))
    n_classes = len(data.classes)
    train_s = few_shot(data.split("train"), n_classes, shots, seed)
    val_s = data.split("val")
    if len(val_s) == 0:
        raise InputError(f"release {release!r} has no val images of its classes to compare on")
    base = TrainConfig.for_arch(
        arch,
        epochs=epochs,
        image_size=meta.image_size if meta else 224,
        batch_size=min(batch_size, len(train_s)),
        seed=seed,
        schedule="cosine",
        model_kwargs=dict(meta.model_kwargs) if meta else {},
    )
    if meta is not None:  # see images as the source run saw them, augmented as it was
        src = _source_config(source)
        base = dataclasses.replace(
            base,
            fit=meta.fit,
            crop_ratio=meta.crop_ratio,
            normalize=meta.normalize,
            crop_scale=src.crop_scale if src else base.crop_scale,
            rotate=src.rotate if src else 0.0,
            label_smoothing=src.label_smoothing if src else 0.0,
            nesterov=src.nesterov if src else False,
            weight_decay=src.weight_decay if src else base.weight_decay,
            decay_norm_and_bias=src.decay_norm_and_bias if src else True,
        )
    with decoding_pool(workers) as pool:
        train_images, train_ok, _ = decode_split(project, train_s, base, cache=True, pool=pool)
        val_images, val_ok, _ = decode_split(project, val_s, base, cache=True, pool=pool)
        say(
            f"transfer: {arch} from {source} to {release}: {n_classes} classes x {shots} train images "
            f"({len(train_ok)}), {len(val_ok)} val images, {mode}, {epochs} epochs"
        )

        def run_arm(name: str, model: Classifier, cfg: TrainConfig) -> tuple[Arm, Classifier]:
            t0 = time.perf_counter()
            job = Fitting(
                model=model,
                optimizer=make_optimizer(model, cfg),
                config=cfg,
                train_images=train_images,
                train_rows=train_ok,
                train_labels=train_s.labels,
                val_images=None,
                val_rows=val_ok,
                val_labels=val_s.labels,
                device=dev,
                pool=pool,
            )
            fit(job)
            res: EvalResult = evaluate(
                model,
                val_images,
                val_ok,
                val_s.labels,
                cfg.image_size,
                dev,
                pool=pool,
                normalize=cfg.normalize,
            )
            wrong = round(res.top1_error * res.n)
            arm = Arm(
                name,
                res.top1_error,
                res.top5_error,
                wilson(wrong, res.n),
                time.perf_counter() - t0,
                res.correct1,
            )
            say(
                f"  {name}: val top-1 error {res.top1_error:.1%}, top-5 error {res.top5_error:.1%} ({arm.seconds:.1f} s)"
            )
            return arm, model

        torch.manual_seed(seed)
        pretrained.reset_head(n_classes)
        pretrained.to(dev)
        if mode == "linear":
            pretrained.freeze_backbone()
        scale = 1.0 if mode == "linear" else 0.1  # fine-tuning moves pretrained weights gently
        cfg_pre = dataclasses.replace(base, lr=(lr or base.lr) * scale)
        pre_arm, pre_model = run_arm("pretrained", pretrained, cfg_pre)
        torch.manual_seed(seed)
        scratch = build_model(arch, n_classes, **base.model_kwargs).to(dev)
        cfg_scr = dataclasses.replace(base, lr=lr or base.lr)
        scr_arm, scr_model = run_arm("from scratch", scratch, cfg_scr)
    a_only = int(np.sum(pre_arm.correct & ~scr_arm.correct))
    b_only = int(np.sum(~pre_arm.correct & scr_arm.correct))
    result = TransferResult(
        release=data.release,
        source=str(source),
        mode=mode,
        shots=shots,
        classes=n_classes,
        train_images=len(train_ok),
        val_images=len(val_ok),
        pretrained=pre_arm,
        scratch=scr_arm,
        p_value=mcnemar_exact(a_only, b_only),
    )
    if out is not None:
        _save(out, result, data, base, pre_model, scr_model)
    return result


def _save(out: Path, result: TransferResult, data: Any, cfg: TrainConfig, *models: Classifier) -> None:
    """transfer.json plus both networks as run folders that `predict` and `embed` accept."""
    out.mkdir(parents=True, exist_ok=True)
    for name, model in zip(("pretrained", "scratch"), models, strict=True):
        meta = ModelMeta.of(cfg, data.classes, data.release, data.manifest_sha256)
        (out / name).mkdir(exist_ok=True)
        model.unfreeze_backbone()
        save_model(out / name / MODEL, meta, cfg, model, {"transfer": result.to_json()})
    (out / "transfer.json").write_text(json.dumps(result.to_json(), indent=2) + "\n")
