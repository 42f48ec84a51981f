"""Networks by name, so the CLI and configs say "resnet50" and a user can add their own with `@register`."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from synsetforge.errors import InputError
from synsetforge.training.models.base import Classifier

Factory = Callable[..., Classifier]
F = TypeVar("F", bound=Factory)

_FACTORIES: dict[str, Factory] = {}


def register(name: str, *, replace: bool = False) -> Callable[[F], F]:
    """Decorator: `@register("mynet")` on a factory `(num_classes: int, **kwargs) -> Classifier`.

    Registering a taken name is a programming error unless `replace=True`.
    """
    if not name or name != name.strip():
        raise ValueError(f"model name must be a non-empty string without surrounding spaces, got {name!r}")

    def decorate(factory: F) -> F:
        if name in _FACTORIES and not replace:
            raise ValueError(f"model {name!r} is already registered (pass replace=True to override it)")
        _FACTORIES[name] = factory
        return factory

    return decorate


def available() -> list[str]:
    """Registered model names, sorted."""
    return sorted(_FACTORIES)


def build_model(name: str, num_classes: int, **kwargs: Any) -> Classifier:
    """A new, randomly initialised model; unknown names and bad arguments are one-line InputErrors."""
    factory = _FACTORIES.get(name)
    if factory is None:
        raise InputError(f"unknown model {name!r}; known models: {', '.join(available())}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise InputError(f"model {name!r}: num_classes must be a positive integer, got {num_classes!r}")
    try:
        inspect.signature(factory).bind(num_classes, **kwargs)
    except TypeError as exc:
        raise InputError(f"model {name!r}: {exc} (signature: {name}{inspect.signature(factory)})") from None
    model = factory(num_classes, **kwargs)
    if not isinstance(model, Classifier):
        raise TypeError(f"the factory of model {name!r} returned {type(model).__name__}, not a Classifier")
    return model
