"""Load weights a user brings, in torchvision's state-dict layout, into our networks.

The file is read with `torch.load(weights_only=True)`, so it can hold tensors and plain containers but no
code. Every key and shape is checked against the model before anything is copied: a checkpoint of another
architecture is refused with one line naming the first key that does not fit. The one mismatch that is
accepted is the head, since that is the point of transfer learning: 1,000-class ImageNet weights go into a
20-class model, everything but the last Linear is loaded and the model keeps its own fresh head.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from synsetforge.errors import InputError, NotFoundError
from synsetforge.training.models.base import Classifier

# Wrappers that prefix every key: DistributedDataParallel ("module.") and torch.compile ("_orig_mod.").
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")
# Checkpoint dicts that hold the state dict under a key (Lightning-style "state_dict", torchvision's
# reference training script "model").
_CONTAINER_KEYS = ("state_dict", "model")


@dataclass(frozen=True)
class WeightsReport:
    source: str
    arch: str
    loaded: int  # tensors copied into the model
    head_reset: bool  # the file's head did not fit (or was absent); the model kept its own fresh head
    file_classes: int | None  # rows of the file's head, None when it has none
    model_classes: int

    def __str__(self) -> str:
        text = f"loaded {self.loaded} tensors from {self.source} into {self.arch}"
        if not self.head_reset:
            return text
        if self.file_classes is None:
            return f"{text}; the file has no head, the model keeps its fresh {self.model_classes}-class head"
        return (
            f"{text}; head not loaded ({self.file_classes} classes in the file, {self.model_classes} in "
            f"the model): the model keeps its fresh head"
        )


def load_torchvision_weights(
    model: Classifier, path: str | os.PathLike[str], *, allow_head_reset: bool = True
) -> WeightsReport:
    """Load a `.pth` state dict (plain, or under "state_dict"/"model"; "module." prefixes stripped).

    With `allow_head_reset=False` a head of another class count is an error too (for resuming or
    evaluating a model trained on the same classes).
    """
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"weights file not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only load failed" in str(exc).lower():
            raise InputError(
                f"{path}: holds Python objects besides tensors (a whole pickled model?); "
                f"save model.state_dict() instead"
            ) from None
        raise InputError(
            f"{path}: not a readable PyTorch checkpoint (truncated or corrupt?): {_line(exc)}"
        ) from None
    except Exception as exc:  # torch.load raises many types on a damaged file
        raise InputError(
            f"{path}: not a readable PyTorch checkpoint (truncated or corrupt?): {_line(exc)}"
        ) from None
    return apply_state_dict(
        model, unwrap_state_dict(obj, str(path)), source=str(path), allow_head_reset=allow_head_reset
    )


def unwrap_state_dict(obj: object, source: str) -> dict[str, torch.Tensor]:
    """The state dict inside a loaded checkpoint, with wrapper prefixes stripped from its keys."""
    if isinstance(obj, Mapping) and not _all_tensors(obj):
        for key in _CONTAINER_KEYS:
            inner = obj.get(key)
            if isinstance(inner, Mapping):
                obj = inner
                break
    if not isinstance(obj, Mapping) or not obj:
        raise InputError(f"{source}: holds no state dict (a dict of parameter names to tensors)")
    state: dict[str, torch.Tensor] = {}
    for key, value in obj.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise InputError(f"{source}: entry {key!r} is a {type(value).__name__}, not a tensor")
        name = key
        while name.startswith(_WRAPPER_PREFIXES):
            name = name.split(".", 1)[1]
        state[name] = value
    return state


def apply_state_dict(
    model: Classifier, state: Mapping[str, torch.Tensor], *, source: str, allow_head_reset: bool = True
) -> WeightsReport:
    """Check `state` against `model` key by key, then copy it in (see the module docstring)."""
    expected = model.state_dict()
    head_keys = model.head_parameter_names()
    where = f"{source} does not fit {model.arch} ({model.num_classes} classes)"

    for key, tensor in expected.items():
        if key in head_keys:
            continue
        if key not in state:
            raise InputError(
                f"{where}: {key} {_shape(tensor)} is missing from the file "
                f"({len(state)} tensors in the file, {len(expected)} in the model)"
            )
        if state[key].shape != tensor.shape:
            raise InputError(
                f"{where}: {key} is {_shape(state[key])} in the file but {_shape(tensor)} in the model"
            )
    for key, tensor in state.items():
        if key not in expected:
            raise InputError(
                f"{where}: the file has {key} {_shape(tensor)}, which the model has no place for"
            )

    present = [key for key in sorted(head_keys) if key in state]
    if present and len(present) != len(head_keys):
        missing = sorted(head_keys - set(present))[0]
        raise InputError(f"{where}: {missing} {_shape(expected[missing])} is missing from the file")
    weight_key = f"{model.head_path}.weight"
    file_classes = (
        int(state[weight_key].shape[0]) if weight_key in state and state[weight_key].dim() == 2 else None
    )
    head_reset = not present or any(state[key].shape != expected[key].shape for key in present)
    if head_reset:
        for key in present:  # a head of another class count must still read the same features
            file_shape, model_shape = state[key].shape, expected[key].shape
            if len(file_shape) != len(model_shape) or file_shape[1:] != model_shape[1:]:
                raise InputError(
                    f"{where}: {key} is {_shape(state[key])} in the file but {_shape(expected[key])} in the model"
                )
        if not allow_head_reset and present:
            raise InputError(
                f"{where}: the file's head has {file_classes} classes ({weight_key} is "
                f"{_shape(state[weight_key])} in the file but {_shape(expected[weight_key])} in the model)"
            )
        if not allow_head_reset:
            raise InputError(f"{where}: {weight_key} {_shape(expected[weight_key])} is missing from the file")

    to_load = {key: value for key, value in state.items() if not (head_reset and key in head_keys)}
    with torch.no_grad():
        model.load_state_dict(to_load, strict=not head_reset)
    return WeightsReport(
        source=source,
        arch=model.arch,
        loaded=len(to_load),
        head_reset=head_reset,
        file_classes=file_classes,
        model_classes=model.num_classes,
    )


def _all_tensors(obj: Mapping[object, object]) -> bool:
    return all(isinstance(value, torch.Tensor) for value in obj.values())


def _shape(tensor: torch.Tensor) -> str:
    return str(list(tensor.shape))


def _line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."
