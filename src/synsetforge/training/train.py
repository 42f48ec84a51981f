"""Train a network on a release: `train(project, "v1", TrainConfig.for_arch("resnet18"), out=run_dir)`.

The loop, in one place (`fit`): each epoch shuffles the decoded train images with a permutation drawn from
(seed, epoch); each step draws its augmentation from (seed, epoch, step) (`augment.step_generator`), sets
the learning rate from the step number alone (`TrainConfig.lr_at`), and runs forward, backward and SGD. So
the state after epoch k is all a run needs to go on: a checkpoint is written after every epoch, and
`--resume` after a kill continues to the same final weights as an uninterrupted run (on the CPU, where
kernels are deterministic).

Under `torchrun` (several processes, `WORLD_SIZE` > 1) each process takes its slice of every global batch,
decodes only its share of the release, and DistributedDataParallel averages gradients: with the same global
batch the steps equal one process's, up to float summation order, for networks without batch statistics
(batch norm sees each process's slice, as in torchvision's reference unless `--sync-bn`, which PyTorch
supports on GPUs only).
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from synsetforge.errors import InputError
from synsetforge.store.project import Project
from synsetforge.training.augment import (
    AugmentSpec,
    crop_params,
    decoded_size,
    step_generator,
    train_transform,
)
from synsetforge.training.boxgeom import augment_boxes, box_loss
from synsetforge.training.checkpoint import (
    CHECKPOINT,
    FORMAT,
    LOG,
    MODEL,
    RUN_JSON,
    ModelMeta,
    atomic_save,
    atomic_write_text,
    load,
    load_weights,
    save_model,
)
from synsetforge.training.config import TrainConfig
from synsetforge.training.data import ReleaseData, Samples, open_release
from synsetforge.training.engine import EvalResult, autocast, cpu_threads, evaluate, pick_device
from synsetforge.training.loader import DecodedImages, cache_dir, decoding_pool
from synsetforge.training.localize import (
    Localizer,
    SplitBoxes,
    add_box_head,
    evaluate_localization,
    split_boxes,
)
from synsetforge.training.models import Classifier, build_model, load_torchvision_weights

Log = Callable[[str], None]


# -- processes ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Dist:
    """This process's place among `world` training processes (world 1: no torchrun)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()


def setup_processes(device_choice: str) -> tuple[Dist, torch.device]:
    """Join the torchrun process group when there is one, and pick this process's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = pick_device(device_choice)
    if world <= 1:
        return Dist(), device
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), local), device


# -- the loop -----------------------------------------------------------------------------------------------
@dataclass
class EpochStats:
    epoch: int
    train_loss: float
    images: int
    seconds: float
    lr: float
    val: dict[str, float] = field(default_factory=dict)

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "train_loss": self.train_loss,
            "images": self.images,
            "seconds": round(self.seconds, 3),
            "images_per_second": round(self.images_per_second, 1),
            "lr": self.lr,
            "val": self.val,
        }


@dataclass
class Fitting:
    """What `fit` works on: the model, its optimizer, and the decoded images with their labels."""

    model: Classifier
    optimizer: torch.optim.Optimizer
    config: TrainConfig
    train_images: DecodedImages
    train_rows: np.ndarray  # rows of train_images that decoded
    train_labels: np.ndarray  # label per row of train_images
    val_images: DecodedImages | None
    val_rows: np.ndarray
    val_labels: np.ndarray
    device: torch.device
    procs: Dist = field(default_factory=Dist)
    pool: concurrent.futures.Executor | None = None
    train_boxes: np.ndarray | None = None  # float32 [rows of train_images, 4] decoded-frame box, NaN: none
    val_boxes: SplitBoxes | None = None  # with train_boxes: val localization error after each epoch


def make_optimizer(model: Classifier, config: TrainConfig) -> torch.optim.SGD:
    """SGD with momentum; weight decay on every parameter (the papers' recipe) or, with
    `decay_norm_and_bias` off, on weight matrices and kernels only (not batch-norm scales or biases)."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups: list[dict[str, Any]] = [{"params": params}]
    if not config.decay_norm_and_bias:
        groups = [
            {"params": [p for p in params if p.ndim > 1]},
            {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0},
        ]
    return torch.optim.SGD(
        groups,
        lr=config.lr,
        momentum=config.momentum,
        weight_decay=config.weight_decay,
        nesterov=config.nesterov and config.momentum > 0,
    )


def _step_seed(seed: int, epoch: int, step: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, step, 1]).generate_state(1)[0])


