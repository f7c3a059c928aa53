"""Frozen-feature cache: a model's frozen prefix of stages runs once per image, training runs the rest.

With ResNet-50 frozen through layer3 (ImageNet weights), most of every step's forward pass recomputes
the same features epoch after epoch. Here they are computed once and stored content-addressed, like the
decoded-image cache: `<cache>/features/<key>/<pixels sha256[:2]>/<pixels sha256>.npy`, where the key
digests the prefix's weights, the image size, the normalisation and (for training) the augmentation and
the number of views. Changed weights, size or preprocessing get a new key; a renamed or re-split image
reuses its entry; every Optuna trial of a study (same frozen weights) reuses the first trial's.

With online augmentation, K augmented views are stored per image (view k of an image is drawn from a
seed derived from its pixels and k, so it is the same whichever run computes it) and each epoch samples
one view per image from a seed of (seed, epoch), so a resumed run sees the same views. The prefix runs
in eval mode with the training's precision and memory format (`DeviceSettings`: bf16 autocast where
training uses it; entries are stored as float32), so cached features are bit-identical to the uncached
forward's, and the precision is part of the key.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset
from tqdm import tqdm

from neuroflux_lib.data.normalization import ModelInput
from neuroflux_lib.training.loop import DeviceSettings, device_settings

logger = logging.getLogger(__name__)

#: Bumped when the way entries are computed changes (so old entries are never read as new ones).
CACHE_FORMAT = 2
#: float32 on the CPU: what `cached_features` and `fill_cache` use unless told the training's settings.
CPU_FLOAT32 = device_settings(torch.device("cpu"), mixed_precision="off")
#: Images through the prefix at a time while filling the cache.
FILL_BATCH = 32


def frozen_split(model: nn.Module) -> tuple[nn.Module, nn.Module] | None:
    """(frozen prefix, trainable rest) for a model that has one (`model.frozen_split()`), else None."""
    split = getattr(model, "frozen_split", None)
    return split() if callable(split) else None


def weights_digest(module: nn.Module) -> str:
    """sha256 over a module's state dict (names, dtypes, shapes and bytes, in order)."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        tensor = tensor.detach().cpu()
        digest.update((tensor.float() if tensor.dtype == torch.bfloat16 else tensor).numpy().tobytes())
    return digest.hexdigest()


def cache_key(
    prefix_digest: str,
    image_size: int,
    normalization: Mapping[str, Any],
    augmentation: Mapping[str, Any] | None,
    views: int,
    precision: str = "float32",
) -> str:
    """The folder name for one way of computing features; any change in what shapes them changes it."""
    parts = {
        "format": CACHE_FORMAT,
        "precision": precision,
        "weights": prefix_digest,
        "image_size": image_size,
        "normalization": dict(normalization),
        "augmentation": dict(augmentation) if augmentation is not None else None,
        "views": views if augmentation is not None else 1,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]


def pixel_digest(image: np.ndarray) -> str:
    """Content address of a decoded, resized image: the pixels the prefix sees, whichever file held them."""
    return hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest()


def _view_seed(sha256: str, view: int) -> int:
    return (int(sha256[:15], 16) * 31 + view) % (2**63 - 1)


def _views(image: torch.Tensor, sha256: str, inputs: ModelInput, views: int, augment: bool) -> torch.Tensor:
    """(views, C, S, S) model inputs of one (1, S, S) uint8 image; augmented views are seeded by content."""
    batch = image.unsqueeze(0)
    if not augment:
        return inputs.eval(batch)
    out = []
    for view in range(views):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(_view_seed(sha256, view))
            out.append(inputs.train(batch))
    return torch.cat(out)


def _write(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.{uuid.uuid4().hex}.tmp.npy")
    np.save(tmp, array)
    os.replace(tmp, path)  # atomic: a killed run never leaves half an entry


@dataclass(frozen=True)
class FeatureCacheInfo:
    """What ran, for model.json and the UI: `mode` is `cached` or why not."""

    mode: str
    stages: tuple[str, ...] = ()
    views: int = 0
    computed: int = 0
    reused: int = 0
    seconds: float = 0.0
    megabytes: float = 0.0
    key: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "stages": list(self.stages)}

    def describe(self) -> str:
        if self.mode != "cached":
            return self.mode
        views = f"{self.views} augmented view(s) per training image" if self.views > 1 else "1 view per image"
        return (
            f"features of {', '.join(self.stages)} cached ({views}; {self.computed} computed, "
            f"{self.reused} reused, {self.megabytes:.0f} MB, {self.seconds:.1f} s)"
        )


