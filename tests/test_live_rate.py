"""One windowed samples/s for every front end, computed where completions are counted (issue 7 item 13).

A real run whose SUT completes 8 samples once a second (each batch-8 inference call made 1 s slow through
the child's fault hook): the reports, every 0.5 s, used to alternate between 16 and 0 samples/s. The rate
the child sends is over the last few seconds, so it stays near the real 8 samples/s, and the CLI line, the
plain prompts and the TUI (number and plot) all show that one figure.
"""

from __future__ import annotations

import fcntl
import io
import os
import pty
import re
import struct
import subprocess
import sys
import termios

import pytest

from harness import events as ev
from harness.child import RATE_WINDOW_S, RateWindow
from harness.faults import FAULT_ENV
from harness.plan import make_plan
from harness.profile import make_profile
from harness.runner import Runner
from wizard.progress import ProgressPrinter, progress_text


def test_bursty_completions_read_as_their_real_rate() -> None:
    window = RateWindow()
    window.add(0.0, 0)  # the reporter's first reading: the test's start
    rates = []
    for tick in range(1, 41):  # a reading every 0.5 s, a burst of 8 completions every 1 s
        rates.append(window.add(tick * 0.5, 8 * (tick // 2)))
    settled = rates[int(RATE_WINDOW_S / 0.5):]
    assert all(7.0 <= r <= 9.0 for r in settled), settled
    assert max(rates) <= 9.0  # never the 16 of counting one burst over one 0.5 s report


def test_a_slow_model_does_not_read_zero_between_its_batches() -> None:
    """8 samples every 20 s (RetinaNet on two cores): the rate stays near 0.4/s, never 0 between batches."""
    window = RateWindow()
    window.add(0.0, 0)
    rates = [window.add(tick * 0.5, 8 * (tick // 40)) for tick in range(1, 400)]
    settled = rates[120:]
    assert all(0.3 <= r <= 0.6 for r in settled), (min(settled), max(settled))


def test_a_stalled_run_reads_ever_lower() -> None:
    window = RateWindow()
    for tick in range(1, 11):
        window.add(tick * 0.5, 8 * tick)
    rates = [window.add(5 + tick * 0.5, 80) for tick in range(1, 121)]
    assert rates[0] > 10 and rates == sorted(rates, reverse=True) and rates[-1] < rates[0] / 5


def test_a_slow_sut_reports_a_steady_rate_to_every_front_end(home, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(FAULT_ENV, "delay-ms:1000")
    profile = make_profile({"scenarios": ["Offline"], "mode": "performance", "test_query_count": 88,
                            "target_qps": 8, "batch_size": 8, "model_source": "synthetic",
                            "dataset_source": "synthetic"})
    progress: list[dict] = []
    out = io.StringIO()
    printer = ProgressPrinter(out, 1)

    def on_event(index, spec, event) -> None:
        printer.handle(index, spec, event)
        if isinstance(event, ev.Progress):
            progress.append(event)

    record = Runner(make_plan(profile), on_event=on_event).run()
    assert record.status == "completed", record.tests[0].error
    first = next(e.elapsed_s for e in progress if e.completed)
    started = [e for e in progress if e.elapsed_s > first and e.completed < 88]
    assert all(e.qps > 0 for e in started), [e.qps for e in started]  # never the old 0.0 between bursts
    running = [e for e in started if e.elapsed_s >= first + RATE_WINDOW_S]  # the window is full
    assert len(running) >= 4, progress
    rates = [e.qps for e in running]
    assert all(5.0 <= r <= 11.0 for r in rates), rates  # the old per-report count gave 16, 0, 16, 0 ...
    assert all(e.qps_window_s == RATE_WINDOW_S for e in running)
    for e in running:
        assert f"{e.qps:.1f} samples/s" in progress_text(e, "Offline")


@pytest.mark.parametrize("columns", [60, 80])
def test_the_live_line_fits_the_terminal(home, columns: int) -> None:
    """The CLI's live line on a real pseudo-terminal of ``columns`` never wraps (issue 7 item 14)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    env = {**os.environ, FAULT_ENV: "delay-ms:300"}
    proc = subprocess.Popen([sys.executable, "-m", "wizard.cli", "run", "--scenario", "SingleStream",
                             "--test-query-count", "24", "--target-latency", "300", "--synthetic"],
                            stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True)
    os.close(slave)
    raw = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        raw += chunk
    assert proc.wait(timeout=120) in (0, 3), raw.decode(errors="replace")[-2000:]
    os.close(master)
    updates = [part for part in re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", raw.decode(errors="replace")).split("\r")
               if " samples" in part and "] " in part]
    assert len(updates) >= 3, raw.decode(errors="replace")[-2000:]
    for update in updates:
        assert len(update.split("\n")[0]) < columns, update
    assert all("samples/s" in u for u in updates[1:])  # the rate always fits, with a shorter tag if need be