def fit(
    job: Fitting,
    *,
    start_epoch: int = 0,
    on_epoch: Callable[[EpochStats], None] | None = None,
    progress: Any = None,
) -> list[EpochStats]:
    """Train from `start_epoch` to `config.epochs`, evaluating on val after each epoch."""
    cfg, model, procs = job.config, job.model, job.procs
    spec = AugmentSpec(scale=cfg.crop_scale, flip=True, rotate=cfg.rotate)
    n = len(job.train_rows)
    global_batch = min(cfg.batch_size, n)
    if global_batch % procs.world:
        raise InputError(f"--batch-size {global_batch} must be a multiple of the {procs.world} processes")
    local = global_batch // procs.world
    steps = max(1, n // global_batch)
    boxes = torch.from_numpy(job.train_boxes) if job.train_boxes is not None else None
    net: torch.nn.Module = Localizer(model) if boxes is not None else model
    if procs.world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            net, device_ids=[job.device.index] if job.device.type == "cuda" else None
        )
    labels = torch.from_numpy(job.train_labels)
    # float16 autocast (CUDA without bfloat16) needs loss scaling; bfloat16 and float32 do not
    scaler = torch.amp.GradScaler(
        "cuda", enabled=job.device.type == "cuda" and not torch.cuda.is_bf16_supported()
    )
    history: list[EpochStats] = []
    task = progress.add_task("train", total=(cfg.epochs - start_epoch) * steps) if progress else None
    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        perm = job.train_rows[np.random.default_rng([cfg.seed, epoch]).permutation(n)]
        step_rows = [perm[s * global_batch : (s + 1) * global_batch] for s in range(steps)]
        mine = [rows[procs.rank * local : (procs.rank + 1) * local] for rows in step_rows]
        t0, seen, loss_sum, loss_n, lr = time.perf_counter(), 0, 0.0, 0, cfg.lr
        for step, (rows, batch, _failed) in enumerate(job.train_images.stream(job.pool, mine)):
            lr = cfg.lr_at(epoch * steps + step, steps)
            for group in job.optimizer.param_groups:
                group["lr"] = lr
            theta = crop_params(global_batch, spec, step_generator(cfg.seed, epoch, step))
            theta = theta[procs.rank * local : (procs.rank + 1) * local]
            if len(rows) != len(mine[step]):  # streaming mode dropped undecodable images
                theta = theta[torch.from_numpy(np.isin(mine[step], rows))]
            torch.manual_seed(_step_seed(cfg.seed, epoch, step))  # dropout masks
            x = train_transform(
                torch.from_numpy(batch).to(job.device, non_blocking=True),
                theta,
                cfg.image_size,
                cfg.normalize,
            )
            y = labels[torch.from_numpy(rows)].to(job.device, non_blocking=True)
            with autocast(job.device):
                if boxes is None:
                    loss = F.cross_entropy(net(x), y, label_smoothing=cfg.label_smoothing)
                else:
                    logits, predicted = net(x)
                    target, weight = augment_boxes(theta, boxes[torch.from_numpy(rows)])
                    loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
                    loss = loss + cfg.box_weight * box_loss(predicted, target, weight)
            job.optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(job.optimizer)
            scaler.update()
            value = float(loss.detach())
            if not np.isfinite(value):
                raise InputError(
                    f"training diverged at epoch {epoch + 1}, step {step + 1} (loss {value}); try a smaller --lr"
                )
            loss_sum += value * len(rows)
            loss_n += len(rows)
            seen += len(rows) * procs.world
            if progress is not None and task is not None:
                elapsed = time.perf_counter() - t0
                progress.update(
                    task,
                    advance=1,
                    description=f"epoch {epoch + 1}/{cfg.epochs}",
                    ips=f"{seen / elapsed:,.0f}" if elapsed > 0 else "-",
                    loss=f"{loss_sum / max(1, loss_n):.3f}",
                )
        seconds = time.perf_counter() - t0
        stats = EpochStats(epoch + 1, _mean_across(loss_sum, loss_n, procs), seen, seconds, lr)
        if job.val_images is not None and len(job.val_rows):
            if job.val_boxes is not None and boxes is not None:
                stats.val = evaluate_boxes_distributed(job, model)
            else:
                stats.val = evaluate_distributed(job, model).summary()
        history.append(stats)
        if on_epoch is not None:
            on_epoch(stats)
    return history


