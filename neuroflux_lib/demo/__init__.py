"""Synthetic demo data shaped like the real (unavailable) dataset."""
