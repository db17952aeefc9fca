"""Profiles screen: shipped and saved profiles; open, rerun, duplicate, delete, compare two."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from rich import box
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.markup import escape
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from harness.errors import WizardError
from harness.paths import SHIPPED_PROFILES, locations
from harness.profile import FIELDS, Profile, load_profile, profile_files, save_profile

from .history import Report
from .modals import AskName, Confirm, Message

MARK = "» "


@dataclass
class ProfileEntry:
    """One profile file as the screen lists it: loaded, or with the reason it does not load."""

    name: str
    where: str
    """'saved' (yours, in the profiles folder) or 'shipped' (read-only, comes with mlperf-wizard)."""
    path: Path
    profile: Profile | None = None
    error: str | None = None

    @property
    def key(self) -> str:
        return str(self.path)


def read_entry(path: Path, where: str) -> ProfileEntry:
    """Load one profile file; a file that does not load keeps its error instead of being hidden."""
    entry = ProfileEntry(path.stem, where, path)
    try:
        entry.profile = load_profile(path)
    except WizardError as exc:
        entry.error = exc.message + (f"\nFix: {exc.fix}" if exc.fix else "")
    except Exception as exc:  # a file nobody can parse must not take the screen down
        entry.error = f"{type(exc).__name__}: {exc}"
    return entry


def list_profiles() -> list[ProfileEntry]:
    """Saved profiles (yours, used first when a name is in both places), then the shipped ones."""
    return ([read_entry(p, "saved") for p in profile_files(locations().profiles)]
            + [read_entry(p, "shipped") for p in profile_files(SHIPPED_PROFILES)])


def profile_differences(a: Profile, b: Profile) -> list[tuple[str, str, str]]:
    """(field, value in a, value in b) for every field whose values differ, in the fields' order."""
    return [(f.name, show_value(getattr(a, f.name)), show_value(getattr(b, f.name)))
            for f in FIELDS if getattr(a, f.name) != getattr(b, f.name)]


def show_value(value) -> str:
    if value is None:
        return "not set"
    if isinstance(value, (tuple, list)):
        return ", ".join(map(str, value))
    return str(value)


class ProfileTable(DataTable):
    """The profiles table; Enter opens the highlighted profile (shown in the footer)."""

    BINDINGS = [Binding("enter", "select_cursor", "Open", id="profiles.enter",
                        tooltip="Load it into the choices and edit it (also o)")]


