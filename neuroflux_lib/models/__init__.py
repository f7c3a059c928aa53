"""Architectures (one module each), the registry that names them, and the original's checkpoints."""

from neuroflux_lib.models.cnn import NeurofluxCNN, build_neuroflux_cnn
from neuroflux_lib.models.common import (
    IMAGENET_NORMALIZATION,
    ORIGINAL_CLASS_NAMES,
    ORIGINAL_NORMALIZATION,
    WEIGHTS_ORIGINS,
    WEIGHTS_POLICIES,
    BuiltModel,
    Normalization,
    Weights,
    input_normalization,
)
from neuroflux_lib.models.legacy import ORIGINAL_MODELS, UnsafeCheckpointError, load_original_checkpoint
from neuroflux_lib.models.registry import (
    MODEL_NAMES,
    REGISTRY,
    FloatRange,
    ModelSpec,
    build_model,
    count_parameters,
    model_hyperparams,
    model_spec,
)
from neuroflux_lib.models.resnet import (
    FREEZE_CHOICES,
    IMAGENET_SOURCES,
    IMAGENET_WEIGHTS,
    OFFLINE_ENV,
    RESNET_STAGES,
    ResNet50Classifier,
    build_resnet50,
    imagenet_weight_paths,
    offline,
)
from neuroflux_lib.models.resnet_gray import build_resnet18_gray

__all__ = [
    "FREEZE_CHOICES",
    "IMAGENET_NORMALIZATION",
    "IMAGENET_SOURCES",
    "IMAGENET_WEIGHTS",
    "MODEL_NAMES",
    "OFFLINE_ENV",
    "ORIGINAL_CLASS_NAMES",
    "ORIGINAL_MODELS",
    "ORIGINAL_NORMALIZATION",
    "REGISTRY",
    "RESNET_STAGES",
    "WEIGHTS_ORIGINS",
    "WEIGHTS_POLICIES",
    "BuiltModel",
    "FloatRange",
    "ModelSpec",
    "NeurofluxCNN",
    "Normalization",
    "ResNet50Classifier",
    "UnsafeCheckpointError",
    "Weights",
    "build_model",
    "build_neuroflux_cnn",
    "build_resnet18_gray",
    "build_resnet50",
    "count_parameters",
    "imagenet_weight_paths",
    "input_normalization",
    "load_original_checkpoint",
    "model_hyperparams",
    "model_spec",
    "offline",
]
