"""The data half, stage by stage: discovery, decoding, quality, outliers, dedup, splits, balancing."""
