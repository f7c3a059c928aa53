"""The configuration schema: typed models of the original project's JSON files (no file access here).

The JSON files in `configs/` are the single source of truth for defaults; these models validate
them strictly so a typo or a wrong type names the offending key instead of being ignored (the
original silently ignored its split ratios).
"""

from __future__ import annotations

from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from neuroflux_lib.errors import ConfigError

DEFAULT_CLASS_NAMES: tuple[str, ...] = ("PTE", "LO", "EO", "IPTE", "IO")
DEFAULT_SUBJECT_REGEX = r"\d{3}_S_\d{4}"
#: Acquisition fields in file names (named groups become features of the metadata baseline and rows of
#: the confound report). Parses every real name, e.g. `..._002_S_1155_MR_Axial_T2-Star__br_raw_2015...`,
#: `..._MR_AX_T2_STAR_br_raw_...`, `..._MR_Axial_T2_STAR__raw_...` and `..._MR__br_raw_...` (no sequence).
DEFAULT_METADATA_REGEX = r"(?P<site>\d{3})_S_\d{4}_MR_(?P<sequence>.*?)_+(?:br_)?raw_(?P<year>\d{4})"


#: Model input normalisation settings (models.common.input_normalization says what each does).
NormalizationSetting = Literal["auto", "per_image", "imagenet", "original"]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class DatasetConfig(StrictModel):
    """Dataset settings: the original's keys plus subject, outlier and balancing options."""

    data_dir: str = "data"
    image_size: int = Field(224, gt=0)
    train_val_test_split: tuple[float, float, float] = (0.7, 0.15, 0.15)
    num_workers: int = Field(2, ge=0)
    random_seed: int = 42
    class_names: tuple[str, ...] = DEFAULT_CLASS_NAMES
    subject_regex: str = DEFAULT_SUBJECT_REGEX
    subject_from: Literal["auto", "filename", "folder"] = Field(
        "auto",
        description="where subject_regex is searched: auto = file name, then the folders under the class "
        "folder (nearest first); filename or folder = only there",
    )
    max_no_subject_fraction: float = Field(
        0.05, ge=0, le=1, description="share of files without a subject id above which raw_images fails"
    )
    min_images_per_class: int = Field(
        10, ge=1, description="usable images each class needs in total; every class also needs each split"
    )
    metadata_regex: str = DEFAULT_METADATA_REGEX
    outlier_rule: Literal["robust", "zscore"] = "robust"
    outlier_threshold: float = Field(3.5, gt=0)
    outlier_action: Literal["keep", "exclude"] = Field(
        "keep", description="statistical outliers: keep = report only; exclude = leave out of the splits"
    )
    dedup_max_distance: int = Field(6, ge=0, le=256)
    balance_target: int | None = Field(None, gt=0)
    max_image_pixels: int = Field(50_000_000, gt=0)
    storage_dir: str = "storage"
    asset_store: str | None = Field(
        None,
        description="where asset values are stored: a folder or an fsspec URL (s3://bucket/prefix, "
        "gs://...; credentials from the environment, never here); null = <storage_dir>/assets",
    )
    incoming_dir: str = Field(
        "data_incoming", description="new scans to score, one sub-folder per batch (incoming_predictions)"
    )

    @field_validator("train_val_test_split", mode="before")
    @classmethod
    def _list_to_tuple(cls, value: object) -> object:
        return tuple(value) if isinstance(value, list) else value

    @field_validator("class_names", mode="before")
    @classmethod
    def _names_to_tuple(cls, value: object) -> object:
        return tuple(value) if isinstance(value, list) else value

    @model_validator(mode="after")
    def _check(self) -> DatasetConfig:
        ratios = self.train_val_test_split
        if any(r < 0 for r in ratios) or abs(sum(ratios) - 1.0) > 1e-6:
            raise ValueError(f"train_val_test_split must be 3 non-negative ratios summing to 1, got {ratios}")
        if len(set(self.class_names)) != len(self.class_names) or len(self.class_names) < 2:
            raise ValueError(f"class_names must be at least 2 distinct names, got {self.class_names}")
        return self


ModelT = TypeVar("ModelT", bound=BaseModel)


def format_validation_error(error: ValidationError, source: str) -> str:
    """One line per problem, each naming the key, e.g. `image_size: Input should be a valid integer`."""
    lines = []
    for problem in error.errors():
        key = ".".join(str(part) for part in problem["loc"]) or "<root>"
        lines.append(f"  {key}: {problem['msg']}")
    return f"invalid config {source}:\n" + "\n".join(lines)


def parse_config(model: type[ModelT], values: dict, source: str = "<dict>") -> ModelT:
    try:
        return model.model_validate(values)
    except ValidationError as error:
        raise ConfigError(format_validation_error(error, source)) from None


class AugmentationConfig(StrictModel):
    """Online augmentation (data/augmentation.py), per sample on the training device; 0 turns one off.

    Geometry is the original's (flip, rotation up to 10 degrees, scale 0.95-1.05); the intensity
    transforms, each applied with probability `intensity_p`, mimic scanner and protocol differences.
    """

    flip: float = Field(0.5, ge=0, le=1, description="probability of a horizontal flip")
    rotate_deg: float = Field(10.0, ge=0, le=180, description="rotation drawn in [-x, x] degrees")
    scale: float = Field(0.05, ge=0, lt=1, description="zoom drawn in [1 - x, 1 + x]")
    translate: float = Field(0.0, ge=0, lt=1, description="shift up to this fraction of the side")
    bias_field: float = Field(0.3, ge=0, le=2, description="bound of the bias field's coefficients")
    gamma: float = Field(0.2, ge=0, le=2, description="gamma drawn in [1 / (1 + x), 1 + x]")
    contrast: float = Field(0.2, ge=0, lt=1, description="intensity factor drawn in [1 - x, 1 + x]")
    noise: float = Field(0.02, ge=0, le=0.5, description="std of Gaussian noise, intensities in [0, 1]")
    intensity_p: float = Field(0.5, ge=0, le=1, description="probability of each intensity transform")


