"""The Textual application: shared state (profile, detection), navigation, help, palette and quit."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from pathlib import Path

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from harness import guidance
from harness.detect import Detection, detect
from harness.errors import WizardError
from harness.plan import Plan
from harness.profile import Profile
from harness.runner import cancel_on_signals

from .modals import Confirm, Message

Detector = Callable[[bool], Detection]


def _detect(refresh: bool = False) -> Detection:
    return detect(refresh=refresh)


class WizardApp(App[int]):
    """mlperf-wizard's TUI. ``detector`` and ``detection`` let tests inject fixed machine data."""

    CSS_PATH = "wizard.tcss"
    TITLE = "mlperf-wizard"
    SUB_TITLE = "MLPerf Inference, guided"
    BINDINGS = [
        Binding("f1", "help", "Help", id="app.help", tooltip="Help for the focused control"),
        Binding("ctrl+q", "quit", "Quit", id="app.quit", tooltip="Quit (asks first during a run)"),
        Binding("f2", "profiles", "Profiles", id="app.profiles", show=False, tooltip="Saved and shipped profiles"),
        Binding("f3", "history", "History", id="app.history", show=False, tooltip="Past runs"),
    ]

    def __init__(self, *, profile: Profile | None = None, profile_path: str | None = None,
                 detector: Detector | None = None, detection: Detection | None = None):
        super().__init__()
        self.detector: Detector = detector or _detect
        self.detection: Detection | None = detection
        self.profile = profile or Profile()
        self.profile_path = profile_path
        self.run_screen = None
        """The Run screen while a run is in progress (quit must cancel it first)."""

    def on_mount(self) -> None:
        from .system import SystemScreen

        self.push_screen(SystemScreen())

    # state ----------------------------------------------------------------------------------------

    def update_profile(self, values: dict) -> Profile:
        """Apply raw values (validated by the profile model); keep the coverage choices runnable."""
        profile = self.profile.with_values(values)
        if any(k in guidance.ORDER or k == "scenarios" for k in values):
            profile = guidance.nearest_runnable(profile, self.detection)
        self.profile = profile
        return profile

    def show_error(self, exc: BaseException) -> None:
        """The one place errors are shown: a WizardError's message and fix, anything else as internal."""
        if isinstance(exc, WizardError):
            body = exc.message + (f"\n\nFix: {exc.fix}" if exc.fix else "")
            self.push_screen(Message("Cannot do that", body, error=True))
        else:
            self.log.error(repr(exc))
            self.push_screen(Message("Internal error", f"{type(exc).__name__}: {exc}\n\nPlease report it.",
                                     error=True))

    # navigation -----------------------------------------------------------------------------------

    def goto(self, name: str) -> None:
        """Open one of the flow's screens (System, Choose, Details, Review).

        The flow is one path, never a pile: when the screen is already open below, the screens above it
        are closed and it comes back showing the current choices (each flow screen re-reads the profile
        when it resumes); otherwise it opens on top. Escape then walks back through the flow, not
        through stale copies of it.
        """
        from .choose import ChooseScreen
        from .details import DetailsScreen
        from .review import ReviewScreen
        from .system import SystemScreen

        factories: dict[str, Callable[[], Screen]] = {
            "system": SystemScreen, "choose": ChooseScreen, "details": DetailsScreen, "review": ReviewScreen}
        cls = factories[name]
        open_below = next((s for s in reversed(self.screen_stack) if type(s) is cls), None)
        if open_below is None:
            self.push_screen(cls())
            return
        while self.screen is not open_below:
            self.pop_screen()

    def launch(self, profile: Profile | Plan) -> None:
        """Start a run on the Run screen: of the plan the user reviewed, or of a profile prepared now (it
        replaces a result shown on top: a rerun's result is not stacked on the previous one)."""
        from .result import ResultScreen
        from .run import RunScreen

        if self.run_screen is not None:
            self.notify("A run is already in progress.", severity="warning")
            return
        try:
            screen = RunScreen(profile, self.detection)
        except WizardError as exc:
            self.show_error(exc)
            return
        while isinstance(self.screen, ResultScreen):
            self.pop_screen()
        self.push_screen(screen)

    def action_profiles(self) -> None:
        from .profiles import ProfilesScreen

        if not isinstance(self.screen, ProfilesScreen):  # F2 on the Profiles screen opens no second one
            self.push_screen(ProfilesScreen())

    def action_history(self) -> None:
        from .history import HistoryScreen

        if not isinstance(self.screen, HistoryScreen):
            self.push_screen(HistoryScreen())

    def action_help(self) -> None:
        focused = self.focused
        text = getattr(focused, "help_text", None) or (str(focused.tooltip) if focused and focused.tooltip else None)
        screen_help = getattr(self.screen, "HELP", "")
        parts = [text] + ([screen_help] if screen_help != text else [])
        body = "\n\n".join(t for t in parts if t) or "No help for this control."
        self.push_screen(Message("Help", body))

    async def action_quit(self) -> None:
        if self.run_screen is None:
            self.exit(0)
            return

        def answered(yes: bool | None) -> None:
            if yes and self.run_screen is not None:
                self.run_screen.cancel_run(then_exit=True)

        self.push_screen(Confirm("A LoadGen test is running. Cancel it and quit?\nIts partial logs are kept.",
                                 yes="Cancel run and quit", no="Keep running"), answered)

    def end_on_signal(self, signum: int) -> None:
        """SIGTERM or SIGHUP: the running test was already cancelled (harness.runner.cancel_on_signals);
        quit once the run is recorded, or now when none runs."""
        if self.run_screen is not None:
            self.run_screen.cancel_run(then_exit=True)
        else:
            self.exit(128 + signum)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        commands = getattr(screen, "palette_commands", None)
        if commands:
            yield from commands()
        yield SystemCommand("Profiles", "Open, rerun, duplicate, delete or compare profiles", self.action_profiles)
        yield SystemCommand("History", "Past runs: sort, filter, compare", self.action_history)


def run_tui(profile_path: str | None = None) -> int:
    """Entry point used by ``mlperf-wizard`` with no command."""
    from harness.profile import load_profile

    profile = load_profile(Path(profile_path)) if profile_path else None
    app = WizardApp(profile=profile, profile_path=profile_path)
    with cancel_on_signals(lambda signum: asyncio.get_running_loop().call_soon_threadsafe(app.end_on_signal, signum)):
        return app.run() or 0