@torch.inference_mode()
def cached_features(
    prefix: nn.Module,
    images: torch.Tensor,
    inputs: ModelInput,
    root: str | Path,
    key: str,
    *,
    views: int = 1,
    augment: bool = False,
    settings: DeviceSettings = CPU_FLOAT32,
    progress: str | None = None,
) -> tuple[list[Path], int, int]:
    """Entry files (one per image, each (views, C, H, W) float32) for (N, S, S) uint8 `images`, computing
    only the missing ones with the training's device, precision and memory format (`settings`); returns
    (files, computed, reused)."""
    root = Path(root) / key
    digests = [pixel_digest(image) for image in images.numpy()]
    files = [root / sha[:2] / f"{sha}.npy" for sha in digests]
    missing = [i for i, path in enumerate(files) if not path.exists()]
    unique_todo = list({digests[i]: i for i in missing}.values())  # identical images share an entry
    # The memory format training uses on this device (convolutions may round differently in another).
    device = settings.device
    layout = torch.channels_last if settings.channels_last else torch.contiguous_format
    prefix = prefix.to(device, memory_format=layout).eval()
    n_views = views if augment else 1
    with tqdm(total=len(unique_todo), desc=progress, unit="img", disable=progress is None) as bar:
        for start in range(0, len(unique_todo), FILL_BATCH):
            chunk = unique_todo[start : start + FILL_BATCH]
            batch = torch.cat(
                [_views(images[i].unsqueeze(0), digests[i], inputs, views, augment) for i in chunk]
            )
            with settings.autocast():
                features = prefix(batch.to(device).contiguous(memory_format=layout)).float().cpu()
            features = features.reshape(len(chunk), n_views, *features.shape[1:]).contiguous()
            for i, array in zip(chunk, features.numpy(), strict=True):
                _write(files[i], array)
            bar.update(len(chunk))
    return files, len(unique_todo), len(files) - len(missing)


class FeatureDataset(Dataset):
    """Cached features + labels; each epoch (`set_epoch`) picks one stored view per image, seeded."""

    def __init__(self, files: Sequence[Path], labels: Sequence[int] | torch.Tensor, seed: int = 0):
        self.files = list(files)
        self.labels = torch.as_tensor(labels, dtype=torch.long)
        if len(self.files) != len(self.labels):
            raise ValueError(f"{len(self.files)} feature files but {len(self.labels)} labels")
        self.seed = seed
        self.views = int(np.load(self.files[0], mmap_mode="r").shape[0]) if self.files else 1
        # Shared memory, written in place: persistent DataLoader workers (the CUDA default) hold a copy
        # of this dataset made when they started, and must still see each epoch's choice.
        self._chosen = torch.zeros(len(self.files), dtype=torch.long).share_memory_()

    def set_epoch(self, epoch: int) -> None:
        if self.views > 1:
            generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
            self._chosen.copy_(torch.randint(self.views, (len(self.files),), generator=generator))

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        entry = np.load(self.files[index], mmap_mode="r")
        return torch.from_numpy(np.array(entry[int(self._chosen[index])])), self.labels[index]


class Precomputed:
    """The `inputs` of `fit` for cached features: preprocessing and augmentation already happened."""

    @staticmethod
    def train(batch: torch.Tensor) -> torch.Tensor:
        return batch

    eval = train


def size_mb(files: Sequence[Path]) -> float:
    return sum(path.stat().st_size for path in set(files)) / 2**20


def fill_cache(
    prefix: nn.Module,
    stages: Sequence[str],
    train_images: torch.Tensor,
    train_labels: torch.Tensor,
    val_images: torch.Tensor,
    val_labels: torch.Tensor,
    inputs: ModelInput,
    root: str | Path,
    *,
    image_size: int,
    augmentation: Mapping[str, Any] | None,
    views: int,
    seed: int,
    settings: DeviceSettings = CPU_FLOAT32,
    progress: bool = False,
) -> tuple[FeatureDataset, FeatureDataset, FeatureCacheInfo]:
    """Train and val feature datasets (train with `views` augmented views when `augmentation` is given)."""
    started = time.perf_counter()
    digest = weights_digest(prefix)
    normalization = inputs.normalization.to_dict()
    train_key = cache_key(digest, image_size, normalization, augmentation, views, settings.precision)
    val_key = cache_key(digest, image_size, normalization, None, 1, settings.precision)
    augment = augmentation is not None
    train_files, computed_t, reused_t = cached_features(
        prefix,
        train_images,
        inputs,
        root,
        train_key,
        views=views,
        augment=augment,
        settings=settings,
        progress="features (train)" if progress else None,
    )
    val_files, computed_v, reused_v = cached_features(
        prefix,
        val_images,
        inputs,
        root,
        val_key,
        settings=settings,
        progress="features (val)" if progress else None,
    )
    info = FeatureCacheInfo(
        mode="cached",
        stages=tuple(stages),
        views=views if augment else 1,
        computed=computed_t + computed_v,
        reused=reused_t + reused_v,
        seconds=round(time.perf_counter() - started, 2),
        megabytes=round(size_mb(train_files) + size_mb(val_files), 1),
        key=train_key,
    )
    logger.info("%s", info.describe())
    return FeatureDataset(train_files, train_labels, seed), FeatureDataset(val_files, val_labels), info