class ModelConfig(StrictModel):
    """One model's training settings: the original's keys and defaults plus ours.

    `image_size` None means the dataset config's `image_size`.
    """

    model_name: str = Field(description="a name of the model registry (checked by config.resolve)")
    num_classes: int = Field(5, ge=2)
    image_size: int | None = Field(None, gt=0)
    pretrained: bool = True
    freeze_until: Literal["none", "conv1", "layer1", "layer2", "layer3", "layer4"] = "layer3"
    hidden_size: int = Field(512, gt=0)
    conv_channels: int = Field(64, gt=0)
    dropout: float = Field(0.5, ge=0, lt=1)
    learning_rate: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    num_epochs: int = Field(50, gt=0)
    batch_size: int = Field(16, gt=0)
    optimizer: Literal["Adam", "AdamW", "SGD", "RMSprop"] = "Adam"
    momentum: float = Field(0.9, ge=0, lt=1)
    nesterov: bool = True
    scheduler: Literal["ReduceLROnPlateau", "CosineAnnealing", "OneCycle", "none"] = "ReduceLROnPlateau"
    scheduler_factor: float = Field(0.5, gt=0, lt=1)
    scheduler_patience: int = Field(3, ge=0)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    class_weights: bool = False
    early_stopping_patience: int = Field(5, gt=0)
    monitor: Literal["val_macro_f1", "val_accuracy", "val_loss"] = "val_macro_f1"
    augment: bool = True
    augmentation: AugmentationConfig = Field(default_factory=AugmentationConfig)
    normalization: NormalizationSetting = Field(
        "auto",
        description="model input intensities: auto = ImageNet mean/std when ImageNet weights are loaded, "
        "else per_image (foreground standardisation); original = the original project's 0.5/0.5",
    )
    warmup_epochs: float = Field(
        0, ge=0, description="linear learning-rate warm-up before CosineAnnealing (epochs, may be fractional)"
    )
    grad_clip_norm: float | None = Field(None, gt=0, description="clip the gradient norm (None = off)")
    feature_cache: bool = Field(
        True,
        description="with frozen stages (ResNet-50 with ImageNet weights), compute their output once per "
        "image (storage/cache/features) and train only the rest",
    )
    feature_cache_views: int = Field(
        4,
        ge=1,
        description="augmented views cached per training image when `augment` is on; an epoch samples one",
    )
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    mixed_precision: Literal["cuda", "auto", "off"] = Field(
        "cuda",
        description="cuda = bf16 autocast on CUDA (fp16 + grad scaler without bf16), float32 on the CPU; "
        "auto = also bf16 autocast on CPUs with native bf16 (AVX512-BF16/AMX), opted into per model where "
        "measured not to cost accuracy; off = float32 everywhere",
    )
    num_workers: int | None = Field(
        None, ge=0, description="DataLoader workers; None = chosen for the device"
    )
    seed: int = 42
    # Optuna search (tuned_hyperparameters / `neuroflux tune`): budget per study run, and whether
    # training uses the study's best values instead of the ones above.
    use_tuned: bool = Field(False, description="train with the study's best hyperparameters")
    tune_trials: int = Field(50, ge=0, description="trials per tuning run (0 = no tuning)")
    tune_timeout_s: float | None = Field(None, gt=0, description="stop starting trials after this")
    tune_epochs: int = Field(10, gt=0, description="epochs per trial")
    tune_pruner: Literal["median", "hyperband", "none"] = "median"
    tune_startup_trials: int = Field(5, ge=0, description="trials completed before pruning starts")
    cv_folds: int = Field(
        0, ge=0, description="subject-grouped folds of the cross_validation asset over train+val (0 = off)"
    )

    def resolved_image_size(self, dataset: DatasetConfig) -> int:
        return self.image_size or dataset.image_size


def with_overrides(config: ModelT, overrides: dict, source: str = "overrides") -> ModelT:
    """A copy of `config` with `overrides` applied and validated like a file; a nested block (e.g.
    `augmentation`) is merged key by key, so an override names only what it changes."""
    values = config.model_dump()
    for key, value in overrides.items():
        nested = isinstance(value, dict) and isinstance(values.get(key), dict)
        values[key] = {**values[key], **value} if nested else value
    return parse_config(type(config), values, source)


class Profile(StrictModel):
    """Overrides on top of the config files (e.g. the CPU demo's smaller images and fewer epochs).

    The file holds `description`, `dataset`, `trains` and one block per model name of the registry.
    """

    description: str = ""
    dataset: dict = Field(default_factory=dict)
    models: dict[str, dict] = Field(default_factory=dict)
    trains: list[str] | None = Field(
        None,
        description="the models this profile trains (pipeline, schedule and sensor runs); None = every "
        "model of the registry. A model its hardware cannot train usefully is left out here",
    )

    @field_validator("trains")
    @classmethod
    def _not_empty(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not value:
            raise ValueError("trains must name at least one model (leave it out for all)")
        return value

    @model_validator(mode="before")
    @classmethod
    def _model_blocks(cls, values: object) -> object:
        """Every top-level key that is not a field is a model's block (the resolver checks the names
        against the registry, which this schema does not import)."""
        if not isinstance(values, dict) or "models" in values:
            return values
        own = set(cls.model_fields)
        blocks = {k: v for k, v in values.items() if k not in own}
        return {**{k: v for k, v in values.items() if k in own}, "models": blocks}
