"""One partition per model architecture: the model assets are computed once per name."""

import dagster as dg

from neuroflux_lib.models import MODEL_NAMES

model_partitions = dg.StaticPartitionsDefinition(list(MODEL_NAMES))
