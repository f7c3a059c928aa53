from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from neuroflux_lib.data.balancing import balance_train_set, class_balance
from neuroflux_lib.data.splits import verify_no_leakage
from tests.factories import blob_image, write_gray


@pytest.fixture
def splits(tmp_path: Path) -> pd.DataFrame:
    rows = []
    counts = {"PTE": (8, 2, 2), "LO": (4, 1, 1), "IO": (2, 1, 1)}
    for cls, per_split in counts.items():
        for split, n in zip(("train", "val", "test"), per_split, strict=True):
            for i in range(n):
                path = write_gray(
                    tmp_path / "data" / cls / f"{cls}_{split}_{i}.png", blob_image(32, seed=len(rows))
                )
                rows.append((str(path), cls, f"{cls}{split}{i}", split))
    return pd.DataFrame(rows, columns=["path", "class_name", "subject_id", "split"])


def test_train_only_balanced_to_largest_class(tmp_path, splits):
    out = tmp_path / "augmented"
    balanced = balance_train_set(splits, out, seed=1)
    assert set(balanced["split"]) == {"train"}
    assert class_balance(balanced)["after"].tolist() == [8, 8, 8]
    copies = balanced[balanced["augmented"]]
    assert len(copies) == (8 - 4) + (8 - 2)
    train_paths = set(splits.loc[splits["split"] == "train", "path"])
    assert set(copies["source_path"]) <= train_paths
    val_test = set(splits.loc[splits["split"] != "train", "path"])
    assert not set(copies["source_path"]) & val_test
    for path, source in zip(copies["path"], copies["source_path"], strict=True):
        assert Path(path).is_file()
        assert splits.set_index("path").loc[source, "class_name"] == Path(path).parent.name
    verify_no_leakage(pd.concat([balanced, splits[splits["split"] != "train"].assign(augmented=False)]))


def test_configured_target(tmp_path, splits):
    balanced = balance_train_set(splits, tmp_path / "aug", target=10, seed=1)
    assert class_balance(balanced)["after"].tolist() == [10, 10, 10]


def test_deterministic_and_stale_files_removed(tmp_path, splits):
    out = tmp_path / "augmented"
    first = balance_train_set(splits, out, seed=5)
    pixels = {p: np.asarray(Image.open(p)) for p in first.loc[first["augmented"], "path"]}
    (out / "IO" / "stale.png").write_bytes(b"old")
    second = balance_train_set(splits, out, seed=5)
    assert not (out / "IO" / "stale.png").exists()
    assert first.equals(second)
    assert all(np.array_equal(np.asarray(Image.open(p)), v) for p, v in pixels.items())
    third = balance_train_set(splits, out, seed=6)
    third_pixels = {p: np.asarray(Image.open(p)) for p in third.loc[third["augmented"], "path"]}
    assert third_pixels.keys() != pixels.keys() or any(
        not np.array_equal(third_pixels[p], pixels[p]) for p in pixels
    )


def test_refuses_to_replace_a_foreign_folder(tmp_path, splits):
    foreign = tmp_path / "precious"
    write_gray(foreign / "keep.png", blob_image(16))
    with pytest.raises(FileExistsError, match="refusing"):
        balance_train_set(splits, foreign)
    assert (foreign / "keep.png").exists()
