"""`small`: a residual network sized for training on two CPU cores in a couple of minutes (the demo's CNN).

ResNet's ideas at a tenth of the cost: a stride-2 3x3 stem (a 64 px input is worked on at 32 px from the
start: most of the saving), then three stages of one BasicBlock each at `width`, 2x and 4x channels (the
second and third halve the resolution), global average pooling and a Linear head. About 0.7 M parameters at
width 32. Batch norm everywhere, so plain SGD with a large learning rate trains it in a few epochs.
"""

from __future__ import annotations

import torch
from torch import nn

from synsetforge.training.models.base import Classifier
from synsetforge.training.models.registry import register
from synsetforge.training.models.resnet import BasicBlock, conv1x1


class SmallNet(Classifier):
    head_path = "fc"
    min_size = 16

    def __init__(self, num_classes: int, width: int = 32, *, arch: str = "small") -> None:
        super().__init__(arch=arch, num_classes=num_classes, feature_dim=4 * width)
        self.stem = nn.Sequential(
            nn.Conv2d(3, width, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        )
        stages = []
        ch = width
        for mult, stride in ((1, 1), (2, 2), (4, 2)):
            out = width * mult
            down = (
                None
                if stride == 1 and ch == out
                else nn.Sequential(conv1x1(ch, out, stride), nn.BatchNorm2d(out))
            )
            stages.append(BasicBlock(ch, out, stride, down))
            ch = out
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(self.feature_dim, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return torch.flatten(self.pool(self.stages(self.stem(x))), 1)


@register("small")
def small(num_classes: int, width: int = 32) -> SmallNet:
    return SmallNet(num_classes, width)
