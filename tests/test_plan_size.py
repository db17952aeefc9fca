"""The plan says, per test and before anything runs, how many samples LoadGen will issue and about how long
the test will take (issue 7 item 16), from LoadGen's own settings (embedded mlperf.conf + the user.conf)."""

from __future__ import annotations

import json

import pytest

from harness import events as ev
from harness.plan import make_plan
from harness.profile import make_profile
from harness.runner import Runner


def sizes(**values):
    plan = make_plan(make_profile({"model_source": "synthetic", "dataset_source": "synthetic", **values}))
    return plan, plan.sizes()


def test_a_full_offline_run_is_24576_samples_and_its_time_at_the_target(home) -> None:
    plan, (size,) = sizes(style="full", scenarios=["Offline"], target_qps=7.5)
    assert size.samples == 24_576 and size.min_duration_s == 600
    assert size.expected_s == pytest.approx(24_576 / 7.5)  # about 55 min, not "a 600 s run"
    text = plan.describe()
    assert "full run: 24,576 samples, at least 10 min (mlperf.conf)" in text
    assert "expected duration: about 55 min at the target" in text
    assert all(len(line) <= 80 for line in text.splitlines() if "run:" in line or "expected" in line)


def test_bert_and_the_stream_scenarios_follow_mlperf_conf(home) -> None:
    _, (bert,) = sizes(model="bert", style="full", scenarios=["Offline"], target_qps=10)
    assert bert.samples == 10_833 and bert.expected_s == pytest.approx(1083.3)  # 10/s x 600 s < 10,833
    _, (offline,) = sizes(style="full", scenarios=["Offline"], target_qps=100)
    assert offline.samples == 60_000 and offline.expected_s == 600
    _, (server, single, multi) = sizes(style="full", scenarios=["Server", "SingleStream", "MultiStream"],
                                       target_qps=50, target_latency=100)
    assert (server.queries, server.expected_s) == (30_000, 600)
    assert (single.queries, single.samples, single.expected_s) == (6_000, 6_000, 600)
    assert (multi.queries, multi.samples) == (6_000, 48_000)
    _, (slow_multi,) = sizes(style="full", scenarios=["MultiStream"], target_latency=2000)
    assert slow_multi.queries == 662 and slow_multi.expected_s == pytest.approx(662 * 2.0)  # min query count


def test_an_unknown_target_says_at_least_and_that_the_time_comes_from_it(home) -> None:
    plan, (size,) = sizes(style="full", scenarios=["Offline"])
    assert size.expected_s is None
    assert "full run: at least 24,576 samples" in plan.describe()
    assert "expected duration: set by the target measured before the test" in plan.describe()


def test_dry_run_prints_and_exports_the_size_of_every_test(cli) -> None:
    done = cli("run", "--dry-run", "--json", "--scenario", "Offline", "SingleStream", "--mode", "both",
               "--target-qps", "200", "--target-latency", "5", "--test-query-count", "300")
    assert done.returncode == 0, done.stderr
    tests = json.loads(done.stdout)["tests"]
    assert [(t["scenario"], t["mode"], t["expected"]["samples"]) for t in tests] == [
        ("Offline", "accuracy", 500), ("Offline", "performance", 300),
        ("SingleStream", "accuracy", 500), ("SingleStream", "performance", 300)]
    assert tests[1]["expected"]["expected_s"] == pytest.approx(1.5)
    assert "short run: 300 samples" in done.stderr and "expected duration: about 2 s" in done.stderr


def test_the_plan_agrees_with_what_the_run_then_issues(home) -> None:
    """The child sizes its progress bar from the same settings: a real run confirms the plan's counts."""
    profile = make_profile({"scenarios": ["Offline", "SingleStream", "MultiStream"], "mode": "performance",
                            "test_query_count": 40, "target_qps": 500, "target_latency": 2,
                            "model_source": "synthetic", "dataset_source": "synthetic"})
    plan = make_plan(profile)
    expected = {}

    def on_event(index, spec, event) -> None:
        if isinstance(event, ev.Phase) and event.phase == "running":
            expected[index] = event.expected

    record = Runner(plan, on_event=on_event).run()
    assert record.status == "completed"
    assert expected == {i: s.samples for i, s in enumerate(plan.sizes())} == {0: 40, 1: 40, 2: 320}
