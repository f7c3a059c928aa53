import math

import numpy as np
import pytest

from neuroflux_lib.quality import compute_quality, image_statistics
from tests.factories import blob_image, write_gray


def test_formulas_on_hand_made_arrays():
    half = np.zeros((4, 4), np.uint8)
    half[:, 2:] = 200
    stats = image_statistics(half)
    assert stats["intensity"] == pytest.approx(100.0)
    assert stats["contrast"] == pytest.approx(100.0)
    assert stats["snr"] == pytest.approx(1.0)
    assert stats["entropy"] == pytest.approx(1.0)  # two equally likely values = 1 bit
    assert stats["background_fraction"] == pytest.approx(0.5)
    assert stats["dynamic_range"] == pytest.approx(200.0)


def test_entropy_of_uniform_256_levels_is_8_bits():
    image = np.arange(256, dtype=np.uint8).reshape(16, 16)
    assert image_statistics(image)["entropy"] == pytest.approx(8.0)


def test_constant_image_has_undefined_snr_and_no_sharpness():
    stats = image_statistics(np.full((8, 8), 77, np.uint8))
    assert math.isnan(stats["snr"])
    assert stats["sharpness"] == 0.0
    assert stats["entropy"] == 0.0


def test_sharpness_is_laplacian_variance():
    checker = (np.indices((8, 8)).sum(axis=0) % 2 * 255).astype(np.uint8)
    assert (
        image_statistics(checker)["sharpness"] > image_statistics(np.full((8, 8), 128, np.uint8))["sharpness"]
    )


def test_rejects_wrong_dtype():
    with pytest.raises(ValueError, match="uint8"):
        image_statistics(np.zeros((4, 4), np.float32))


def test_parallel_equals_serial(tmp_path):
    paths = [str(write_gray(tmp_path / f"{i}.png", blob_image(32, seed=i))) for i in range(10)]
    serial = compute_quality(paths, workers=1)
    parallel = compute_quality(paths, workers=2)
    assert serial.equals(parallel)
    assert serial["dhash"].str.len().eq(64).all()
