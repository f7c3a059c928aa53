import io

import cv2
import numpy as np
from PIL import Image

from neuroflux_lib.config import DatasetConfig
from neuroflux_lib.data.dedup import dhash, duplicate_groups, hamming
from neuroflux_lib.data.pipeline import scan_images
from neuroflux_lib.data.splits import make_splits
from neuroflux_lib.demo.generator import generate_demo_dataset, plan_dataset
from tests.factories import blob_image


def test_identical_and_near_identical_share_a_group_others_do_not():
    a = blob_image(256, seed=1, radius=64)  # scan-sized: at 64 px JPEG noise dominates a 16x16 hash
    rng = np.random.default_rng(0)
    a_noisy = np.clip(a + rng.normal(0, 1.0, a.shape), 0, 255).astype(np.uint8)
    a_brighter = np.clip(a.astype(int) + 10, 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(a).save(buffer, "JPEG", quality=70)
    a_reencoded = np.asarray(Image.open(buffer))
    different = np.rot90(blob_image(256, seed=99, radius=80)).copy()
    images = (a, a_noisy, a_brighter, a_reencoded, different, a)
    groups = duplicate_groups([dhash(x) for x in images], max_distance=6)
    assert groups[0] == groups[1] == groups[2] == groups[3] == groups[5]
    assert groups[4] != groups[0]


def test_grouping_is_transitive():
    # 0 and 2 are 8 bits apart, each 4 bits from 1: all three must share a group.
    zero = "0" * 64
    hashes = [zero, zero[:-1] + "f", zero[:-2] + "ff"]
    assert hamming(hashes[0], hashes[2]) == 8
    assert len(set(duplicate_groups(hashes, max_distance=4))) == 1
    assert len(set(duplicate_groups(hashes, max_distance=0))) == 3


def test_hash_is_256_bits_and_resize_invariant():
    image = blob_image(128, seed=5)
    small = cv2.resize(image, (64, 64), interpolation=cv2.INTER_AREA)  # the same scan re-exported smaller
    assert len(dhash(image)) == 64
    assert hamming(dhash(image), dhash(small)) <= 6


def test_demo_duplicates_are_grouped_and_never_straddle_splits(tmp_path):
    """The demo's exact copies (same bytes, other image id) and re-encodings (other JPEG quality) get one
    duplicate group each, which keeps them in one split even when nothing else ties them together."""
    out = tmp_path / "data"
    generate_demo_dataset(out, scale=0.1, seed=0, image_size=256, workers=1)
    pairs = [
        (str(out / s.duplicate_of), str(out / s.rel_path), s.duplicate_kind)
        for s in plan_dataset(scale=0.1, seed=0, image_size=256)
        if s.duplicate_of
    ]
    assert sorted(kind for *_, kind in pairs) == ["exact", "reencoded"]
    _, images = scan_images(DatasetConfig(data_dir=str(out), num_workers=1))
    table = images.set_index("path")
    for original, copy, kind in pairs:
        assert table.at[original, "dup_group"] == table.at[copy, "dup_group"], kind
        assert (table.at[original, "sha256"] == table.at[copy, "sha256"]) == (kind == "exact")
    usable = images.loc[images["readable"]].assign(subject_id=lambda t: t["path"])  # one subject per file
    splits = make_splits(usable[["path", "class_name", "subject_id", "dup_group"]], seed=3).set_index("path")
    for original, copy, _ in pairs:
        assert splits.at[original, "split"] == splits.at[copy, "split"]
