"""The coverage table as a screen: every combination, filterable; picking a runnable row fills the choices."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Static

from harness.coverage import merged_table

from ..render import HERE_STYLE, SEED_MARK


class CoverageScreen(Screen[dict | None]):
    HELP = ("Every model x backend x device x precision: its status here and in the seed (CM) table. Type to "
            "filter; Enter on a runnable row fills the choices; Escape goes back.")
    BINDINGS = [Binding("escape", "close", "Back", id="coverage.back", tooltip="Back without changing anything"),
                Binding("slash", "filter", "Filter", id="coverage.filter", tooltip="Type to filter the rows")]

    def compose(self) -> ComposeResult:
        yield Header()
        yield Input(placeholder="filter, e.g. 'bert cuda' or 'works'", id="filter")
        table = DataTable(id="coverage", cursor_type="row", zebra_stripes=True)
        table.add_columns("model", "backend", "device", "prec", "here", "seed", "note")
        yield table
        yield Static("", id="coverage-reason")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.verdicts = merged_table(self.app.detection)
        self.fill("")
        self.query_one("#coverage", DataTable).focus()

    def fill(self, text: str) -> None:
        table = self.query_one("#coverage", DataTable)
        table.clear()
        words = text.lower().split()
        p = self.app.profile
        current = (p.model, p.backend, p.device, p.precision)
        cursor = 0
        self.shown = []
        for v in self.verdicts:
            row = v.row
            cells = (row.model, row.backend, row.device, row.precision, v.here, row.seed_status, row.note)
            if words and not all(any(w in str(c).lower() for c in cells) for w in words):
                continue
            mark = row.key == current
            style = ("reverse " if mark else "") + HERE_STYLE.get(v.here, "")
            table.add_row(*(Text(str(c), style="bold" if mark else "") for c in cells[:4]),
                          Text(v.here, style=style), SEED_MARK.get(row.seed_status, row.seed_status), row.note,
                          key="|".join(row.key))
            if mark:
                cursor = len(self.shown)
            self.shown.append(v)
        if self.shown:
            table.move_cursor(row=cursor)

    def on_input_changed(self, event: Input.Changed) -> None:
        self.fill(event.value)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if 0 <= event.cursor_row < len(self.shown):
            v = self.shown[event.cursor_row]
            extra = f"  install: {v.install_command}" if v.install_command else ""
            self.query_one("#coverage-reason", Static).update(f"{v.row.label}: {v.here}. {v.reason}{extra}")

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
