"""At 80x24 no key word is cut (issue 7 item 19): every footer key of every screen, the Run states, the
History verdicts, the coverage cells and the plain prompts' text are whole.

The screen is read the way a user sees it: the text of Textual's own screenshot, row by row.
"""

from __future__ import annotations

import asyncio
import html
import io
import re
from pathlib import Path

import pytest
from fixed_machine import machine
from test_history import _test, make_run
from test_plain import script, wizard
from test_tui_snapshots import fixed_record

from harness import events as ev
from harness.detect import detect
from harness.plan import make_plan
from harness.profile import Profile
from wizard.tui.app import WizardApp
from wizard.tui.coverage_view import CoverageScreen
from wizard.tui.result import ResultScreen
from wizard.tui.run import RunScreen

SIZE = (80, 24)
_TEXT = re.compile(r'<text class="[^"]*" x="([\d.]+)" y="[\d.]+" textLength="[\d.]+" '
                   r'clip-path="url\(#[^)]*-line-(\d+)\)">(.*?)</text>')


def screen_lines(app) -> list[str]:
    rows: dict[int, list[tuple[float, str]]] = {}
    for x, line, text in _TEXT.findall(app.export_screenshot()):
        rows.setdefault(int(line), []).append((float(x), html.unescape(text).replace("\xa0", " ")))
    return ["".join(t for _, t in sorted(parts)) for _, parts in sorted(rows.items())]


async def assert_footer_whole(pilot, app) -> None:
    """The footer of the screen on top holds every shown key's words, whole.

    The footer is drawn after the screen's own widgets; a loaded machine may take a while, so this waits
    for it (up to 10 s) instead of trusting one fixed pause.
    """
    footer, lines = "", []
    for _ in range(100):
        lines = screen_lines(app)
        footer = next((line for line in reversed(lines) if "palette" in line), "")  # the palette key ends it
        if footer:
            break
        await pilot.pause(0.1)
    assert footer, lines
    shown = [b.description for _, b, enabled, _ in app.active_bindings.values() if b.show and b.description]
    missing = [d for d in shown if d not in footer]
    assert not missing, (type(app.screen).__name__, missing, footer)
    assert "Help" in footer, footer  # F1 is the way to every screen's help


async def settle(pilot, *keys: str) -> None:
    await pilot.pause(0.2)
    for key in keys:
        await pilot.press(key)
        await pilot.pause(0.15)


@pytest.mark.parametrize("keys", [(), ("enter",), ("enter", "n"), ("enter", "n", "n"), ("enter", "c"),
                                  ("p",), ("h",)], ids=["system", "choose", "details", "review", "coverage",
                                                        "profiles", "history"])
def test_every_footer_key_is_whole(home, keys) -> None:
    async def scenario():
        app = WizardApp(detection=machine(), profile=Profile(test_query_count=64))
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot, *keys)
            await assert_footer_whole(pilot, app)

    asyncio.run(scenario())


def test_the_result_and_run_screens_keep_their_words(home) -> None:
    async def scenario():
        app = WizardApp(detection=machine(), profile=Profile(test_query_count=64))
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await app.push_screen(ResultScreen(fixed_record(), Profile()))
            await settle(pilot)
            await assert_footer_whole(pilot, app)
            await app.pop_screen()
            profile = Profile(scenarios=("Offline", "SingleStream"), test_query_count=64)
            run = RunScreen(profile, app.detection, autostart=False)
            await app.push_screen(run)
            await settle(pilot)
            spec = make_plan(profile).tests[0]
            for state in ("preparing", "measuring", "warming up"):
                run.handle_event(0, spec, ev.Phase(phase=state, detail="x"))
                await settle(pilot)
                row = next(line for line in screen_lines(app) if " Offline " in line)
                assert re.search(rf"\b{state}\b", row), row
            await assert_footer_whole(pilot, app)

    asyncio.run(scenario())


def test_history_verdicts_are_whole(home: Path) -> None:
    results = home / "results"
    make_run(results, "20250101-100000-a", "2025-01-01T10:00:00+00:00",
             [_test("MultiStream", 162.6, "ms", validity="INVALID")],
             profile={"scenarios": ["MultiStream", "SingleStream", "Offline"]})
    make_run(results, "20250102-100000-b", "2025-01-02T10:00:00+00:00", [_test("Offline", 12345.6, "samples/s")],
             profile={"model": "retinanet"})

    async def scenario():
        app = WizardApp(detection=machine())
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot, "h")
            await pilot.pause(0.5)
            text = "\n".join(screen_lines(app))
            assert re.search(r"\bINVALID\b", text) and re.search(r"\bVALID\b", text), text
            assert "162.6 ms" in text and "12,346 samples/s" in text and "retinanet*" not in text, text
            assert "MultiStream +2" in text, text
            await assert_footer_whole(pilot, app)

    asyncio.run(scenario())


def test_coverage_cells_are_whole_or_left_out(home) -> None:
    async def scenario():
        app = WizardApp(detection=machine())
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot, "enter")
            screen = CoverageScreen()
            await app.push_screen(screen)
            await settle(pilot)
            lines = screen_lines(app)
            header = next(line for line in lines if "backend" in line and "here" in line)
            body = [line for line in lines if line.lstrip().startswith(("resnet50", "retinanet", "bert"))
                    and " + " not in line]  # not the highlighted row's reason under the table
            assert body
            for v, line in zip(screen.shown, body, strict=False):
                assert v.here in line.split(), line
                if "note" in header:
                    assert v.row.note in line, line

    asyncio.run(scenario())


def test_plain_prompt_text_wraps_between_words(home) -> None:
    code, text = wizard(script(), detection=detect(), output=io.StringIO())
    assert code == 0, text
    # Longer than the terminal only where one token (a path) is: the terminal breaks that, not the tool.
    long = [line for line in text.splitlines() if len(line) > 79
            and not line.startswith(("Equivalent command", "?"))  # prompt_toolkit redraws, not lines
            and max(map(len, line.split())) < 60]
    assert not long, long
    assert "(object\n    detection)" in text  # the model help, wrapped at a word


def test_the_coverage_filter_matches_status_words_against_the_status_here(home) -> None:
    """Issue 7 item 21: "bert works" lists the BERT rows that run here, not those the seed calls working."""
    from harness.coverage import merged_table
    from wizard.tui.coverage_view import matches

    verdicts = merged_table(machine())
    works = [v for v in verdicts if matches(v, ["bert", "works"])]
    assert works and all(v.row.model == "bert" and v.runnable for v in works)
    assert {v.row.backend for v in works} == {"onnxruntime"}
    unsupported = [v for v in verdicts if matches(v, ["unsupported", "cuda"])]
    assert unsupported and all(v.here == "unsupported" and v.row.device == "cuda" for v in unsupported)
    assert len([v for v in verdicts if matches(v, ["cpuexecutionprovider"])]) == 4  # the note still matches
