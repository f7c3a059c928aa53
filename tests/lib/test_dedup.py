import io

import cv2
import numpy as np
from PIL import Image

from neuroflux_lib.data.dedup import dhash, duplicate_groups, hamming
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
