"""Dagster layer of Neuroflux: thin assets over `neuroflux_lib`.

`from neuroflux_assets import load_predictor; load_predictor().predict("scan.jpg")`
"""

import warnings

import dagster as dg

# Two Dagster features we rely on on purpose, announced on every import and every run otherwise:
# partitioned asset checks (preview) and `Output(data_version=...)` (beta).
warnings.filterwarnings("ignore", "Specifying a partitions_def on an AssetCheckSpec", dg.PreviewWarning)
warnings.filterwarnings("ignore", "Parameter `data_version`", dg.BetaWarning)

from neuroflux_assets.api import load_predictor  # noqa: E402 (after the filters)

__all__ = ["load_predictor"]
