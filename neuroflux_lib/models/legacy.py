"""Loading the original project's `.pth` checkpoints, strictly and without unpickling objects.

A checkpoint file is untrusted input: it is read with `weights_only=True`, since unpickling arbitrary
objects would run arbitrary code.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from neuroflux_lib.errors import ArtifactError
from neuroflux_lib.models.common import BuiltModel, input_normalization
from neuroflux_lib.models.registry import build_model, check_name

logger = logging.getLogger(__name__)


class UnsafeCheckpointError(ArtifactError):
    """A checkpoint file is not a plain tensor state dict (e.g. a pickled nn.Module) and was refused."""


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        reason = _unpickling_reason(error)
        raise UnsafeCheckpointError(
            f"refusing checkpoint {path}: it is not a plain tensor state dict (weights-only loading "
            f"rejected it: {reason}). Re-save it with torch.save(model.state_dict(), path) from a trusted "
            f"environment."
        ) from error
    if isinstance(loaded, Mapping):
        for wrapper_key in ("model_state_dict", "state_dict"):
            if isinstance(loaded.get(wrapper_key), Mapping):
                loaded = loaded[wrapper_key]
                break
    if (
        not isinstance(loaded, Mapping)
        or not loaded
        or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in loaded.items())
    ):
        raise UnsafeCheckpointError(
            f"refusing checkpoint {path}: expected a state dict mapping parameter names to tensors "
            f"(optionally under 'model_state_dict' or 'state_dict'), got {type(loaded).__name__}"
        )
    state = dict(loaded)
    if all(key.startswith("module.") for key in state):  # saved from nn.DataParallel
        state = {key.removeprefix("module."): value for key, value in state.items()}
    return state


def _unpickling_reason(error: Exception) -> str:
    # torch's message suggests weights_only=False, exactly what must not be done with an untrusted file;
    # keep only the specific cause, e.g. "Unsupported global: GLOBAL torch.nn.modules.linear.Linear ...".
    for line in str(error).splitlines():
        line = line.strip()
        if line.startswith("WeightsUnpickler error:"):
            return line.removeprefix("WeightsUnpickler error:").strip().split(". ")[0]
    return "unreadable, or holds objects other than tensors"


def _require_key(state: Mapping[str, torch.Tensor], key: str, name: str, path: Path) -> torch.Tensor:
    if key not in state:
        raise ArtifactError(f"checkpoint {path} is not a {name} state dict: key {key!r} is missing")
    return state[key]


#: The architectures the original project trained (their checkpoints load here).
ORIGINAL_MODELS: tuple[str, ...] = ("neuroflux_cnn", "resnet50")


def load_original_checkpoint(
    path: str | Path,
    name: str,
    num_classes: int = 5,
    hyperparams: Mapping[str, Any] | None = None,
    image_size: int = 224,
) -> BuiltModel:
    """Load a state dict saved by the original project, strictly, into a freshly built model.

    Architecture sizes (conv_channels, hidden_size) are read from the tensors because the original's
    configs did not reliably reach its models. The model is returned in eval mode (checkpoints are
    mostly evaluated; call `.train()` to fine-tune) with `ORIGINAL_NORMALIZATION`, and its
    `weights_origin` is "checkpoint".
    """
    check_name(name)
    if name not in ORIGINAL_MODELS:
        raise ValueError(f"{name} is not a model of the original project: only {', '.join(ORIGINAL_MODELS)}")
    path = Path(path)
    state = _read_state_dict(path)
    params = dict(hyperparams or {})
    if name == "neuroflux_cnn":
        inferred = {"conv_channels": int(_require_key(state, "conv1.weight", name, path).shape[0])}
        last = _require_key(state, "fc2.weight", name, path)
    else:
        inferred = {"hidden_size": int(_require_key(state, "fc.0.weight", name, path).shape[0])}
        last = _require_key(state, "fc.4.weight", name, path)
        params["weights"] = "random"  # the checkpoint replaces every weight; don't read ImageNet files
    for key, value in inferred.items():
        if key in params and params[key] != value:
            logger.warning(
                "%s: checkpoint %s has %s=%s; ignoring configured %s", name, path, key, value, params[key]
            )
        params[key] = value
    if last.shape[0] != num_classes:
        raise ArtifactError(f"checkpoint {path} has {last.shape[0]} output classes, expected {num_classes}")
    built = build_model(name, num_classes, params, image_size=image_size)
    try:
        built.model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        hint = " (was it trained with a different image_size?)" if name == "neuroflux_cnn" else ""
        raise ArtifactError(f"checkpoint {path} does not match {name}{hint}: {error}") from error
    built.model.eval()
    return BuiltModel(
        model=built.model,
        name=name,
        weights_origin="checkpoint",
        normalization=input_normalization("original", "checkpoint", 3),
        weights_name=str(path),
    )
