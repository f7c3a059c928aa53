"""Neuroflux library: data, models and training as plain Python + PyTorch (no Dagster)."""

__version__ = "0.1.0"
