"""Review screen: the plan, the equivalent commands, save as profile, Launch."""

from __future__ import annotations

from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from harness.errors import WizardError
from harness.mlcr import mlcr_command
from harness.plan import prepare
from harness.profile import equivalent_command, save_profile, saved_profile_path

from .modals import AskName, Confirm


class SaveProfileMixin:
    """Save-as-profile for any screen: ask a name, confirm before replacing, save atomically."""

    def profile_to_save(self):
        return self.app.profile

    def action_save(self) -> None:
        def named(name: str | None) -> None:
            if not name:
                return
            path = saved_profile_path(name)
            if path.exists():
                self.app.push_screen(Confirm(f"A profile named '{path.stem}' exists. Replace it?", yes="Replace",
                                             no="Keep it"), lambda yes: yes and self.save(path, True))
            else:
                self.save(path, False)

        self.app.push_screen(AskName("Save these choices as profile:"), named)

    def save(self, path, overwrite: bool) -> None:
        try:
            save_profile(self.profile_to_save(), path, overwrite=overwrite)
        except WizardError as exc:
            self.app.show_error(exc)
            return
        self.app.profile_path = str(path)
        self.notify(f"Saved {path}")


class ReviewScreen(SaveProfileMixin, Screen):
    HELP = ("The plan: what will be downloaded or built, each LoadGen test and its target. l or Enter launches; "
            "s saves the choices as a profile; y copies the equivalent command.")
    BINDINGS = [
        Binding("l,enter", "launch", "Launch", id="review.launch", tooltip="Start the LoadGen tests"),
        Binding("s", "save", "Save profile", id="review.save", tooltip="Save these choices as a YAML profile"),
        Binding("y", "copy", "Copy command", id="review.copy", tooltip="Copy the equivalent command"),
        Binding("escape", "back", "Back", id="review.back", tooltip="Back to the details"),
    ]

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="review"):
            yield Static("", id="plan")
            yield Static("", id="command")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.show_plan()

    def on_screen_resume(self) -> None:
        """Back here after a run or a change: the plan is made again (a target remembered by the run,
        a changed choice), never shown stale."""
        self.show_plan()

    def show_plan(self) -> None:
        profile = self.app.profile
        try:
            plan = prepare(profile, self.app.detection)
        except WizardError as exc:
            self.plan_ok = False
            self.query_one("#plan", Static).update(f"[red]{exc.message}[/]\nFix: {exc.fix or ''}")
            return
        self.plan_ok = True
        self.plan = plan
        """What Launch runs: the plan shown, not one made again (a target remembered meanwhile)."""
        self.command = equivalent_command(profile)
        self.query_one("#plan", Static).update(plan.describe().replace("[", r"\["))
        self.query_one("#command", Static).update(
            "[b]Equivalent command[/] (y copies it):\n" + self.command.replace("[", r"\[")
            + ("   (all defaults)" if self.command == "mlperf-wizard run" else "")
            + "\n\n[b]Closest mlcr command[/] (MLCommons automation docs):\n"
            + mlcr_command(profile).replace("[", r"\["))
        self.query_one("#review").focus()

    def action_launch(self) -> None:
        if not getattr(self, "plan_ok", False):
            self.notify("Fix the problem shown first.", severity="error")
            return
        self.app.launch(self.plan)

    def action_copy(self) -> None:
        if getattr(self, "command", None):
            self.app.copy_to_clipboard(self.command)
            self.notify("Command copied.")

    def action_back(self) -> None:
        self.app.pop_screen()

    def palette_commands(self):
        yield SystemCommand("Launch", "Start the LoadGen tests", self.action_launch)
        yield SystemCommand("Save profile", "Save these choices as a YAML profile", self.action_save)
        yield SystemCommand("Copy command", "Copy the equivalent mlperf-wizard command", self.action_copy)
