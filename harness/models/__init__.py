"""Model files the harness can build or fetch: synthetic stand-ins for the official MLPerf models."""
