"""Evaluation: pixel metrics, landslide object matching, the report and its files, through the
predict path."""
