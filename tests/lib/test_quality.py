import math

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from neuroflux_lib.data.quality import compute_quality, histogram_256, image_statistics, laplacian_variance
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
    assert stats["saturated_fraction"] == 0.0
    half[:, 3] = 255
    assert image_statistics(half)["saturated_fraction"] == pytest.approx(0.25)


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
    parallel = compute_quality(paths, workers=2, min_images_per_worker=1)  # force the process pool
    assert serial.equals(parallel)
    assert serial["dhash"].str.len().eq(64).all()


@settings(max_examples=60, deadline=None)
@given(arrays(np.uint8, st.tuples(st.integers(1, 40), st.integers(1, 40)), elements=st.integers(0, 255)))
def test_histogram_statistics_match_numpy(image):
    """The histogram shortcuts give exactly what the plain numpy formulas give."""
    stats = image_statistics(image)
    lo, hi = np.percentile(image, [1, 99])
    assert stats["intensity"] == pytest.approx(image.mean())
    assert stats["contrast"] == pytest.approx(image.astype(float).std(), abs=1e-6)
    assert stats["dynamic_range"] == pytest.approx(hi - lo)
    assert stats["background_fraction"] == pytest.approx((image < 10).mean())
    assert stats["saturated_fraction"] == pytest.approx((image >= 250).mean())
    assert stats["sharpness"] == pytest.approx(cv2.Laplacian(image, cv2.CV_64F).var(), rel=1e-6, abs=1e-6)


@settings(max_examples=60, deadline=None)
@given(arrays(np.uint8, st.tuples(st.integers(1, 40), st.integers(1, 40)), elements=st.integers(0, 255)))
def test_fast_kernels_equal_the_exact_formulas(image):
    """Histogram and Laplacian variance are exact: integer counts and integer sums, no rounding."""
    assert np.array_equal(histogram_256(image), np.bincount(image.ravel(), minlength=256))
    laplacian = cv2.Laplacian(image, cv2.CV_64F).astype(np.int64)  # integer-valued: uint8 in, 3x3 kernel
    n, total, squares = laplacian.size, int(laplacian.sum()), int((laplacian**2).sum())
    assert laplacian_variance(image) == (n * squares - total * total) / (n * n)


def test_histogram_stays_exact_above_float32_precision():
    """Beyond 2**24 pixels a float32 count would round (16,777,217 -> 16,777,216)."""
    counts = histogram_256(np.zeros((97 * 257, 673), np.uint8))  # 2**24 + 1 pixels
    assert counts[0] == 2**24 + 1


def test_strided_view_gives_the_statistics_of_its_copy():
    image = blob_image(32, seed=3)
    view = image[::2, 1::3]
    assert image_statistics(view) == image_statistics(view.copy())
