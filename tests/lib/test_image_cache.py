"""The decode-once cache with identical files: duplicates share one entry and never race."""

import shutil

import numpy as np

from neuroflux_lib.data.image_cache import cached_arrays
from neuroflux_lib.data.imageio import load_grayscale_or_raise
from neuroflux_lib.data.transforms import resize_uint8
from tests.factories import blob_image, write_gray


def test_many_exact_duplicates_with_two_workers_all_load(tmp_path):
    originals = [write_gray(tmp_path / "data" / f"img{i}.png", blob_image(40, seed=i)) for i in range(8)]
    paths = []
    for i, original in enumerate(originals):  # each image four times under other names
        copies = [tmp_path / "data" / f"img{i}_copy{k}.png" for k in range(3)]
        for copy in copies:
            shutil.copy(original, copy)
        paths += [str(original), *map(str, copies)]
    expected = np.stack([resize_uint8(load_grayscale_or_raise(p), 16)[0].numpy() for p in paths])
    for attempt in range(5):  # the race was intermittent (5 failures in 20 runs with 3 pairs)
        root = tmp_path / f"cache{attempt}"
        stack = cached_arrays(paths, 16, root, workers=2)
        np.testing.assert_array_equal(stack, expected)
        entries = list(root.rglob("*.npy"))
        assert len(entries) == len(originals) and not [p for p in entries if ".tmp" in p.name]
