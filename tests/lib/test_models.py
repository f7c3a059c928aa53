"""Tests for neuroflux_lib.models: architecture contracts, freezing, offline weights and safe loading."""

from __future__ import annotations

import copy
import functools
import logging
import pickle
import socket
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from neuroflux_lib.data.normalization import InputNormalization
from neuroflux_lib.models import (
    IMAGENET_NORMALIZATION,
    MODEL_NAMES,
    ORIGINAL_CLASS_NAMES,
    ORIGINAL_NORMALIZATION,
    ResNet50Classifier,
    UnsafeCheckpointError,
    build_model,
    count_parameters,
    imagenet_weight_paths,
    load_original_checkpoint,
)

SMALL = 64  # image size that keeps CPU tests fast
RESNET_SIZE = 32  # smallest input ResNet-50 reduces to 1x1; its head does not depend on image size


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(autouse=True)
def empty_torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Hermetic hub cache, and any network or download attempt fails the test loudly."""
    home = tmp_path / "torch_home"
    home.mkdir()
    monkeypatch.setenv("TORCH_HOME", str(home))

    def no_download(*args: object, **kwargs: object) -> None:
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_download)
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    monkeypatch.setattr(torchvision.models.ResNet50_Weights, "get_state_dict", no_download)
    monkeypatch.setattr(socket.socket, "connect", no_download)
    return home


@functools.cache
def _default_resnet_template() -> nn.Module:
    return ResNet50Classifier(5)


def random_resnet(**hyperparams: object) -> nn.Module:
    """A fresh random ResNet-50 frozen as asked (the class's mechanics; the builder's policy of never
    freezing random weights is tested below); default ones are deep copies (one costs ~0.5 s)."""
    if not hyperparams:
        return copy.deepcopy(_default_resnet_template())
    return ResNet50Classifier(5, **hyperparams)


def fake_imagenet_state_dict() -> dict[str, torch.Tensor]:
    """Shaped like torchvision's ImageNet file: our backbone plus a 1000-class `fc`."""
    state = {
        k: v.clone() for k, v in _default_resnet_template().state_dict().items() if not k.startswith("fc.")
    }
    state["fc.weight"] = torch.randn(1000, 2048)
    state["fc.bias"] = torch.randn(1000)
    return state


# ------------------------------------------------------------------------------------- CNN contract


def test_cnn_parameter_count_matches_original() -> None:
    model = build_model("neuroflux_cnn", 5, {"conv_channels": 32}, image_size=224).model
    assert count_parameters(model) == 13_235_013


def test_cnn_state_dict_keys_are_exactly_the_originals() -> None:
    model = build_model("neuroflux_cnn", 5, image_size=SMALL).model
    expected = {
        f"{layer}.{kind}"
        for layer in ("conv1", "conv2", "conv3", "conv4", "fc1", "fc2")
        for kind in ("weight", "bias")
    }
    assert set(model.state_dict()) == expected
    assert model.conv1.out_channels == 64  # default from the original config
    assert model.dropout.p == 0.5


@pytest.mark.parametrize("image_size", [64, 96])
def test_cnn_other_image_sizes(image_size: int) -> None:
    model = build_model("neuroflux_cnn", 5, {"conv_channels": 8}, image_size=image_size).model
    assert model.fc1.in_features == 8 * 8 * (image_size // 16) ** 2
    assert model(torch.randn(2, 3, image_size, image_size)).shape == (2, 5)


def test_cnn_wrong_input_size_has_clear_error() -> None:
    model = build_model("neuroflux_cnn", 5, {"conv_channels": 8}, image_size=SMALL).model
    with pytest.raises(ValueError, match="built for 64x64"):
        model(torch.randn(1, 3, 96, 96))


def test_hyperparams_reach_the_cnn_and_training_keys_are_ignored() -> None:
    hyperparams = {
        "conv_channels": 16,
        "dropout": 0.25,
        "lr": 1e-3,
        "batch_size": 8,
        "epochs": 3,
        "hidden_size": 7,
    }
    model = build_model("neuroflux_cnn", 5, hyperparams, image_size=SMALL).model
    assert model.conv1.out_channels == 16
    assert model.conv4.out_channels == 128
    assert model.dropout.p == 0.25


def test_unknown_model_name_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="resnet50.*neuroflux_cnn"):
        build_model("vgg16", 5)
    assert MODEL_NAMES == ("resnet50", "neuroflux_cnn", "resnet18_gray")


