"""Self-describing model artifacts: `model.safetensors` + `model.json` in one folder.

The JSON sidecar says everything needed to use the weights (architecture, hyperparameters, class order,
image size, normalisation) and where they came from (weights origin, data version, metrics). Loading
never unpickles: safetensors holds tensors only.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file
from torch import nn

import neuroflux_lib
from neuroflux_lib.data.discovery import sha256_file
from neuroflux_lib.data.normalization import InputNormalization
from neuroflux_lib.errors import ArtifactError
from neuroflux_lib.models import build_model

WEIGHTS_FILE = "model.safetensors"
META_FILE = "model.json"
FORMAT_VERSION = 1


@dataclass
class ArtifactMeta:
    architecture: str
    class_names: list[str]
    image_size: int
    normalization: dict[str, Any]  # InputNormalization.to_dict(); old artifacts: {"mean", "std"}
    hyperparameters: dict[str, Any]
    weights_origin: str
    pretrained: bool = False
    weights_name: str | None = None
    frozen_layers: list[str] = field(default_factory=list)
    weights_note: str | None = None
    data_version: str | None = None
    config_digest: str | None = None
    training: dict[str, Any] = field(default_factory=dict)
    test_metrics: dict[str, Any] = field(default_factory=dict)
    library_version: str = neuroflux_lib.__version__
    format_version: int = FORMAT_VERSION
    # Temperature scaling (evaluation/calibration.py): probabilities are softmax(logits / temperature);
    # `calibration` is how T was fitted. Artifacts from before calibration load with T = 1 and {}.
    temperature: float = 1.0
    calibration: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def calibrated(self) -> bool:
        return bool(self.calibration)

    @property
    def input_normalization(self) -> InputNormalization:
        return InputNormalization.from_dict(self.normalization)


def weights_sha256(artifact: str | Path) -> str:
    """sha256 of the artifact's weights file: which weights a report, an ONNX export or a prediction
    belongs to."""
    return sha256_file(Path(artifact) / WEIGHTS_FILE)


def _meta_json(meta: ArtifactMeta) -> str:
    return json.dumps(asdict(meta), indent=2, default=float)


def save_artifact(
    out_dir: str | Path, model: nn.Module, meta: ArtifactMeta, texts: Mapping[str, str] | None = None
) -> Path:
    """Write the artifact to a staging folder, then swap it in, so readers never see half of it.
    `texts` are more files for the folder ({name: text}, e.g. the model card), written in the same swap."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = out_dir.with_name(f".{out_dir.name}.staging-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, staging / WEIGHTS_FILE, metadata={"architecture": meta.architecture})
    (staging / META_FILE).write_text(_meta_json(meta))
    for name, text in (texts or {}).items():
        (staging / name).write_text(text)
    old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
    if out_dir.exists():
        out_dir.rename(old)
    staging.rename(out_dir)
    shutil.rmtree(old, ignore_errors=True)
    return out_dir


def update_meta(path: str | Path, meta: ArtifactMeta) -> None:
    """Rewrite only the sidecar (e.g. to add test metrics), atomically."""
    target = Path(path) / META_FILE
    tmp = target.with_name(f".{META_FILE}.tmp{os.getpid()}")
    tmp.write_text(_meta_json(meta))
    os.replace(tmp, target)


def read_meta(path: str | Path) -> ArtifactMeta:
    path = Path(path)
    meta_file = path / META_FILE
    if not meta_file.is_file() or not (path / WEIGHTS_FILE).is_file():
        raise ArtifactError(f"{path} is not a model artifact: expected {META_FILE} and {WEIGHTS_FILE} in it")
    try:
        values = json.loads(meta_file.read_text())
        return ArtifactMeta(**values)
    except (json.JSONDecodeError, TypeError) as error:
        raise ArtifactError(f"{meta_file} is not a valid artifact description: {error}") from None


def load_artifact(path: str | Path) -> tuple[nn.Module, ArtifactMeta]:
    """Rebuild the architecture from the sidecar and load the weights strictly, in eval mode."""
    meta = read_meta(path)
    hyperparameters = {**meta.hyperparameters, "weights": "random"}  # never fetch or load ImageNet here
    built = build_model(meta.architecture, meta.num_classes, hyperparameters, image_size=meta.image_size)
    state = load_file(Path(path) / WEIGHTS_FILE, device="cpu")
    try:
        built.model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise ArtifactError(f"weights in {path} do not match {meta.architecture}: {error}") from None
    return built.model.eval(), meta


def import_original_checkpoint(
    checkpoint: str | Path, model_name: str, out_dir: str | Path, image_size: int = 224
) -> Path:
    """An original-project `.pth` as an artifact: its class order, 0.5/0.5 normalisation, sizes read
    from the tensors, `weights_origin` "checkpoint"."""
    from neuroflux_lib.models.common import ORIGINAL_CLASS_NAMES
    from neuroflux_lib.models.legacy import load_original_checkpoint

    built = load_original_checkpoint(checkpoint, model_name, len(ORIGINAL_CLASS_NAMES), image_size=image_size)
    model = built.model
    if built.name == "neuroflux_cnn":
        inferred = {"conv_channels": model.conv1.out_channels, "dropout": model.dropout.p}
    else:
        inferred = {"hidden_size": model.fc[0].out_features, "dropout": model.fc[3].p, "freeze_until": "none"}
    meta = ArtifactMeta(
        architecture=built.name,
        class_names=list(ORIGINAL_CLASS_NAMES),
        image_size=image_size,
        normalization=built.normalization.to_dict(),
        hyperparameters={"source_checkpoint": str(checkpoint), **inferred},
        weights_origin="checkpoint",
        pretrained=True,
        weights_name=built.weights_name,
    )
    return save_artifact(out_dir, model, meta)
