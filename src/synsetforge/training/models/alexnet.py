"""AlexNet (Krizhevsky, Sutskever & Hinton, "ImageNet Classification with Deep Convolutional Neural
Networks", NIPS 2012), in torchvision's single-tower layout so torchvision's weights load unchanged.

Five convolutions (11x11 stride 4, 5x5, then three 3x3), ReLU after each, overlapping 3x3 stride-2 max
pooling after the 1st, 2nd and 5th, then two fully connected layers of 4,096 with dropout 0.5 and a last
Linear to the classes: 61,100,840 parameters at 1,000 classes.

Where torchvision (and so this module) departs from the 2012 paper:

* channel widths 64-192-384-256-256 instead of the paper's 96-256-384-384-256: the paper split each layer
  across two GPUs; torchvision follows the single-GPU variant of Krizhevsky's "One weird trick" (2014);
* no local response normalisation by default. `lrn=True` adds it as the paper has it (after the ReLU of
  the 1st and 2nd convolutions, before their pooling; n=5, k=2, alpha=1e-4, beta=0.75). LRN has no
  parameters, and it is placed *inside* `features.1` and `features.4` (each becomes ReLU + LRN), so the
  state-dict keys (`features.0/3/6/8/10`, `classifier.1/4/6`) are the same with and without it; inserting
  it as separate Sequential entries would shift every later `features.N` index;
* an adaptive 6x6 average pool before the classifier, so any input of at least 63 px works (224 gives the
  paper's 6x6 maps and the pool is then the identity);
* initialisation: PyTorch's defaults, as torchvision (the paper drew weights from N(0, 0.01) and set the
  biases of conv 2, 4, 5 and the hidden FC layers to 1).
"""

from __future__ import annotations

import torch
from torch import nn

from synsetforge.training.models.base import Classifier
from synsetforge.training.models.registry import register


def _relu(lrn: bool) -> nn.Module:
    if not lrn:
        return nn.ReLU(inplace=True)
    # PyTorch's LocalResponseNorm divides alpha by n: alpha=5e-4 here is the paper's 1e-4 per squared sum.
    return nn.Sequential(nn.ReLU(inplace=True), nn.LocalResponseNorm(size=5, alpha=5e-4, beta=0.75, k=2.0))


class AlexNet(Classifier):
    head_path = "classifier.6"
    min_size = 63

    def __init__(self, num_classes: int = 1000, *, dropout: float = 0.5, lrn: bool = False) -> None:
        super().__init__(arch="alexnet", num_classes=num_classes, feature_dim=4096)
        self.lrn = lrn
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),  # 0
            _relu(lrn),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2),  # 3
            _relu(lrn),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1),  # 6
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),  # 8
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),  # 10
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout),
            nn.Linear(256 * 6 * 6, 4096),  # 1
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, 4096),  # 4
            nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes),  # 6: the head
        )

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Output of the second 4,096 FC layer after its ReLU (classifier.0-5)."""
        self.check_input(x)
        x = torch.flatten(self.avgpool(self.features(x)), 1)
        for layer in list(self.classifier)[:-1]:
            x = layer(x)
        return x


@register("alexnet")
def alexnet(num_classes: int = 1000, *, dropout: float = 0.5, lrn: bool = False) -> AlexNet:
    return AlexNet(num_classes, dropout=dropout, lrn=lrn)
