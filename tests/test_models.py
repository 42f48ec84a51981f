"""The deep-baseline networks: parameter counts of the papers/torchvision, torchvision's state-dict layout
(checked against a fixture written by real torchvision, scripts/torchvision_fixture.py), loading users'
weights (head reset for transfer, one-line errors for anything else), the registry and the transfer moves.

The 1,000-class networks are built on the meta device (no memory, no init cost) to count parameters and
compare layouts; real tensors are used only at small sizes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from synsetforge.errors import InputError, NotFoundError
from synsetforge.training.models import (
    Classifier,
    available,
    build_model,
    load_torchvision_weights,
    register,
)
from synsetforge.training.models import registry as registry_module
from synsetforge.training.models.torchvision_weights import apply_state_dict

FIXTURE = json.loads((Path(__file__).parent / "data" / "torchvision_state_dicts.json").read_text())["models"]

PARAMS_AT_1000 = {  # SPEC section 7 (AlexNet, ResNet-18, ResNet-50) and torchvision's model cards
    "alexnet": 61_100_840,
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
}


def meta_model(arch: str, num_classes: int = 1000, **kwargs: object) -> Classifier:
    with torch.device("meta"):
        return build_model(arch, num_classes, **kwargs)


def fixture_state(arch: str, *, random: bool = True) -> dict[str, torch.Tensor]:
    """A state dict with torchvision's keys, shapes and dtypes: random values, or (cheaply, for the big
    ones) key i holding the value i everywhere, as one stored number expanded (a tiny .pth)."""
    state = {}
    for i, entry in enumerate(FIXTURE[arch]["state_dict"]):
        dtype = getattr(torch, entry["dtype"])
        shape = entry["shape"]
        if dtype.is_floating_point and random:
            state[entry["key"]] = torch.randn(shape, dtype=dtype)
        else:
            state[entry["key"]] = torch.tensor(i + 7, dtype=dtype).expand(shape)
    return state


# The probe of scripts/torchvision_fixture.py (same formulas): weights and an input that torchvision's
# networks turned into the logits and features stored in the fixture.


def _pattern(n: int, shift: int) -> torch.Tensor:
    table = torch.sin(torch.arange(1009, dtype=torch.float64) * 0.61).float()
    return torch.roll(table, shift).repeat(n // 1009 + 1)[:n]


def probe_state(shapes: dict[str, list[int]]) -> dict[str, torch.Tensor]:
    state = {}
    for i, (key, shape) in enumerate(shapes.items()):
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(0)
            continue
        t = _pattern(math.prod(shape), i).reshape(shape)
        if key.endswith("running_var"):
            state[key] = 1 + 0.5 * t * t
        elif key.endswith(("running_mean", "bias")):
            state[key] = 0.1 * t
        elif len(shape) >= 2:
            state[key] = t * (2 / math.sqrt(math.prod(shape[1:])))
        else:
            state[key] = 1 + 0.2 * t
    return state


def probe_input(batch: int, size: int) -> torch.Tensor:
    return _pattern(batch * 3 * size * size, 0).reshape(batch, 3, size, size)


def one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    text = str(exc.value)
    assert text and "\n" not in text, text
    return text


def same_state(model: nn.Module, state: dict[str, torch.Tensor], skip: frozenset[str] = frozenset()) -> None:
    ours = model.state_dict()
    for key, tensor in state.items():
        if key not in skip:
            assert torch.equal(ours[key], tensor), key


# ---- layout: parameter counts and torchvision's keys ----


@pytest.mark.parametrize("arch", sorted(PARAMS_AT_1000))
def test_parameter_counts_at_1000_classes(arch: str) -> None:
    assert meta_model(arch).num_parameters() == PARAMS_AT_1000[arch]


@pytest.mark.parametrize("arch", sorted(FIXTURE))
def test_state_dict_keys_shapes_dtypes_equal_torchvision(arch: str) -> None:
    fixture = FIXTURE[arch]
    assert fixture["num_parameters"] == PARAMS_AT_1000[arch]
    ours = [
        {"key": key, "shape": list(t.shape), "dtype": str(t.dtype).removeprefix("torch.")}
        for key, t in meta_model(arch).state_dict().items()
    ]
    assert ours == fixture["state_dict"]  # same keys, in torchvision's order, same shapes and dtypes


@pytest.mark.parametrize("arch", sorted(FIXTURE))
def test_outputs_equal_torchvision_on_the_fixture_probe(arch: str) -> None:
    """Same weights, same input: our logits and features are torchvision's, so the layers are wired alike
    (stride placement, pooling, where the ReLUs and the shortcut go), not just shaped alike."""
    expected = FIXTURE[arch]["probe"]
    shapes = {entry["key"]: entry["shape"] for entry in FIXTURE[arch]["state_dict"]}
    model = meta_model(arch).to_empty(device="cpu")
    model.load_state_dict(probe_state(shapes))
    model.eval()
    x = probe_input(len(expected["logits_first"]), expected["size"])
    with torch.no_grad():
        logits, features = model(x), model.embed(x)
    n = len(expected["logits_first"][0])
    assert torch.allclose(logits[:, :n], torch.tensor(expected["logits_first"]), rtol=1e-4, atol=1e-4)
    assert torch.allclose(features[:, :n], torch.tensor(expected["embed_first"]), rtol=1e-4, atol=1e-4)
    assert logits.abs().mean().item() == pytest.approx(expected["logits_mean_abs"], rel=1e-4)
    assert features.abs().mean().item() == pytest.approx(expected["embed_mean_abs"], rel=1e-4)


def test_alexnet_lrn_variant_keeps_the_keys_and_changes_the_output() -> None:
    with_lrn = build_model("alexnet", 5, lrn=True).eval()
    plain = build_model("alexnet", 5).eval()
    assert [(k, t.shape) for k, t in with_lrn.state_dict().items()] == [
        (k, t.shape) for k, t in plain.state_dict().items()
    ]
    assert sum(isinstance(m, nn.LocalResponseNorm) for m in with_lrn.modules()) == 2
    assert not any(isinstance(m, nn.LocalResponseNorm) for m in plain.modules())
    plain.load_state_dict(with_lrn.state_dict())
    x = torch.rand(1, 3, 63, 63) * 50  # large activations, where LRN divides noticeably
    with torch.no_grad():
        assert not torch.allclose(with_lrn.embed(x), plain.embed(x))


@pytest.mark.parametrize("zero_init", [True, False])
def test_zero_init_of_the_last_batch_norm_in_each_block(zero_init: bool) -> None:
    model = build_model("resnet18", 3, zero_init_residual=zero_init)
    last = [block.bn2.weight for stage in (model.layer1, model.layer2) for block in stage]
    first = [block.bn1.weight for stage in (model.layer1, model.layer2) for block in stage]
    assert all(torch.all(w == (0.0 if zero_init else 1.0)) for w in last)
    assert all(torch.all(w == 1.0) for w in first)


# ---- forward, embed, input checks ----


@pytest.mark.parametrize(
    ("arch", "feature_dim", "size"),
    [
        ("alexnet", 4096, 64),
        ("alexnet", 4096, 224),
        ("resnet18", 512, 64),
        ("resnet18", 512, 224),
        ("resnet50", 2048, 64),
    ],
)
def test_forward_and_embed_shapes(arch: str, feature_dim: int, size: int) -> None:
    torch.manual_seed(0)
    model = build_model(arch, 7).eval()
    assert (model.arch, model.num_classes, model.feature_dim) == (arch, 7, feature_dim)
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        logits, features = model(x), model.embed(x)
    assert logits.shape == (2, 7)
    assert features.shape == (2, feature_dim)
    assert torch.allclose(logits, model.head(features), atol=1e-5)
    assert torch.isfinite(logits).all()


def test_inputs_the_network_cannot_take_are_one_line_errors() -> None:
    alexnet = build_model("alexnet", 3).eval()
    with pytest.raises(InputError) as exc:
        alexnet(torch.zeros(1, 3, 62, 80))
    assert "at least 63 px" in one_line(exc) and "62x80" in str(exc.value)
    with pytest.raises(InputError) as exc:
        build_model("resnet18", 3)(torch.zeros(1, 1, 64, 64))
    assert "[1, 1, 64, 64]" in one_line(exc)


# ---- registry ----


def test_registry_lists_the_built_in_networks_and_rejects_unknown_names() -> None:
    assert {"alexnet", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152"} <= set(available())
    with pytest.raises(InputError) as exc:
        build_model("resnet19", 10)
    assert "resnet19" in one_line(exc) and "resnet18" in str(exc.value) and "alexnet" in str(exc.value)
    with pytest.raises(InputError) as exc:
        build_model("resnet18", 10, widht=2)
    assert "widht" in one_line(exc)
    with pytest.raises(InputError) as exc:
        build_model("resnet18", 0)
    assert "num_classes" in one_line(exc)


def test_a_user_registered_network_builds_trains_and_transfers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry_module, "_FACTORIES", dict(registry_module._FACTORIES))

    class Tiny(Classifier):
        head_path = "fc"

        def __init__(self, num_classes: int, width: int) -> None:
            super().__init__(arch="tiny", num_classes=num_classes, feature_dim=width)
            self.body = nn.Sequential(nn.Conv2d(3, width, 3, 2, 1), nn.BatchNorm2d(width), nn.ReLU())
            self.fc = nn.Linear(width, num_classes)

        def embed(self, x: torch.Tensor) -> torch.Tensor:
            self.check_input(x)
            return self.body(x).mean(dim=(2, 3))

    @register("tiny")
    def tiny(num_classes: int, *, width: int = 8) -> Tiny:
        return Tiny(num_classes, width)

    assert "tiny" in available()
    model = build_model("tiny", 4, width=6)
    assert isinstance(model, Tiny) and model.feature_dim == 6
    assert model(torch.randn(3, 3, 16, 16)).shape == (3, 4)
    model.freeze_backbone()
    assert {n for n, p in model.named_parameters() if p.requires_grad} == {"fc.weight", "fc.bias"}
    with pytest.raises(ValueError, match="already registered"):
        register("tiny")(tiny)
    with pytest.raises(InputError, match="width"):
        build_model("tiny", 4, depth=3)


# ---- transfer moves: head reset, frozen backbone ----


@pytest.mark.parametrize("arch", ["resnet18", "alexnet"])
def test_freeze_backbone_leaves_only_the_head_trainable(arch: str) -> None:
    torch.manual_seed(0)
    model = build_model(arch, 5)
    head_names = (
        {"fc.weight", "fc.bias"} if arch == "resnet18" else {"classifier.6.weight", "classifier.6.bias"}
    )
    model.freeze_backbone()
    assert {n for n, p in model.named_parameters() if p.requires_grad} == head_names
    assert model.num_parameters(trainable_only=True) == model.feature_dim * 5 + 5

    model.train()  # the backbone stays in eval mode: batch norm statistics and dropout stay fixed
    assert model.training and model.head.training
    assert not any(m.training for m in model.modules() if m is not model and m is not model.head)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(2, 3, 64, 64)
    model(x).sum().backward()
    assert all(p.grad is None for n, p in model.named_parameters() if n not in head_names)
    assert model.head.weight.grad is not None
    same_state(model, before)  # no running statistic moved
    with torch.no_grad():
        assert torch.equal(model.embed(x), model.embed(x))  # no dropout

    model.unfreeze_backbone()
    assert all(p.requires_grad for p in model.parameters())
    assert all(m.training for m in model.modules())


def test_reset_head_replaces_the_last_linear_with_a_fresh_trainable_one() -> None:
    model = build_model("alexnet", 10)
    model.freeze_backbone()
    old = model.head
    new = model.reset_head(3)
    assert model.head is new and new is not old and model.classifier[6] is new
    assert (model.num_classes, new.in_features, new.out_features) == (3, 4096, 3)
    assert new.weight.requires_grad and not model.classifier[4].weight.requires_grad
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 3)
    resnet = build_model("resnet18", 10)
    assert resnet.reset_head(2) is resnet.fc and resnet.fc.out_features == 2
    with pytest.raises(InputError):
        resnet.reset_head(0)


# ---- loading torchvision weights ----


def test_a_torchvision_layout_pth_loads_exactly(tmp_path: Path) -> None:
    torch.manual_seed(1)
    state = fixture_state("resnet18")
    path = tmp_path / "resnet18.pth"
    torch.save(state, path)
    model = build_model("resnet18", 1000)
    report = load_torchvision_weights(model, path)
    assert (report.loaded, report.head_reset, report.file_classes) == (122, False, 1000)
    same_state(model, state)
    assert "\n" not in str(report) and "122" in str(report)


def test_wrapped_and_ddp_prefixed_checkpoints_load(tmp_path: Path) -> None:
    torch.manual_seed(2)
    state = fixture_state("resnet18")
    for wrapper in ("model", "state_dict"):
        path = tmp_path / f"{wrapper}.pth"
        torch.save({wrapper: {f"module.{k}": v for k, v in state.items()}, "epoch": 89}, path)
        model = build_model("resnet18", 1000)
        assert load_torchvision_weights(model, path).loaded == 122
        same_state(model, state)


def test_imagenet_weights_into_fewer_classes_load_all_but_the_head(tmp_path: Path) -> None:
    torch.manual_seed(3)
    state = fixture_state("resnet18")
    path = tmp_path / "imagenet.pth"
    torch.save(state, path)
    model = build_model("resnet18", 20)
    own_head = {k: v.clone() for k, v in model.fc.state_dict().items()}
    report = load_torchvision_weights(model, path)
    assert (report.head_reset, report.file_classes, report.model_classes, report.loaded) == (
        True,
        1000,
        20,
        120,
    )
    assert "1000" in str(report) and "20" in str(report) and "\n" not in str(report)
    same_state(model, state, skip=frozenset({"fc.weight", "fc.bias"}))
    assert torch.equal(model.fc.weight, own_head["weight"]) and model.fc.weight.shape == (20, 512)

    with pytest.raises(InputError) as exc:  # resuming or evaluating needs the same classes
        load_torchvision_weights(build_model("resnet18", 20), path, allow_head_reset=False)
    assert "1000 classes" in one_line(exc) and "[20, 512]" in str(exc.value)

    headless = tmp_path / "headless.pth"  # a backbone saved without its head: same treatment
    torch.save({k: v for k, v in state.items() if not k.startswith("fc.")}, headless)
    report = load_torchvision_weights(build_model("resnet18", 20), headless)
    assert report.head_reset and report.file_classes is None and report.loaded == 120


def test_alexnet_head_reset_loads_the_classifier_up_to_the_head() -> None:
    state = fixture_state("alexnet", random=False)
    model = build_model("alexnet", 20)
    report = apply_state_dict(model, state, source="alexnet.pth")
    assert report.head_reset and report.file_classes == 1000 and report.loaded == 14
    same_state(model, state, skip=frozenset({"classifier.6.weight", "classifier.6.bias"}))
    assert model.head.weight.shape == (20, 4096)


def test_a_checkpoint_of_another_architecture_is_one_line_naming_the_first_bad_key(tmp_path: Path) -> None:
    path = tmp_path / "resnet50.pth"
    torch.save(fixture_state("resnet50", random=False), path)
    with pytest.raises(InputError) as exc:
        load_torchvision_weights(build_model("resnet18", 1000), path)
    message = one_line(exc)
    assert "resnet50.pth" in message and "resnet18" in message
    assert "layer1.0.conv1.weight is [64, 64, 1, 1] in the file but [64, 64, 3, 3] in the model" in message

    with pytest.raises(InputError) as exc:  # AlexNet's keys: the model's first key is missing
        apply_state_dict(build_model("resnet18", 10), fixture_state("alexnet", random=False), source="a.pth")
    assert "conv1.weight [64, 3, 7, 7] is missing from the file" in one_line(exc)

    resnet34 = fixture_state("resnet34", random=False)  # a deeper net of the same blocks: extra keys
    with pytest.raises(InputError) as exc:
        apply_state_dict(build_model("resnet18", 10), resnet34, source="r34.pth")
    assert "the file has layer1.2.conv1.weight [64, 64, 3, 3]" in one_line(exc)

    state18 = fixture_state("resnet18", random=False)  # right backbone, head reading other features
    state18["fc.weight"] = torch.zeros(1000, 2048)
    with pytest.raises(InputError) as exc:
        apply_state_dict(build_model("resnet18", 10), state18, source="r.pth")
    assert "fc.weight is [1000, 2048] in the file but [10, 512] in the model" in one_line(exc)


@pytest.mark.parametrize("damage", ["truncated", "text", "empty", "pickled_object", "not_tensors", "missing"])
def test_an_unreadable_weights_file_is_one_line_naming_it(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "weights.pth"
    good = tmp_path / "good.pth"
    torch.save(fixture_state("resnet18", random=False), good)
    if damage == "truncated":
        data = good.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif damage == "text":
        path.write_text("not a checkpoint\n")
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "pickled_object":
        torch.save(nn.Linear(2, 2), path)  # a whole module: weights_only refuses to unpickle it
    elif damage == "not_tensors":
        torch.save({"model": {"conv1.weight": [1.0, 2.0]}}, path)
    model = build_model("resnet18", 1000)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(NotFoundError if damage == "missing" else InputError) as exc:
        load_torchvision_weights(model, path)
    assert str(path) in one_line(exc)
    same_state(model, before)  # nothing half-loaded
