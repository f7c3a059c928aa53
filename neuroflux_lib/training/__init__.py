"""Training: the loop, the train/evaluate steps built on it, and Optuna tuning."""
