"""Result screen: each LoadGen test's result in plain words, with the fix; rerun, adjust, save, history."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from harness.profile import Profile
from harness.results import suggestions, summary_lines
from harness.run_record import RunRecord

from .review import SaveProfileMixin

STATUS_STYLE = {"VALID": "bold green", "INVALID": "bold red"}


class ResultScreen(SaveProfileMixin, Screen):
    HELP = ("What each LoadGen test measured, whether it is VALID, and for every unmet rule what to change. "
            "r reruns; a applies the suggested changes and reviews them; s saves the profile; h opens history.")
    BINDINGS = [
        Binding("r", "rerun", "Rerun", id="result.rerun", tooltip="Run the same profile again"),
        Binding("a", "adjust", "Apply fix", id="result.adjust", tooltip="Apply the suggested changes, review"),
        Binding("s", "save", "Save", id="result.save", tooltip="Save this profile"),
        Binding("h", "app.history", "History", id="result.history", tooltip="Past runs"),
        Binding("escape", "back", "Choices", id="result.back", tooltip="Back to the choices"),
    ]

    def __init__(self, record: RunRecord, profile: Profile):
        super().__init__()
        self.record, self.profile = record, profile

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="result"):
            yield Static(self.headline(), id="headline")
            for t in self.record.tests:
                text = Text()
                for i, line in enumerate(summary_lines(t)):
                    text.append("\n" if i else "")
                    if i == 0 and t.validity in STATUS_STYLE:
                        head, _, tail = line.partition(t.validity)
                        text.append(head)
                        text.append(t.validity, style=STATUS_STYLE[t.validity])
                        text.append(tail)
                    else:
                        text.append(line, style="cyan" if line.lstrip().startswith("fix:") else "")
                yield Static(text, classes="test-result")
        yield Footer(compact=True)

    def headline(self) -> str:
        r = self.record
        style = {"completed": "green", "failed": "red", "cancelled": "yellow"}.get(r.status, "")
        text = f"Run {r.run_id}: [{style}]{r.status}[/]\nFiles: {r.run_dir}"
        if r.synthetic:
            text += "\n[b yellow]SYNTHETIC model/data: NOT an MLPerf result.[/]"
        found, blocked = suggestions(r.tests)
        for i, s in enumerate(found):
            text += "\nSuggested " + s.text() + ("  (a applies it)" if i == 0 else "")
        for b in blocked:
            text += f"\nNo change is known to make {b.scenario} VALID."
        return text

    def on_mount(self) -> None:
        self.query_one("#result").focus()

    def action_rerun(self) -> None:
        self.app.launch(self.profile)

    def action_adjust(self) -> None:
        found, _ = suggestions(self.record.tests)
        if not found:
            self.notify("No change is known to fix this result.")
            return
        self.app.profile = self.profile
        self.app.update_profile(found[0].profile_values)
        self.app.goto("review")

    def profile_to_save(self) -> Profile:
        return self.profile

    def action_back(self) -> None:
        self.app.profile = self.profile
        self.app.goto("choose")

    def palette_commands(self):
        yield SystemCommand("Rerun", "Run the same profile again", self.action_rerun)
        yield SystemCommand("Apply suggested fixes", "Apply the suggested changes and review", self.action_adjust)
