"""Evaluation: metrics computed once, the report files, and the promotion rules."""
