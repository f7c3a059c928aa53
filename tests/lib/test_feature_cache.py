"""Frozen-feature cache: cached and uncached paths agree bit for bit, keys invalidate, trials share it."""

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from neuroflux_lib.config import AugmentationConfig, ModelConfig
from neuroflux_lib.data.augmentation import build_augmentation
from neuroflux_lib.data.datasets import ImageTensorDataset
from neuroflux_lib.data.normalization import InputNormalization, ModelInput
from neuroflux_lib.models import resnet
from neuroflux_lib.models.common import IMAGENET_NORMALIZATION
from neuroflux_lib.paths import StoragePaths
from neuroflux_lib.training.feature_cache import (
    FeatureDataset,
    cache_key,
    cached_features,
    fill_cache,
    frozen_split,
    weights_digest,
)
from neuroflux_lib.training.loop import device_settings
from neuroflux_lib.training.steps import fit_inputs, prepare_training, train_model
from neuroflux_lib.training.tuning import run_study
from tests.lib.test_tuning import spec_for

SIZE = 32
INPUTS = ModelInput(InputNormalization.fixed(*IMAGENET_NORMALIZATION))
AUGMENTED = ModelInput(INPUTS.normalization, build_augmentation(AugmentationConfig()))


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def frozen_resnet() -> resnet.ResNet50Classifier:
    torch.manual_seed(0)
    model = resnet.ResNet50Classifier(3, hidden_size=16, freeze_until="layer3")
    for module in model.modules():  # non-trivial running statistics, as in ImageNet weights
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    return model.train()


def images(n: int = 12, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (n, SIZE, SIZE), dtype=np.uint8))


def load(files) -> torch.Tensor:
    return torch.from_numpy(np.stack([np.load(f) for f in files]))


def test_split_recomposes_the_model_and_leaves_only_later_stages_trainable(frozen_resnet):
    prefix, rest = frozen_split(frozen_resnet)
    x = torch.randn(4, 3, SIZE, SIZE)
    frozen_resnet.eval()
    with torch.no_grad():
        assert torch.equal(rest(prefix(x)), frozen_resnet(x))
    assert not any(p.requires_grad for p in prefix.parameters())
    assert all(p.requires_grad for p in rest.parameters())
    # rest's parameters ARE the model's: training rest trains the model that gets saved
    assert {id(p) for p in rest.parameters()} <= {id(p) for p in frozen_resnet.parameters()}
    frozen_resnet.train()
    assert frozen_split(resnet.ResNet50Classifier(3, freeze_until="none")) is None


def test_cached_features_are_bit_identical_and_give_the_same_first_batch_loss(frozen_resnet, tmp_path):
    batch, labels = images(), torch.arange(12) % 3
    prefix, rest = frozen_split(frozen_resnet)
    files, computed, reused = cached_features(prefix, batch, INPUTS, tmp_path, "key")
    assert (computed, reused) == (12, 0)
    cached = load(files)[:, 0]
    # The uncached forward as `fit` runs it on this device (memory format included).
    layout = (
        torch.channels_last if device_settings(torch.device("cpu")).channels_last else torch.contiguous_format
    )
    frozen_resnet.to(memory_format=layout)
    model_input = INPUTS.eval(batch.unsqueeze(1)).contiguous(memory_format=layout)
    with torch.no_grad():
        uncached = prefix(model_input)
    assert torch.equal(cached, uncached)  # frozen BatchNorm in eval mode: same bits

    loss = nn.CrossEntropyLoss()
    frozen_resnet.train()  # the frozen stages stay in eval mode; layer4 and the head train
    torch.manual_seed(1)
    full = loss(frozen_resnet(model_input), labels)
    torch.manual_seed(1)  # same dropout mask
    part = loss(rest(cached), labels)
    assert torch.equal(full, part)


