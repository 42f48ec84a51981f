"""The small protocol every network in the registry follows, so training and transfer code need no
per-architecture cases: `embed` gives the penultimate features, `head` is the last Linear that maps them to
logits, and `reset_head` / `freeze_backbone` are the two moves of transfer learning (fine-tune with a new
head; linear probe on frozen features)."""

from __future__ import annotations

from typing import ClassVar, Self

import torch
from torch import nn

from synsetforge.errors import InputError


class Classifier(nn.Module):
    """An image classifier: `forward(x) = head(embed(x))`, x of shape [B, 3, H, W].

    A subclass sets `head_path` (the dotted name of its last nn.Linear, as in its state dict), `min_size`
    (the smallest input side it accepts) and implements `embed`.
    """

    head_path: ClassVar[str] = "fc"
    min_size: ClassVar[int] = 1

    def __init__(self, *, arch: str, num_classes: int, feature_dim: int) -> None:
        super().__init__()
        self.arch = arch
        self.num_classes = num_classes
        self.feature_dim = feature_dim
        self._backbone_frozen = False

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features [B, feature_dim]."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [B, num_classes]."""
        return self.head(self.embed(x))

    def check_input(self, x: torch.Tensor) -> None:
        """One-line InputError for a batch this network cannot take (wrong rank, channels or too small)."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise InputError(f"{self.arch}: expected images [B, 3, H, W], got shape {list(x.shape)}")
        if min(x.shape[2], x.shape[3]) < self.min_size:
            raise InputError(
                f"{self.arch}: inputs must be at least {self.min_size} px on each side, "
                f"got {x.shape[2]}x{x.shape[3]}"
            )

    @property
    def head(self) -> nn.Linear:
        """The final Linear layer (features -> logits)."""
        head = self.get_submodule(self.head_path)
        assert isinstance(head, nn.Linear), f"{self.arch}.{self.head_path} is not a Linear"
        return head

    def reset_head(self, num_classes: int) -> nn.Linear:
        """Replace the head by a freshly initialised Linear(feature_dim, num_classes) on the same device and
        dtype, trainable even when the backbone is frozen; returns it."""
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise InputError(f"{self.arch}: num_classes must be a positive integer, got {num_classes!r}")
        old = self.head
        new = nn.Linear(self.feature_dim, num_classes, device=old.weight.device, dtype=old.weight.dtype)
        parent_name, _, leaf = self.head_path.rpartition(".")
        setattr(self.get_submodule(parent_name) if parent_name else self, leaf, new)
        self.num_classes = num_classes
        new.train(self.training)
        return new

    def head_parameter_names(self) -> set[str]:
        """State-dict names of the head's parameters ("fc.weight", "fc.bias" for a ResNet)."""
        return {f"{self.head_path}.{name}" for name, _ in self.head.named_parameters()}

    def freeze_backbone(self) -> None:
        """Linear-probe mode: only the head trains. Every other parameter stops requiring gradients and the
        backbone stays in eval mode even under `train()`, so batch-norm statistics and dropout do not change
        the features being probed. A head installed later by `reset_head` is trainable too."""
        head = self.head
        head_params = {id(p) for p in head.parameters()}
        for p in self.parameters():
            p.requires_grad_(id(p) in head_params)
        self._backbone_frozen = True
        self.train(self.training)

    def unfreeze_backbone(self) -> None:
        """Undo `freeze_backbone` (full fine-tuning)."""
        for p in self.parameters():
            p.requires_grad_(True)
        self._backbone_frozen = False
        self.train(self.training)

    @property
    def backbone_frozen(self) -> bool:
        return self._backbone_frozen

    def train(self, mode: bool = True) -> Self:
        super().train(mode)
        if self._backbone_frozen:
            head = self.head
            for module in self.modules():
                if module is not self and module is not head:
                    module.training = False
        return self

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)
