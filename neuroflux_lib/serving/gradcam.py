"""Grad-CAM heatmaps: where in an image the evidence for a class was (pytorch-grad-cam).

Grad-CAM weights a convolutional layer's feature maps by the gradient of the class score and keeps the
positive part, so the map has that layer's resolution, upsampled to the image: the last conv block is
the usual choice (the most class-specific), set per model as `ModelSpec.cam_layer`. A heatmap says where
the model looked, not that it looked at the right thing; `evaluation.gradcam_gallery.faithfulness` measures
whether blurring the hot pixels changes the answer more than blurring others.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import cv2
import numpy as np
import torch
from torch import nn

from neuroflux_lib.models.registry import model_spec

#: Grad-CAM (Selvaraju et al. 2017) by default; Grad-CAM++ spreads the map over several instances.
#: pytorch-grad-cam's class names; imported when used (the package takes seconds to import).
METHODS = {"gradcam": "GradCAM", "gradcam++": "GradCAMPlusPlus"}
#: How much of the grayscale image shows through the colour map in an overlay.
IMAGE_WEIGHT = 0.6


def target_layer(model: nn.Module, name: str | None) -> nn.Module:
    """The module called `name` (dotted, as `named_modules` spells it), or the model's last Conv2d."""
    if name is not None:
        try:
            return model.get_submodule(name)
        except AttributeError:
            raise ValueError(f"{type(model).__name__} has no layer {name!r} for Grad-CAM") from None
    convolutions = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convolutions:
        raise ValueError(f"{type(model).__name__} has no Conv2d layer for Grad-CAM")
    return convolutions[-1]


def cam_layer(model: nn.Module, architecture: str) -> nn.Module:
    """The layer the registry names for this architecture's heatmaps."""
    return target_layer(model, model_spec(architecture).cam_layer)


@contextmanager
def _gradients_to_activations_only(model: nn.Module) -> Iterator[None]:
    """Gradients flow from the input through the activations; weights get no `.grad` (less memory, and
    the model is left exactly as it was)."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        for parameter, _ in flags:
            parameter.requires_grad_(False)
        yield
    finally:
        for parameter, flag in flags:
            parameter.requires_grad_(flag)


def class_heatmaps(
    model: nn.Module,
    inputs: torch.Tensor,
    layer: nn.Module,
    classes: Sequence[int],
    method: str = "gradcam",
) -> np.ndarray:
    """(N, H, W) float32 in [0, 1] at the inputs' size: for each model input, the map of its class in
    `classes` (1 at the strongest evidence; all 0 when the layer holds no positive evidence)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {sorted(METHODS)}, got {method!r}")
    if len(classes) != len(inputs):
        raise ValueError(f"one class per input: {len(inputs)} inputs, {len(classes)} classes")
    import pytorch_grad_cam
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    targets = [ClassifierOutputTarget(int(c)) for c in classes]
    with (
        torch.inference_mode(False),
        torch.enable_grad(),
        _gradients_to_activations_only(model),
        getattr(pytorch_grad_cam, METHODS[method])(model=model, target_layers=[layer]) as cam,
    ):
        maps = cam(input_tensor=inputs.detach().clone().requires_grad_(True), targets=targets)
    return np.clip(np.nan_to_num(maps.astype(np.float32)), 0.0, 1.0)


def resize_heatmap(heatmap: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A heatmap at the model's input size onto the decoded image (H, W): the inverse of the resize the
    model input went through (a plain square resize, no crop)."""
    height, width = shape
    resized = cv2.resize(heatmap.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    return np.clip(resized, 0.0, 1.0)


def overlay(gray: np.ndarray, heatmap: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB: the grayscale image under the heatmap in the jet colour map (red = hot)."""
    from pytorch_grad_cam.utils.image import show_cam_on_image

    if gray.shape != heatmap.shape:
        raise ValueError(f"image {gray.shape} and heatmap {heatmap.shape} differ in size")
    rgb = np.repeat((gray.astype(np.float32) / 255.0)[..., None], 3, axis=2)
    return show_cam_on_image(rgb, heatmap, use_rgb=True, image_weight=IMAGE_WEIGHT)


def explanation_png(gray: np.ndarray, heatmap: np.ndarray, caption: str) -> bytes:
    """The image and its overlay side by side under a caption."""
    from neuroflux_lib.plots import figure_png, plt

    fig, axes = plt.subplots(1, 2, figsize=(6, 3.4))
    axes[0].imshow(gray, cmap="gray", vmin=0, vmax=255)
    axes[1].imshow(overlay(gray, heatmap))
    for ax in axes:
        ax.axis("off")
    fig.suptitle("\n".join(textwrap.wrap(caption, 70)), fontsize=9)
    return figure_png(fig)
