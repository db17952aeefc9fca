"""Choose screen: the benchmark choices, each option annotated from the coverage table and detection."""

from __future__ import annotations

from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import ContentSwitcher, Footer, Header, Input, OptionList, SelectionList, Static
from textual.widgets.option_list import Option
from textual.widgets.selection_list import Selection

from harness import guidance
from harness.coverage import assess
from harness.errors import ProfileError
from harness.profile import FIELD_BY_NAME, coerce

from ..render import HERE_STYLE

FIELDS_HERE = ("model", "backend", "device", "precision", "scenarios", "mode", "style", "test_query_count")


def value_text(profile, name: str) -> str:
    value = getattr(profile, name)
    return ", ".join(value) if isinstance(value, tuple) else str(value)


def verdict_text(app) -> str:
    p = app.profile
    v = assess(p.model, p.backend, p.device, p.precision, app.detection)
    style = HERE_STYLE.get(v.here, "")
    combo = f"{p.model} + {p.backend} + {p.device} + {p.precision}"
    extra = f": {v.reason}" if v.reason and v.here not in ("works",) else ""
    return f"{combo}: [{style}]{v.here}[/]{extra}"


class ChooseScreen(Screen):
    HELP = ("Pick each choice on the left (Enter), then its value on the right (Enter). Options that cannot "
            "run here are greyed out with the reason. n: next, c: the whole coverage table, Escape: back.")
    BINDINGS = [
        Binding("n", "next", "Next: details", id="choose.next", tooltip="Model/data sources, targets, submission"),
        Binding("escape", "back", "Back", id="choose.back", tooltip="Back to the previous screen"),
        Binding("c", "coverage", "Coverage table", id="choose.coverage", tooltip="Every combination and its status"),
        Binding("l", "launch", "Launch", id="choose.launch", tooltip="Review and launch with these choices"),
    ]

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="choose"):
            yield OptionList(id="fields")
            with Vertical(id="right"):
                with ContentSwitcher(initial="options", id="editor"):
                    yield OptionList(id="options")
                    yield SelectionList[str](id="scenario-list")
                    yield Input(id="number", type="integer")
                yield Static("", id="field-help")
        yield Static("", id="verdict")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.refresh_fields()
        fields = self.query_one("#fields", OptionList)
        fields.highlighted = 0
        fields.focus()

    def on_screen_resume(self) -> None:
        """Back from a later screen: the choices may have changed there (a suggestion applied, a profile
        opened)."""
        self.refresh_fields()
        if getattr(self, "editing", None):
            self.show_editor(self.editing)

    # rendering ------------------------------------------------------------------------------------

    def refresh_fields(self) -> None:
        fields = self.query_one("#fields", OptionList)
        keep = fields.highlighted
        fields.clear_options()
        for name in FIELDS_HERE:
            fields.add_option(Option(f"{FIELD_BY_NAME[name].label:<16} [b]{value_text(self.app.profile, name)}[/]",
                                     id=name))
        if keep is not None:
            fields.highlighted = keep
        self.query_one("#verdict", Static).update(verdict_text(self.app))

    def show_editor(self, name: str) -> None:
        f = FIELD_BY_NAME[name]
        switcher = self.query_one("#editor", ContentSwitcher)
        help_line = f.help
        if name == "scenarios":
            sel = self.query_one("#scenario-list", SelectionList)
            sel.clear_options()
            for opt in guidance.options(name, self.app.profile, self.app.detection):
                label = opt.value + (f"  [dim]({opt.reason})[/]" if opt.reason else "")
                sel.add_option(Selection(label, opt.value, opt.value in self.app.profile.scenarios,
                                         disabled=not opt.enabled))
            sel.highlighted = 0
            switcher.current = "scenario-list"
            help_line += " Space toggles; Escape returns to the list."
        elif f.kind in ("choice",):
            options = self.query_one("#options", OptionList)
            options.clear_options()
            current = getattr(self.app.profile, name)
            highlight = 0
            for i, opt in enumerate(guidance.options(name, self.app.profile, self.app.detection)):
                style = HERE_STYLE.get(opt.status, "")
                status = "" if opt.status == "ok" else f" [{style}]{opt.status}[/]"
                reason = f"\n  [dim]{opt.reason}[/]" if opt.reason else ""
                install = f"\n  [cyan]{opt.install_command}[/]" if opt.install_command and not opt.enabled else ""
                options.add_option(Option(f"{opt.value}{status}{reason}{install}", id=opt.value,
                                          disabled=not opt.enabled))
                if opt.value == current:
                    highlight = i
            options.highlighted = highlight
            switcher.current = "options"
        else:
            number = self.query_one("#number", Input)
            number.value = str(getattr(self.app.profile, name))
            switcher.current = "number"
            help_line += " Enter to apply."
        self.editing = name
        help_widget = self.query_one("#field-help", Static)
        help_widget.update(f"[dim]{help_line}[/]")

    # events ---------------------------------------------------------------------------------------

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        # refresh_fields re-highlights the same field after every change: rebuilding its editor then
        # would reset the scenario list's cursor under the user's keys.
        if event.option_list.id == "fields" and event.option.id and event.option.id != getattr(self, "editing", None):
            self.show_editor(event.option.id)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option_list.id == "fields":
            editor = self.query_one("#editor", ContentSwitcher).current
            self.query_one(f"#{editor}").focus()
            return
        self.apply({self.editing: event.option.id})
        self.next_field()

    def on_selection_list_selected_changed(self, event: SelectionList.SelectedChanged) -> None:
        chosen = [s for s in guidance.options("scenarios", self.app.profile, self.app.detection)
                  if s.value in event.selection_list.selected]
        if not chosen:
            self.query_one("#field-help", Static).update("[red]Keep at least one scenario.[/]")
            for value in self.app.profile.scenarios:
                event.selection_list.select(value)
            return
        self.apply({"scenarios": [s.value for s in chosen]})

    def on_input_submitted(self, event: Input.Submitted) -> None:
        try:
            coerce(FIELD_BY_NAME[self.editing], event.value)
        except ProfileError as exc:
            self.query_one("#field-help", Static).update(f"[red]{exc.message}[/]\n{exc.fix or ''}")
            return
        self.apply({self.editing: event.value})
        self.next_field()

    def apply(self, values: dict) -> None:
        try:
            self.app.update_profile(values)
        except ProfileError as exc:
            self.app.show_error(exc)
            return
        self.refresh_fields()

    def next_field(self) -> None:
        fields = self.query_one("#fields", OptionList)
        fields.focus()
        if fields.highlighted is not None and fields.highlighted < len(FIELDS_HERE) - 1:
            fields.highlighted += 1

    # actions --------------------------------------------------------------------------------------

    def action_back(self) -> None:
        if self.focused is not None and self.focused.id != "fields":
            self.query_one("#fields").focus()
        else:
            self.app.pop_screen()

    def action_next(self) -> None:
        self.app.goto("details")

    def action_launch(self) -> None:
        self.app.goto("review")

    def action_coverage(self) -> None:
        from .coverage_view import CoverageScreen

        def picked(values: dict | None) -> None:
            if values:
                self.apply(values)
                self.show_editor(self.editing)

        self.app.push_screen(CoverageScreen(), picked)

    def palette_commands(self):
        yield SystemCommand("Coverage table", "Every model/backend/device/precision and its status",
                            self.action_coverage)
        yield SystemCommand("Next: details", "Model and data sources, targets, submission", self.action_next)
