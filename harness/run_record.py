"""The record of one run, as ``run.json`` holds it: owned here, so that the history (and anything else
that reads runs) never imports the runner that writes them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .results import TestResult


@dataclass
class RunRecord:
    """One run: the profile's tests and their results, saved as ``run.json`` in the run directory."""

    run_id: str
    run_dir: str
    started: str
    status: str = "running"
    """running | completed | failed | cancelled (history reads a "running" record whose process is gone as
    interrupted)"""
    finished: str | None = None
    synthetic: bool = False
    tests: list[TestResult] = field(default_factory=list)
    cancelled_by: str | None = None
    """SIGINT (Ctrl-C), SIGTERM, SIGHUP, or "user" (the TUI's cancel); None when not cancelled."""
    pid: int | None = None
    """The process that ran it, and that process's start time (psutil's create_time): together they tell
    whether a record still "running" belongs to a live run or to one killed before it could finish."""
    pid_started: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "run_dir": self.run_dir, "started": self.started,
                "finished": self.finished, "status": self.status, "synthetic": self.synthetic,
                "cancelled_by": self.cancelled_by, "pid": self.pid, "pid_started": self.pid_started,
                "tests": [t.to_dict() for t in self.tests]}
