"""A profile name is a name, never a path: one rule for `profiles save`, `run --save`, the plain prompts and
the TUI's save box, and nothing is ever written outside the saved-profiles folder (issue 7, item 2)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from fixed_machine import machine
from hypothesis import given, settings
from hypothesis import strategies as st
from test_plain import script, typed, wizard

from harness.detect import detect
from harness.errors import ProfileError
from harness.paths import locations
from harness.profile import Profile, load_profile, profile_name_problem, saved_profile_path
from wizard.tui.app import WizardApp

BAD_NAMES = ["../../x", "../x", "/tmp/abs-profile", "a" * 300, ".hidden", "-flag", "a b", "sub/dir", "é",
             "x\x00y", "", "   "]


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


@given(st.text(max_size=80))
@settings(max_examples=300, deadline=None)
def test_any_name_is_refused_or_lands_directly_in_the_profiles_folder(name: str) -> None:
    try:
        path = saved_profile_path(name)
    except ProfileError as exc:
        assert profile_name_problem(name)
        assert len(exc.message) < 200
        return
    assert profile_name_problem(name) is None
    assert path.parent == locations().profiles
    assert path.suffix == ".yaml" and path.stem and not path.stem.startswith(".")


@pytest.mark.parametrize("name", ["../../x", "/tmp/abs-profile", "a" * 300, "sub/dir"])
def test_profiles_save_refuses_a_path_or_overlong_name(cli, home: Path, tmp_path: Path, name: str) -> None:
    before = files_under(tmp_path)
    done = cli("profiles", "save", name)
    assert done.returncode == 2, done.stderr
    assert "profile name" in done.stderr and "Traceback" not in done.stderr
    assert "internal error" not in done.stderr.lower()
    assert files_under(tmp_path) == before
    assert not Path("/tmp/abs-profile.yaml").exists()


def test_run_save_refuses_a_path(cli, home: Path, tmp_path: Path) -> None:
    before = files_under(tmp_path)
    done = cli("run", "--save", "../x", "--test-query-count", "8")
    assert done.returncode == 2, done.stderr
    assert "is a path" in done.stderr
    assert files_under(tmp_path) == before


def test_a_yaml_suffix_is_dropped_not_doubled(cli, home: Path) -> None:
    done = cli("profiles", "save", "mine.yaml", "--test-query-count", "16")
    assert done.returncode == 0, done.stderr
    assert load_profile(locations().profiles / "mine.yaml").test_query_count == 16
    assert not (locations().profiles / "mine.yaml.yaml").exists()


def test_a_dry_run_saves_nothing_and_says_so(cli, home: Path) -> None:
    done = cli("run", "--dry-run", "--save", "my-resnet")
    assert done.returncode == 0, done.stderr
    assert "Not saved (--dry-run)" in done.stdout
    assert not (locations().profiles / "my-resnet.yaml").exists()


def test_saving_the_same_choices_again_is_not_an_error(cli, home: Path) -> None:
    """The README's `run ... --save my-resnet`, typed twice, works twice; different choices still need --force."""
    first = cli("run", "--test-query-count", "8", "--save", "again")
    assert first.returncode in (0, 3), first.stderr
    path = locations().profiles / "again.yaml"
    saved = path.read_bytes()
    second = cli("run", "--test-query-count", "8", "--save", "again")
    assert second.returncode in (0, 3), second.stderr
    assert "already holds these choices" in second.stdout
    assert path.read_bytes() == saved
    other = cli("run", "--test-query-count", "9", "--save", "again")
    assert other.returncode == 2 and "--force" in other.stderr
    assert path.read_bytes() == saved


def test_the_plain_prompt_asks_again_for_a_bad_name(home: Path) -> None:
    code, text = wizard(script(name=typed("../../escape") + typed("good-name")), detection=detect())
    assert code == 0, text
    assert load_profile(locations().profiles / "good-name.yaml") is not None
    assert not (home.parent / "escape.yaml").exists()
    assert files_under(locations().profiles) == {locations().profiles / "good-name.yaml"}


@pytest.mark.parametrize("name", ["../../escape", "a" * 300, ".hidden"])
def test_the_tui_save_box_refuses_a_bad_name(home: Path, name: str) -> None:
    async def scenario():
        app = WizardApp(detection=machine(), profile=Profile(test_query_count=32))
        async with app.run_test(size=(80, 24)) as pilot:
            for key in ("enter", "n", "n", "s"):
                await pilot.press(key)
            await pilot.pause(0.1)
            await pilot.press(*name, "enter")
            await pilot.pause(0.1)
            assert type(app.screen).__name__ == "AskName"
            error = str(app.screen.query_one("#name-error").render())
            assert "profile name" in error
            await pilot.press("escape")
            await pilot.pause(0.1)

    asyncio.run(scenario())
    folder = locations().profiles
    assert not folder.exists() or not any(folder.iterdir())
    assert not (home.parent / "escape.yaml").exists()