def test_with_bf16_autocast_the_cache_matches_the_uncached_mixed_precision_forward(frozen_resnet, tmp_path):
    """Training on a CPU with native bf16 runs the whole model under autocast: the fill does too, so the
    cached path still sees the uncached path's features and loss (and float32 entries are not reused)."""
    bf16 = device_settings(torch.device("cpu"), "auto", bf16_supported=True)
    batch, labels = images(), torch.arange(12) % 3
    prefix, rest = frozen_split(frozen_resnet)
    files, _, _ = cached_features(prefix, batch, INPUTS, tmp_path, "bf16", settings=bf16)
    cached = load(files)[:, 0]
    frozen_resnet.to(memory_format=torch.channels_last)
    model_input = INPUTS.eval(batch.unsqueeze(1)).contiguous(memory_format=torch.channels_last)
    with torch.no_grad(), bf16.autocast():
        uncached = prefix(model_input)
    assert uncached.dtype == torch.bfloat16 and torch.equal(cached, uncached.float())

    loss = nn.CrossEntropyLoss()
    frozen_resnet.train()
    with bf16.autocast():
        torch.manual_seed(1)
        full = loss(frozen_resnet(model_input).float(), labels)
        torch.manual_seed(1)
        part = loss(rest(cached).float(), labels)
    assert torch.equal(full, part)
    norm = INPUTS.normalization.to_dict()
    digest = weights_digest(prefix)
    assert cache_key(digest, SIZE, norm, None, 1, bf16.precision) != cache_key(digest, SIZE, norm, None, 1)


def test_a_changed_weights_digest_or_image_size_invalidates(frozen_resnet, tmp_path):
    prefix, _ = frozen_split(frozen_resnet)
    norm = INPUTS.normalization.to_dict()
    key = cache_key(weights_digest(prefix), SIZE, norm, None, 1)
    assert cache_key(weights_digest(prefix), SIZE, norm, None, 1) == key
    assert cache_key(weights_digest(prefix), 64, norm, None, 1) != key
    assert cache_key(weights_digest(prefix), SIZE, {"method": "per_image", "channels": 3}, None, 1) != key
    aug = AugmentationConfig().model_dump()
    assert cache_key(weights_digest(prefix), SIZE, norm, aug, 2) != cache_key(
        weights_digest(prefix), SIZE, norm, aug, 4
    )

    other = resnet.ResNet50Classifier(3, hidden_size=16, freeze_until="layer3")
    other.load_state_dict(frozen_resnet.state_dict())
    other_prefix, _ = frozen_split(other)
    assert weights_digest(other_prefix) == weights_digest(prefix)
    with torch.no_grad():
        other.layer3[0].conv1.weight[0, 0, 0, 0] += 1e-3
    assert weights_digest(other_prefix) != weights_digest(prefix)

    def fill(model_prefix, size: int):
        def resized(pixels: torch.Tensor) -> torch.Tensor:
            return nn.functional.interpolate(pixels.unsqueeze(1).float(), size=size).to(torch.uint8)[:, 0]

        train, val = resized(images(12)), resized(images(4, seed=1))
        stages = ("conv1", "layer1", "layer2", "layer3")
        labels = torch.arange(16) % 3
        return fill_cache(
            model_prefix, stages, train, labels[:12], val, labels[12:], INPUTS, tmp_path,
            image_size=size, augmentation=None, views=1, seed=0,
        )[2]  # fmt: skip

    assert fill(prefix, SIZE).computed == 16
    again = fill(prefix, SIZE)
    assert (again.computed, again.reused) == (0, 16)
    assert fill(other_prefix, SIZE).computed == 16  # new weights digest: computed again
    assert fill(prefix, 48).computed == 16  # new image size: computed again


def test_augmented_views_are_stored_per_image_and_sampled_per_epoch(frozen_resnet, tmp_path):
    prefix, _ = frozen_split(frozen_resnet)
    batch = images(6)
    files, _, _ = cached_features(prefix, batch, AUGMENTED, tmp_path, "aug", views=3, augment=True)
    stored = load(files)
    assert stored.shape[:2] == (6, 3)
    assert not torch.equal(stored[:, 0], stored[:, 1])  # three different augmentations
    # A view is seeded by the image's pixels: recomputing it elsewhere draws the same augmentation
    again, _, _ = cached_features(
        prefix, batch[3:], AUGMENTED, tmp_path / "other", "aug", views=3, augment=True
    )
    # (the same draw; another batch composition may change the last bits of a convolution)
    assert torch.allclose(load(again), stored[3:], rtol=1e-5, atol=1e-4)

    data = FeatureDataset(files, [0, 1, 2, 0, 1, 2], seed=0)
    data.set_epoch(1)
    first = [data[i][0] for i in range(6)]
    data.set_epoch(2)
    second = [data[i][0] for i in range(6)]
    data.set_epoch(1)
    assert all(torch.equal(a, data[i][0]) for i, a in enumerate(first))  # a resumed epoch sees the same
    assert any(not torch.equal(a, b) for a, b in zip(first, second, strict=True))
    assert all(any(torch.equal(x, stored[i, v]) for v in range(3)) for i, x in enumerate(first))


