"""ResNet-18 for grayscale slices, trained from scratch: torchvision's resnet18 with a 1-channel stem.

Chosen by measurement (benchmarks/README.md, "Recipes that learn") for a few thousand grayscale slices
on a CPU: BatchNorm after every convolution and residual connections make it train reliably from random
weights with AdamW, where the original CNN (no normalisation layers) stays at chance with its config;
at 64 px it trains at about 230 images/s on 2 cores. The stem takes one channel, so no work is spent on
three copies of a grayscale image, and a dropout before the classifier regularises the small dataset.
State-dict keys are torchvision's (`conv1`, `layer1..4`, `fc.1`).
"""

from __future__ import annotations

from torch import nn
from torchvision.models import resnet18

from neuroflux_lib.models.common import Weights, check_dropout, check_positive_int


def build_resnet18_gray(num_classes: int, *, dropout: float = 0.2) -> tuple[nn.Module, Weights]:
    """Randomly initialised (ImageNet weights expect three colour channels and another domain)."""
    check_positive_int("num_classes", num_classes)
    check_dropout(dropout)
    model = resnet18(weights=None)
    model.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    model.fc = nn.Sequential(nn.Dropout(dropout), nn.Linear(model.fc.in_features, num_classes))
    return model, Weights("random")
