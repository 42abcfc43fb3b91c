"""Data sets: what to generate (DataConfig), cached image sets, splits, client partitions."""
