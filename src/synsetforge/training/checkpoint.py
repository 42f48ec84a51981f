"""Run folders and checkpoints: written atomically, read back with `weights_only=True`, checked before use.

A run folder holds:
- ``checkpoint.pt``: the state after the last finished epoch (model, optimizer, epoch, history, config),
  rewritten each epoch through a temporary file and a rename, so a kill never leaves half a checkpoint;
- ``model.pt``: the final weights with what `predict`, `transfer` and `embed` need (arch, classes, input
  size, how images were fitted), written when training ends;
- ``run.json``: the run's settings and per-epoch figures in plain JSON, for people and other tools;
- ``log.jsonl``: one line per finished epoch.
Checkpoints hold only tensors and plain data (no pickled classes), so loading them cannot run code.
"""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from synsetforge.errors import InputError, NotFoundError

if TYPE_CHECKING:
    from synsetforge.training.config import TrainConfig

FORMAT = 1
CHECKPOINT = "checkpoint.pt"
MODEL = "model.pt"
RUN_JSON = "run.json"
LOG = "log.jsonl"


def atomic_save(obj: Any, path: Path) -> None:
    """torch.save through a temporary file in the same folder, fsynced, then renamed over `path`."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def load(path: Path) -> dict[str, Any]:
    """A checkpoint or model file as a dict; one-line errors for a missing, truncated or foreign file."""
    if not path.exists():
        raise NotFoundError(f"{path} does not exist")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, OSError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{path} is damaged or not a checkpoint (truncated?): {reason}") from None
    if not isinstance(data, dict) or data.get("synsetforge_checkpoint") != FORMAT:
        raise InputError(f"{path} is not a synsetforge checkpoint (train writes them)")
    return data


@dataclass(frozen=True)
class ModelMeta:
    """What a saved model needs around its weights to be used again."""

    arch: str
    classes: list[str]
    image_size: int
    fit: str
    crop_ratio: float
    model_kwargs: dict[str, Any]
    release: str
    manifest_sha256: str
    normalize: str = "imagenet"
    boxes: bool = False  # the network has a box head (training.localize); older files have none

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def of(cls, config: TrainConfig, classes: list[str], release: str, manifest_sha256: str) -> ModelMeta:
        """What a network trained with `config` on these classes of a release needs to be used again."""
        return cls(
            arch=config.arch,
            classes=list(classes),
            image_size=config.image_size,
            fit=config.fit,
            crop_ratio=config.crop_ratio,
            model_kwargs=dict(config.model_kwargs),
            release=release,
            manifest_sha256=manifest_sha256,
            normalize=config.normalize,
            boxes=config.boxes,
        )

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelMeta:
        return cls(
            arch=str(data["arch"]),
            classes=[str(c) for c in data["classes"]],
            image_size=int(data["image_size"]),
            fit=str(data["fit"]),
            crop_ratio=float(data["crop_ratio"]),
            model_kwargs=dict(data.get("model_kwargs", {})),
            release=str(data.get("release", "")),
            manifest_sha256=str(data.get("manifest_sha256", "")),
            normalize=str(data.get("normalize", "imagenet")),
            boxes=bool(data.get("boxes", False)),
        )


def check_compatible(path: Path, saved: ModelMeta, arch: str, classes: list[str]) -> None:
    """One-line InputError when a checkpoint was made for another network or another class list."""
    if saved.arch != arch:
        raise InputError(f"{path} holds a {saved.arch} network, not a {arch}; use a run folder of {arch}")
    if len(saved.classes) != len(classes):
        raise InputError(
            f"{path} was trained on {len(saved.classes)} classes, this run has {len(classes)}; "
            "start a new run folder"
        )
    if saved.classes != classes:
        raise InputError(f"{path} was trained on other classes than this run's; start a new run folder")


def save_model(
    path: Path, meta: ModelMeta, config: TrainConfig, model: torch.nn.Module, summary: dict[str, Any]
) -> None:
    """A finished network (`model.pt`): weights, what they need to be used, and a summary of the run."""
    atomic_save(
        {
            "synsetforge_checkpoint": FORMAT,
            "kind": "model",
            "meta": meta.to_json(),
            "config": config.to_json(),
            "model": model.state_dict(),
            "summary": summary,
        },
        path,
    )


def load_weights(model: torch.nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    """Load a saved state dict into `model`; a network of another shape or class count is one line."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    extra = [k for k in state if k not in own]
    if missing or extra:
        raise InputError(
            f"{path} holds another network than {getattr(model, 'arch', type(model).__name__)} "
            f"({len(missing)} weights missing, {len(extra)} unexpected, e.g. {(missing or extra)[0]})"
        )
    head = getattr(model, "head_path", None)
    for key, tensor in own.items():
        if tuple(state[key].shape) != tuple(tensor.shape):
            if head and key.startswith(f"{head}."):
                raise InputError(
                    f"{path} holds a network for {state[key].shape[0]} classes, this run has {tensor.shape[0]}"
                )
            raise InputError(
                f"{path}: weight {key} has shape {list(state[key].shape)}, the network expects {list(tensor.shape)}"
            )
    model.load_state_dict(state)


def load_model_file(run: Path) -> tuple[ModelMeta, dict[str, torch.Tensor], dict[str, Any]]:
    """(meta, state dict, run summary) of a finished run folder (or of a model.pt file given directly)."""
    path = run / MODEL if run.is_dir() else run
    if run.is_dir() and not path.exists():
        if (run / CHECKPOINT).exists():
            raise InputError(f"the run in {run} has not finished (no {MODEL}); finish it with train --resume")
        raise NotFoundError(f"{run} is not a run folder (no {MODEL})")
    data = load(path)
    if "model" not in data or "meta" not in data:
        raise InputError(f"{path} holds no model weights")
    return ModelMeta.from_json(data["meta"]), data["model"], data.get("summary", {})


def read_run_json(run: Path) -> dict[str, Any]:
    path = run / RUN_JSON
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        raise NotFoundError(f"{run} is not a run folder (no {RUN_JSON})") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path} is damaged: {exc}") from None
    return data
