"""Configuration: the typed schema (`schema`) and the one resolver (`resolve.resolve_config`).

The package exports the schema only: the resolver sits above the model registry, which itself reads the
schema, so it is imported from `neuroflux_lib.config.resolve`.
"""

from neuroflux_lib.config.schema import (
    DEFAULT_CLASS_NAMES,
    DEFAULT_METADATA_REGEX,
    DEFAULT_SUBJECT_REGEX,
    AugmentationConfig,
    DatasetConfig,
    ModelConfig,
    NormalizationSetting,
    Profile,
    StrictModel,
    format_validation_error,
    parse_config,
    with_overrides,
)
from neuroflux_lib.errors import ConfigError

__all__ = [
    "DEFAULT_CLASS_NAMES",
    "DEFAULT_METADATA_REGEX",
    "DEFAULT_SUBJECT_REGEX",
    "AugmentationConfig",
    "ConfigError",
    "DatasetConfig",
    "ModelConfig",
    "NormalizationSetting",
    "Profile",
    "StrictModel",
    "format_validation_error",
    "parse_config",
    "with_overrides",
]
