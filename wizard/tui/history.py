"""History screen: past runs, sortable and filterable; a run's details; two runs compared side by side."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Footer, Header, Input, Label, Static

from harness import history
from harness.history import RunList, RunSummary, TestSummary
from harness.results import summary_lines

from .tables import fitted_columns

MARK = "» "
WIDE_FROM = 110
"""Terminal width from which the table shows every column (precision, validity and status apart, ...)."""
VERDICT_STYLE = {"VALID": "green", "INVALID": "red", "PASS": "green", "BELOW": "red", "COMPLETED": "green"}
# Sort keys that start descending (newest, highest, longest first); the others start A to Z.
STARTS_REVERSED = {"started", "value", "duration"}


class Report(ModalScreen[None]):
    """A text or table too long for a message box (details, a comparison): it scrolls; Escape closes it."""

    HELP = "Scroll with the arrow keys, PgUp and PgDn; Escape, Enter or q closes it."
    BINDINGS = [Binding("escape,enter,q", "close", "Close", id="report.close", tooltip="Close this report")]

    def __init__(self, title: str, body: RenderableType, note: str = ""):
        super().__init__()
        self.title_text, self.body, self.note = title, body, note

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog report"):
            yield Label(Text(self.title_text), classes="dialog-title")
            with VerticalScroll(id="report-body"):
                yield Static(self.body, id="report-text")
            yield Static(Text(" · ".join(x for x in (self.note, "↑↓ PgUp PgDn scroll, Esc closes") if x),
                              style="dim"), classes="report-hint")

    def on_mount(self) -> None:
        self.fit()
        self.query_one("#report-body").focus()

    def on_resize(self) -> None:
        self.fit()

    def fit(self) -> None:
        # Border, padding, title and hint take 8 rows: the rest scrolls.
        self.query_one("#report-body").styles.max_height = max(3, self.size.height - 8)

    def action_close(self) -> None:
        self.dismiss(None)


# ------------------------------------------------------------------------------------------- cells


def when(stamp: str | None, wide: bool) -> str:
    parsed = history.parse_time(stamp)
    if parsed is None:
        return "unknown"
    return parsed.astimezone().strftime("%Y-%m-%d %H:%M:%S" if wide else "%m-%d %H:%M")


def number(value: float | None, unit: str | None) -> str:
    if value is None:
        return "-"
    text = f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    return f"{text} {unit or ''}".strip()


def test_result(t: TestSummary) -> tuple[str, str]:
    """(result, verdict) of one test: the metric and VALID/INVALID, or the accuracy and PASS/BELOW."""
    if t.status != "completed":
        return "-", t.status.upper()
    if t.mode == "accuracy":
        if t.accuracy is None:
            return "no accuracy", "-"
        return f"{t.accuracy:.4g}% acc", "-" if t.accuracy_passed is None else "PASS" if t.accuracy_passed else "BELOW"
    return number(t.value, t.unit), t.validity or "-"


def headline(r: RunSummary) -> TestSummary | None:
    """The test the row shows: the first performance test with a value, else the first test."""
    return r.primary or (r.tests[0] if r.tests else None)


def validity(r: RunSummary) -> str:
    found = [t.validity for t in r.tests if t.validity]
    if not found:
        return "-"
    return "VALID" if all(v == "VALID" for v in found) else "INVALID"


def verdict(r: RunSummary) -> str:
    """VALID/INVALID when every test completed, else the run's (or first unfinished test's) status."""
    if r.status != "completed":
        return r.status.upper()
    unfinished = next((t for t in r.tests if t.status != "completed"), None)
    if unfinished:
        return unfinished.status.upper()
    t = headline(r)
    return validity(r) if r.primary else (test_result(t)[1] if t else "-")


def result(r: RunSummary) -> str:
    """The headline number with its unit (or the first test's accuracy or state)."""
    if r.primary:
        return number(r.primary.value, r.primary.unit)
    t = headline(r)
    return test_result(t)[0] if t else "-"


def styled(word: str) -> Text:
    return Text(word, style=VERDICT_STYLE.get(word, "yellow" if word not in ("-", "") else ""))


def scenarios_cell(r: RunSummary, wide: bool) -> str:
    names = r.all_scenarios
    if wide or len(names) < 2:
        return ", ".join(names) or "-"
    return f"{names[0]} +{len(names) - 1}"


def duration(r: RunSummary) -> str:
    seconds = r.duration_s
    if seconds is None:
        return "-"
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


Cell = Callable[[RunSummary, bool], "str | Text"]

COLUMNS: dict[str, tuple[str, str | None, Cell]] = {
    # key: (label, history sort key or None (sorted by the cell's text), cell)
    "started": ("date", "started", lambda r, w: when(r.started, w)),
    "model": ("model", "model", lambda r, w: (r.model or "?") + ("*" if r.synthetic else "")),
    "backend": ("backend", "backend", lambda r, w: r.backend or "?"),
    "device": ("dev", "device", lambda r, w: r.device or "?"),
    "precision": ("prec", "precision", lambda r, w: r.precision or "?"),
    "scenario": ("scenario", None, scenarios_cell),
    "result": ("result", "value", lambda r, w: result(r)),
    "verdict": ("verdict", "validity", lambda r, w: styled(verdict(r))),
    "validity": ("validity", "validity", lambda r, w: styled(validity(r))),
    "status": ("status", "status", lambda r, w: styled(r.status.upper())),
    "data": ("data", None, lambda r, w: Text("synthetic", style="yellow") if r.synthetic else "real"),
    "profile": ("profile", None, lambda r, w: r.profile_name or "-"),
    "duration": ("time", "duration", lambda r, w: duration(r)),
}
NARROW_COLUMNS = ("started", "model", "backend", "device", "scenario", "result", "verdict")
DROP_FIRST = ("device", "backend", "started", "model")
"""When the rows would be wider than the screen, these columns go, in this order, so that the result and
the verdict are never cut (Enter shows everything of a run)."""
WIDE_COLUMNS = ("started", "model", "backend", "device", "precision", "scenario", "result", "validity", "status",
                "data", "profile", "duration")


def cell_text(r: RunSummary, wide: bool = True) -> str:
    """Everything a row shows, lowercased: what the filter also matches."""
    return " ".join(str(COLUMNS[k][2](r, wide)) for k in WIDE_COLUMNS).lower()


def matches(r: RunSummary, words: list[str]) -> bool:
    """Every word is in the run's id, profile, system, choices, scenarios, validity or shown cells."""
    return all(history.filter_runs([r], text=w) or w in cell_text(r) for w in words)


# ----------------------------------------------------------------------------------------- reports


def details_body(d: history.RunDetail) -> Group:
    """A run in plain words: choices, each test's summary lines, the files, the environment."""
    parts: list[RenderableType] = []
    took = f", {d.duration_s:.0f} s" if d.duration_s is not None else ""
    head = Text(f"{d.status} (started {when(d.started, True)}{took})\n", style="bold")
    choices = " / ".join(x for x in (d.model, d.backend, d.device, d.precision) if x)
    extra = [f"style {d.style}" if d.style else "", f"system {d.system_name}" if d.system_name else "",
             f"profile {d.profile_name}" if d.profile_name else ""]
    head.append(", ".join(x for x in [choices, *extra] if x), style="")
    if d.synthetic:
        head.append("\nSYNTHETIC model and/or data: this is NOT an MLPerf result.", style="yellow")
    parts.append(head)
    tests = d.record.tests if d.record else []
    if not tests:
        parts.append(Text("\nNo LoadGen test finished in this run."))
    for t in tests:
        lines = summary_lines(t)
        block = Text("\n")
        first_style = "green" if t.validity == "VALID" else "red" if t.validity == "INVALID" else "bold"
        block.append(lines[0], style=first_style)
        for line in lines[1:]:
            block.append("\n" + line)
        parts.append(block)
    files = Text("\nFiles\n", style="bold")
    files.append(f"  run directory  {d.run_dir}", style="")
    for name, path in d.files.items():
        files.append(f"\n  {name:<14} {path}", style="")
    parts.append(files)
    digest = history.environment_digest(d.environment)
    if digest:
        env = Text("\nEnvironment", style="bold")
        width = max(map(len, digest))
        for key, value in digest.items():
            env.append(f"\n  {key:<{width}}  {value}", style="")
        parts.append(env)
    rerun = d.profile_name or str(Path(d.run_dir) / history.PROFILE_FILE)
    parts.append(Text(f"\nRerun it: mlperf-wizard run {rerun}", style="dim"))
    for warning in d.warnings:
        parts.append(Text(f"warning: {warning}", style="yellow"))
    return Group(*parts)


def _plain(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, (list, tuple)):
        return " ".join(map(str, value))
    return str(value)


def _side(value: float | None, unit: str | None, valid: str | None, status: str | None) -> Text:
    if status is None:
        return Text("not run", style="dim")
    if status != "completed":
        return styled(status.upper())
    out = Text(number(value, unit))
    if valid:
        out.append("\n")
        out.append_text(styled(valid))
    return out


def comparison_body(c: history.Comparison) -> Group:
    """Two runs side by side: results with ratio and direction, then profile and environment differences."""
    parts: list[RenderableType] = []
    for label, r, role in (("a", c.a, "marked"), ("b", c.b, "highlighted")):
        line = Text(f"{label}  ", style="bold")
        line.append(f"{r.run_id} ({role})\n   ", style="")
        line.append(" / ".join(x for x in (r.model, r.backend, r.device, r.precision) if x)
                    + f", {when(r.started, True)}", style="")
        parts.append(line)
    results = Table(title="Results", box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, title_justify="left",
                    expand=True)
    results.add_column("test", overflow="fold")
    results.add_column("a", justify="right")
    results.add_column("b", justify="right")
    results.add_column("b / a", justify="right", no_wrap=True)
    results.add_column("change", ratio=1, overflow="fold", min_width=12)
    for m in c.metrics:
        change = Text(m.verdict, style={"a": "red", "b": "green"}.get(m.better or "", ""))
        if m.note and m.ratio is not None:
            change.append(f"\n{m.note}", style="yellow")
        ratio = Text(f"x{m.ratio:.3f}" if m.ratio is not None else "-")
        results.add_row(f"{m.scenario}\n{m.mode}", _side(m.value_a, m.unit_a, m.validity_a, m.status_a),
                        _side(m.value_b, m.unit_b, m.validity_b, m.status_b), ratio, change)
    if not c.metrics:
        results.add_row("-", "-", "-", "-", "no LoadGen test in either run")
    parts.append(results)
    for title, diffs in (("Profile differences", c.profile), ("Environment differences", c.environment)):
        if not diffs:
            parts.append(Text(f"{title}: none", style="bold"))
            continue
        t = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, title_justify="left",
                  expand=True)
        t.add_column("field", no_wrap=True)
        t.add_column("a", overflow="fold", ratio=1)
        t.add_column("b", overflow="fold", ratio=1)
        for d in diffs:
            t.add_row(d.field, _plain(d.a), _plain(d.b))
        parts.append(t)
    for note in c.notes:
        parts.append(Text(f"note: {note}", style="yellow"))
    return Group(*parts)


