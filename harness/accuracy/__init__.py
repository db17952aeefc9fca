"""Accuracy scripts: the official formulas, computed from ``mlperf_log_accuracy.json``."""
