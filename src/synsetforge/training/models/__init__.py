"""Networks for the deep baselines, by name: `build_model("resnet50", num_classes=20)`.

Built in: alexnet, resnet18, resnet34, resnet50, resnet101, resnet152 (plain PyTorch, torchvision's
state-dict layout, so `load_torchvision_weights` loads torchvision's `.pth` files into them). Add a network
with `@register("name")` on a factory `(num_classes, **kwargs) -> Classifier`.
"""

from synsetforge.training.models import alexnet as _alexnet  # noqa: F401  (registers "alexnet")
from synsetforge.training.models import resnet as _resnet  # noqa: F401  (registers "resnet18" ... "resnet152")
from synsetforge.training.models import small as _small  # noqa: F401  (registers "small")
from synsetforge.training.models.base import Classifier
from synsetforge.training.models.registry import available, build_model, register
from synsetforge.training.models.torchvision_weights import WeightsReport, load_torchvision_weights

__all__ = [
    "Classifier",
    "WeightsReport",
    "available",
    "build_model",
    "load_torchvision_weights",
    "register",
]