@pytest.mark.parametrize(
    ("name", "hyperparams"),
    [
        ("neuroflux_cnn", {"conv_channels": 0}),
        ("neuroflux_cnn", {"dropout": 1.5}),
        ("resnet50", {"freeze_until": "layer9"}),
        ("resnet50", {"weights": "imagenet21k"}),
    ],
)
def test_invalid_hyperparams_are_rejected(name: str, hyperparams: dict) -> None:
    with pytest.raises(ValueError):
        build_model(name, 5, hyperparams, image_size=SMALL)


# ----------------------------------------------------------------------------------- ResNet contract


def test_resnet_head_keys_shapes_and_hyperparams() -> None:
    model = random_resnet(hidden_size=128, dropout=0.3)
    state = model.state_dict()
    head = {key for key in state if key.startswith("fc.")}
    assert head == {
        "fc.0.weight",
        "fc.0.bias",
        "fc.1.weight",
        "fc.1.bias",
        "fc.1.running_mean",
        "fc.1.running_var",
        "fc.1.num_batches_tracked",
        "fc.4.weight",
        "fc.4.bias",
    }
    assert state["fc.0.weight"].shape == (128, 2048)
    assert state["fc.1.weight"].shape == (128,)
    assert state["fc.4.weight"].shape == (5, 128)
    assert model.fc[3].p == 0.3
    # torchvision's own key names, no wrapper prefix
    with torch.device("meta"):  # only the key names matter; skips the slow weight initialisation
        reference = torchvision.models.resnet50(weights=None).state_dict()
    assert set(state) - head == set(reference) - {"fc.weight", "fc.bias"}


def test_resnet_defaults() -> None:
    model = random_resnet()
    assert model.fc[0].out_features == 512
    assert model.fc[3].p == 0.6
    assert model.freeze_until == "layer3"


def frozen_names(model: nn.Module) -> set[str]:
    return {name for name, p in model.named_parameters() if not p.requires_grad}


def test_default_freeze_trains_only_layer4_and_head() -> None:
    model = random_resnet()
    model.train()
    model(torch.randn(2, 3, RESNET_SIZE, RESNET_SIZE)).sum().backward()
    for name, param in model.named_parameters():
        if name.startswith(("layer4.", "fc.")):
            assert param.requires_grad and param.grad is not None, name
        else:
            assert not param.requires_grad and param.grad is None, name
    assert count_parameters(model, trainable_only=True) < count_parameters(model)


@pytest.mark.parametrize(
    ("freeze_until", "first_trainable"),
    [("none", "conv1."), ("conv1", "layer1."), ("layer1", "layer2."), ("layer4", "fc.")],
)
def test_freeze_until_choices(freeze_until: str, first_trainable: str) -> None:
    with torch.device("meta"):  # only requires_grad flags are checked
        model = random_resnet(freeze_until=freeze_until)
    first = next(name for name, p in model.named_parameters() if p.requires_grad)
    assert first.startswith(first_trainable)
    if freeze_until == "none":
        assert not frozen_names(model)


def test_frozen_batchnorm_stats_do_not_move_in_train_mode() -> None:
    model = random_resnet()
    model.eval()
    model.train()  # frozen BN must stay in eval even after an explicit train()
    before = {k: v.clone() for k, v in model.state_dict().items() if "running_mean" in k}
    model(torch.randn(4, 3, RESNET_SIZE, RESNET_SIZE) * 3 + 1)
    after = model.state_dict()
    for key, value in before.items():
        if key.startswith(("bn1.", "layer1.", "layer2.", "layer3.")):
            assert torch.equal(after[key], value), key
    assert not torch.equal(after["layer4.0.bn1.running_mean"], before["layer4.0.bn1.running_mean"])
    assert not model.bn1.training and not model.layer3[0].bn1.training
    assert model.layer4[0].bn1.training and model.fc[1].training


