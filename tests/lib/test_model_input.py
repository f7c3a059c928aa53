"""What reaches the model: per-image normalisation that removes scanner gain and offset, and batched
augmentation that changes images per sample, keeps labels' geometry plausible and is reproducible."""

from __future__ import annotations

import pytest
import torch

from neuroflux_lib.config import AugmentationConfig
from neuroflux_lib.data.augmentation import RandomBiasField, build_augmentation, describe_augmentation
from neuroflux_lib.data.normalization import InputNormalization, ModelInput, standardize_foreground


def head(size: int = 32, gain: float = 1.0, offset: float = 0.0) -> torch.Tensor:
    """A bright disc (the head) on a dark background, 1x1xSxS in [0, 1]."""
    y, x = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    disc = ((x - size / 2) ** 2 + (y - size / 2) ** 2 < (size / 3) ** 2).float()
    texture = 0.3 + 0.2 * torch.sin(x / 3.0) * torch.cos(y / 4.0)
    return ((disc * texture) * gain + offset * disc).clamp(0, 1).view(1, 1, size, size)


def test_per_image_normalisation_removes_scanner_gain() -> None:
    """The same head at another gain gives the same model input: what makes sites comparable."""
    normalize = InputNormalization("per_image", 1)
    assert torch.allclose(normalize(head(gain=1.0)), normalize(head(gain=1.8)), atol=1e-4)
    fixed = InputNormalization.fixed((0.5,), (0.5,))
    assert not torch.allclose(fixed(head(gain=1.0)), fixed(head(gain=1.8)), atol=1e-2)


def test_foreground_statistics_exclude_the_background() -> None:
    image = head()
    out = standardize_foreground(image)
    foreground = image > 0.1 * image.max()
    assert out[foreground].mean().abs() < 1e-4
    assert out[foreground].std(unbiased=False) == pytest.approx(1.0, abs=1e-3)


def test_blank_and_uint8_inputs_are_finite_and_scaled() -> None:
    normalize = InputNormalization("per_image", 3)
    blank = torch.zeros(2, 1, 16, 16, dtype=torch.uint8)
    out = normalize(blank)
    assert out.shape == (2, 3, 16, 16) and torch.isfinite(out).all()
    as_uint8 = (head() * 255).round().to(torch.uint8)
    assert torch.allclose(normalize(as_uint8), normalize(as_uint8.float() / 255), atol=1e-5)


def test_normalisation_round_trips_through_model_json_values() -> None:
    for normalization in (
        InputNormalization("per_image", 1),
        InputNormalization.fixed((0.5,) * 3, (0.5,) * 3),
    ):
        assert InputNormalization.from_dict(normalization.to_dict()) == normalization
    old_artifact = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
    assert InputNormalization.from_dict(old_artifact).method == "fixed"
    with pytest.raises(ValueError, match="\\(N, 1, H, W\\)"):
        InputNormalization("per_image", 1)(torch.zeros(1, 3, 8, 8))


def test_augmentation_changes_each_sample_differently_and_is_seeded() -> None:
    augment = build_augmentation(AugmentationConfig())
    batch = head().repeat(8, 1, 1, 1)
    torch.manual_seed(0)
    first = augment(batch)
    torch.manual_seed(0)
    again = augment(batch)
    assert first.shape == batch.shape and torch.equal(first, again)
    differences = [(first[i] - first[0]).abs().mean() for i in range(1, 8)]
    assert all(d > 1e-3 for d in differences)  # per sample, not one draw for the batch


def test_zero_settings_leave_augmentation_out() -> None:
    off = AugmentationConfig(
        flip=0, rotate_deg=0, scale=0, translate=0, bias_field=0, gamma=0, contrast=0, noise=0
    )
    assert len(build_augmentation(off)) == 0 and describe_augmentation(off) == "none"
    original = AugmentationConfig(bias_field=0, gamma=0, contrast=0, noise=0)
    assert [type(m).__name__ for m in build_augmentation(original)] == [
        "RandomHorizontalFlip",
        "RandomAffine",
    ]
    assert "gamma 0.2" in describe_augmentation(AugmentationConfig())


def test_bias_field_is_smooth_multiplicative_and_bounded() -> None:
    torch.manual_seed(1)
    flat = torch.full((4, 1, 32, 32), 0.1)  # dark enough never to be clipped at 1
    out = RandomBiasField(0.3, p=1.0)(flat)
    ratio = out / flat
    assert not torch.allclose(ratio, torch.ones_like(ratio))
    assert ratio.min() > torch.exp(torch.tensor(-5 * 0.3)) and ratio.max() < torch.exp(torch.tensor(5 * 0.3))
    for image in ratio:  # smooth: neighbouring pixels differ by a small share of the field's range
        assert (image[..., 1:] - image[..., :-1]).abs().max() < 0.2 * (image.max() - image.min())


def test_model_input_augments_only_training_batches() -> None:
    inputs = ModelInput(InputNormalization("per_image", 1), build_augmentation(AugmentationConfig()))
    batch = (head().repeat(4, 1, 1, 1) * 255).to(torch.uint8)
    torch.manual_seed(0)
    assert not torch.allclose(inputs.train(batch), inputs.eval(batch))
    assert torch.equal(inputs.eval(batch), inputs.eval(batch))
