"""The Textual wizard driven with key presses (Textual's pilot): real detection data injected through the
engine's Detection model, real LoadGen runs of the tiny synthetic model, real profile files."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from fixed_machine import machine

from harness.paths import locations
from harness.plan import make_plan
from harness.profile import Profile, load_profile
from wizard.tui.app import WizardApp


def screen_name(app) -> str:
    return type(app.screen).__name__


async def wait_for(pilot, predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out; on {screen_name(pilot.app)}")
        await pilot.pause(0.1)
    await pilot.pause(0.2)  # let the new screen finish mounting before the test moves on


async def launch(pilot, app) -> None:
    """Launch the app's profile once the first screen is up (as a user would, after it appears)."""
    await wait_for(pilot, lambda: screen_name(app) == "SystemScreen" and app.detection is not None)
    await pilot.pause(0.1)
    app.launch(app.profile)
    await wait_for(pilot, lambda: screen_name(app) == "RunScreen")


async def to_review(pilot, app):
    """System -> Choose -> Details -> Review by keys; the Review screen."""
    for key in ("enter", "n", "n"):
        await pilot.press(key)
        await pilot.pause(0.05)
    assert screen_name(app) == "ReviewScreen"
    return app.screen


def run(coro):
    return asyncio.run(coro)


def test_defaults_to_a_valid_result_in_few_key_presses(home):
    """From the defaults, a short synthetic ResNet50 Offline run is launched with at most 12 key presses."""
    presses = ["enter", "n", "n", "l"]  # System -> Choose -> Details -> Review -> Launch

    async def scenario():
        app = WizardApp(detection=machine())
        async with app.run_test(size=(80, 24)) as pilot:
            assert screen_name(app) == "SystemScreen"
            for key in presses:
                await pilot.press(key)
                await pilot.pause(0.05)
            assert screen_name(app) == "RunScreen"
            await wait_for(pilot, lambda: screen_name(app) == "ResultScreen")
            record = app.screen.record
            assert record.status == "completed"
            test = record.tests[0]
            assert (test.scenario, test.mode, test.validity) == ("Offline", "performance", "VALID")
            assert test.value and test.value > 0 and test.unit == "samples/s"
            text = " ".join(str(w.render()) for w in app.screen.query("Static"))
            assert "VALID" in text and "samples/s" in text and "NOT an MLPerf result" in text

    run(scenario())
    assert len(presses) <= 12


def test_run_screen_updates_while_running(home):
    """The live view changes during a run: progress events reach the stats line and the plot."""

    async def scenario():
        app = WizardApp(detection=machine(), profile=Profile(test_query_count=3000))
        async with app.run_test(size=(100, 30)) as pilot:
            await launch(pilot, app)
            screen = app.screen
            await wait_for(pilot, lambda: screen.latest is not None, timeout=60)
            seen = set()
            while screen_name(app) == "RunScreen" and len(seen) < 2:
                seen.add(str(app.screen.query_one("#stats").render()))
                await pilot.pause(0.2)
            assert len(seen) >= 2, "the stats line never changed during the run"
            await wait_for(pilot, lambda: screen_name(app) == "ResultScreen")

    run(scenario())


def test_save_profile_from_review_and_rerun_headless(home, cli):
    async def scenario():
        app = WizardApp(detection=machine(), profile=Profile(test_query_count=32))
        async with app.run_test(size=(80, 24)) as pilot:
            for key in ("enter", "n", "n"):
                await pilot.press(key)
            assert screen_name(app) == "ReviewScreen"
            await pilot.press("s")
            await pilot.pause(0.1)
            await pilot.press(*"my-offline", "enter")
            await pilot.pause(0.1)
            return app.profile

    profile = run(scenario())
    path = locations().profiles / "my-offline.yaml"
    assert load_profile(path) == profile
    done = cli("run", str(path), "--json")
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert record["status"] == "completed"
    assert [(t["scenario"], t["mode"], t["validity"]) for t in record["tests"]] == [
        ("Offline", "performance", "VALID")]


def test_save_refuses_to_replace_without_confirmation(home):
    path = locations().profiles / "keep.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("version: 1\nmodel: resnet50\n")
    before = path.read_bytes()

    async def scenario():
        app = WizardApp(detection=machine())
        async with app.run_test(size=(80, 24)) as pilot:
            for key in ("enter", "n", "n", "s"):
                await pilot.press(key)
            await pilot.pause(0.1)
            await pilot.press(*"keep", "enter")
            await pilot.pause(0.1)
            assert screen_name(app) == "Confirm"
            await pilot.press("escape")  # "Keep it"
            await pilot.pause(0.1)

    run(scenario())
    assert path.read_bytes() == before