def test_batchnorm_head_single_sample_in_eval() -> None:
    model = random_resnet().eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, RESNET_SIZE, RESNET_SIZE)).shape == (1, 5)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_forward_shape(name: str) -> None:
    """Through the model's own input normalisation: grayscale in, one logit per class out."""
    hyperparams = {"weights": "random", "conv_channels": 8}
    built = build_model(name, 5, hyperparams, image_size=SMALL)
    gray = torch.randint(0, 256, (2, 1, SMALL, SMALL), dtype=torch.uint8)
    assert built.model(built.normalization(gray)).shape == (2, 5)


def test_resnet18_gray_takes_one_channel_and_trains_from_scratch() -> None:
    built = build_model("resnet18_gray", 5, {"dropout": 0.1})
    assert built.model.conv1.in_channels == 1 and built.normalization == InputNormalization("per_image", 1)
    assert built.weights_origin == "random" and built.frozen == ()
    assert all(p.requires_grad for p in built.model.parameters())


# ----------------------------------------------------------------------------------- ImageNet policy


def test_missing_imagenet_weights_warns_and_falls_back(
    caplog: pytest.LogCaptureFixture, empty_torch_home: Path
) -> None:
    """Offline, the backbone is random, so nothing stays frozen at random values: every layer trains."""
    with caplog.at_level(logging.WARNING, logger="neuroflux_lib.models"):
        built = build_model("resnet50", 5)
    assert built.weights_origin == "random"
    assert not built.pretrained
    assert built.normalization == InputNormalization("per_image", 3)  # ImageNet's mean/std means nothing
    assert built.frozen == () and all(p.requires_grad for p in built.model.parameters())
    assert "freeze_until 'layer3' ignored" in built.weights_note
    expected = empty_torch_home / "hub" / "checkpoints" / "resnet50-11ad3fa6.pth"
    assert imagenet_weight_paths()[0] == expected
    assert expected.name in caplog.text and "NEUROFLUX_OFFLINE" in caplog.text
    assert "randomly initialised" in caplog.text
    assert not list(empty_torch_home.rglob("*.pth"))  # nothing was fetched or created


@pytest.mark.parametrize("which", [0, 1], ids=["V2", "V1"])
def test_cached_imagenet_weights_are_loaded(which: int, caplog: pytest.LogCaptureFixture) -> None:
    fake = fake_imagenet_state_dict()
    if which == 1:  # older torchvision files predate BatchNorm's num_batches_tracked buffer
        fake = {k: v for k, v in fake.items() if not k.endswith("num_batches_tracked")}
    path = imagenet_weight_paths()[which]
    path.parent.mkdir(parents=True)
    torch.save(fake, path)
    with caplog.at_level(logging.WARNING, logger="neuroflux_lib.models"):
        built = build_model("resnet50", 5, {"weights": "imagenet"})
    assert not caplog.records
    assert built.weights_origin == "imagenet" and built.pretrained
    assert built.normalization == InputNormalization.fixed(*IMAGENET_NORMALIZATION)
    assert built.weights_name == f"ResNet50_Weights.IMAGENET1K_V{2 - which}"
    assert built.frozen == ("conv1", "layer1", "layer2", "layer3")
    assert (
        not built.model.layer3[0].conv1.weight.requires_grad
        and built.model.layer4[0].conv1.weight.requires_grad
    )
    state = built.model.state_dict()
    assert torch.equal(state["conv1.weight"], fake["conv1.weight"])
    assert torch.equal(state["layer4.2.bn3.running_var"], fake["layer4.2.bn3.running_var"])


