"""The events of a test, as types, and their wire form between the test's process and the runner.

The child (``harness.child``; later any implementation that speaks this protocol, such as a C++ program)
writes one JSON object per line on a pipe of its own: ``{"v": 1, "event": "<kind>", "t": <unix time>,
...fields}``. Native libraries write to stdout/stderr behind Python's back, so events never travel there.
Each event is one ``os.write`` of a line, so lines from different threads never interleave.

:func:`decode` is the one place where wire objects become events: a line that is not JSON, an object of
another protocol version, an unknown kind or a field of the wrong type becomes a :class:`Warn` saying
so; fields a later version adds are ignored. Front ends and the runner see only the types below.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

EVENT_FD_ENV = "MLPERF_WIZARD_EVENT_FD"
PROTOCOL_VERSION = 1


@dataclass(frozen=True, kw_only=True)
class Event:
    KIND: ClassVar[str] = ""
    t: float = 0.0
    """Unix time of the event, set when it is sent."""

    def line(self) -> str | None:
        """The event in words, as the CLI, the TUI log and run.log show it; None for the events shown
        otherwise (progress, results)."""
        return None


@dataclass(frozen=True, kw_only=True)
class Start(Event):
    """The runner started a test (the parent's own event)."""

    KIND = "start"
    directory: str

    def line(self) -> str:
        return f"starting -> {self.directory}"


@dataclass(frozen=True, kw_only=True)
class Phase(Event):
    """A step of the test began; with ``update`` set, news of the step in progress (a count, the time so
    far) that front ends show on their live line rather than as a new line."""

    KIND = "phase"
    phase: str
    detail: str = ""
    update: bool = False
    expected: int | None = None
    min_duration_s: float | None = None

    def line(self) -> str:
        return f"{self.phase}: {self.detail}"


@dataclass(frozen=True, kw_only=True)
class Target(Event):
    """The LoadGen target the test runs with, and why."""

    KIND = "target"
    target_kind: str
    """``target_qps`` or ``target_latency_ms``: the LoadGen setting."""
    value: float
    unit: str
    reason: str

    def line(self) -> str:
        return f"{self.target_kind} = {self.value:.4g} {self.unit}: {self.reason}"


@dataclass(frozen=True, kw_only=True)
class Log(Event):
    KIND = "log"
    message: str

    def line(self) -> str:
        return self.message


@dataclass(frozen=True, kw_only=True)
class Warn(Event):
    KIND = "warning"
    message: str

    def line(self) -> str:
        return self.message


@dataclass(frozen=True, kw_only=True)
class Error(Event):
    """What stopped the test, and the fix."""

    KIND = "error"
    message: str
    fix: str | None = None

    def line(self) -> str:
        return f"ERROR: {self.message}" + (f"\n  fix: {self.fix}" if self.fix else "")

    def text(self) -> str:
        return self.message + (f" (fix: {self.fix})" if self.fix else "")


@dataclass(frozen=True, kw_only=True)
class Progress(Event):
    """The SUT's counters a few times a second while LoadGen runs."""

    KIND = "progress"
    issued: int
    completed: int
    expected: int
    qps: float
    """Samples per second over the last ``qps_window_s`` (harness.child.RateWindow): the rate shown."""
    qps_window_s: float
    mean_qps: float
    elapsed_s: float
    min_duration_s: float
    p50_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None


@dataclass(frozen=True, kw_only=True)
class SutTiming(Event):
    """Medians of the backend call alone and of issue-to-completion inside the SUT, in ms."""

    KIND = "sut_timing"
    ms: dict = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Accuracy(Event):
    KIND = "accuracy"
    result: dict


@dataclass(frozen=True, kw_only=True)
class Result(Event):
    """The runner's record of a finished test (``harness.results.TestResult.to_dict``; the parent's own)."""

    KIND = "result"
    result: dict


KINDS: dict[str, type[Event]] = {cls.KIND: cls for cls in
                                 (Start, Phase, Target, Log, Warn, Error, Progress, SutTiming, Accuracy, Result)}
_TYPES = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,), "dict": (dict,), "None": (type(None),)}


def encode(event: Event) -> bytes:
    """The wire form of ``event``: one JSON line."""
    data = {"v": PROTOCOL_VERSION, "event": event.KIND}
    data.update((f.name, getattr(event, f.name)) for f in dataclasses.fields(event))
    return (json.dumps(data, default=str) + "\n").encode()


def decode(obj: Any) -> Event:
    """The event a wire object stands for; a :class:`Warn` naming the problem for anything else."""
    if not isinstance(obj, dict):
        return _unreadable(obj, "not an object")
    if obj.get("v") != PROTOCOL_VERSION:
        return _unreadable(obj, f"protocol version {obj.get('v')!r:.20}, this mlperf-wizard reads {PROTOCOL_VERSION}")
    cls = KINDS.get(obj.get("event"))  # type: ignore[arg-type]
    if cls is None:
        return _unreadable(obj, "unknown kind")
    values = {}
    for f in dataclasses.fields(cls):
        if f.name not in obj:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                return _unreadable(obj, f"no {f.name}")
            continue
        value = obj[f.name]
        allowed = tuple(t for part in str(f.type).split("|") for t in _TYPES[part.strip()])
        if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
            return _unreadable(obj, f"{f.name} is not {f.type}")
        values[f.name] = value
    return cls(**values)


def _unreadable(obj: Any, why: str) -> Warn:
    return Warn(message=f"unreadable event ({why}): {json.dumps(obj, default=str)[:200]}", t=time.time())


class EventWriter:
    def __init__(self, fd: int | None):
        self.fd = fd
        self.lock = threading.Lock()

    @classmethod
    def from_env(cls) -> EventWriter:
        value = os.environ.get(EVENT_FD_ENV)
        return cls(int(value) if value else None)

    def emit(self, event: Event) -> None:
        if self.fd is None:
            return
        line = encode(dataclasses.replace(event, t=round(time.time(), 3)))
        with self.lock:
            try:
                os.write(self.fd, line)
            except OSError:
                pass  # the parent is gone; the child is about to be ended anyway


class EventReader:
    """Splits the bytes read from the pipe into events; partial lines wait for the rest."""

    def __init__(self) -> None:
        self.buffer = b""

    def feed(self, chunk: bytes) -> list[Event]:
        self.buffer += chunk
        *lines, self.buffer = self.buffer.split(b"\n")
        out: list[Event] = []
        for line in lines:
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                out.append(Warn(message=f"unreadable event (not JSON): {line[:200]!r}", t=time.time()))
                continue
            out.append(decode(obj))
        return out
