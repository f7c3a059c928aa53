"""Training throughput, ours vs the original's style, on this machine (prediction: bench_predict.py).

Usage: python benchmarks/bench_train.py [--data DIR] [--images 192] [--size 224] [--batch 16]

- ours: images decoded once into the content-addressed cache, `training.run_epoch` (the real loop).
- original style: a Dataset that opens every JPEG with PIL each epoch, torchvision Resize / Grayscale(3)
  / ToTensor / Normalize, DataLoader with the config's num_workers, a plain loop. Same model, same
  frozen layers, same batch size; after a warm-up epoch each, `--repeats` interleaved rounds of one
  epoch per arm (median, and the per-round ratio's range).
Without --data, a small demo set (scale 0.2) is generated into a temporary folder.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import statistics
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image
from results import record
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T

from neuroflux_lib.config import DEFAULT_CLASS_NAMES, DEFAULT_SUBJECT_REGEX, AugmentationConfig, ModelConfig
from neuroflux_lib.config.resolve import load_model_config, model_config_path
from neuroflux_lib.data.augmentation import build_augmentation
from neuroflux_lib.data.datasets import ImageTensorDataset
from neuroflux_lib.data.discovery import discover_images
from neuroflux_lib.data.image_cache import cached_arrays
from neuroflux_lib.data.normalization import InputNormalization, ModelInput
from neuroflux_lib.demo.generator import generate_demo_dataset
from neuroflux_lib.models import ResNet50Classifier, build_model
from neuroflux_lib.training.feature_cache import FeatureDataset, Precomputed, cached_features, frozen_split
from neuroflux_lib.training.loop import (
    DeviceSettings,
    device_settings,
    make_optimizer,
    resolve_device,
    run_epoch,
)

CLASSES = list(DEFAULT_CLASS_NAMES)
NORM = ((0.5,) * 3, (0.5,) * 3)


class OriginalStyleDataset(Dataset):
    def __init__(self, paths: list[str], labels: list[int], size: int):
        self.paths, self.labels = paths, labels
        self.transform = T.Compose(
            [
                T.Resize((size, size)),
                T.Grayscale(3),
                T.RandomHorizontalFlip(),
                T.ToTensor(),
                T.Normalize([0.5] * 3, [0.5] * 3),
            ]
        )

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        return self.transform(Image.open(self.paths[i]).convert("L")), self.labels[i]


def original_epoch(model: nn.Module, loader: DataLoader, device: torch.device) -> float:
    model.train()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    loss_fn = nn.CrossEntropyLoss()
    seen, start = 0, time.perf_counter()
    for images, labels in loader:
        images, labels = images.to(device), labels.to(device)
        optimizer.zero_grad()
        loss_fn(model(images), labels).backward()
        optimizer.step()
        seen += len(labels)
    return seen / (time.perf_counter() - start)


def our_optimizer(model: nn.Module) -> torch.optim.Optimizer:
    """The training loop's optimizer (Adam, fused) at the original's benchmark learning rate."""
    settings = ModelConfig(model_name="resnet50", optimizer="Adam", learning_rate=1e-4)
    return make_optimizer([p for p in model.parameters() if p.requires_grad], settings)


def ours_epoch(model: nn.Module, loader: DataLoader, settings: DeviceSettings) -> float:
    """With the same flip + affine as the original, batched on the device, and 0.5/0.5 normalisation."""
    optimizer = our_optimizer(model)
    geometry_only = AugmentationConfig(bias_field=0, gamma=0, contrast=0, noise=0)
    inputs = ModelInput(InputNormalization.fixed(*NORM), build_augmentation(geometry_only))
    metrics = run_epoch(model, loader, settings, CLASSES, nn.CrossEntropyLoss(), inputs.train, optimizer)
    return metrics["images_per_s"]


def precisions(name: str, device: torch.device) -> dict[str, DeviceSettings]:
    """Our loop as the model's config trains it (its `mixed_precision`: bf16 autocast where the CPU has
    native bf16, for the models that opt in) and in float32, so the table says what that bought."""
    configured = load_model_config(model_config_path(name)).mixed_precision
    return {"": device_settings(device, configured), " float32": device_settings(device, "off")}


def bench_training(name: str, paths: list[str], labels: list[int], args, cache: Path) -> None:
    device = resolve_device("auto")
    hyper = {"weights": "random", "conv_channels": 32}
    torch.manual_seed(0)
    if name == "resnet50":  # frozen through layer3, as it trains with ImageNet weights (random here)
        model = ResNet50Classifier(len(CLASSES)).to(device)
    else:
        model = build_model(name, len(CLASSES), hyper, image_size=args.size).model.to(device)
    original = DataLoader(
        OriginalStyleDataset(paths, labels, args.size),
        batch_size=args.batch,
        shuffle=True,
        num_workers=args.workers,
        drop_last=True,
    )
    start = time.perf_counter()
    images = cached_arrays(paths, args.size, cache, workers=args.workers)
    cache_seconds = time.perf_counter() - start
    ours = DataLoader(
        ImageTensorDataset(images, labels),
        batch_size=args.batch,
        shuffle=True,
        drop_last=True,
    )
    arms = {"original": lambda: original_epoch(model, original, device)}
    fills = {}
    settings_by_label = precisions(name, device)
    for label, settings in settings_by_label.items():
        arms[f"ours{label}"] = functools.partial(ours_epoch, model, ours, settings)
        if name == "resnet50":
            arms[f"cached{label}"], fills[label] = cached_arm(
                model, torch.from_numpy(images), labels, args, cache, settings
            )
    speeds = interleaved(arms, args.repeats)
    original_speed = statistics.median(speeds["original"])

    def summary(arm: str) -> tuple[float, str]:
        ratios = [o / b for o, b in zip(speeds[arm], speeds["original"], strict=True)]
        spread = f"per-round ratio {min(ratios):.2f}-{max(ratios):.2f}x, {args.repeats} rounds"
        return statistics.median(speeds[arm]), spread

    precision = settings_by_label[""].precision
    for label in settings_by_label:
        ours_speed, ours_spread = summary(f"ours{label}")
        arm = f"ours{label or f' ({precision})'}"
        print(
            f"{name:<14} {args.size}px  original {original_speed:7.1f} img/s   {arm} {ours_speed:7.1f} img/s"
            f"   ratio {ours_speed / original_speed:.2f}x ({ours_spread}; "
            f"image cache fill {cache_seconds:.1f} s)"
        )
    ours_speed, ours_spread = summary("ours")
    fp32_ratio = statistics.median(speeds["ours float32"]) / original_speed
    if name != "resnet50":
        figure = f"{name} c=32 training, {args.size} px, batch {args.batch}"
        note = f"median epoch, {precision}; {ours_spread}; float32 {fp32_ratio:.2f}x"
        record(figure, original_speed, ours_speed, "img/s", ">= 1.5", note)
        return
    epochs = ModelConfig(model_name="resnet50").num_epochs
    n = len(labels)
    amortised_by_label = {}
    for label in settings_by_label:
        cached, cached_spread = summary(f"cached{label}")
        amortised = amortised_by_label[label] = n * epochs / (fills[label] + n * epochs / cached)
        arm = f"ours + feature cache ({args.views} views){label or f' ({precision})'}"
        print(
            f"{name:<14} {args.size}px  {arm} {cached:7.1f} img/s per epoch, ratio "
            f"{cached / original_speed:.2f}x ({cached_spread}); feature fill {fills[label]:.1f} s; over the "
            f"config's {epochs} epochs incl. the fill {amortised:.1f} img/s "
            f"({amortised / original_speed:.2f}x)"
        )
    cached, cached_spread = summary("cached")
    amortised = amortised_by_label[""]
    fp32_cached = statistics.median(speeds["cached float32"]) / original_speed
    record(
        f"ResNet-50 training, frozen through layer3, {args.size} px, batch {args.batch}",
        original_speed,
        cached,
        "img/s",
        ">= 4",
        f"feature cache, {args.views} views, {precision}, median epoch after a {fills['']:.0f} s fill "
        f"({cached_spread}); {amortised / original_speed:.2f}x over {epochs} epochs incl. the fill; "
        f"float32 {fp32_cached:.2f}x; without the cache {ours_speed / original_speed:.2f}x "
        f"(float32 {fp32_ratio:.2f}x)",
    )


def interleaved(arms: dict, repeats: int) -> dict[str, list[float]]:
    """img/s of each arm's epoch: one warm-up each, then `repeats` rounds running every arm once, so a
    slow spell of the machine hits all arms alike."""
    for run in arms.values():
        run()
    speeds: dict[str, list[float]] = {label: [] for label in arms}
    for _ in range(repeats):
        for label, run in arms.items():
            speeds[label].append(run())
    return speeds


def cached_arm(model, images: torch.Tensor, labels: list[int], args, cache: Path, settings: DeviceSettings):
    """(one epoch of our loop on the frozen-feature cache -> img/s, seconds the fill took)."""
    prefix, rest = frozen_split(model)
    geometry_only = AugmentationConfig(bias_field=0, gamma=0, contrast=0, noise=0)
    inputs = ModelInput(InputNormalization.fixed(*NORM), build_augmentation(geometry_only))
    start = time.perf_counter()
    files, _, _ = cached_features(
        prefix, images, inputs, cache / "features", f"bench-{settings.precision}", views=args.views,
        augment=True, settings=settings,
    )  # fmt: skip
    fill_seconds = time.perf_counter() - start
    data = FeatureDataset(files, labels)
    loader = DataLoader(data, batch_size=args.batch, shuffle=True, drop_last=True)
    layout = torch.channels_last if settings.channels_last else torch.contiguous_format
    rest.to(settings.device, memory_format=layout)
    optimizer = our_optimizer(rest)
    epochs = itertools.count(1)

    def epoch() -> float:
        data.set_epoch(next(epochs))
        loss = nn.CrossEntropyLoss()
        return run_epoch(rest, loader, settings, CLASSES, loss, Precomputed.train, optimizer)["images_per_s"]

    return epoch, fill_seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--images", type=int, default=192)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--workers", type=int, default=ModelConfig(model_name="resnet50").num_workers or 2)
    parser.add_argument("--models", nargs="+", default=["neuroflux_cnn", "resnet50"])
    parser.add_argument("--repeats", type=int, default=3, help="interleaved timed epochs per arm")
    parser.add_argument("--views", type=int, default=ModelConfig(model_name="resnet50").feature_cache_views)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        data = args.data or tmp / "data"
        if args.data is None:
            generate_demo_dataset(data, scale=0.2, seed=0)
        manifest = discover_images(data, DEFAULT_CLASS_NAMES, DEFAULT_SUBJECT_REGEX).manifest
        manifest = manifest[manifest["size_bytes"] > 2000].head(
            args.images
        )  # skip the deliberately bad files
        paths = manifest["path"].tolist()
        labels = [CLASSES.index(c) for c in manifest["class_name"]]
        print(
            f"{len(paths)} images, batch {args.batch}, device {resolve_device('auto')}, "
            f"{torch.get_num_threads()} torch threads"
        )
        for name in args.models:
            bench_training(name, paths, labels, args, tmp / "cache")


if __name__ == "__main__":
    main()
