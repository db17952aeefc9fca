"""The child-to-parent event channel: JSON lines on a pipe of its own.

Native libraries write to stdout/stderr behind Python's back, so events never travel there. Each event
is one ``os.write`` of a line shorter than PIPE_BUF, so lines from different threads never interleave.
"""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any

EVENT_FD_ENV = "MLPERF_WIZARD_EVENT_FD"


class EventWriter:
    def __init__(self, fd: int | None):
        self.fd = fd
        self.lock = threading.Lock()

    @classmethod
    def from_env(cls) -> EventWriter:
        value = os.environ.get(EVENT_FD_ENV)
        return cls(int(value) if value else None)

    def emit(self, event: str, **data: Any) -> None:
        data["event"] = event
        data["t"] = round(time.time(), 3)
        line = (json.dumps(data, default=str) + "\n").encode()
        if self.fd is None:
            return
        with self.lock:
            try:
                os.write(self.fd, line)
            except OSError:
                pass  # the parent is gone; the child is about to be ended anyway


class EventReader:
    """Splits the bytes read from the pipe into decoded events; partial lines wait for the rest."""

    def __init__(self) -> None:
        self.buffer = b""

    def feed(self, chunk: bytes) -> list[dict[str, Any]]:
        self.buffer += chunk
        *lines, self.buffer = self.buffer.split(b"\n")
        out = []
        for line in lines:
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except ValueError:
                out.append({"event": "warning", "message": f"unreadable event: {line[:200]!r}"})
        return out


def event_line(event: dict[str, Any]) -> str | None:
    """A child's event in words (start, phase, target, log, warning, error), as the CLI, the TUI log and
    the run's run.log show it; None for the events rendered otherwise (progress, result). A phase event
    with ``update`` set repeats the step in progress with news (a count, the time so far): front ends
    show it on their live line rather than as a new line."""
    kind = event.get("event")
    if kind == "start":
        return f"starting -> {event['directory']}"
    if kind == "phase":
        return f"{event.get('phase')}: {event.get('detail', '')}"
    if kind == "target":
        return f"{event.get('kind')} = {event.get('value'):.4g} {event.get('unit')}: {event.get('reason')}"
    if kind in ("log", "warning"):
        return str(event.get("message"))
    if kind == "error":
        return f"ERROR: {event.get('message')}" + (f"\n  fix: {event['fix']}" if event.get("fix") else "")
    return None
