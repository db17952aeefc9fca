"""The Profiles and History screens driven with key presses at 80x24: real profile files, real runs made by
the CLI (tiny synthetic ResNet50 on onnxruntime), fixed machine data through the engine's Detection model."""

from __future__ import annotations

import asyncio
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from harness.detect import Detection
from harness.models.registry import SYNTHETIC_VARIANT_ENV
from harness.paths import HOME_ENV, RESULTS_ENV, SHIPPED_PROFILES, locations
from harness.profile import load_profile, make_profile, save_profile
from wizard.tui.app import WizardApp
from wizard.tui.history import HistoryScreen, Report
from wizard.tui.profiles import ProfilesScreen

SIZE = (80, 24)
MACHINE = {
    "cpu": {"model": "Example CPU", "vendor": "Example", "arch": "x86_64", "physical_cores": 4, "logical_cores": 8,
            "isa": ["avx2"]},
    "memory_total_bytes": 16 * 2**30, "memory_available_bytes": 12 * 2**30, "disk_free_bytes": 50 * 2**30,
    "backends": {"onnxruntime": {"installed": True, "version": "1.20.0", "devices": ["cpu"]},
                 "pytorch": {"installed": False, "install_command": "pip install 'mlperf-wizard[torch]'"}},
}


def new_app() -> WizardApp:
    return WizardApp(detection=Detection.from_dict(MACHINE))


def run(coro):
    return asyncio.run(coro)


async def settle(pilot) -> None:
    """Let thread workers finish and their results reach the screen."""
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def report_text(screen: Report) -> str:
    console = Console(file=io.StringIO(), width=160, color_system=None)
    console.print(screen.body)
    return console.file.getvalue()


def table_rows(screen) -> list[str]:
    table = screen.query_one("DataTable")
    return [" ".join(str(c) for c in table.get_row_at(i)) for i in range(table.row_count)]


# ------------------------------------------------------------------------------------------ profiles


@pytest.fixture
def saved(home: Path) -> Path:
    """Two saved profiles (one with three scenarios and 50 queries) and one that does not load."""
    folder = locations().profiles
    save_profile(make_profile({"scenarios": ["Offline", "Server", "SingleStream"], "test_query_count": 50}),
                 folder / "mine.yaml")
    (folder / "broken.yaml").write_text("version: 1\nmodel: bertt\n", encoding="utf-8")
    return folder


async def open_profiles(pilot):
    await pilot.press("f2")
    await pilot.pause()
    assert isinstance(pilot.app.screen, ProfilesScreen)
    return pilot.app.screen


async def highlight(pilot, screen: ProfilesScreen, name: str, where: str) -> None:
    index = next(i for i, e in enumerate(screen.entries) if e.name == name and e.where == where)
    screen.query_one("DataTable").move_cursor(row=index)
    await pilot.pause()