def _mean_across(total: float, count: int, procs: Dist) -> float:
    if procs.world > 1:
        t = torch.tensor([total, float(count)], dtype=torch.float64)
        dist.all_reduce(t)
        total, count = float(t[0]), int(t[1])
    return total / max(1, count)


def evaluate_distributed(job: Fitting, model: Classifier) -> EvalResult:
    """Val error; under torchrun each process scores its share and the counts are summed."""
    assert job.val_images is not None
    procs = job.procs
    rows = job.val_rows[procs.rank :: procs.world]
    result = evaluate(
        model,
        job.val_images,
        rows,
        job.val_labels,
        job.config.image_size,
        job.device,
        pool=job.pool,
        normalize=job.config.normalize,
    )
    if procs.world == 1:
        return result
    n = result.n
    t = torch.tensor(
        [
            (1 - result.top1_error) * n if n else 0.0,
            (1 - result.top5_error) * n if n else 0.0,
            result.loss * n if n else 0.0,
            float(n),
        ],
        dtype=torch.float64,
    )
    dist.all_reduce(t)
    total = max(1.0, float(t[3]))
    return EvalResult(
        1 - float(t[0]) / total,
        1 - float(t[1]) / total,
        float(t[2]) / total,
        int(t[3]),
        result.top5,
        result.correct1,
    )


def evaluate_boxes_distributed(job: Fitting, model: Classifier) -> dict[str, float]:
    """Val error and localization error (images with boxes) of a network with a box head; under torchrun
    each process scores its share and the counts are summed."""
    assert job.val_images is not None and job.val_boxes is not None
    procs, cfg = job.procs, job.config
    rows = job.val_rows[procs.rank :: procs.world]
    got = evaluate_localization(
        model,
        job.val_images,
        rows,
        job.val_labels,
        job.val_boxes,
        cfg.image_size,
        cfg.fit,
        job.device,
        pool=job.pool,
        normalize=cfg.normalize,
    )
    r, n = got.result, got.result.n
    t = torch.tensor(
        [
            (1 - r.top1_error) * n if n else 0.0,
            (1 - r.top5_error) * n if n else 0.0,
            r.loss * n if n else 0.0,
            float(n),
            float(got.hits),
            float(got.n_boxed),
        ],
        dtype=torch.float64,
    )
    if procs.world > 1:
        dist.all_reduce(t)
    total, boxed = max(1.0, float(t[3])), float(t[5])
    return {
        "top1_error": 1 - float(t[0]) / total,
        "top5_error": 1 - float(t[1]) / total,
        "loss": float(t[2]) / total,
        "n": int(t[3]),
        "localization_error": 1 - float(t[4]) / boxed if boxed else float("nan"),
        "n_boxed": int(boxed),
    }


# -- a run on a release -------------------------------------------------------------------------------------
@dataclass
class TrainResult:
    """A finished (or resumed and finished) run."""

    run_dir: Path
    config: TrainConfig
    classes: list[str]
    history: list[dict[str, Any]]
    skipped: dict[str, int]
    train_images: int
    val_images: int
    seconds: float
    resumed_from: int = 0

    @property
    def final(self) -> dict[str, Any]:
        return self.history[-1] if self.history else {}


