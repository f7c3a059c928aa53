"""Balance the TRAIN split by augmentation, after splitting (the original augmented before).

Each minority class is topped up to the target with RandomHorizontalFlip(0.5) + RandomAffine(+-15 deg,
scale 0.9..1.1) copies of its own train images; every copy records its source. Copies are written to a
fresh folder that replaces the previous one only when complete, so a stale or half-written set is
never used.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torchvision.transforms import v2
from tqdm import tqdm

from neuroflux_lib.data.imageio import load_grayscale_or_raise

MARKER = ".neuroflux-augmented"
BALANCED_COLUMNS = ["path", "class_name", "subject_id", "split", "augmented", "source_path"]


def balancing_transform() -> Callable[[torch.Tensor], torch.Tensor]:
    return v2.Compose([v2.RandomHorizontalFlip(0.5), v2.RandomAffine(degrees=15, scale=(0.9, 1.1))])


def augmentation_plan(train: pd.DataFrame, target: int | None, seed: int) -> pd.DataFrame:
    """Which source image each new copy comes from: sources cycle in a seeded order per class."""
    counts = train["class_name"].value_counts()
    target = int(counts.max()) if target is None else target
    rng = np.random.default_rng(seed)
    plan = []
    for class_name in sorted(counts.index):
        sources = train.loc[train["class_name"] == class_name].sort_values("path")
        missing = target - len(sources)
        if missing <= 0:
            continue
        order = rng.permutation(len(sources))
        for k in range(missing):
            source = sources.iloc[order[k % len(sources)]]
            plan.append((class_name, source["path"], source["subject_id"], k))
    return pd.DataFrame(plan, columns=["class_name", "source_path", "subject_id", "copy"])


def _prepare_out_dir(out_dir: Path) -> Path:
    """A fresh temporary sibling; refuses to ever replace a folder we did not create."""
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / MARKER).exists():
        raise FileExistsError(
            f"{out_dir} is not empty and was not created by neuroflux balancing; refusing to replace it"
        )
    staging = out_dir.with_name(f".{out_dir.name}.staging-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    (staging / MARKER).write_text("augmented training images; replaced on every run\n")
    return staging


def balance_train_set(
    splits: pd.DataFrame,
    out_dir: str | Path,
    target: int | None = None,
    seed: int = 42,
    max_pixels: int | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Train rows plus augmented copies (PNG, lossless) written under `out_dir/<class>/`.

    Only the `train` split is read or augmented; val and test rows are not part of the result.
    """
    train = splits.loc[splits["split"] == "train"].copy()
    plan = augmentation_plan(train, target, seed)
    out_dir = Path(out_dir)
    staging = _prepare_out_dir(out_dir)
    transform = balancing_transform()
    rows = []
    iterator = plan.itertuples()
    if progress:
        iterator = tqdm(iterator, total=len(plan), desc="balancing (augment train)", unit="img")
    kwargs = {} if max_pixels is None else {"max_pixels": max_pixels}
    # One small image per call: a second OpenMP thread only spin-waits for the first (on a busy 2-core
    # machine the affine took 155-320 ms per image with 2 threads, 12-26 ms with 1; same pixels).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for index, item in enumerate(iterator):
            pixels = torch.from_numpy(load_grayscale_or_raise(item.source_path, **kwargs)).unsqueeze(0)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed * 1_000_003 + index)
                augmented = transform(pixels)[0].numpy()
            name = f"{Path(item.source_path).stem}__aug{item.copy:03d}.png"
            (staging / item.class_name).mkdir(exist_ok=True)
            Image.fromarray(augmented, mode="L").save(staging / item.class_name / name)
            rows.append(
                (str(out_dir / item.class_name / name), item.class_name, item.subject_id, item.source_path)
            )
    finally:
        torch.set_num_threads(threads)

    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging.rename(out_dir)

    originals = train.assign(augmented=False, source_path=train["path"])
    copies = pd.DataFrame(rows, columns=["path", "class_name", "subject_id", "source_path"])
    copies = copies.assign(split="train", augmented=True)
    extra = [c for c in originals.columns if c not in BALANCED_COLUMNS]
    return pd.concat([originals[BALANCED_COLUMNS + extra], copies], ignore_index=True)[
        BALANCED_COLUMNS + extra
    ]


def class_balance(table: pd.DataFrame, class_names: Sequence[str] | None = None) -> pd.DataFrame:
    """Counts per class before (originals) and after (with copies) balancing."""
    before = table.loc[~table["augmented"]].groupby("class_name").size()
    after = table.groupby("class_name").size()
    result = pd.DataFrame({"before": before, "after": after}).fillna(0).astype(int)
    return result.reindex(list(class_names), fill_value=0) if class_names is not None else result
