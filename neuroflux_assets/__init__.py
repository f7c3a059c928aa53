"""Dagster layer of Neuroflux: thin assets over `neuroflux_lib`.

`from neuroflux_assets import load_predictor; load_predictor().predict("scan.jpg")`

`load_predictor` is imported on first use (PEP 562), so `from neuroflux_assets import metadata` does not
pull in the predictor, the definitions and every asset module.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import dagster as dg

if TYPE_CHECKING:
    from neuroflux_assets.api import load_predictor

# Partitioned asset checks (one evaluation per model or batch partition) are still a preview feature in
# Dagster 1.13, announced on every import and run; the alternative, unpartitioned checks, would judge
# one partition's data by another's run.
warnings.filterwarnings("ignore", "Specifying a partitions_def on an AssetCheckSpec", dg.PreviewWarning)

__all__ = ["load_predictor"]


def __getattr__(name: str) -> Any:
    if name == "load_predictor":
        from neuroflux_assets.api import load_predictor

        return load_predictor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
