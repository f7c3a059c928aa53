"""Dagster layer of Neuroflux: thin assets over `neuroflux_lib`."""
