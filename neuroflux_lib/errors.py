"""The errors a user can fix: the CLI prints them as one line (exit 2); anything else is a bug and keeps
its traceback (exit 1)."""


class NeurofluxError(Exception):
    """Base of every error caused by input the user controls (files, configs, data, what was run)."""


class ConfigError(NeurofluxError, ValueError):
    """A configuration file is missing, unreadable, or has unknown keys / wrong types."""


class DataError(NeurofluxError, ValueError):
    """The dataset cannot be used as it is (missing folder, no images, leakage between splits)."""


class ImageError(NeurofluxError, ValueError):
    """An image file cannot be decoded."""


class ArtifactError(NeurofluxError, ValueError):
    """A model artifact or checkpoint is missing, incomplete, unsafe or does not match."""


class NotMaterializedError(NeurofluxError, LookupError):
    """A result the command needs has not been produced yet (e.g. no trained model)."""


class BusyError(NeurofluxError, RuntimeError):
    """Another run is writing the same model (or the production model) now: `neuroflux_lib.locks`."""