class TestProfiles:
    def test_lists_saved_shipped_and_broken_ones(self, saved):
        async def scenario():
            async with new_app().run_test(size=SIZE) as pilot:
                screen = await open_profiles(pilot)
                rows = table_rows(screen)
                assert any(r.startswith("mine saved resnet50 onnxruntime cpu Offline, Server") for r in rows)
                assert any(r.startswith("quickstart shipped resnet50") for r in rows)
                assert any(r.startswith("broken saved error") for r in rows)
                await highlight(pilot, screen, "broken", "saved")
                info = str(screen.query_one("#profile-info").render())
                assert "unknown value 'bertt'" in info and "Did you mean 'bert'" in info
                await pilot.press("r")  # a profile that does not load cannot run: the screen stays
                await pilot.pause()
                assert pilot.app.screen is screen and pilot.app.run_screen is None
                assert list(screen.palette_commands())

        run(scenario())

    def test_open_loads_the_profile_and_goes_to_the_choices(self, saved):
        async def scenario():
            app = new_app()
            async with app.run_test(size=SIZE) as pilot:
                screen = await open_profiles(pilot)
                await highlight(pilot, screen, "mine", "saved")
                await pilot.press("enter")
                await pilot.pause()
                assert type(app.screen).__name__ == "ChooseScreen"
                assert app.profile == load_profile(saved / "mine.yaml")
                assert app.profile.test_query_count == 50
                assert app.profile_path == str(saved / "mine.yaml")
                await pilot.press("escape")
                await pilot.pause()
                assert app.screen is screen

        run(scenario())

    def test_duplicate_and_delete(self, saved):
        async def scenario():
            app = new_app()
            async with app.run_test(size=SIZE) as pilot:
                screen = await open_profiles(pilot)
                await highlight(pilot, screen, "quickstart", "shipped")
                await pilot.press("d")
                await pilot.pause()
                await pilot.press("ctrl+a", "ctrl+k", *"qs-copy", "enter")  # replace the suggested name
                await pilot.pause()
                copy = saved / "qs-copy.yaml"
                assert load_profile(copy) == load_profile(SHIPPED_PROFILES / "quickstart.yaml")
                assert screen.current.name == "qs-copy"

                # An existing name asks first; No leaves that profile unchanged.
                before = (saved / "mine.yaml").read_text()
                await pilot.press("d")
                await pilot.pause()
                await pilot.press("ctrl+a", "ctrl+k", *"mine", "enter")
                await pilot.pause()
                assert type(app.screen).__name__ == "Confirm"
                await pilot.press("escape")
                await pilot.pause()
                assert (saved / "mine.yaml").read_text() == before

                # A shipped profile cannot be deleted: it says so and the file stays.
                await highlight(pilot, screen, "quickstart", "shipped")
                await pilot.press("x")
                await pilot.pause()
                assert type(app.screen).__name__ == "Message" and "cannot be" in app.screen.body
                await pilot.press("escape")
                assert (SHIPPED_PROFILES / "quickstart.yaml").is_file()

                # A saved one is deleted after Yes.
                await highlight(pilot, screen, "qs-copy", "saved")
                await pilot.press("delete")
                await pilot.pause()
                assert type(app.screen).__name__ == "Confirm"
                await pilot.press("y")
                await pilot.pause()
                assert not copy.exists()
                assert "qs-copy" not in [e.name for e in screen.entries]

        run(scenario())

    def test_compare_shows_only_the_fields_that_differ(self, saved):
        async def scenario():
            app = new_app()
            async with app.run_test(size=SIZE) as pilot:
                screen = await open_profiles(pilot)
                await highlight(pilot, screen, "mine", "saved")
                await pilot.press("m")
                await highlight(pilot, screen, "quickstart", "shipped")
                await pilot.press("c")
                await pilot.pause()
                assert isinstance(app.screen, Report)
                text = report_text(app.screen)
                assert re.search(r"test_query_count\s+50\s+256", text)
                assert "scenarios" in text and "dataset_source" in text
                assert "backend" not in text and "model " not in text
                await pilot.press("escape")
                await pilot.pause()
                assert app.screen is screen

        run(scenario())


# ------------------------------------------------------------------------------------------- history


@pytest.fixture(scope="module")
def run_home(tmp_path_factory) -> tuple[Path, list[str]]:
    """A home with two real short runs (16, then 32 queries) and one unreadable run folder."""
    root = tmp_path_factory.mktemp("runs-home")
    env = {k: v for k, v in os.environ.items() if k != RESULTS_ENV}
    env.update({HOME_ENV: str(root), SYNTHETIC_VARIANT_ENV: "tiny"})
    ids = []
    for count in (16, 32):
        done = subprocess.run([sys.executable, "-m", "wizard.cli", "run", "--test-query-count", str(count),
                               "--scenario", "Offline"], env=env, capture_output=True, text=True, timeout=180,
                              stdin=subprocess.DEVNULL, cwd=root)
        assert done.returncode == 0, done.stderr
        ids.append(re.search(r"Run (\S+): completed", done.stdout).group(1))
    (root / "results" / "torn-run").mkdir()
    (root / "results" / "torn-run" / "run.json").write_text('{"run_id": ', encoding="utf-8")
    return root, ids


