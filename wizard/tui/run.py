"""Run screen: the plan's LoadGen tests, the running one live (progress, QPS, latency, plot, CPU/GPU, log).

The runner works in a thread; progress events are coalesced (only the latest counts) and the screen
redraws from them on a timer, so a fast SUT cannot flood the UI and the UI cannot slow the run.
"""

from __future__ import annotations

import time
from pathlib import Path

import psutil
from rich.markup import escape
from textual import work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, ProgressBar, RichLog, Static
from textual_plotext import PlotextPlot

from harness import events as ev
from harness.detect import Detection
from harness.gpu_monitor import monitor_for
from harness.plan import Plan, TestSpec, prepare
from harness.profile import Profile
from harness.run_record import RunRecord
from harness.runner import Runner, exit_code
from harness.scenarios import scenario as scenario_type

from ..progress import progress_text
from .modals import Confirm

REFRESH_S = 0.4
LOG_TAIL_BYTES = 8192


class RunScreen(Screen):
    HELP = ("The LoadGen tests of the plan, one process each. x cancels (asks first): the test's process is "
            "stopped, its partial logs are kept and the run is recorded as cancelled.")
    BINDINGS = [Binding("x", "cancel", "Cancel run", id="run.cancel", tooltip="Stop the run (asks first)")]

    def __init__(self, plan: Plan | Profile, detection: Detection | None, *, autostart: bool = True):
        """``plan``: the plan the user reviewed (it runs as shown), or a profile to prepare now."""
        super().__init__()
        self.autostart = autostart
        """False shows the screen without starting the run (snapshot tests feed it events instead)."""
        self.plan: Plan = plan if isinstance(plan, Plan) else prepare(plan, detection)
        self.profile = self.plan.profile
        self.runner: Runner | None = None
        self.latest: tuple[int, dict] | None = None
        self.phase: tuple[int, str, str] | None = None
        """(test index, phase, detail) of the step before LoadGen runs, for the stats line."""
        self.test_started: float | None = None
        self.points: list[tuple[float, float]] = []
        self.drawn_points = 0
        self.current: int | None = None
        self.log_offset = 0
        self.exit_after = False
        self.started = time.monotonic()
        self.gpu = monitor_for(self.profile.device)
        """The GPU of a CUDA run (NVML use and memory beside the CPU's); None for a CPU run."""
        self.utilisation = self.read_utilisation
        """Returns the CPU (and GPU) use line; snapshot tests replace it with a fixed one."""

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="run"):
            table = DataTable(id="tests", cursor_type="none", zebra_stripes=True)
            for col in ("#", "scenario", "mode", "state"):
                table.add_column(col, key=col)
            yield table
            yield ProgressBar(id="bar", show_eta=False)
            yield Static("Starting…", id="stats")
            with Horizontal(id="live"):
                yield PlotextPlot(id="plot")
                yield RichLog(id="log", max_lines=500, wrap=True, markup=False, min_width=20)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.app.run_screen = self
        table = self.query_one("#tests", DataTable)
        for i, t in enumerate(self.plan.tests):
            table.add_row(str(i + 1), t.scenario, t.mode, "pending", key=str(i))
        plot = self.query_one("#plot", PlotextPlot)
        plot.plt.title("samples/s")
        psutil.cpu_percent(None)
        if self.plan.synthetic:
            self.query_one("#log", RichLog).write("SYNTHETIC model/data: this run is NOT an MLPerf result.")
        self.runner = Runner(self.plan, on_event=self.on_runner_event)
        if self.autostart:
            self.set_interval(REFRESH_S, self.refresh_live)
            self.run_plan()

    # the worker thread ------------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="run")
    def run_plan(self) -> None:
        try:
            record = self.runner.run()
        except Exception as exc:  # a WizardError (disk full, ...) or a bug: shown, the app lives on
            self.app.call_from_thread(self.failed, exc)
            return
        self.app.call_from_thread(self.finished, record)

    def on_runner_event(self, index: int, spec: TestSpec, event: ev.Event) -> None:
        """Called in the worker thread. Progress replaces its predecessor; the rest goes to the UI."""
        if isinstance(event, ev.Progress):
            self.latest = (index, event)
            self.points.append((event.elapsed_s, event.qps))  # the child's windowed rate
        else:
            self.app.call_from_thread(self.handle_event, index, spec, event)

    # UI thread ------------------------------------------------------------------------------------

    def set_state(self, index: int, state: str) -> None:
        self.query_one("#tests", DataTable).update_cell(str(index), "state", state, update_width=True)

    def handle_event(self, index: int, spec: TestSpec, event: ev.Event) -> None:
        log = self.query_one("#log", RichLog)
        line = event.line()
        if line is not None and not (isinstance(event, ev.Phase) and event.update):  # updates: stats line only
            log.write(f"[{index + 1}] {line}")
        if isinstance(event, ev.Start):
            self.current, self.log_offset = index, 0
            self.test_started, self.phase = time.monotonic(), None
            self.points, self.drawn_points, self.latest = [], 0, None
            self.set_state(index, "starting")
        elif isinstance(event, ev.Phase):
            self.set_state(index, event.phase)
            if event.phase != "running":  # until LoadGen counts samples, the stats line says what runs
                self.phase = (index, event.phase, event.detail)
                self.show_phase()
        elif isinstance(event, ev.Result):
            r = event.result
            if r["status"] != "completed":
                state = r["status"]
            elif r["mode"] == "accuracy" and r.get("accuracy"):
                state = f"{r['accuracy']['value']:.2f}%"
            else:
                state = f"{r.get('validity')} {r.get('value') or 0:,.4g} {r.get('unit') or ''}"
            self.set_state(index, state)

    def show_phase(self) -> None:
        """The stats line before LoadGen starts counting: the step (building the model, preparing the
        dataset, measuring the target) and how long the test has taken so far."""
        if self.phase is None:
            return
        index, phase, detail = self.phase
        spec = self.plan.tests[index]
        elapsed = time.monotonic() - (self.test_started or time.monotonic())
        self.query_one("#stats", Static).update(
            f"[b]{spec.scenario} {spec.mode}[/b] ({index + 1}/{len(self.plan.tests)})  {self.utilisation()}\n"
            + escape(f"{phase}: {detail}" if detail else phase) + f"  [dim]({elapsed:.0f} s)[/]")

    def refresh_live(self) -> None:
        self.tail_log()
        if self.latest is None:
            self.show_phase()
            return
        index, event = self.latest
        spec = self.plan.tests[index]
        bar = self.query_one("#bar", ProgressBar)
        bar.update(total=max(event.expected or 1, event.completed), progress=event.completed)
        self.query_one("#stats", Static).update(
            f"[b]{spec.scenario} {spec.mode}[/b] ({index + 1}/{len(self.plan.tests)})  {self.utilisation()}"
            + "\n" + progress_text(event, spec.scenario)
            + (f"\np50 {event.p50_ms:.2f} ms  p90 {event.p90_ms:.2f} ms  p99 {event.p99_ms:.2f} ms"
               if event.p50_ms is not None and not scenario_type(spec.scenario).one_query else ""))
        if len(self.points) != self.drawn_points:
            points = list(self.points)
            self.drawn_points = len(points)
            plot = self.query_one("#plot", PlotextPlot)
            xs, ys = [t for t, _ in points], [rate for _, rate in points]
            plot.plt.clear_data()
            plot.plt.plot(xs, ys)
            plot.plt.xlabel("s")
            plot.refresh()

    def read_utilisation(self) -> str:
        gpu = self.gpu.text() if self.gpu is not None else None
        return f"CPU {psutil.cpu_percent(None):.0f}%" + (f"  {gpu}" if gpu else "")

    def tail_log(self) -> None:
        """New lines of the running test's run.log (the child's own and native output)."""
        if self.current is None or self.runner is None or self.runner.record is None:
            return
        path = Path(self.runner.record.run_dir) / self.plan.tests[self.current].rel_dir / "run.log"
        try:
            size = path.stat().st_size
            if size <= self.log_offset:
                return
            with open(path, "rb") as fh:
                fh.seek(max(self.log_offset, size - LOG_TAIL_BYTES))
                data = fh.read(size - fh.tell())
            self.log_offset = size
        except OSError:
            return
        log = self.query_one("#log", RichLog)
        for line in data.decode(errors="replace").splitlines():
            if line.strip():
                log.write(line)

    def on_unmount(self) -> None:
        if self.gpu is not None:
            self.gpu.close()

    def finished(self, record: RunRecord) -> None:
        from .result import ResultScreen

        self.app.run_screen = None
        if self.exit_after:  # quit (130) or a stop signal (143, 129): the CLI's exit codes
            self.app.exit(exit_code(record))
            return
        self.app.switch_screen(ResultScreen(record, self.profile))

    def failed(self, exc: Exception) -> None:
        self.app.run_screen = None
        self.app.show_error(exc)
        if self.exit_after:
            self.app.exit(1)

    # cancel ---------------------------------------------------------------------------------------

    def action_cancel(self) -> None:
        def answered(yes: bool | None) -> None:
            if yes:
                self.cancel_run()

        self.app.push_screen(Confirm("Cancel the run? The running test is stopped; its partial logs are kept.",
                                     yes="Cancel run", no="Keep running"), answered)

    def cancel_run(self, then_exit: bool = False) -> None:
        self.exit_after = self.exit_after or then_exit
        if self.runner is not None:
            self.runner.cancel()
        self.query_one("#log", RichLog).write("Cancelling: stopping the test's process…")

    def palette_commands(self):
        yield SystemCommand("Cancel run", "Stop the run (asks first); partial logs are kept", self.action_cancel)
