"""Details screen: model and data sources, targets, run limits, submission fields — generated from the
profile's fields (the same metadata the CLI flags come from), validated as the user types."""

from __future__ import annotations

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, Label, Select, Static

from harness import guidance
from harness.errors import ProfileError
from harness.profile import AUTO, FIELDS, allowed_text, coerce

from .choose import FIELDS_HERE, verdict_text

GROUP_TITLES = {"data": "Model and data", "run": "Targets and limits", "submission": "Results and submission"}
SKIP = set(FIELDS_HERE) | {"implementation"}


def _initial(value) -> str:
    return "" if value is None else (f"{value:g}" if isinstance(value, float) else str(value))


class DetailsScreen(Screen):
    HELP = ("Where the model and data come from, LoadGen targets (auto measures the SUT first or reuses what it "
            "sustained before), and the names a submission needs. Values are checked as you type. "
            "n (outside a text box) or Ctrl+N: next; Escape: back.")
    BINDINGS = [
        Binding("n,ctrl+n", "next", "Next: review", id="details.next", tooltip="Review the plan and launch"),
        Binding("escape", "back", "Back", id="details.back", tooltip="Back to the choices"),
    ]

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="details"):
            group = None
            for f in FIELDS:
                if f.name in SKIP:
                    continue
                if f.group != group:
                    group = f.group
                    yield Static(f"[b]{GROUP_TITLES.get(group, group)}[/]", classes="group-title")
                value = getattr(self.app.profile, f.name)
                with Horizontal(classes="field-row"):
                    yield Label(f.label, classes="field-label")
                    if f.kind == "choice":
                        options = guidance.options(f.name, self.app.profile, self.app.detection)
                        widget = Select([(o.value if o.enabled else f"{o.value} (not here: {o.reason})", o.value)
                                         for o in options], value=value, allow_blank=False,
                                        id=f"f-{f.name}", compact=True)
                    else:
                        placeholder = AUTO if f.kind == "number_or_auto" else ("not set" if f.optional else "")
                        widget = Input(_initial(value), placeholder=placeholder, id=f"f-{f.name}", compact=True)
                    widget.tooltip = f"{f.help} Allowed: {allowed_text(f)}."
                    widget.help_text = widget.tooltip
                    yield widget
                error = Static("", id=f"e-{f.name}", classes="field-error")
                error.display = False
                yield error
        yield Static(verdict_text(self.app), id="verdict")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        # Start on the form, not in a text box, so single-key bindings (n) work at once.
        self.query_one("#details").focus()

    def on_screen_resume(self) -> None:
        """Back from a later screen: show the choices as they are now, without treating that as typing."""
        with self.prevent(Input.Changed, Select.Changed):
            for f in FIELDS:
                if f.name in SKIP or f.name in self.invalid:
                    continue
                value = getattr(self.app.profile, f.name)
                widget = self.query_one(f"#f-{f.name}")
                if isinstance(widget, Select):
                    widget.value = value
                else:
                    widget.value = _initial(value)
        self.query_one("#verdict", Static).update(verdict_text(self.app))

    def _field(self, widget_id: str | None) -> str | None:
        return widget_id[2:] if widget_id and widget_id.startswith("f-") else None

    def on_input_changed(self, event: Input.Changed) -> None:
        name = self._field(event.input.id)
        if name:
            self.set_value(name, event.value)

    def on_select_changed(self, event: Select.Changed) -> None:
        name = self._field(event.select.id)
        if name and event.value is not Select.BLANK:
            self.set_value(name, event.value)

    def set_value(self, name: str, raw: str) -> None:
        from harness.profile import FIELD_BY_NAME

        f = FIELD_BY_NAME[name]
        text = raw.strip() if isinstance(raw, str) else raw
        if text == "" and f.kind == "number_or_auto":
            text = AUTO
        error = self.query_one(f"#e-{name}", Static)
        refused = {o.value: o.reason for o in guidance.options(name, self.app.profile, self.app.detection)
                   if not o.enabled} if f.kind == "choice" else {}
        try:
            if text in refused:
                raise ProfileError(f"{f.name}: '{text}' cannot be used here: {refused[text]}.",
                                   "choose another value.")
            coerce(f, None if text == "" else text)
            self.app.update_profile({name: None if text == "" else text})
        except ProfileError as exc:
            error.update(f"[red]{escape(exc.message)}[/] {escape(exc.fix or '')}")
            error.display = True
            self.invalid.add(name)
            return
        error.update("")
        error.display = False
        self.invalid.discard(name)
        # A value that was refused only because of another field (model_source local without a path)
        # may be fine now: try the refused ones again.
        for other in sorted(self.invalid):
            widget = self.query_one(f"#f-{other}")
            self.invalid.discard(other)
            self.set_value(other, widget.value)

    @property
    def invalid(self) -> set[str]:
        if not hasattr(self, "_invalid"):
            self._invalid: set[str] = set()
        return self._invalid

    def action_next(self) -> None:
        if self.invalid:
            self.notify(f"Fix {', '.join(sorted(self.invalid))} first.", severity="error")
            return
        self.app.goto("review")

    def action_back(self) -> None:
        self.app.pop_screen()
