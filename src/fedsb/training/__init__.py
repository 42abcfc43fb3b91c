"""Centralized training: image data sets with caching, the training loop, run directories."""