class ProfilesScreen(Screen):
    HELP = ("Shipped profiles (read-only, from mlperf-wizard) and your saved ones. Enter or o opens one in the "
            "choices (then Details and Review); r runs it now; d duplicates it under a new name; Delete or x "
            "deletes a saved one; m marks one, then c on another shows what differs. A file that does not load "
            "is listed with its error.")
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]
    BINDINGS = [
        Binding("o", "open", "Open", id="profiles.open", show=False, tooltip="Load it into the choices and edit it"),
        Binding("r", "rerun", "Run", id="profiles.rerun", tooltip="Run this profile now, as it is"),
        Binding("d", "duplicate", "Copy", id="profiles.duplicate", tooltip="Duplicate: save a copy under a new name"),
        Binding("x,delete", "delete", "Delete", id="profiles.delete", tooltip="Delete a saved profile (asks first)"),
        Binding("m", "mark", "Mark", id="profiles.mark", tooltip="Mark this profile to compare with another"),
        Binding("c", "compare", "Diff", id="profiles.compare", tooltip="Compare: the fields that differ between "
                "the marked profile and the highlighted one"),
        Binding("escape", "back", "Back", id="profiles.back", tooltip="Back to the previous screen"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.entries: list[ProfileEntry] = []
        self.marked: str | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="profiles-body"):
            table = ProfileTable(id="profiles", cursor_type="row", zebra_stripes=True)
            table.help_text = ("Your saved profiles, then the shipped ones (bold: saved). The lines below the table "
                               "give the highlighted profile's file and main choices, or why it does not load.")
            yield table
            with VerticalScroll(id="profile-preview"):
                yield Static("", id="profile-yaml")
        yield Static("", id="profile-info")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        table = self.query_one("#profiles", DataTable)
        table.add_column("name", key="name")
        table.add_column("where", key="where")
        table.add_column("model", key="model")
        table.add_column("backend", key="backend")
        table.add_column("dev", key="device")
        table.add_column("scenarios", key="scenarios")
        table.add_column("style", key="style")
        self.reload()
        table.focus()

    # listing --------------------------------------------------------------------------------------

    def reload(self, select: str | None = None) -> None:
        """Read the profile files again and show them, keeping (or moving to) a row."""
        table = self.query_one("#profiles", DataTable)
        current = select or (self.current.key if self.current else None)
        self.entries = list_profiles()
        if self.marked and self.marked not in {e.key for e in self.entries}:
            self.marked = None
        table.clear()
        for e in self.entries:
            name = Text(MARK + e.name if e.key == self.marked else e.name, style="bold" if e.where == "saved" else "")
            where = Text(e.where, style="dim" if e.where == "shipped" else "")
            if e.profile is None:
                table.add_row(name, where, Text("error", style="bold red"), "-", "-", "-", "-", key=e.key)
                continue
            p = e.profile
            table.add_row(name, where, p.model, p.backend, p.device, ", ".join(p.scenarios), p.style, key=e.key)
        keys = [e.key for e in self.entries]
        if current in keys:
            table.move_cursor(row=keys.index(current))
        self.show_info()

    @property
    def current(self) -> ProfileEntry | None:
        table = self.query_one("#profiles", DataTable)
        if not self.entries or not 0 <= table.cursor_row < len(self.entries):
            return None
        return self.entries[table.cursor_row]

    def show_info(self) -> None:
        info = self.query_one("#profile-info", Static)
        preview = self.query_one("#profile-yaml", Static)
        e = self.current
        if e is None:
            info.update(f"No profiles. Save one from the Review screen (s), or with `mlperf-wizard profiles save`."
                        f"\nSaved profiles live in {escape(str(locations().profiles))}.")
            preview.update("")
            return
        lines = [f"[b]{escape(e.name)}[/] ({e.where}): {escape(str(e.path))}"]
        if e.error:
            lines.append(f"[red]{escape(e.error)}[/]")
        else:
            p = e.profile
            lines.append(f"{p.precision}, {p.mode}, {p.test_query_count} queries, target_qps {p.target_qps}, "
                         f"model {p.model_source}, data {p.dataset_source}")
            shadowed = e.where == "shipped" and any(o.where == "saved" and o.name == e.name for o in self.entries)
            lines.append("[yellow]A saved profile has the same name: `mlperf-wizard run "
                         f"{escape(e.name)}` uses the saved one.[/]" if shadowed
                         else f"[dim]Headless: mlperf-wizard run {escape(e.name)}[/]")
        info.update("\n".join(lines))
        try:
            text = e.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            text = f"cannot read the file: {exc}"
        preview.update(Text(text))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.show_info()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open()

    # actions --------------------------------------------------------------------------------------

    def loaded(self, doing: str) -> ProfileEntry | None:
        """The highlighted profile if it loads; otherwise say why ``doing`` cannot be done."""
        e = self.current
        if e is None:
            self.notify("No profile here.", severity="warning")
            return None
        if e.profile is None:
            self.notify(f"Cannot {doing} '{e.name}': it does not load. Fix the file or delete it.",
                        severity="error")
            return None
        return e

    def action_open(self) -> None:
        e = self.loaded("open")
        if e is None:
            return
        self.app.profile = e.profile
        self.app.profile_path = str(e.path)
        self.app.goto("choose")

    def action_rerun(self) -> None:
        e = self.loaded("run")
        if e is None:
            return
        self.app.profile = e.profile
        self.app.profile_path = str(e.path)
        self.app.launch(e.profile)

    def action_duplicate(self) -> None:
        e = self.loaded("duplicate")
        if e is None:
            return
        taken = {o.name for o in self.entries}
        suggestion = next(f"{e.name}-{i}" for i in range(1, len(taken) + 2) if f"{e.name}-{i}" not in taken)

        def named(name: str | None) -> None:
            if not name:
                return
            path = locations().profiles / f"{name}.yaml"
            saved = next((o for o in self.entries if o.where == "saved" and o.name == name), None)
            shipped = any(o.where == "shipped" and o.name == name for o in self.entries)
            if saved is not None:
                question = f"A saved profile named '{name}' exists. Replace it with a copy of '{e.name}'?"
                self.app.push_screen(Confirm(question, yes="Replace", no="Keep it"),
                                     lambda yes: yes and self.write_copy(e, saved.path, True))
            elif shipped:
                question = (f"'{name}' is the name of a shipped profile. Save the copy under that name? "
                            f"`mlperf-wizard run {name}` will then use your copy.")
                self.app.push_screen(Confirm(question, yes="Save", no="Cancel"),
                                     lambda yes: yes and self.write_copy(e, path, False))
            else:
                self.write_copy(e, path, False)

        self.app.push_screen(AskName(f"Duplicate '{e.name}' as:", suggestion), named)

    def write_copy(self, e: ProfileEntry, path: Path, overwrite: bool) -> None:
        try:
            save_profile(e.profile, path, overwrite=overwrite)
        except WizardError as exc:
            self.app.show_error(exc)
            return
        self.notify(f"Saved {path}")
        self.reload(select=str(path))

    def action_delete(self) -> None:
        e = self.current
        if e is None:
            return
        if e.where == "shipped":
            self.app.push_screen(Message("Shipped profile", f"'{e.name}' comes with mlperf-wizard and cannot be "
                                         "deleted.\nDuplicate it (d) to have a copy of your own to change or "
                                         "delete."))
            return

        def answered(yes: bool | None) -> None:
            if not yes:
                return
            try:
                e.path.unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                self.app.show_error(WizardError(f"Cannot delete {e.path}: {exc.strerror or exc}.",
                                                "check the folder's permissions."))
                return
            self.notify(f"Deleted {e.path}")
            self.reload()

        self.app.push_screen(Confirm(f"Delete the saved profile '{e.name}'?\n{e.path}", yes="Delete",
                                     no="Keep it"), answered)

    def action_mark(self) -> None:
        e = self.loaded("compare")
        if e is None:
            return
        self.marked = None if self.marked == e.key else e.key
        self.reload()
        if self.marked:
            self.notify(f"Marked '{e.name}'. Highlight another profile and press c to compare.")

    def action_compare(self) -> None:
        b = self.loaded("compare")
        if b is None:
            return
        a = next((e for e in self.entries if e.key == self.marked), None)
        if a is None:
            self.notify("Mark a profile with m first, then highlight another and press c.", severity="warning")
            return
        if a.key == b.key:
            self.notify("That is the marked profile: highlight another one.", severity="warning")
            return
        diffs = profile_differences(a.profile, b.profile)
        title = f"{a.name} ({a.where}) vs {b.name} ({b.where})"
        if not diffs:
            self.app.push_screen(Report(title, Text("The two profiles make the same choices.")))
            return
        table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, expand=True)
        table.add_column("field", no_wrap=True, style="bold")
        table.add_column(a.name, overflow="fold", ratio=1)
        table.add_column(b.name, overflow="fold", ratio=1)
        for name, va, vb in diffs:
            table.add_row(name, va, vb)
        self.app.push_screen(Report(title, table, f"{len(diffs)} of {len(FIELDS)} fields differ."))

    def action_back(self) -> None:
        self.app.pop_screen()

    def palette_commands(self) -> Iterable[SystemCommand]:
        name = self.current.name if self.current else "the profile"
        yield SystemCommand(f"Open {name}", "Load it into the choices and edit it", self.action_open)
        yield SystemCommand(f"Run {name}", "Run this profile now, as it is", self.action_rerun)
        yield SystemCommand(f"Duplicate {name}", "Save a copy under a new name", self.action_duplicate)
        yield SystemCommand(f"Delete {name}", "Delete a saved profile (asks first)", self.action_delete)
        yield SystemCommand("Mark for compare", "Mark the highlighted profile", self.action_mark)
        yield SystemCommand("Compare with marked", "Fields that differ: marked vs highlighted", self.action_compare)

