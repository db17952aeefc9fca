"""Snapshot tests of every screen at 80x24 and at a larger size.

Deterministic: the machine is a fixed Detection, the profile names a fixed system and results folder,
MLPERF_WIZARD_HOME is a fixed empty folder, the Run screen is fed fixed events instead of a live run, and
the Result screen shows a fixed record. Update with ``pytest tests/test_tui_snapshots.py --snapshot-update``
after a deliberate change, and look at the report before committing.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fixed_machine import machine

import wizard.tui.profiles
from harness import events as ev
from harness.plan import make_plan
from harness.profile import Profile
from harness.results import Finding, TestResult
from harness.runner import RunRecord
from wizard.tui.app import WizardApp
from wizard.tui.result import ResultScreen
from wizard.tui.run import RunScreen

SNAPSHOT_HOME = Path("/tmp/mlperf-wizard-snapshots")
PROFILE = Profile(system_name="sut1", results_dir="/srv/mlperf-results", test_query_count=256)
SIZES = {"small": (80, 24), "large": (120, 40)}


@pytest.fixture(autouse=True)
def fixed_home(monkeypatch):
    shutil.rmtree(SNAPSHOT_HOME, ignore_errors=True)
    monkeypatch.setenv("MLPERF_WIZARD_HOME", str(SNAPSHOT_HOME))
    monkeypatch.setenv("MLPERF_WIZARD_SYNTHETIC_VARIANT", "full")
    monkeypatch.delenv("MLPERF_WIZARD_RESULTS", raising=False)
    yield
    shutil.rmtree(SNAPSHOT_HOME, ignore_errors=True)


def app() -> WizardApp:
    return WizardApp(detection=machine(), profile=PROFILE)


def fixed_record() -> RunRecord:
    base = "/srv/mlperf-results/20261128-120000-resnet50-onnxruntime-cpu"
    perf = TestResult(
        scenario="Offline", mode="performance", status="completed", validity="VALID",
        directory=f"{base}/sut1/resnet50/Offline/performance/run_1", metric="Offline throughput",
        value=51.3, unit="samples/s", synthetic=True, synthetic_model=True, synthetic_data=True,
        findings=[Finding("min_duration", True, "Minimum duration met (0 s required)."),
                  Finding("short_run", True, "A short run skips mlperf.conf's 600 s minimum: use --style full "
                          "for a result that counts.")],
        target={"text": "target_qps 58.7 queries/s: measured 53.4 samples/s; declared 10% higher"})
    stream = TestResult(
        scenario="MultiStream", mode="performance", status="completed", validity="INVALID",
        directory=f"{base}/sut1/resnet50/MultiStream/performance/run_1",
        metric="MultiStream 99th percentile latency (measured; early stopping not met)", value=162.6, unit="ms",
        synthetic=True, synthetic_model=True, synthetic_data=True,
        findings=[Finding("early_stopping", False, "Too few queries to bound the tail latency statistically "
                          "(early stopping): LoadGen needs at least 562 more.",
                          "rerun with --test-query-count 670", {"test_query_count": 670})])
    return RunRecord("20261128-120000-resnet50-onnxruntime-cpu", base, "2026-11-28T12:00:00+00:00",
                     status="completed", finished="2026-11-28T12:01:00+00:00", synthetic=True,
                     tests=[perf, stream])


async def to_screen(pilot, *keys: str) -> None:
    await pilot.pause(0.2)
    for key in keys:
        await pilot.press(key)
        await pilot.pause(0.1)


class TestFlowScreens:
    @pytest.mark.parametrize("size", SIZES)
    def test_system(self, snap_compare, size):
        assert snap_compare(app(), terminal_size=SIZES[size], run_before=lambda p: to_screen(p))

    @pytest.mark.parametrize("size", SIZES)
    def test_choose(self, snap_compare, size):
        assert snap_compare(app(), terminal_size=SIZES[size], run_before=lambda p: to_screen(p, "enter"))

    def test_choose_device_options(self, snap_compare):
        assert snap_compare(app(), terminal_size=SIZES["small"],
                            run_before=lambda p: to_screen(p, "enter", "down", "down", "enter"))

    def test_coverage_table(self, snap_compare):
        assert snap_compare(app(), terminal_size=SIZES["small"], run_before=lambda p: to_screen(p, "enter", "c"))

    @pytest.mark.parametrize("size", SIZES)
    def test_details(self, snap_compare, size):
        assert snap_compare(app(), terminal_size=SIZES[size], run_before=lambda p: to_screen(p, "enter", "n"))

    @pytest.mark.parametrize("size", SIZES)
    def test_review(self, snap_compare, size):
        assert snap_compare(app(), terminal_size=SIZES[size],
                            run_before=lambda p: to_screen(p, "enter", "n", "n"))

    def test_help(self, snap_compare):
        assert snap_compare(app(), terminal_size=SIZES["small"], run_before=lambda p: to_screen(p, "enter", "f1"))


class TestProfilesAndHistory:
    @pytest.mark.parametrize("size", SIZES)
    def test_profiles(self, snap_compare, size, monkeypatch):
        # The screen shows where a profile lives: use a fixed copy of the shipped folder, not the checkout's.
        shipped = SNAPSHOT_HOME / "shipped"
        shutil.copytree(wizard.tui.profiles.SHIPPED_PROFILES, shipped)
        monkeypatch.setattr(wizard.tui.profiles, "SHIPPED_PROFILES", shipped)
        assert snap_compare(app(), terminal_size=SIZES[size], run_before=lambda p: to_screen(p, "p"))

    @pytest.mark.parametrize("size", SIZES)
    def test_history_empty(self, snap_compare, size):
        assert snap_compare(app(), terminal_size=SIZES[size], run_before=lambda p: to_screen(p, "h"))


class TestRunAndResult:
    @pytest.mark.parametrize("size", SIZES)
    def test_run(self, snap_compare, size):
        async def feed(pilot):
            await pilot.pause(0.2)
            a = pilot.app
            screen = RunScreen(PROFILE, a.detection, autostart=False)
            screen.utilisation = lambda: "CPU 97%"
            await a.push_screen(screen)
            await pilot.pause(0.1)
            spec = make_plan(PROFILE).tests[0]
            directory = "/srv/mlperf-results/20261128-120000-resnet50-onnxruntime-cpu/sut1/resnet50/Offline/"
            for event in (ev.Start(directory=directory + "performance/run_1"),
                          ev.Phase(phase="running", detail="LoadGen Offline performance")):
                screen.handle_event(0, spec, event)
            for i in range(1, 9):
                screen.points.append((i * 0.5, 48.0 + 2 * (i % 3)))  # (elapsed, the child's windowed rate)
            screen.latest = (0, ev.Progress(issued=256, completed=128, expected=256, qps=51.0, qps_window_s=5.0,
                                            mean_qps=50.5, elapsed_s=2.5, min_duration_s=0.0))
            screen.refresh_live()
            await pilot.pause(0.1)

        assert snap_compare(app(), terminal_size=SIZES[size], run_before=feed)

    @pytest.mark.parametrize("size", SIZES)
    def test_result(self, snap_compare, size):
        async def show(pilot):
            await pilot.pause(0.2)
            await pilot.app.push_screen(ResultScreen(fixed_record(), PROFILE))
            await pilot.pause(0.1)

        assert snap_compare(app(), terminal_size=SIZES[size], run_before=show)