def test_cancel_asks_then_stops_the_run_and_keeps_logs(home, monkeypatch):
    monkeypatch.setenv("MLPERF_WIZARD_FAULT", "hang-after:2")  # the child hangs mid-run

    async def scenario():
        app = WizardApp(detection=machine(), profile=Profile(watchdog=120))
        async with app.run_test(size=(80, 24)) as pilot:
            await launch(pilot, app)
            screen = app.screen
            await wait_for(pilot, lambda: screen.latest is not None or screen.current is not None)
            await pilot.pause(1.0)
            await pilot.press("x")
            await pilot.pause(0.1)
            assert screen_name(app) == "Confirm"
            await pilot.press("y")
            await wait_for(pilot, lambda: screen_name(app) == "ResultScreen", timeout=30)
            return app.screen.record

    record = run(scenario())
    assert record.status == "cancelled"
    assert record.tests[0].status == "cancelled"
    run_dir = Path(record.run_dir)
    assert json.loads((run_dir / "run.json").read_text())["status"] == "cancelled"
    assert (Path(record.tests[0].directory) / "run.log").is_file()
    time.sleep(0.5)
    leftovers = [p for p in psutil.process_iter(["cmdline"])
                 if "harness.child" in " ".join(p.info["cmdline"] or []) and record.run_dir in
                 " ".join(p.info["cmdline"] or [])]
    assert not leftovers


def test_broken_options_cannot_be_picked(home):
    async def scenario():
        app = WizardApp(detection=machine())
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("enter")
            assert screen_name(app) == "ChooseScreen"
            app.screen.query_one("#fields").highlighted = 1  # backend
            await pilot.pause(0.1)
            await pilot.press("enter")  # into the backend's options
            options = app.screen.query_one("#options")
            # Not installed on this fixed machine: disabled, with what installs it.
            assert options.get_option("tensorflow").disabled
            assert "not-installed" in str(options.get_option("tensorflow").prompt)
            await pilot.press("down", "enter")  # the cursor skips the disabled ones
            await pilot.pause(0.1)
            assert app.profile.backend == "onnxruntime"
            # device: cuda is disabled on a machine without a GPU, with the reason shown
            app.screen.query_one("#fields").highlighted = 2
            await pilot.pause(0.1)
            cuda = app.screen.query_one("#options").get_option("cuda")
            assert cuda.disabled and "GPU" in str(cuda.prompt)

    run(scenario())


def test_scenarios_are_picked_with_keys(home):
    """Down/Space/Enter on Choose's scenario list pick Server, SingleStream and MultiStream and unpick
    Offline; Review's plan then has exactly those tests. Checked and unchecked boxes look different."""

    async def scenario():
        app = WizardApp(detection=machine())
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("enter")
            await pilot.pause(0.1)
            await pilot.press("down", "down", "down", "down", "enter")  # the scenarios field, into its list
            await pilot.pause(0.1)
            sel = app.screen.query_one("#scenario-list")
            assert app.focused is sel
            await pilot.press("down", "space", "down", "enter", "down", "space")
            await pilot.pause(0.1)
            assert app.profile.scenarios == ("Offline", "Server", "SingleStream", "MultiStream")
            await pilot.press("up", "up", "up", "space")  # unpick Offline
            await pilot.pause(0.1)
            assert app.profile.scenarios == ("Server", "SingleStream", "MultiStream")
            unchecked = sel.get_component_styles("selection-list--button")
            checked = sel.get_component_styles("selection-list--button-selected")
            assert unchecked.color == unchecked.background  # an empty box
            assert checked.color != checked.background and checked.color != unchecked.color
            await pilot.press("escape", "n", "n")
            await pilot.pause(0.2)
            assert screen_name(app) == "ReviewScreen"
            plan = str(app.screen.query_one("#plan").render())
            assert "Offline" not in plan
            assert all(s in plan for s in ("Server", "SingleStream", "MultiStream"))
            return app.profile

    profile = run(scenario())
    assert {t.scenario for t in make_plan(profile).tests} == {"Server", "SingleStream", "MultiStream"}


def test_details_validate_as_you_type(home):
    async def scenario():
        app = WizardApp(detection=machine())
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("enter", "n")
            assert screen_name(app) == "DetailsScreen"
            box = app.screen.query_one("#f-target_qps")
            box.focus()
            box.value = "-3"
            await pilot.pause(0.1)
            error = str(app.screen.query_one("#e-target_qps").render())
            assert "out of range" in error
            await pilot.press("ctrl+n")
            assert screen_name(app) == "DetailsScreen"  # refused until fixed
            box.value = "auto"
            await pilot.pause(0.1)
            await pilot.press("ctrl+n")
            assert screen_name(app) == "ReviewScreen"

    run(scenario())