def test_explicit_random_weights_do_not_warn_and_train_every_layer(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="neuroflux_lib.models"):
        built = build_model("resnet50", 5, {"weights": "random"})
    assert built.weights_origin == "random" and not caplog.records
    assert built.frozen == () and "freeze_until 'layer3' ignored" in built.weights_note
    unfrozen = build_model("resnet50", 5, {"weights": "random", "freeze_until": "none"})
    assert unfrozen.weights_note is None


# -------------------------------------------------------------------------------- original checkpoints


def test_original_constants() -> None:
    assert ORIGINAL_CLASS_NAMES == ("PTE", "LO", "EO", "IPTE", "IO")
    assert ORIGINAL_NORMALIZATION == ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


@pytest.mark.parametrize("wrapper", [None, "model_state_dict", "state_dict"])
def test_original_cnn_checkpoint_loads_strictly(tmp_path: Path, wrapper: str | None) -> None:
    original = build_model("neuroflux_cnn", 5, {"conv_channels": 16}, image_size=SMALL).model
    state = original.state_dict()
    path = tmp_path / "cnn.pth"
    torch.save(state if wrapper is None else {wrapper: state, "epoch": 3}, path)
    # conv_channels is inferred from the tensors, overriding the (wrong) configured value
    built = load_original_checkpoint(
        path, "neuroflux_cnn", hyperparams={"conv_channels": 64}, image_size=SMALL
    )
    assert built.model.conv1.out_channels == 16
    assert built.weights_origin == "checkpoint"
    assert built.normalization == InputNormalization.fixed(*ORIGINAL_NORMALIZATION)
    assert not built.model.training
    x = torch.randn(2, 3, SMALL, SMALL)
    assert torch.allclose(built.model(x), original.eval()(x))


def test_original_resnet_checkpoint_loads_strictly(tmp_path: Path, empty_torch_home: Path) -> None:
    original = random_resnet(hidden_size=64)
    path = tmp_path / "resnet.pth"
    torch.save(original.state_dict(), path)
    built = load_original_checkpoint(path, "resnet50")
    assert built.model.fc[0].out_features == 64
    assert torch.equal(built.model.state_dict()["fc.4.weight"], original.state_dict()["fc.4.weight"])
    assert not list(empty_torch_home.rglob("*"))  # hub cache untouched


def test_mismatched_checkpoints_are_explained(tmp_path: Path) -> None:
    def save(num_classes: int) -> Path:
        path = tmp_path / f"cnn{num_classes}.pth"
        model = build_model("neuroflux_cnn", num_classes, {"conv_channels": 8}, image_size=SMALL).model
        torch.save(model.state_dict(), path)
        return path

    with pytest.raises(ValueError, match="image_size"):
        load_original_checkpoint(save(5), "neuroflux_cnn", image_size=96)
    with pytest.raises(ValueError, match="3 output classes"):
        load_original_checkpoint(save(3), "neuroflux_cnn", image_size=SMALL)
    with pytest.raises(ValueError, match="not a resnet50 state dict"):
        load_original_checkpoint(save(5), "resnet50")


class Arbitrary:
    """Stands in for any non-tensor object somebody pickled."""


@pytest.mark.parametrize(
    "payload",
    [
        lambda: (
            build_model("neuroflux_cnn", 5, {"conv_channels": 4}, image_size=SMALL).model
        ),  # whole nn.Module
        lambda: {"model": Arbitrary()},
        lambda: [1, 2, 3],
    ],
    ids=["nn.Module", "object", "not-a-dict"],
)
def test_unsafe_checkpoints_are_refused(tmp_path: Path, payload) -> None:
    path = tmp_path / "bad.pth"
    torch.save(payload(), path)
    with pytest.raises(UnsafeCheckpointError, match="bad.pth"):
        load_original_checkpoint(path, "neuroflux_cnn", image_size=SMALL)


def test_plain_pickle_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(Arbitrary(), protocol=2))
    with pytest.raises(UnsafeCheckpointError, match="evil.pkl"):
        load_original_checkpoint(path, "resnet50")
