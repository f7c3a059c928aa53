"""GPU throughput of every registry model at 224 px: images/s for a training step and for inference.

Usage: python benchmarks/bench_gpu.py [--images 512] [--size 224] [--batch 64] [--models resnet50 ...]
In the image: docker run --gpus all --entrypoint python neuroflux benchmarks/bench_gpu.py

Without a CUDA GPU it says so and exits 0 (`--cpu` runs the same measurement on the CPU, to check the
script). Images are synthetic (random uint8, no decoding): what is measured is the device, through the
project's own code paths:
- loop: `training.run_epoch` over a DataLoader of cached uint8 images with the training transforms, i.e.
  what `fit` does per epoch (mixed precision from `device_settings`, channels_last, pinned memory,
  `loader_workers` CPU workers, cudnn.benchmark);
- model: the same batches already on the GPU (no loader): the model's ceiling. A big gap between the two
  means the CPU workers starve the GPU.
- with the feature cache (models with frozen stages, i.e. ResNet-50): the frozen prefix computed once per
  image and view (`training.feature_cache`, the fill time is printed), then training of the rest alone.
Every figure is the second pass (the first one pays for cudnn's algorithm search and the allocator).
One short check on a lent GPU (well under 5 minutes on an H100):
  timeout 280 python benchmarks/bench_gpu.py --images 512
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from neuroflux_lib.config import DEFAULT_CLASS_NAMES, AugmentationConfig
from neuroflux_lib.data.augmentation import build_augmentation
from neuroflux_lib.data.datasets import ImageTensorDataset
from neuroflux_lib.data.normalization import ModelInput
from neuroflux_lib.models import MODEL_NAMES, ResNet50Classifier, build_model
from neuroflux_lib.training.feature_cache import FeatureDataset, Precomputed, cached_features, frozen_split
from neuroflux_lib.training.loop import (
    DeviceSettings,
    device_settings,
    loader_workers,
    resolve_device,
    run_epoch,
)

CLASSES = list(DEFAULT_CLASS_NAMES)
NORM = ((0.5,) * 3, (0.5,) * 3)
HYPER = {"weights": "random", "conv_channels": 32}  # as benchmarks/bench_train.py
FEATURES = Precomputed()


def synthetic(n: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, size, size), dtype=np.uint8), rng.integers(0, len(CLASSES), n)


def loader(dataset, args, settings: DeviceSettings, train: bool) -> DataLoader:
    """As `training.fit` builds its loaders: CPU workers, pinned memory, workers kept between epochs."""
    workers = loader_workers(args.workers, settings.device)
    return DataLoader(
        dataset,
        batch_size=args.batch,
        shuffle=train,
        drop_last=train,
        num_workers=workers,
        pin_memory=settings.pin_memory,
        persistent_workers=workers > 0,
    )


def on_device(batches: DataLoader, settings: DeviceSettings) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The loader's batches moved to the device once, so a pass measures the model alone."""
    moved = []
    for images, labels in batches:
        moved.append((images.to(settings.device), labels.to(settings.device)))
    return moved


def images_per_s(
    model: nn.Module, inputs: ModelInput, batches, settings: DeviceSettings, train: bool
) -> float:
    """Second of two passes of the project's `run_epoch` (with its batched augmentation and normalisation
    on the device); trains when `train`, else inference."""
    loss_fn = nn.CrossEntropyLoss()
    optimizer = scaler = None
    if train:
        optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        scaler = torch.amp.GradScaler(settings.device.type) if settings.needs_grad_scaler else None
    for epoch in range(2):
        if hasattr(batches, "dataset") and hasattr(batches.dataset, "set_epoch"):
            batches.dataset.set_epoch(epoch)
        prepare = inputs.train if train else inputs.eval
        metrics = run_epoch(model, batches, settings, CLASSES, loss_fn, prepare, optimizer, scaler=scaler)
    if settings.device.type == "cuda":
        torch.cuda.synchronize()
    return metrics["images_per_s"]


def cached_training(
    model: nn.Module,
    inputs: ModelInput,
    images: np.ndarray,
    labels: np.ndarray,
    args,
    settings: DeviceSettings,
) -> str:
    """Training img/s on the frozen-feature cache (models with a frozen prefix), after the fill it needs."""
    split = frozen_split(model)
    if split is None:
        return ""
    prefix, rest = split
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        files, _, _ = cached_features(
            prefix, torch.from_numpy(images), inputs, tmp, "bench", views=args.views, augment=True,
            settings=settings,
        )  # fmt: skip
        fill = time.perf_counter() - start
        batches = loader(FeatureDataset(files, labels), args, settings, train=True)
        speed = images_per_s(rest, FEATURES, batches, settings, train=True)
    return f"with the feature cache: train {speed:8.1f} img/s (fill of {args.views} views {fill:.1f} s)   "


def bench_model(name: str, args, settings: DeviceSettings) -> None:
    torch.manual_seed(0)
    built = build_model(name, len(CLASSES), HYPER, image_size=args.size)
    if name == "resnet50":  # frozen through layer3, as it trains with ImageNet weights (random here)
        built = dataclasses.replace(built, model=ResNet50Classifier(len(CLASSES)))
    inputs = ModelInput(built.normalization, build_augmentation(AugmentationConfig()))
    model = built.model.to(settings.device)
    if settings.channels_last:
        model.to(memory_format=torch.channels_last)
    images, labels = synthetic(args.images, args.size)
    results = {}
    for train in (True, False):
        batches = loader(ImageTensorDataset(images, labels), args, settings, train)
        results["train" if train else "infer", "loop"] = images_per_s(model, inputs, batches, settings, train)
        results["train" if train else "infer", "model"] = images_per_s(
            model, inputs, on_device(batches, settings), settings, train
        )
    cached = cached_training(model, inputs, images, labels, args, settings)
    peak = (
        f"peak memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB"
        if settings.device.type == "cuda"
        else ""
    )
    print(
        f"{name:<14} {args.size}px batch {args.batch:<4} "
        f"train {results['train', 'loop']:8.1f} img/s (model alone {results['train', 'model']:8.1f})   "
        f"inference {results['infer', 'loop']:8.1f} img/s (model alone {results['infer', 'model']:8.1f})   "
        f"{cached}{peak}"
    )
    del model
    if settings.device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--workers", type=int, default=None, help="loader workers (default: as training)")
    parser.add_argument("--models", nargs="+", default=list(MODEL_NAMES))
    parser.add_argument("--cpu", action="store_true", help="no GPU: measure the CPU instead of exiting")
    parser.add_argument("--views", type=int, default=4, help="augmented views in the feature cache")
    args = parser.parse_args(argv)

    device = resolve_device("auto")
    if device.type != "cuda" and not args.cpu:
        print(f"no CUDA GPU here (torch {torch.__version__}, auto device: {device}): nothing to measure.")
        return 0
    if device.type != "cuda":
        device = torch.device("cpu")
    settings = device_settings(device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # as `training.fit` does on CUDA
        gpu = f"{torch.cuda.get_device_name(device)}, CUDA {torch.version.cuda}"
    else:
        gpu = f"CPU, {torch.get_num_threads()} torch threads"
    print(
        f"{gpu}; torch {torch.__version__}; {args.images} synthetic images; "
        f"mixed precision {settings.amp_dtype or 'off'}; channels_last {settings.channels_last}; "
        f"{loader_workers(args.workers, device)} loader workers of {os.cpu_count()} CPUs"
    )
    for name in args.models:
        bench_model(name, args, settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