@pytest.fixture
def runs(home: Path, run_home, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    root, ids = run_home
    monkeypatch.setenv(HOME_ENV, str(root))
    return ids


async def open_history(pilot):
    await pilot.press("f3")
    await settle(pilot)
    assert isinstance(pilot.app.screen, HistoryScreen)
    return pilot.app.screen


class TestHistory:
    def test_lists_newest_first_filters_and_shows_warnings(self, runs):
        first, second = runs

        async def scenario():
            async with new_app().run_test(size=SIZE) as pilot:
                screen = await open_history(pilot)
                assert [r.run_id for r in screen.shown] == [second, first]
                rows = table_rows(screen)
                assert all("resnet50*" in r and "onnxruntime cpu Offline" in r and "samples/s VALID" in r
                           for r in rows)
                warning = str(screen.query_one("#history-warnings").render())
                assert "torn-run" in warning and "not valid JSON" in warning

                await pilot.press("slash", *first[:15].split("-")[1], "enter")  # the first run's time
                await pilot.pause()
                assert [r.run_id for r in screen.shown] == [first]
                await pilot.press("slash", "ctrl+a", "ctrl+k", *"no-such-run")
                await pilot.pause()
                assert screen.shown == [] and "no run matches" in str(screen.query_one("#history-status").render())
                await pilot.press("ctrl+a", "ctrl+k", "escape")
                await pilot.pause()
                assert len(screen.shown) == 2 and screen.focused is screen.query_one("DataTable")

                await pilot.press("s")  # next column after date: model
                await pilot.pause()
                assert screen.sort_key == "model"
                await pilot.press("escape")
                await pilot.pause()
                assert not isinstance(pilot.app.screen, HistoryScreen)

        run(scenario())

    def test_details_and_compare(self, runs):
        first, second = runs

        async def scenario():
            app = new_app()
            async with app.run_test(size=SIZE) as pilot:
                screen = await open_history(pilot)
                await pilot.press("enter")
                await settle(pilot)
                assert isinstance(app.screen, Report)
                text = report_text(app.screen)
                assert f"Run {second}" == app.screen.title_text
                assert "Offline performance: VALID" in text and "samples/s" in text
                assert "run.json" in text and str(locations().results / second) in text
                await pilot.press("escape")
                await pilot.pause()

                await pilot.press("m", "down", "c")  # marked: the newer run (a); highlighted: the older (b)
                await settle(pilot)
                assert isinstance(app.screen, Report)
                text = report_text(app.screen)
                assert f"a  {second} (marked)" in text and f"b  {first} (highlighted)" in text
                assert re.search(r"x\d+\.\d{3}", text) and re.search(r"b is [\d.]+x (faster|slower)", text)
                assert re.search(r"test_query_count\s+32\s+16", text)
                assert "Environment differences" in text
                await pilot.press("escape")
                await pilot.pause()
                assert app.screen is screen

        run(scenario())

    def test_more_columns_when_wider_and_header_click_sorts(self, runs):
        async def scenario():
            app = new_app()
            async with app.run_test(size=SIZE) as pilot:
                screen = await open_history(pilot)
                table = screen.query_one("DataTable")
                assert [str(c.label) for c in table.columns.values()][-2:] == ["result", "verdict"]
                await pilot.resize_terminal(140, 30)
                await pilot.pause()
                labels = [str(c.label) for c in table.columns.values()]
                assert {"validity", "status", "prec", "profile"} <= set(labels)
                await pilot.click(table, offset=(2, 0))  # the date header: newest first
                await pilot.pause()
                assert screen.sort_key == "started" and screen.reverse
                await pilot.click(table, offset=(2, 0))
                await pilot.pause()
                assert not screen.reverse and [r.run_id for r in screen.shown] == runs  # again: oldest first
                await pilot.press("escape", "f2")
                await pilot.pause()
                assert app.screen.has_class("-wide") and app.screen.query_one("#profile-preview").display

        run(scenario())

    def test_empty_history_says_how_to_make_a_run(self, home):
        async def scenario():
            async with new_app().run_test(size=SIZE) as pilot:
                screen = await open_history(pilot)
                text = str(screen.query_one("#history-empty").render())
                assert "No runs yet" in text and "mlperf-wizard run quickstart" in text
                assert not screen.query_one("DataTable").display
                await pilot.press("escape")
                await pilot.pause()
                assert not isinstance(pilot.app.screen, HistoryScreen)

        run(scenario())


def test_every_binding_has_an_id_and_a_tooltip():
    for screen in (ProfilesScreen, HistoryScreen, Report):
        for binding in screen.BINDINGS:
            assert binding.id and binding.tooltip, (screen.__name__, binding.key)
