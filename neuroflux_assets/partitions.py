"""Partitions: one per model architecture (the model assets), one per incoming batch folder."""

import dagster as dg

from neuroflux_lib.models import MODEL_NAMES

model_partitions = dg.StaticPartitionsDefinition(list(MODEL_NAMES))

#: One partition per batch folder under the dataset's `incoming_dir` (added by the new_incoming_batches
#: sensor or `neuroflux predict --batch`).
incoming_batches = dg.DynamicPartitionsDefinition(name="incoming_batches")
