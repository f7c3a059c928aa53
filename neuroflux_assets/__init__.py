"""Dagster layer of Neuroflux: thin assets over `neuroflux_lib`.

`from neuroflux_assets import load_predictor; load_predictor().predict("scan.jpg")`
"""

from neuroflux_assets.api import load_predictor

__all__ = ["load_predictor"]