def decode_split(
    project: Project,
    samples: Samples,
    config: TrainConfig,
    *,
    cache: bool,
    pool: concurrent.futures.Executor | None,
    procs: Dist = Dist(),
    progress: Any = None,
    label: str = "",
) -> tuple[DecodedImages, np.ndarray, int]:
    """Decode a split once into the project's cache (each process its share); (images, ok rows, failed)."""
    size = decoded_size(config.image_size, config.crop_ratio)
    folder = cache_dir(project.root) if cache else None

    def open_images() -> DecodedImages:
        return DecodedImages(project.blobs, samples.blobs, size, config.fit, cache_dir=folder)

    first = open_images() if procs.main else None  # the main process creates the cache files
    procs.barrier()
    images = first or open_images()
    if images.streaming:
        return images, np.arange(len(samples)), 0
    task = progress.add_task(f"decode {label}", total=len(samples) // procs.world) if progress else None

    def tick(k: int) -> None:
        if progress is not None and task is not None:
            progress.update(task, advance=k)

    images.fill(pool, rows=np.arange(procs.rank, len(samples), procs.world), progress=tick)
    procs.barrier()
    if progress is not None and task is not None:
        progress.remove_task(task)
    ok = images.ok_rows()
    return images, ok, len(samples) - len(ok)


def _check_out(out: Path, resume: bool) -> None:
    if resume:
        if not (out / CHECKPOINT).exists():
            raise InputError(f"--resume: {out} holds no checkpoint to resume from")
        return
    if out.exists() and any(out.iterdir()):
        raise InputError(
            f"{out} is not empty (a run is there: add --resume to continue it); choose another --out"
        )


def train(
    project: Project,
    release: str,
    config: TrainConfig,
    *,
    out: Path,
    resume: bool = False,
    device: str = "auto",
    workers: int | None = None,
    classes: list[str] | None = None,
    weights: Path | None = None,
    cache: bool = True,
    log: Log | None = None,
    progress: Any = None,
) -> TrainResult:
    """Train `config.arch` on the release's train split, checkpointing into `out` after every epoch."""
    started = time.perf_counter()
    procs, dev = setup_processes(device)
    say = log if (log is not None and procs.main) else (lambda _m: None)
    torch.set_num_threads(cpu_threads())
    out = out.resolve()
    state: dict[str, Any] | None = None
    if procs.main:
        _check_out(out, resume)
    if resume:
        state = load(out / CHECKPOINT)
        for key in ("meta", "config", "model", "optimizer", "epoch"):
            if key not in state:
                raise InputError(f"{out / CHECKPOINT} is not a training checkpoint (no {key})")
        meta = ModelMeta.from_json(state["meta"])
        if meta.arch != config.arch:
            raise InputError(f"{out / CHECKPOINT} holds a {meta.arch} network, not a {config.arch}")
        saved = TrainConfig.from_json(state["config"])
        if saved != config:
            diff = [k for k, v in config.to_json().items() if saved.to_json().get(k) != v]
            raise InputError(
                f"--resume: the run in {out} was started with other settings ({', '.join(diff)}); "
                "resume it without changing them"
            )
        classes = list(meta.classes)
    data = open_release(project, release, classes=classes, splits=("train", "val"))
    if state is not None and meta.manifest_sha256 != data.manifest_sha256:
        raise InputError(f"--resume: the run in {out} trained on another release than {release!r}")
    if procs.main:
        out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)  # the initial weights: same seed, same network
    model = build_model(config.arch, len(data.classes), **config.model_kwargs)
    if weights is not None and state is None:
        report = load_torchvision_weights(model, weights)
        say(f"initial weights: {report}")
    if config.boxes:
        add_box_head(model)
    if state is not None:
        load_weights(model, state["model"], out / CHECKPOINT)
    model.to(dev)
    if dev.type == "cuda" or os.environ.get("SYNSETFORGE_CHANNELS_LAST", "1") == "1":
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    optimizer = make_optimizer(model, config)
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
    start = int(state["epoch"]) if state is not None else 0
    history: list[dict[str, Any]] = list(state["history"]) if state is not None else []

    try:
        with decoding_pool(workers) as pool:
            train_s, val_s = data.split("train"), data.split("val")
            train_images, train_ok, bad_train = decode_split(
                project,
                train_s,
                config,
                cache=cache,
                pool=pool,
                procs=procs,
                progress=progress,
                label="train",
            )
            val_images, val_ok, bad_val = decode_split(
                project, val_s, config, cache=cache, pool=pool, procs=procs, progress=progress, label="val"
            )
            skipped = {"train": bad_train, "val": bad_val}
            train_boxes = val_boxes = None
            if config.boxes:
                train_boxes, val_boxes = _release_boxes(
                    project, data, train_s, val_s, train_images.size, config.fit, say
                )
            if bad_train or bad_val:
                say(f"skipped {bad_train} train and {bad_val} val images that could not be decoded")
            if len(train_ok) == 0:
                raise InputError(f"release {release!r}: none of its train images could be decoded")
            meta = ModelMeta.of(config, data.classes, data.release, data.manifest_sha256)
            if procs.main and state is None:
                _write_run_json(
                    out, config, meta, history, skipped, len(train_ok), len(val_ok), finished=False
                )
            say(
                f"{config.arch} ({model.num_parameters():,} parameters) on {len(data.classes)} classes: "
                f"{len(train_ok):,} train, {len(val_ok):,} val images at {config.image_size} px; "
                f"{config.epochs} epochs, batch {config.batch_size}, lr {config.lr:g} ({config.schedule}), "
                f"device {dev}{f' x {procs.world} processes' if procs.world > 1 else ''}"
                + (f"; resuming after epoch {start}" if start else "")
            )
            job = Fitting(
                model=model,
                optimizer=optimizer,
                config=config,
                train_images=train_images,
                train_rows=train_ok,
                train_labels=train_s.labels,
                val_images=val_images,
                val_rows=val_ok,
                val_labels=val_s.labels,
                device=dev,
                procs=procs,
                pool=pool,
                train_boxes=train_boxes,
                val_boxes=val_boxes,
            )

            def on_epoch(stats: EpochStats) -> None:
                history.append(stats.to_json())
                v = stats.val
                say(
                    f"epoch {stats.epoch}/{config.epochs}: train loss {stats.train_loss:.3f}"
                    + (
                        f", val top-1 error {v['top1_error']:.1%}, top-5 error {v['top5_error']:.1%}"
                        if v
                        else ""
                    )
                    + (
                        f", localization error {v['localization_error']:.1%} ({v['n_boxed']} boxed)"
                        if v.get("n_boxed")
                        else ""
                    )
                    + f" ({stats.images_per_second:,.0f} images/s, {stats.seconds:.1f} s)"
                )
                if procs.main:
                    ckpt = {
                        "synsetforge_checkpoint": FORMAT,
                        "kind": "checkpoint",
                        "meta": meta.to_json(),
                        "config": config.to_json(),
                        "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "epoch": stats.epoch,
                        "history": history,
                    }
                    atomic_save(ckpt, out / CHECKPOINT)
                    with open(out / LOG, "a") as f:
                        f.write(json.dumps(stats.to_json()) + "\n")
                    _write_run_json(
                        out, config, meta, history, skipped, len(train_ok), len(val_ok), finished=False
                    )

            fit(job, start_epoch=start, on_epoch=on_epoch, progress=progress if procs.main else None)
            if procs.main:
                summary = {"val": history[-1]["val"] if history else {}, "epochs": config.epochs}
                save_model(out / MODEL, meta, config, model, summary)
                _write_run_json(
                    out, config, meta, history, skipped, len(train_ok), len(val_ok), finished=True
                )
            procs.barrier()
            return TrainResult(
                run_dir=out,
                config=config,
                classes=data.classes,
                history=history,
                skipped=skipped,
                train_images=len(train_ok),
                val_images=len(val_ok),
                seconds=time.perf_counter() - started,
                resumed_from=start,
            )
    finally:
        if procs.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def _release_boxes(
    project: Project,
    data: ReleaseData,
    train_s: Samples,
    val_s: Samples,
    side: int,
    fit: str,
    say: Log,
) -> tuple[np.ndarray, SplitBoxes]:
    """Box targets of the train rows (largest box, decoded frame) and the val rows' boxes; an InputError
    when no train image has a box."""
    tb = split_boxes(project, data, train_s)
    vb = split_boxes(project, data, val_s)
    if tb.with_boxes == 0:
        raise InputError(
            f"--boxes: release {data.release!r} has no boxes on its train images "
            "(a release freezes the boxes it was created with: add boxes, then create a new release)"
        )
    say(
        f"boxes: {tb.with_boxes:,} of {len(train_s):,} train images have one (the largest trains the box "
        f"head), {vb.with_boxes:,} of {len(val_s):,} val images score localization"
    )
    return tb.targets(side, fit), vb


def _write_run_json(
    out: Path,
    config: TrainConfig,
    meta: ModelMeta,
    history: list[dict[str, Any]],
    skipped: dict[str, int],
    n_train: int,
    n_val: int,
    *,
    finished: bool,
) -> None:
    data = {
        "finished": finished,
        "release": meta.release,
        "manifest_sha256": meta.manifest_sha256,
        "arch": config.arch,
        "classes": meta.classes,
        "config": config.to_json(),
        "train_images": n_train,
        "val_images": n_val,
        "skipped_undecodable": skipped,
        "epochs_done": len(history),
        "history": history,
        "torch": torch.__version__,
    }
    atomic_write_text(out / RUN_JSON, json.dumps(data, indent=2) + "\n")
