"""`small`: a residual network sized for training on two CPU cores in about a minute (the demo's CNN).

The shape of Myrtle.ai's ResNet-9 (the fastest CIFAR-10 training of its day), scaled down and given a
stride-2 stem so a 64 px input is worked on at 32 px from the start (most of the saving):

    stem   conv 3x3 /2 -> w                                   32 px at a 64 px input
    stage1 conv 3x3 -> 2w, max-pool /2, residual(2 x conv 3x3)  16 px
    stage2 conv 3x3 -> 4w, max-pool /2                          8 px
    stage3 conv 3x3 -> 8w, max-pool /2, residual(2 x conv 3x3)   4 px
    head   global average pool, Linear(8w -> classes)

every conv followed by batch norm and ReLU; about 0.4 M parameters at width 16. Measured on the demo's
figures against wider, deeper and shallower variants (README, "The demo"): at 64 px and 40 epochs it reached
7-9% top-1 error on 16 figure classes, wider (24) was no better and 1.6x slower.
"""

from __future__ import annotations

import torch
from torch import nn

from synsetforge.training.models.base import Classifier
from synsetforge.training.models.registry import register


def conv_bn(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class Residual(nn.Module):
    """x + conv_bn(conv_bn(x)): two 3x3 convolutions around an identity shortcut."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.a = conv_bn(channels, channels)
        self.b = conv_bn(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.b(self.a(x))


class SmallNet(Classifier):
    head_path = "fc"
    min_size = 16

    def __init__(self, num_classes: int, width: int = 16, *, arch: str = "small") -> None:
        super().__init__(arch=arch, num_classes=num_classes, feature_dim=8 * width)
        w = width
        self.stem = conv_bn(3, w, stride=2)
        self.stage1 = nn.Sequential(conv_bn(w, 2 * w), nn.MaxPool2d(2), Residual(2 * w))
        self.stage2 = nn.Sequential(conv_bn(2 * w, 4 * w), nn.MaxPool2d(2))
        self.stage3 = nn.Sequential(conv_bn(4 * w, 8 * w), nn.MaxPool2d(2), Residual(8 * w))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(self.feature_dim, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        x = self.stage3(self.stage2(self.stage1(self.stem(x))))
        return torch.flatten(self.pool(x), 1)


@register("small")
def small(num_classes: int, width: int = 16) -> SmallNet:
    return SmallNet(num_classes, width)
