"""Small modal screens: confirm, ask for a name, show a message or an error."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from harness.profile import profile_name_problem


class Confirm(ModalScreen[bool]):
    """Yes/No question; Escape answers No."""

    BINDINGS = [Binding("escape", "answer(False)", "No", id="confirm.no"),
                Binding("y", "answer(True)", "Yes", id="confirm.yes")]

    def __init__(self, question: str, yes: str = "Yes", no: str = "No"):
        super().__init__()
        self.question, self.yes, self.no = question, yes, no

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.question, classes="question")
            with Horizontal(classes="buttons"):
                yield Button(self.yes, variant="error", id="yes")
                yield Button(self.no, variant="primary", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, value: bool) -> None:
        self.dismiss(value)


class AskName(ModalScreen[str | None]):
    """Ask for a profile name; Escape cancels."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="ask.cancel")]

    def __init__(self, title: str, value: str = ""):
        super().__init__()
        self.title_text, self.value = title, value

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text)
            yield Input(self.value, placeholder="letters, digits, '-', '_'", id="name")
            yield Static("", id="name-error", classes="error")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        problem = profile_name_problem(event.value)
        if problem:
            self.query_one("#name-error", Static).update(Text(problem[0].upper() + problem[1:]))
            return
        self.dismiss(event.value.strip())

    def action_cancel(self) -> None:
        self.dismiss(None)


class Message(ModalScreen[None]):
    """A message (or an error: title, message, fix) with one OK button."""

    BINDINGS = [Binding("escape,enter", "close", "Close", id="message.close")]

    def __init__(self, title: str, body: str, *, error: bool = False):
        super().__init__()
        self.title_text, self.body, self.error = title, body, error

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog" + (" error-dialog" if self.error else "")):
            yield Label(self.title_text, classes="dialog-title")
            yield Static(self.body, classes="question")
            yield Button("OK", variant="primary", id="ok")

    def on_mount(self) -> None:
        self.query_one("#ok", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None)

    def action_close(self) -> None:
        self.dismiss(None)
