"""ResNet-18/34/50/101/152 (He, Zhang, Ren & Sun, "Deep Residual Learning for Image Recognition", CVPR
2016), in torchvision's layout so torchvision's weights load unchanged.

A 7x7 stride-2 stem with batch norm and a 3x3 stride-2 max pool, four stages of residual blocks at 64, 128,
256 and 512 channels (the first block of stages 2-4 halves the resolution), global average pooling and one
Linear: 11,689,512 parameters for ResNet-18 at 1,000 classes, 21,797,672 for 34, 25,557,032 for 50.

* BasicBlock (18, 34): 3x3 -> 3x3, each followed by batch norm, ReLU after the first and after the sum.
* Bottleneck (50+): 1x1 reduce -> 3x3 -> 1x1 expand (x4). The 3x3 carries the stride ("ResNet v1.5", as
  torchvision and NVIDIA's recipe); the paper put it on the first 1x1, which is slightly less accurate.
* A shortcut that changes shape is a strided 1x1 convolution with batch norm (the paper's option B):
  `downsample.0` / `downsample.1` in the state dict.
* Init: He (kaiming-normal, fan-out) for convolutions, batch-norm gamma 1 and beta 0. With
  `zero_init_residual=True` (the default here, as in Goyal et al. 2017 "Accurate, Large Minibatch SGD";
  torchvision's default is off) the last batch norm of every block starts at gamma 0, so each block starts
  as the identity and deep nets train more easily at large batch sizes.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from synsetforge.training.models.base import Classifier
from synsetforge.training.models.registry import register


def conv3x3(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    expansion: ClassVar[int] = 1

    def __init__(self, in_ch: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_ch, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    @property
    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion: ClassVar[int] = 4

    def __init__(self, in_ch: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = conv1x1(in_ch, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)  # v1.5: the stride sits on the 3x3
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    @property
    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


Block = type[BasicBlock] | type[Bottleneck]


class ResNet(Classifier):
    head_path = "fc"

    def __init__(
        self,
        block: Block,
        layers: list[int],
        num_classes: int = 1000,
        *,
        arch: str = "resnet",
        zero_init_residual: bool = True,
    ) -> None:
        super().__init__(arch=arch, num_classes=num_classes, feature_dim=512 * block.expansion)
        self.in_ch = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._stage(block, 64, layers[0], stride=1)
        self.layer2 = self._stage(block, 128, layers[1], stride=2)
        self.layer3 = self._stage(block, 256, layers[2], stride=2)
        self.layer4 = self._stage(block, 512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(self.feature_dim, num_classes)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, BasicBlock | Bottleneck):
                    nn.init.zeros_(m.last_bn.weight)

    def _stage(self, block: Block, planes: int, blocks: int, stride: int) -> nn.Sequential:
        out_ch = planes * block.expansion
        downsample = None
        if stride != 1 or self.in_ch != out_ch:
            downsample = nn.Sequential(conv1x1(self.in_ch, out_ch, stride), nn.BatchNorm2d(out_ch))
        stage = [block(self.in_ch, planes, stride, downsample)]
        self.in_ch = out_ch
        stage += [block(self.in_ch, planes) for _ in range(1, blocks)]
        return nn.Sequential(*stage)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Globally average-pooled output of the last stage [B, 512 * expansion]."""
        self.check_input(x)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)


@register("resnet18")
def resnet18(num_classes: int = 1000, *, zero_init_residual: bool = True) -> ResNet:
    return ResNet(
        BasicBlock, [2, 2, 2, 2], num_classes, arch="resnet18", zero_init_residual=zero_init_residual
    )


@register("resnet34")
def resnet34(num_classes: int = 1000, *, zero_init_residual: bool = True) -> ResNet:
    return ResNet(
        BasicBlock, [3, 4, 6, 3], num_classes, arch="resnet34", zero_init_residual=zero_init_residual
    )


@register("resnet50")
def resnet50(num_classes: int = 1000, *, zero_init_residual: bool = True) -> ResNet:
    return ResNet(
        Bottleneck, [3, 4, 6, 3], num_classes, arch="resnet50", zero_init_residual=zero_init_residual
    )


@register("resnet101")
def resnet101(num_classes: int = 1000, *, zero_init_residual: bool = True) -> ResNet:
    return ResNet(
        Bottleneck, [3, 4, 23, 3], num_classes, arch="resnet101", zero_init_residual=zero_init_residual
    )


@register("resnet152")
def resnet152(num_classes: int = 1000, *, zero_init_residual: bool = True) -> ResNet:
    return ResNet(
        Bottleneck, [3, 8, 36, 3], num_classes, arch="resnet152", zero_init_residual=zero_init_residual
    )
