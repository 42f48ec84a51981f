"""`synsetforge train | predict | transfer | embed`: deep baselines on a release, from the command line."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from synsetforge.cliopts import FileFormat, ProjectOpt
from synsetforge.errors import InputError

console = Console(highlight=False)

DeviceOpt = Annotated[
    str, typer.Option("--device", help="auto (CUDA when present, else CPU), cpu, cuda or cuda:N.")
]
WorkersOpt = Annotated[
    int | None,
    typer.Option(
        "--workers", help="Decoding processes (default: one per core, at most 8; 0: decode in-process)."
    ),
]


class Schedule(StrEnum):
    cosine = "cosine"
    step = "step"
    constant = "constant"


class Fit(StrEnum):
    crop = "crop"
    pad = "pad"
    stretch = "stretch"


class BoxChoice(StrEnum):
    auto = "auto"
    head = "head"
    centre = "centre"
    whole = "whole"


class Mode(StrEnum):
    linear = "linear"
    finetune = "finetune"


@contextlib.contextmanager
def progress_bar(enabled: bool) -> Iterator[Any]:
    """A live progress bar (images/s, loss, time left) on a terminal; nothing otherwise."""
    if not enabled or not console.is_terminal:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[ips]} img/s  loss {task.fields[loss]}"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as bar:
        original = bar.add_task

        def add_task(description: str, **kw: Any) -> Any:
            kw.setdefault("ips", "-")
            kw.setdefault("loss", "-")
            return original(description, **kw)

        bar.add_task = add_task  # type: ignore[method-assign,assignment]
        yield bar


def default_run_dir(root: Path, release: str, arch: str) -> Path:
    base = root / "runs" / f"{release}-{arch}"
    out, k = base, 2
    while out.exists() and any(out.iterdir()):
        out = base.with_name(f"{base.name}-{k}")
        k += 1
    return out


def train_command(
    release: Annotated[
        str | None, typer.Option("--release", help="Release to train on (its train split).")
    ] = None,
    arch: Annotated[
        str | None,
        typer.Option("--arch", help="Network: small, alexnet, resnet18/34/50/101/152 (default resnet18)."),
    ] = None,
    epochs: Annotated[
        int | None, typer.Option("--epochs", help="Epochs (default: the arch's recipe).")
    ] = None,
    image_size: Annotated[int | None, typer.Option("--image-size", help="Input side in pixels.")] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", help="Global batch size.")] = None,
    lr: Annotated[
        float | None, typer.Option("--lr", help="Peak learning rate (default: recipe, scaled by batch/256).")
    ] = None,
    schedule: Annotated[
        Schedule | None, typer.Option("--schedule", help="Learning-rate schedule after warmup.")
    ] = None,
    warmup_epochs: Annotated[
        float | None, typer.Option("--warmup-epochs", help="Linear warmup length.")
    ] = None,
    weight_decay: Annotated[float | None, typer.Option("--weight-decay", help="L2 weight decay.")] = None,
    label_smoothing: Annotated[float | None, typer.Option("--label-smoothing", help="0 (off) to <1.")] = None,
    fit: Annotated[
        Fit | None, typer.Option("--fit", help="How images become square: crop, pad or stretch.")
    ] = None,
    rotate: Annotated[
        float | None, typer.Option("--rotate", help="Random rotation augmentation, max degrees.")
    ] = None,
    min_crop: Annotated[
        float | None, typer.Option("--min-crop", help="Smallest random-resized-crop area share.")
    ] = None,
    normalize: Annotated[
        str | None,
        typer.Option("--normalize", help="imagenet (torchvision's weights expect it) or image (per-image)."),
    ] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Seed of shuffling, augmentation and init.")
    ] = None,
    weights: Annotated[
        Path | None, typer.Option("--weights", help="Start from torchvision-layout weights (.pth).")
    ] = None,
    boxes: Annotated[
        bool | None,
        typer.Option(
            "--boxes/--no-boxes",
            help="Also train a box head on the release's train boxes (localization; default off).",
        ),
    ] = None,
    box_weight: Annotated[
        float | None, typer.Option("--box-weight", help="Weight of the box loss (default 1).")
    ] = None,
    device: DeviceOpt = "auto",
    workers: WorkersOpt = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Run folder (default: PROJECT/runs/RELEASE-ARCH).")
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run in --out after its last epoch.")
    ] = False,
    cache: Annotated[
        bool, typer.Option("--cache/--no-cache", help="Keep decoded images in PROJECT/cache.")
    ] = True,
    project: ProjectOpt = None,
) -> None:
    """Train a network on a release (checkpoint each epoch; --resume continues after a kill)."""
    from synsetforge.store.project import Project
    from synsetforge.training.checkpoint import CHECKPOINT, load, read_run_json
    from synsetforge.training.config import TrainConfig
    from synsetforge.training.train import train

    overrides: dict[str, Any] = {
        "epochs": epochs,
        "image_size": image_size,
        "batch_size": batch_size,
        "lr": lr,
        "schedule": schedule.value if schedule else None,
        "warmup_epochs": warmup_epochs,
        "weight_decay": weight_decay,
        "label_smoothing": label_smoothing,
        "fit": fit.value if fit else None,
        "rotate": rotate,
        "crop_scale": (min_crop, 1.0) if min_crop is not None else None,
        "normalize": normalize,
        "seed": seed,
        "boxes": boxes,
        "box_weight": box_weight,
    }
    with Project.open(project) as p:
        if resume:
            if out is None:
                raise InputError("--resume needs --out RUN_DIR (the run folder to continue)")
            state = load(out / CHECKPOINT)
            config = TrainConfig.from_json(state["config"])
            saved = config.to_json()
            changed = [
                k
                for k, v in overrides.items()
                if v is not None and saved.get(k) != (list(v) if isinstance(v, tuple) else v)
            ]
            if arch is not None and arch != config.arch:
                raise InputError(f"{out / CHECKPOINT} holds a {config.arch} network, not a {arch}")
            if changed:
                raise InputError(
                    f"--resume continues the run in {out} as it was started; do not change "
                    f"{', '.join(changed)}"
                )
            release = release or read_run_json(out).get("release")
            if release is None:
                raise InputError(f"--resume: {out} does not say which release it trained on; pass --release")
        else:
            if release is None:
                raise InputError("give --release RELEASE (see `synsetforge release list`)")
            arch = arch or "resnet18"
            config = TrainConfig.for_arch(arch, **overrides)
            out = out or default_run_dir(p.root, release, arch)
        console.print(f"run folder {out}  (continue after a kill: synsetforge train --out {out} --resume)")
        with progress_bar(True) as bar:
            result = train(
                p,
                release,
                config,
                out=out,
                resume=resume,
                device=device,
                workers=workers,
                weights=weights,
                cache=cache,
                log=lambda m: console.print(m, markup=False),
                progress=bar,
            )
        final = result.final.get("val", {})
        console.print(
            f"done in {result.seconds:.0f} s: val top-1 error {final.get('top1_error', float('nan')):.2%}, "
            f"top-5 error {final.get('top5_error', float('nan')):.2%} on {result.val_images} images "
            f"(chance {1 - 1 / len(result.classes):.0%} / {max(0.0, 1 - 5 / len(result.classes)):.0%})"
            + (
                f", localization error {final['localization_error']:.2%} on {final['n_boxed']} boxed images"
                if final.get("n_boxed")
                else ""
            )
            + f"; weights in {result.run_dir / 'model.pt'}"
        )
        console.print(f"next: synsetforge predict --run {result.run_dir} --challenge CHALLENGE --submit")


def predict_command(
    run: Annotated[Path, typer.Option("--run", help="Run folder written by `synsetforge train`.")],
    challenge: Annotated[str, typer.Option("--challenge", help="Challenge to write the submission for.")],
    submit: Annotated[bool, typer.Option("--submit/--no-submit", help="Queue it for scoring.")] = False,
    team: Annotated[str | None, typer.Option("--team", help="Team to submit as (default: cnn-ARCH).")] = None,
    file_format: Annotated[
        FileFormat, typer.Option("--format", help="Submission file format.")
    ] = FileFormat.ilsvrc,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Also write the file here.")] = None,
    boxes: Annotated[
        BoxChoice,
        typer.Option(
            "--boxes",
            help="Localization: each guess's box from the box head, a centred box of the median train-box "
            "size, or the whole image (auto: head when the network has one, else whole).",
        ),
    ] = BoxChoice.auto,
    device: DeviceOpt = "auto",
    workers: WorkersOpt = None,
    project: ProjectOpt = None,
) -> None:
    """Five guesses per test image of a challenge from a trained network (centre crop); --submit queues it."""
    from synsetforge.store.project import Project
    from synsetforge.training.checkpoint import load_model_file
    from synsetforge.training.predict import predict

    with Project.open(project) as p:
        meta, _, _ = load_model_file(run)
        who = (team or f"cnn-{meta.arch}", run.resolve().name) if submit else None
        result = predict(
            p,
            run,
            challenge,
            device=device,
            file_format="kaggle" if file_format is FileFormat.kaggle else "ilsvrc",
            submit_as=who,
            workers=workers,
            log=lambda m: console.print(m, markup=False),
            boxes=boxes.value,
        )
        if output is not None:
            output.write_bytes(result.file)
            console.print(f"wrote {output} ({len(result.file):,} bytes, {result.format} format)")
        if result.submission_id is not None:
            console.print("run `synsetforge worker --once` to score it")
        elif output is None:
            console.print("nothing written: pass --output FILE or --submit")


def transfer_command(
    source: Annotated[
        Path,
        typer.Option(
            "--from", help="Run folder of the pretrained network, or a torchvision .pth with --arch."
        ),
    ],
    release: Annotated[
        str,
        typer.Option("--release", help="Target release (R2): its train split gives the K shots, val scores."),
    ],
    mode: Annotated[
        Mode,
        typer.Option("--mode", help="linear: train a new head on frozen features; finetune: everything."),
    ] = Mode.linear,
    shots: Annotated[int, typer.Option("--shots", help="K train images per class.")] = 5,
    epochs: Annotated[int, typer.Option("--epochs", help="Epochs over the K-shot set (both arms).")] = 30,
    arch: Annotated[
        str | None,
        typer.Option("--arch", help="With a .pth: its architecture (alexnet, resnet18, resnet50...)."),
    ] = None,
    lr: Annotated[
        float | None, typer.Option("--lr", help="Learning rate (default: the arch's recipe).")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the K-shot sample and training.")] = 0,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write transfer.json and both networks here.")
    ] = None,
    device: DeviceOpt = "auto",
    workers: WorkersOpt = None,
    project: ProjectOpt = None,
) -> None:
    """Pretrained vs from scratch on K images per class of another release; val errors with 95% intervals."""
    from synsetforge.store.project import Project
    from synsetforge.training.transfer import transfer

    with Project.open(project) as p:
        result = transfer(
            p,
            source,
            release,
            arch=arch,
            mode=mode.value,
            shots=shots,
            epochs=epochs,
            lr=lr,
            seed=seed,
            device=device,
            workers=workers,
            out=out,
            log=lambda m: console.print(m, markup=False),
        )
        console.print(result.line(), markup=False)


def embed_command(
    run: Annotated[Path, typer.Option("--run", help="Run folder written by `synsetforge train`.")],
    release: Annotated[str, typer.Option("--release", help="Release whose images to embed.")],
    name: Annotated[
        str | None, typer.Option("--name", help="Name of this feature set (default: the run folder's name).")
    ] = None,
    replace: Annotated[
        bool, typer.Option("--replace", help="Replace a feature set of the same name.")
    ] = False,
    device: DeviceOpt = "auto",
    workers: WorkersOpt = None,
    project: ProjectOpt = None,
) -> None:
    """Store per-image feature vectors (float16) of a release from a trained network (explorer: similar images)."""
    from synsetforge.store.project import Project
    from synsetforge.training.embed import embed

    with Project.open(project) as p:
        embed(
            p,
            run,
            release,
            name=name,
            replace=replace,
            device=device,
            workers=workers,
            log=lambda m: console.print(m, markup=False),
        )
