"""The original project's small CNN, exact (13,235,013 parameters at c=32, 224 px), keys `conv1`..`fc2`."""

from __future__ import annotations

import torch
from torch import nn

from neuroflux_lib.models.common import Weights, check_dropout, check_positive_int


class NeurofluxCNN(nn.Module):
    """The original project's 4-block CNN; keys `conv1`..`conv4`, `fc1`, `fc2` match its checkpoints.

    Expects 3-channel input (grayscale repeated) of the `image_size` it was built for, because the
    flatten size of `fc1` depends on it.
    """

    def __init__(
        self,
        num_classes: int,
        *,
        conv_channels: int = 64,
        dropout: float = 0.5,
        image_size: int | tuple[int, int] = 224,
    ) -> None:
        super().__init__()
        check_positive_int("num_classes", num_classes)
        check_positive_int("conv_channels", conv_channels)
        check_dropout(dropout)
        height, width = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        if min(height, width) < 16:
            raise ValueError(f"image_size must be at least 16 (four 2x poolings), got {image_size}")
        c = conv_channels
        self.image_size = (height, width)
        self.conv1 = nn.Conv2d(3, c, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(c, 2 * c, kernel_size=3, padding=1)
        self.conv3 = nn.Conv2d(2 * c, 4 * c, kernel_size=3, padding=1)
        self.conv4 = nn.Conv2d(4 * c, 8 * c, kernel_size=3, padding=1)
        # Parameter-free modules: they add no state-dict keys.
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.dropout = nn.Dropout(dropout)
        self.fc1 = nn.Linear(8 * c * (height // 16) * (width // 16), 256)
        self.fc2 = nn.Linear(256, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            x = self.pool(self.relu(conv(x)))
        x = self.flatten(x)
        if x.shape[1] != self.fc1.in_features:
            raise ValueError(
                f"NeurofluxCNN was built for {self.image_size[0]}x{self.image_size[1]} input; "
                f"got {tuple(x.shape)} features after the conv blocks (rebuild with the right image_size)"
            )
        return self.fc2(self.dropout(self.relu(self.fc1(x))))


def build_neuroflux_cnn(
    num_classes: int, *, conv_channels: int = 64, dropout: float = 0.5, image_size: int = 224
) -> tuple[NeurofluxCNN, Weights]:
    """Build the CNN; always randomly initialised."""
    model = NeurofluxCNN(num_classes, conv_channels=conv_channels, dropout=dropout, image_size=image_size)
    return model, Weights("random")
