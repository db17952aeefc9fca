"""mlperf-wizard's front ends: the command line (and, built on the same engine, the TUI)."""