def test_quit_during_a_run_asks_first(home, monkeypatch):
    monkeypatch.setenv("MLPERF_WIZARD_FAULT", "hang-after:2")

    async def scenario():
        app = WizardApp(detection=machine())
        async with app.run_test(size=(80, 24)) as pilot:
            await launch(pilot, app)
            await pilot.pause(1.0)
            await pilot.press("ctrl+q")
            await pilot.pause(0.1)
            assert screen_name(app) == "Confirm"
            await pilot.press("y")
            await wait_for(pilot, lambda: not app.is_running, timeout=30)
        return app.return_value

    assert run(scenario()) == 130


@pytest.mark.parametrize("name", ["torch", "tensorflow"])
def test_tui_process_never_imports_frameworks(home, name, tmp_path):
    """A whole run driven through the TUI in a fresh process leaves no framework in that process."""
    script = tmp_path / "drive.py"
    script.write_text(
        "import asyncio, sys\n"
        "from wizard.tui.app import WizardApp\n"
        "from harness.profile import Profile\n"
        "async def main():\n"
        "    app = WizardApp(profile=Profile(test_query_count=16))\n"
        "    async with app.run_test(size=(80, 24)) as pilot:\n"
        "        while app.detection is None: await pilot.pause(0.1)\n"
        "        await pilot.pause(0.3)\n"
        "        app.launch(app.profile)\n"
        "        while type(app.screen).__name__ != 'ResultScreen': await pilot.pause(0.1)\n"
        "        await pilot.pause(0.3)\n"
        "asyncio.run(main())\n"
        f"print('{name}' in sys.modules, 'onnxruntime' in sys.modules)\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ))
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-2:] == ["False", "False"]


def test_escape_walks_the_flow_not_stale_screens(home):
    """Issue 7 item 17: after a rerun, Escape on the result goes to the choices (not the previous result);
    the stack never holds two results; a Review shown again after a run re-plans (the remembered target)."""

    async def scenario():
        app = WizardApp(detection=machine(), profile=Profile(test_query_count=64))
        async with app.run_test(size=(80, 24)) as pilot:
            review = await to_review(pilot, app)
            assert "auto (measured briefly" in str(review.query_one("#plan").render())
            await pilot.press("l")
            await wait_for(pilot, lambda: screen_name(app) == "ResultScreen")
            first = app.screen
            await pilot.press("r")  # rerun
            await wait_for(pilot, lambda: screen_name(app) == "ResultScreen" and app.screen is not first)
            names = [type(s).__name__ for s in app.screen_stack]
            assert names.count("ResultScreen") == 1 and first not in app.screen_stack, names
            app.goto("review")  # what "a" (apply a suggestion) does: the same Review, re-planned
            await pilot.pause(0.3)
            assert app.screen is review
            plan = str(review.query_one("#plan").render())
            assert "what this SUT sustained" in plan and "auto (measured" not in plan
            await pilot.press("escape")
            await pilot.pause(0.2)
            assert screen_name(app) == "DetailsScreen"
            await pilot.press("n", "l")
            await wait_for(pilot, lambda: screen_name(app) == "ResultScreen")
            await pilot.press("escape")  # "esc Choices"
            await pilot.pause(0.3)
            assert screen_name(app) == "ChooseScreen"
            assert [type(s).__name__ for s in app.screen_stack][1:] == ["SystemScreen", "ChooseScreen"]
            await pilot.press("escape")
            await pilot.pause(0.2)
            assert screen_name(app) == "SystemScreen"

    run(scenario())


def test_the_plan_reviewed_is_the_plan_that_runs(home):
    """Issue 8 part 1: Launch runs the very plan Review showed; a target remembered in between (another run
    finishing) does not change it behind the user's back."""
    from harness import targets
    from harness.plan import target_key

    async def scenario():
        app = WizardApp(detection=machine(), profile=Profile(test_query_count=32))
        async with app.run_test(size=(80, 24)) as pilot:
            review = await to_review(pilot, app)
            assert review.plan.tests[0].target is None
            test = review.plan.tests[0]
            targets.remember(target_key(app.profile, test.scenario, review.plan.model), 1234.0, run_id="other",
                             valid=True)
            await pilot.press("l")
            await wait_for(pilot, lambda: screen_name(app) == "RunScreen")
            assert app.screen.plan is review.plan
            await wait_for(pilot, lambda: screen_name(app) == "ResultScreen")
            assert "measured" in (app.screen.record.tests[0].target or {}).get("text", "")

    run(scenario())
