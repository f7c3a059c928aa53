import numpy as np
import pytest

from neuroflux_lib.preprocessing import PREPROCESSORS, minmax_normalize
from tests.factories import blob_image


@pytest.mark.parametrize("name", sorted(PREPROCESSORS))
def test_uint8_in_uint8_out(name):
    image = blob_image(32, seed=3)
    out = PREPROCESSORS[name](image)
    assert out.dtype == np.uint8 and out.shape == image.shape


@pytest.mark.parametrize("name", sorted(PREPROCESSORS))
def test_rejects_float_input(name):
    with pytest.raises(ValueError, match="uint8"):
        PREPROCESSORS[name](np.zeros((8, 8), np.float32))


def test_minmax_stretches_full_range_and_keeps_constant_images():
    image = np.array([[50, 100], [150, 60]], np.uint8)
    out = minmax_normalize(image)
    assert out.min() == 0 and out.max() == 255
    flat = np.full((4, 4), 9, np.uint8)
    assert np.array_equal(minmax_normalize(flat), flat)


def test_equalize_and_clahe_raise_low_contrast():
    image = (blob_image(64, seed=2) // 4 + 60).astype(np.uint8)
    assert PREPROCESSORS["equalize"](image).std() > image.std()
    assert PREPROCESSORS["clahe"](image).std() > image.std()


def test_denoise_reduces_noise():
    rng = np.random.default_rng(0)
    clean = np.full((32, 32), 120, np.uint8)
    noisy = np.clip(clean + rng.normal(0, 15, clean.shape), 0, 255).astype(np.uint8)
    assert (
        np.abs(PREPROCESSORS["denoise"](noisy).astype(int) - 120).mean()
        < np.abs(noisy.astype(int) - 120).mean()
    )