def test_persistent_loader_workers_see_each_epochs_views(tmp_path):
    """On CUDA the loader keeps its worker processes between epochs: they must follow `set_epoch`."""
    files = []
    for i in range(4):  # view v of every image holds the value v
        files.append(tmp_path / f"{i}.npy")
        np.save(files[-1], np.arange(3, dtype=np.float32).reshape(3, 1, 1, 1) * np.ones((3, 2, 1, 1)))
    data = FeatureDataset(files, [0, 1, 2, 0], seed=0)
    loader = DataLoader(data, batch_size=4, num_workers=1, persistent_workers=True)
    seen = {}
    for epoch in (1, 2, 3):
        data.set_epoch(epoch)
        (features, _), expected = next(iter(loader)), [data[i][0][0, 0, 0].item() for i in range(4)]
        seen[epoch] = features[:, 0, 0, 0].tolist()
        assert seen[epoch] == expected
    assert len({tuple(views) for views in seen.values()}) > 1


@pytest.fixture
def imagenet_offline_standin(monkeypatch, frozen_resnet):
    """`imagenet_state` returns fixed weights, as a machine with the hub cache filled would."""
    state = {k: v for k, v in frozen_resnet.state_dict().items() if not k.startswith("fc.")}
    monkeypatch.setattr(resnet, "imagenet_state", lambda: (state, "standin"))


def resnet_config(**overrides) -> ModelConfig:
    values = dict(
        model_name="resnet50", hidden_size=16, num_epochs=1, batch_size=16, device="cpu", num_workers=0,
        tune_epochs=1, tune_pruner="none", tune_trials=2, image_size=SIZE, feature_cache_views=2,
    )  # fmt: skip
    return ModelConfig(**{**values, **overrides})


def test_training_and_trials_share_the_cache_and_say_which_mode_ran(
    prepared, imagenet_offline_standin, tmp_path
):
    dataset, balanced, splits = prepared
    dataset = dataset.model_copy(update={"storage_dir": str(tmp_path / "storage")})
    config = resnet_config()
    built, train, val = prepare_training(config, dataset, balanced, splits)
    plan = fit_inputs(built, train, val, config, dataset.storage_dir)
    assert plan.feature_cache.mode == "cached" and plan.feature_cache.views == 2
    assert 0 < plan.feature_cache.computed <= len(train) + len(val)  # identical images share an entry

    spec = dataclasses.replace(
        spec_for((dataset, balanced, splits), f"sqlite:///{tmp_path}/optuna.db"), base=config
    )
    run_study(spec, n_trials=2)  # both trials find every entry: nothing new is written
    entries = sorted(StoragePaths(dataset.storage_dir).feature_cache.rglob("*.npy"))
    assert len(entries) == plan.feature_cache.computed

    trained = train_model(
        config, dataset, balanced, splits, artifact_dir=tmp_path / "model", work_dir=tmp_path / "work"
    )
    recorded = trained.meta.training["feature_cache"]
    assert recorded["mode"] == "cached" and recorded["computed"] == 0
    assert recorded["stages"] == ["conv1", "layer1", "layer2", "layer3"]


def test_models_without_frozen_stages_or_with_the_cache_off_train_on_images(
    prepared, imagenet_offline_standin, tmp_path
):
    dataset, balanced, splits = prepared
    for config, mode in (
        (resnet_config(feature_cache=False), "off: feature_cache is false"),
        (resnet_config(freeze_until="none"), "off: no frozen stages"),
    ):
        built, train, val = prepare_training(config, dataset, balanced, splits)
        plan = fit_inputs(built, train, val, config, tmp_path)
        assert plan.feature_cache.mode == mode
        assert plan.model is built.model and isinstance(plan.train, ImageTensorDataset)
