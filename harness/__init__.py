"""mlperf-wizard's engine: profiles, detection, coverage, plans, LoadGen runs and results.

Nothing in this package imports a UI library; `wizard/` builds on it, never the reverse.
"""

__version__ = "0.1.0"
