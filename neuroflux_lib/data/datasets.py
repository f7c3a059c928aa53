"""Torch datasets over split tables: labels as indices, one split's rows, the decode-once image cache."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from neuroflux_lib.data.image_cache import cached_arrays
from neuroflux_lib.data.transforms import Transform, image_transform
from neuroflux_lib.errors import DataError


class ImageTensorDataset(Dataset):
    """Cached (N, S, S) uint8 images + labels; items are 1xSxS uint8 (through `transform` when given)."""

    def __init__(
        self, images: np.ndarray | torch.Tensor, labels: Sequence[int], transform: Transform | None = None
    ):
        self.images = torch.as_tensor(images)
        self.labels = torch.tensor(np.array(labels), dtype=torch.long)
        if len(self.images) != len(self.labels):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.images[index].unsqueeze(0)
        return (self.transform(image) if self.transform else image), self.labels[index]


def _hashes(table: pd.DataFrame) -> list[str] | None:
    """Known content hashes (originals carry them; augmented copies are hashed by the cache)."""
    if "sha256" in table and table["sha256"].notna().all():
        return table["sha256"].tolist()
    return None


def label_indices(classes: pd.Series, class_names: Sequence[str]) -> np.ndarray:
    index = {name: i for i, name in enumerate(class_names)}
    unknown = sorted(set(classes) - set(index))
    if unknown:
        raise DataError(f"labels not in class_names: {unknown}")
    return classes.map(index).to_numpy(dtype=np.int64)


def split_rows(splits: pd.DataFrame, name: str) -> pd.DataFrame:
    """The rows of one split; an empty split is an error that says how to fix it."""
    rows = splits.loc[splits["split"] == name]
    if rows.empty:
        raise DataError(f"the {name} split is empty: add images or change train_val_test_split")
    return rows


def cached_dataset(
    table: pd.DataFrame,
    class_names: Sequence[str],
    image_size: int,
    cache_root: str | Path,
    workers: int = 1,
    progress: bool = False,
) -> ImageTensorDataset:
    """A dataset over the decode-once cache for the rows of `table` (1xSxS uint8 items)."""
    images = cached_arrays(table["path"].tolist(), image_size, cache_root, _hashes(table), workers, progress)
    labels = label_indices(table["class_name"], class_names)
    return ImageTensorDataset(images, labels, image_transform(image_size))