# ------------------------------------------------------------------------------------------ screen


class RunTable(DataTable):
    """The runs table; Enter shows the highlighted run's details (shown in the footer)."""

    BINDINGS = [Binding("enter", "select_cursor", "Details", id="history.enter",
                        tooltip="The run's results and files (also o)")]


class HistoryScreen(Screen):
    HELP = ("Every past run, newest first. / filters on any text (e.g. 'bert cuda invalid'); s changes the "
            "sort (or click a column's header), r reverses it; Enter shows a run's results and files; m marks a "
            "run, then c on another compares them side by side (b / a: the highlighted run against the marked "
            "one).")
    BINDINGS = [
        Binding("o", "details", "Details", id="history.details", show=False, tooltip="The run's results and files"),
        Binding("slash", "filter", "Filter", id="history.filter", tooltip="Type to filter the runs"),
        Binding("s", "sort", "Sort", id="history.sort", tooltip="Sort by the next column"),
        Binding("r", "reverse", "Reverse", id="history.reverse", show=False, tooltip="Reverse the order"),
        Binding("m", "mark", "Mark", id="history.mark", tooltip="Mark this run to compare with another"),
        Binding("c", "compare", "Compare", id="history.compare", tooltip="The marked run vs the highlighted one"),
        Binding("w", "warnings", "Warnings", id="history.warnings", show=False,
                tooltip="Run folders that could not be read"),
        Binding("f5", "reload", "Reload", id="history.reload", show=False, tooltip="Read the results folders again"),
        Binding("escape", "back", "Back", id="history.back", tooltip="Back (from the filter: to the table)"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.found: RunList | None = None
        self.shown: list[RunSummary] = []
        self.sort_key: str | None = None
        """A column key, or None for the history's own order (newest first)."""
        self.reverse = False
        self.marked: str | None = None
        self.wide: bool | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        search = Input(placeholder="/ filter: any text, e.g. 'resnet50 cpu invalid'", id="history-filter")
        search.help_text = ("Words to look for in every column, the run id, profile and system name; a run is shown "
                            "when it has all of them. Enter or Escape goes back to the table.")
        yield search
        table = RunTable(id="history", cursor_type="row", zebra_stripes=True)
        table.help_text = ("One row per run. result: the first performance test's metric; verdict: VALID or "
                           "INVALID, or the run's status when it did not complete; * after the model: synthetic "
                           "model or data. Click a column's header to sort by it.")
        yield table
        yield Static("Reading the results folders…", id="history-empty")
        yield Static("", id="history-status")
        yield Static("", id="history-warnings")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#history").display = False
        self.query_one("#history-warnings").display = False
        self.load()

    @work(thread=True, exclusive=True, group="history-list")
    def load(self) -> None:
        try:
            found = history.list_runs()
        except Exception as exc:  # list_runs promises not to raise; if it does, say so and keep the app
            self.app.call_from_thread(self.app.show_error, exc)
            return
        self.app.call_from_thread(self.show_runs, found)

    def show_runs(self, found: RunList) -> None:
        first = self.found is None
        self.found = found
        known = {r.run_dir for r in found.runs}
        if self.marked not in known:
            self.marked = None
        warnings = self.query_one("#history-warnings", Static)
        if found.warnings:
            more = f" (w shows all {len(found.warnings)})" if len(found.warnings) > 1 else ""
            warnings.update(Text(f"warning: {found.warnings[0]}{more}", style="yellow"))
        warnings.display = bool(found.warnings)
        table = self.query_one("#history", DataTable)
        if not found.runs:
            table.display = False
            where = ", ".join(found.roots) or "the results folder"
            self.query_one("#history-empty", Static).update(Text(
                f"No runs yet (looked in {where}).\n\nTo make one: go back (Escape) and follow the choices to "
                "Review, then Launch; or open Profiles (F2) and press r on quickstart; or in a shell: "
                "mlperf-wizard run quickstart"))
            self.query_one("#history-empty").display = True
            self.query_one("#history-status", Static).update("")
            return
        self.query_one("#history-empty").display = False
        table.display = True
        self.fill()
        if first or not isinstance(self.focused, Input):
            table.focus()

    # the table ------------------------------------------------------------------------------------

    def on_resize(self) -> None:
        if self.found is not None and self.found.runs:
            self.fill()  # the columns that fit depend on the width

    def fill(self) -> None:
        """Show the runs that pass the filter, in the chosen order, keeping the highlighted run."""
        if self.found is None:
            return
        table = self.query_one("#history", DataTable)
        current = self.current
        keep = current.run_dir if current else None
        wide = self.size.width >= WIDE_FROM
        words = self.query_one("#history-filter", Input).value.lower().split()
        runs = [r for r in self.found.runs if matches(r, words)] if words else list(self.found.runs)
        self.shown = self.ordered(runs)
        candidates = WIDE_COLUMNS if wide else NARROW_COLUMNS
        cells = {key: [COLUMNS[key][2](r, wide) for r in self.shown] for key in candidates}
        columns = fitted_columns(candidates, {k: COLUMNS[k][0] for k in candidates}, cells, self.size.width,
                                 DROP_FIRST, extra=len(MARK) if self.marked else 0)
        if (wide, columns) != (self.wide, getattr(self, "columns", None)):
            table.clear(columns=True)
            for key in columns:
                table.add_column(COLUMNS[key][0], key=key)
            self.wide, self.columns = wide, columns
        else:
            table.clear()
        for n, r in enumerate(self.shown):
            row = [cells[key][n] for key in columns]
            if r.run_dir == self.marked:
                row[0] = Text(MARK + str(row[0]), style="bold")
            table.add_row(*row, key=r.run_dir)
        dirs = [r.run_dir for r in self.shown]
        if keep in dirs:
            table.move_cursor(row=dirs.index(keep))
        self.show_status()

    def ordered(self, runs: list[RunSummary]) -> list[RunSummary]:
        if self.sort_key is None:
            return list(reversed(runs)) if self.reverse else runs
        label, key, cell = COLUMNS[self.sort_key]
        if key is not None:
            return history.sort_runs(runs, key, reverse=self.reverse)
        return sorted(runs, key=lambda r: str(cell(r, True)).lower(), reverse=self.reverse)

    def show_status(self) -> None:
        total = len(self.found.runs) if self.found else 0
        count = f"{len(self.shown)} of {total} runs" if len(self.shown) != total else f"{total} runs"
        if self.sort_key is None:
            order = "oldest first" if self.reverse else "newest first"
        else:
            order = f"by {COLUMNS[self.sort_key][0]}, {'descending' if self.reverse else 'ascending'}"
        parts = [count, order]
        marked = next((r for r in self.found.runs if r.run_dir == self.marked), None) if self.found else None
        if marked:
            parts.append(f"marked {marked.run_id}")
        if any(r.synthetic for r in self.shown):
            parts.append("* synthetic: not MLPerf results")
        if not self.shown:
            parts.append("no run matches the filter")
        self.query_one("#history-status", Static).update(Text(" · ".join(parts), style="dim"))

    @property
    def current(self) -> RunSummary | None:
        table = self.query_one("#history", DataTable)
        if not self.shown or not 0 <= table.cursor_row < len(self.shown):
            return None
        return self.shown[table.cursor_row]

    def on_input_changed(self, event: Input.Changed) -> None:
        self.fill()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.query_one("#history", DataTable).focus()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_details()

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        key = str(event.column_key.value)
        if key == self.sort_key:
            self.reverse = not self.reverse
        else:
            self.sort_key = key
            self.reverse = (COLUMNS[key][1] or "") in STARTS_REVERSED
        self.fill()

    # actions --------------------------------------------------------------------------------------

    def action_filter(self) -> None:
        self.query_one("#history-filter", Input).focus()

    def action_sort(self) -> None:
        columns = list(getattr(self, "columns", None) or NARROW_COLUMNS)
        current = columns.index(self.sort_key) if self.sort_key in columns else 0
        self.sort_key = columns[(current + 1) % len(columns)]
        self.reverse = (COLUMNS[self.sort_key][1] or "") in STARTS_REVERSED
        self.fill()
        self.notify(f"Sorted by {COLUMNS[self.sort_key][0]}", timeout=2)

    def action_reverse(self) -> None:
        self.reverse = not self.reverse
        self.fill()

    def action_details(self) -> None:
        r = self.current
        if r is None:
            return
        self.load_details(r)

    @work(thread=True, exclusive=True, group="history-detail")
    def load_details(self, r: RunSummary) -> None:
        try:
            detail = history.load_run(r)
            body = details_body(detail)
        except Exception as exc:
            self.app.call_from_thread(self.app.show_error, exc)
            return
        self.app.call_from_thread(self.app.push_screen, Report(f"Run {detail.run_id}", body))

    def action_mark(self) -> None:
        r = self.current
        if r is None:
            return
        self.marked = None if self.marked == r.run_dir else r.run_dir
        self.fill()
        if self.marked:
            self.notify("Marked. Highlight another run and press c to compare.", timeout=3)

    def action_compare(self) -> None:
        b = self.current
        a = next((r for r in self.found.runs if r.run_dir == self.marked), None) if self.found else None
        if b is None:
            return
        if a is None:
            self.notify("Mark a run with m first, then highlight another and press c.", severity="warning")
            return
        if a.run_dir == b.run_dir:
            self.notify("That is the marked run: highlight another one.", severity="warning")
            return
        self.load_comparison(a, b)

    @work(thread=True, exclusive=True, group="history-detail")
    def load_comparison(self, a: RunSummary, b: RunSummary) -> None:
        try:
            comparison = history.compare(history.load_run(a), history.load_run(b))
            body = comparison_body(comparison)
        except Exception as exc:
            self.app.call_from_thread(self.app.show_error, exc)
            return
        self.app.call_from_thread(self.app.push_screen, Report("a (marked) vs b (highlighted)", body))

    def action_warnings(self) -> None:
        found = self.found.warnings if self.found else []
        body = Text("\n".join(f"- {w}" for w in found) or "No warnings: every run folder could be read.")
        self.app.push_screen(Report("Run folders that could not be read", body))

    def action_reload(self) -> None:
        self.load()

    def action_back(self) -> None:
        table = self.query_one("#history", DataTable)
        if isinstance(self.focused, Input) and table.display:
            table.focus()
            return
        self.app.pop_screen()

    def palette_commands(self) -> Iterable[SystemCommand]:
        yield SystemCommand("Run details", "The highlighted run's results and files", self.action_details)
        yield SystemCommand("Filter runs", "Type to filter the runs", self.action_filter)
        yield SystemCommand("Sort runs", "Sort by the next column", self.action_sort)
        yield SystemCommand("Reverse order", "Reverse the order of the runs", self.action_reverse)
        yield SystemCommand("Mark run", "Mark the highlighted run to compare", self.action_mark)
        yield SystemCommand("Compare with marked run", "Side by side: marked vs highlighted", self.action_compare)
        yield SystemCommand("Reload runs", "Read the results folders again", self.action_reload)
        if self.found and self.found.warnings:
            yield SystemCommand("Show warnings", "Run folders that could not be read", self.action_warnings)
