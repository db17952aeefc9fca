"""Datasets: real imports and synthetic generators, each yielding preprocessed samples by index."""
