"""Headless progress: a live line on a terminal, a plain line every few seconds elsewhere."""

from __future__ import annotations

import io
import os
import textwrap
import time
from typing import TextIO

from harness import events as ev
from harness.gpu_monitor import GpuMonitor, monitor_for
from harness.plan import Plan, TestSpec
from harness.results import TestResult, summary_lines
from harness.run_record import RunRecord
from harness.scenarios import NAMES as SCENARIO_NAMES
from harness.scenarios import scenario as scenario_type

PLAIN_INTERVAL_S = 5.0


def _duration(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds < 0:
        return "?"
    seconds = int(seconds)
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds >= 60 else f"{seconds}s"


def progress_parts(event: ev.Progress, scenario: str = "") -> list[str]:
    """The pieces of the live line, most important first: completed/expected samples, the windowed rate,
    ETA, elapsed vs minimum duration, p90."""
    done, expected = event.completed, event.expected or 0
    elapsed = event.elapsed_s
    rate = event.mean_qps or 0.0
    eta_count = (expected - done) / rate if rate and expected > done else (0.0 if done else None)
    eta = None if eta_count is None else max(eta_count, (event.min_duration_s or 0) - elapsed)
    pct = f" {100 * done / expected:3.0f}%" if expected else ""
    parts = [f"{done}/{expected} samples{pct}", f"{event.qps:.1f} samples/s", f"ETA {_duration(eta)}"]
    min_d = event.min_duration_s or 0
    parts.append(f"elapsed {_duration(elapsed)}" + (f"/{_duration(min_d)} min" if min_d else ""))
    # Offline's per-sample latency is time since the one big query was issued: not worth showing.
    if event.p90_ms is not None and scenario in SCENARIO_NAMES and not scenario_type(scenario).one_query:
        parts.append(f"p90 {event.p90_ms:.1f} ms")
    return parts


def progress_text(event: ev.Progress, scenario: str = "") -> str:
    """The whole live line."""
    return " | ".join(progress_parts(event, scenario))


def fit_line(heads: list[str], parts: list[str], width: int) -> str:
    """A head (the first of ``heads``, fullest first, that lets the most parts fit) and as many of ``parts``
    (most important first) as fit in ``width`` columns; cut with "…" only when nothing else fits. A live line
    wider than the terminal wraps, and then every update scrolls instead of rewriting the line."""
    for keep in range(len(parts), 0, -1):
        for head in heads:
            line = f"{head} {' | '.join(parts[:keep])}".strip()
            if len(line) <= width:
                return line
    line = f"{heads[-1]} {parts[0] if parts else ''}".strip()
    return line if len(line) <= width else line[: max(width - 1, 0)] + "…"


def wrap_text(text: str, width: int) -> str:
    """``text`` with each line longer than ``width`` wrapped between words, continuation lines indented
    under the line's own indent; a single word longer than the line (a path) is left whole."""
    out = []
    for line in text.splitlines():
        if len(line) <= width:
            out.append(line)
            continue
        indent = line[: len(line) - len(line.lstrip())]
        out.append(textwrap.fill(line.strip(), width, initial_indent=indent, subsequent_indent=indent + "  ",
                                 break_long_words=False, break_on_hyphens=False))
    return "\n".join(out)


def terminal_columns(stream: TextIO) -> int | None:
    """The width of the terminal ``stream`` writes to, now; None when it is not a terminal."""
    try:
        return os.get_terminal_size(stream.fileno()).columns or None if stream.isatty() else None
    except (OSError, AttributeError, ValueError, io.UnsupportedOperation):
        return None


class ProgressPrinter:
    def __init__(self, out: TextIO, total_tests: int, gpu: GpuMonitor | None = None):
        self.out = out
        self.gpu = gpu
        """The GPU of a CUDA run: its use and memory join the live line (after the rate)."""
        self.tty = out.isatty()
        self.total = total_tests
        self.last_plain = 0.0
        self.line_open = False

    def columns(self) -> int:
        """The terminal's width now (it may change during a run); 80 when it cannot be asked."""
        return terminal_columns(self.out) or 80

    def _clear(self) -> None:
        if self.line_open:
            self.out.write("\r\x1b[K")
            self.line_open = False

    def say(self, text: str) -> None:
        self._clear()
        if self.tty:  # on a terminal, lines wrap between words; a log or a pipe gets them whole
            text = wrap_text(text, self.columns() - 1)
        self.out.write(text + "\n")
        self.out.flush()

    def handle(self, index: int, spec: TestSpec, event: ev.Event) -> None:
        tag = f"[{index + 1}/{self.total} {spec.scenario} {spec.mode}]"
        line = event.line()
        # The full tag, then a shorter one, before the live line gives up a part.
        heads = [tag, f"[{index + 1}/{self.total} {spec.scenario}]"]
        if isinstance(event, ev.Phase) and event.update:
            self.live(fit_line(heads, [line], self.columns() - 1), f"{tag} {line}")
        elif line is not None:
            self.say(("\n" if isinstance(event, ev.Start) else "") + f"{tag} {line}")
        elif isinstance(event, ev.Progress):
            parts = progress_parts(event, spec.scenario)
            if self.gpu is not None and (reading := self.gpu.text()):
                parts.insert(2, reading)
            self.live(fit_line(heads, parts, self.columns() - 1), f"{tag} {' | '.join(parts)}")
        elif isinstance(event, ev.Result):
            result = TestResult.from_dict(event.result)
            self.say("\n".join(summary_lines(result)))

    def live(self, line: str, plain: str) -> None:
        """News of the step in progress: rewrites the live line on a terminal (``line``, fitted by
        :func:`fit_line`), a plain ``plain`` line every PLAIN_INTERVAL_S elsewhere."""
        if self.tty:
            self.out.write("\r\x1b[K" + line)
            self.out.flush()
            self.line_open = True
        elif time.monotonic() - self.last_plain >= PLAIN_INTERVAL_S:
            self.last_plain = time.monotonic()
            self.say(plain)

    def finish(self) -> None:
        self._clear()


def run_headless(plan: Plan, out: TextIO, profile_path: str | None = None) -> tuple[RunRecord, int]:
    """Run ``plan`` with this progress display on ``out``; print where the files are and, when unmet
    rules suggest changes, the command that applies them. Returns the record and the CLI's exit code."""
    from harness.errors import WizardError
    from harness.profile import equivalent_command
    from harness.results import suggestions
    from harness.runner import Runner, exit_code

    gpu = monitor_for(plan.profile.device)
    printer = ProgressPrinter(out, total_tests=len(plan.tests), gpu=gpu)
    try:
        record = Runner(plan, on_event=printer.handle).run()
    finally:
        printer.finish()
        if gpu is not None:
            gpu.close()
    print(f"\nRun {record.run_id}: {record.status}. Files: {record.run_dir}", file=out, flush=True)
    found, blocked = suggestions(record.tests)
    for s in found:
        try:
            adjusted = plan.profile.with_values(s.profile_values)
        except WizardError:
            continue
        print(f"To fix {s.scenario} ({s.confidence}):\n  " + equivalent_command(adjusted, profile_path), file=out)
    for b in blocked:
        print(f"No change is known to make {b.scenario} VALID: {b.why}.", file=out)
    return record, exit_code(record)
