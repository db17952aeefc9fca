"""The coverage table as a screen: every combination, filterable; picking a runnable row fills the choices."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Static

from harness.coverage import HERE, Verdict, merged_table

from ..render import HERE_STYLE, SEED_MARK
from .tables import fitted_columns

COLUMNS = ("model", "backend", "device", "prec", "here", "seed", "note")
STATUS_WORDS = set(HERE) | {"runnable", "works"}


def matches(v: Verdict, words: list[str]) -> bool:
    """Every word matches the row: a status word (works, unsupported, no-device, ...) the status here
    ("works" and "runnable": rows that run here), any other word the model, backend, device, precision or
    note. The seed's own status is not matched: "bert works" lists what works here, not what the seed says."""
    row = v.row
    text = " ".join((row.model, row.backend, row.device, row.precision, row.note)).lower()
    for w in words:
        if w in ("works", "runnable"):
            if not v.runnable:
                return False
        elif w in STATUS_WORDS:
            if v.here != w:
                return False
        elif w not in text:
            return False
    return True


class CoverageScreen(Screen[dict | None]):
    HELP = ("Every model x backend x device x precision: its status here and in the seed (CM) table. Type to "
            "filter; Enter on a runnable row fills the choices; Escape goes back.")
    BINDINGS = [Binding("escape", "close", "Back", id="coverage.back", tooltip="Back without changing anything"),
                Binding("slash", "filter", "Filter", id="coverage.filter", tooltip="Type to filter the rows")]

    def compose(self) -> ComposeResult:
        yield Header()
        yield Input(placeholder="filter, e.g. 'bert cuda' or 'works'", id="filter")
        yield DataTable(id="coverage", cursor_type="row", zebra_stripes=True)
        yield Static("", id="coverage-reason")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.verdicts = merged_table(self.app.detection)
        self.columns: tuple[str, ...] | None = None
        self.fill("")
        self.query_one("#coverage", DataTable).focus()

    def on_resize(self) -> None:
        if getattr(self, "verdicts", None) is not None:
            self.fill(self.query_one("#filter", Input).value)

    def fill(self, text: str) -> None:
        table = self.query_one("#coverage", DataTable)
        words = text.lower().split()
        p = self.app.profile
        current = (p.model, p.backend, p.device, p.precision)
        self.shown = [v for v in self.verdicts if matches(v, words)]
        rows = []
        cursor = 0
        for v in self.shown:
            row = v.row
            mark = row.key == current
            style = ("reverse " if mark else "") + HERE_STYLE.get(v.here, "")
            cells = [Text(str(c), style="bold" if mark else "") for c in (row.model, row.backend, row.device,
                                                                          row.precision)]
            rows.append(dict(zip(COLUMNS, [*cells, Text(v.here, style=style),
                                           SEED_MARK.get(row.seed_status, row.seed_status), row.note],
                                 strict=True)))
            if mark:
                cursor = len(rows) - 1
        # The note is repeated in full under the table for the highlighted row: it goes first when narrow.
        columns = fitted_columns(COLUMNS, {k: k for k in COLUMNS}, {k: [r[k] for r in rows] for k in COLUMNS},
                                 self.size.width, ("note",))
        if columns != self.columns:
            table.clear(columns=True)
            table.add_columns(*columns)
            self.columns = columns
        else:
            table.clear()
        for v, row in zip(self.shown, rows, strict=True):
            table.add_row(*(row[k] for k in columns), key="|".join(v.row.key))
        if self.shown:
            table.move_cursor(row=cursor)

    def on_input_changed(self, event: Input.Changed) -> None:
        self.fill(event.value)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if 0 <= event.cursor_row < len(self.shown):
            v = self.shown[event.cursor_row]
            extra = f"  install: {v.install_command}" if v.install_command else ""
            seen = f"\n  other machines: {v.elsewhere}" if v.elsewhere else ""
            self.query_one("#coverage-reason", Static).update(
                Text(f"{v.row.label}: {v.here}. {v.reason}{extra}{seen}"))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        v = self.shown[event.cursor_row]
        if not v.runnable:
            self.notify(f"{v.row.label} cannot run here: {v.reason}", severity="warning")
            return
        self.dismiss({"model": v.row.model, "backend": v.row.backend, "device": v.row.device,
                      "precision": v.row.precision})

    def action_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    def action_close(self) -> None:
        self.dismiss(None)
