"""Long steps before LoadGen starts show that they are moving, and no time is spent measuring a target an
accuracy run does not use (issue 7 item 20)."""

from __future__ import annotations

import asyncio
import os
import time

import pytest
from fixed_machine import machine

from harness import child
from harness import events as ev
from harness.events import EventReader, EventWriter
from harness.plan import make_plan
from harness.profile import Profile, make_profile
from harness.runner import Runner
from wizard.tui.app import WizardApp
from wizard.tui.run import RunScreen


def test_a_long_step_is_announced_then_updated_with_its_time(monkeypatch) -> None:
    read_fd, write_fd = os.pipe()
    events = EventWriter(write_fd)
    with child.heartbeat(events, "preparing", "building the synthetic bert model (long text)",
                         "building the synthetic bert model", every_s=0.2):
        time.sleep(0.9)
    os.close(write_fd)
    data = b""
    while chunk := os.read(read_fd, 65536):
        data += chunk
    os.close(read_fd)
    got = EventReader().feed(data)
    assert all(isinstance(e, ev.Phase) for e in got)
    assert got[0].detail == "building the synthetic bert model (long text)" and not got[0].update
    updates = [e for e in got[1:] if e.update]
    assert len(updates) >= 3 and all(e.phase == "preparing" for e in updates)
    assert updates[-1].detail.startswith("building the synthetic bert model: ")
    assert updates[-1].detail.endswith(" s so far")


def test_the_run_screen_shows_the_step_and_its_time_before_loadgen_counts(home) -> None:
    async def scenario():
        app = WizardApp(detection=machine())
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause(0.2)
            profile = Profile(test_query_count=64)
            screen = RunScreen(profile, app.detection, autostart=False)
            await app.push_screen(screen)
            await pilot.pause(0.2)
            spec = make_plan(profile).tests[0]
            screen.handle_event(0, spec, ev.Start(directory="/tmp/x"))
            screen.handle_event(0, spec, ev.Phase(phase="preparing", update=True,
                                                  detail="building the synthetic resnet50 model: 12 s so far"))
            await pilot.pause(0.1)
            stats = str(screen.query_one("#stats").render())
            assert "preparing: building the synthetic resnet50 model: 12 s so far" in stats
            assert "Starting" not in stats
            log = "\n".join(str(line) for line in screen.query_one("#log").lines)
            assert "12 s so far" not in log  # updates of a step do not flood the log

    asyncio.run(scenario())


def test_measuring_is_bounded_for_a_slow_model(home) -> None:
    plan = make_plan(make_profile({"scenarios": ["Offline"], "model_source": "synthetic",
                                   "dataset_source": "synthetic"}))
    spec = plan.tests[0]
    from harness.models.families import family

    dataset = family("resnet50").synthetic_dataset(8, "NCHW")

    def slow(batch):  # one batch-8 call of a model much slower than the 2 s budget
        time.sleep(3.0)

    start = time.monotonic()
    target, reason = child.measure_target(spec, slow, dataset)
    assert time.monotonic() - start < 4.5  # one timed call, not the old minimum of three (9 s)
    assert "1 timed calls" in reason and target == pytest.approx(8 / 3.0 * 1.1, rel=0.05)


@pytest.mark.parametrize("scenario, measures", [("Offline", False), ("SingleStream", False), ("Server", True)])
def test_an_accuracy_run_measures_a_target_only_where_loadgen_uses_it(home, scenario: str, measures: bool) -> None:
    profile = make_profile({"scenarios": [scenario], "mode": "accuracy", "dataset_size": 16,
                            "model_source": "synthetic", "dataset_source": "synthetic"})
    phases = []
    record = Runner(make_plan(profile), on_event=lambda i, s, e: phases.append(e)).run()
    assert record.status == "completed" and record.tests[0].accuracy is not None
    measured = any(isinstance(e, ev.Phase) and e.phase == "measuring" for e in phases)
    assert measured == measures
    assert any(isinstance(e, ev.Target) for e in phases) == measures
