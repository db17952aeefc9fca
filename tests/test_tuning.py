"""SUT settings by measurement (harness.tuning): real tune and search steps through the runner, with the
tiny synthetic ResNet50 on ONNX Runtime and real LoadGen probe runs; what is remembered, what invalidates
it, what the user's values override, and hostile state files."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness import tuning
from harness.plan import TUNE_ENV, make_plan, sut_settings, tune_key
from harness.profile import make_profile
from harness.tuning import SutConfig, Tuned, splits

SYNTHETIC = {"model_source": "synthetic", "dataset_source": "synthetic"}


@pytest.fixture
def tuning_on(home, monkeypatch):
    monkeypatch.delenv(TUNE_ENV, raising=False)
    return home


def _run_json(cli, *args, timeout=400, env=None):
    done = cli("run", "--synthetic", "--json", *args, timeout=timeout, env=env)
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    return done, (json.loads(done.stdout) if done.stdout.strip().startswith("{") else None)


@given(st.integers(1, 512))
def test_splits_use_the_cores_and_keep_what_was_given(cores) -> None:
    pairs = splits(cores)
    assert (cores, 1) in pairs and (1, cores) in pairs and len(pairs) <= 6
    assert all(w * t == cores for w, t in pairs) and len(set(pairs)) == len(pairs)
    assert splits(cores, threads=1) == [(cores, 1)]
    assert splits(cores, workers=3, threads=5) == [(3, 5)]
    assert all(w == 2 for w, _ in splits(cores, workers=2))


@settings(max_examples=200, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=10), kids, max_size=6),
                    max_leaves=30))
def test_any_stored_record_is_a_tune_or_nothing(data) -> None:
    tuned = Tuned.from_dict(data)
    assert tuned is None or isinstance(tuned.best, SutConfig)


def test_a_damaged_store_is_ignored_then_replaced(tuning_on) -> None:
    profile = make_profile({**SYNTHETIC, "scenarios": ["Offline"]})
    plan = make_plan(profile)
    path = tuning_on / "state" / "tuning.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    key = plan.tests[0].tune_key
    for text in ("{not json", json.dumps([1, 2]), json.dumps({tuning.key_text(key): {"tuned": {"schema": 1}}}),
                 json.dumps({tuning.key_text(key): {"search": {"found": True, "config": {"workers": "x"}}}})):
        path.write_text(text)
        assert tuning.lookup(key) is None and tuning.lookup_search(key) is None
        assert [t.mode for t in make_plan(profile).tests] == ["tune", "performance"]
    tuned = Tuned("throughput", SutConfig(2, 1, 16), [tuning.Measured(2, 1, 16, 100.0, 1, 2, 3, 10)], 3.0)
    tuning.remember(key, tuned)
    assert tuning.lookup(key).best == SutConfig(2, 1, 16)


def test_the_key_changes_with_the_model_file_and_the_backend_version(tuning_on, tmp_path, monkeypatch) -> None:
    model = tmp_path / "model.onnx"
    model.write_bytes(b"x" * 10)
    profile = make_profile({"model_source": "local", "model_path": str(model), "dataset_source": "synthetic"})
    plan = make_plan(profile)
    before = tune_key(profile, "Offline", plan.model)
    model.write_bytes(b"y" * 11)
    assert tune_key(profile, "Offline", plan.model)["model_file"] != before["model_file"]
    import harness.probe_backends as probe

    monkeypatch.setattr(probe, "installed_distribution", lambda backend: ("onnxruntime", "9.9.9"))
    assert tune_key(profile, "Offline", plan.model)["backend_version"] == "9.9.9"
    assert before["cores"] == str(tuning.usable_cores()) and before["cpu"]


def test_given_settings_win_and_off_means_the_defaults(tuning_on, monkeypatch) -> None:
    every = make_plan(make_profile({**SYNTHETIC, "workers": 2, "threads": 1, "batch_size": 4}))
    assert [t.mode for t in every.tests] == ["performance"]
    assert (every.tests[0].workers, every.tests[0].threads, every.tests[0].batch_size) == (2, 1, 4)
    assert every.tests[0].sut_reason == "given: workers 2, threads 1, batch size 4"
    some = make_plan(make_profile({**SYNTHETIC, "threads": 1}))
    assert some.tests[0].mode == "tune" and some.tests[0].tune_fixed == ["threads"]
    off = make_plan(make_profile({**SYNTHETIC, "tune": "off"}))
    assert [t.mode for t in off.tests] == ["performance"] and "tune off" in off.tests[0].sut_reason
    cuda = sut_settings(make_profile({**SYNTHETIC, "device": "cuda"}), "Offline", every.model)
    assert cuda.step is None and cuda.workers == 2 and "CPU runs" in cuda.reason
    monkeypatch.setenv(TUNE_ENV, "off")
    assert [t.mode for t in make_plan(make_profile(SYNTHETIC)).tests] == ["performance"]


def test_a_tune_is_measured_once_then_reused_and_keeps_a_given_value(tuning_on, cli) -> None:
    started = time.monotonic()
    done, record = _run_json(cli, "--scenario", "Offline", "--threads", "1", "--test-query-count", "64")
    first_s = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-3000:]
    step, perf = record["tests"]
    assert step["mode"] == "tune" and step["status"] == "completed" and step["metric"].startswith("chose ")
    tune = json.loads((Path(step["directory"]) / "tune.json").read_text())
    assert all(m["threads"] == 1 for m in tune["measured"])  # the given thread count was never changed
    assert len(tune["measured"]) >= 2 and tune["seconds"] < tuning.TUNE_BUDGET_S + 15
    best = tune["best"]
    used = json.loads((Path(perf["directory"]) / "test.json").read_text())
    assert (used["workers"], used["threads"], used["batch_size"]) == (best["workers"], 1, best["batch_size"])
    assert used["sut_reason"].startswith("tuned")
    assert perf["validity"] == "VALID"
    # The second run reuses it: no tune step, the same settings, and the plan says where they came from.
    dry = cli("run", "--synthetic", "--scenario", "Offline", "--threads", "1", "--dry-run")
    assert dry.returncode == 0 and " tune " not in dry.stdout
    assert f"{best['workers']} worker" in dry.stdout and "tuned on" in dry.stdout
    assert first_s < 120


def test_the_search_finds_a_rate_and_the_server_run_uses_it(tuning_on, cli) -> None:
    done, record = _run_json(cli, "--scenario", "Server", "--workers", "1", "--threads", "1",
                             "--test-query-count", "200", timeout=600)
    assert done.returncode in (0, 3), done.stderr[-3000:]
    search, perf = record["tests"]
    assert search["mode"] == "search" and search["status"] == "completed", search
    found = json.loads((Path(search["directory"]) / "search.json").read_text())
    assert found["found"] and found["qps"] > 0 and found["seconds"] < tuning.SEARCH_BUDGET_S + 30
    assert found["basis"] == "probed" and search["metric"].startswith("highest VALID Server rate")
    assert any(p["kind"].startswith("confirmation") and p["passed"] for p in found["probes"])
    # Each probe was a real LoadGen run, with its logs kept.
    assert len(list(Path(search["directory"]).glob("probe-*/mlperf_log_detail.txt"))) == len(found["probes"])
    used = json.loads((Path(perf["directory"]) / "test.json").read_text())
    assert used["target"] == pytest.approx(found["qps"]) and used["target_reason"].startswith("searched")
    assert used["server_probes"] == found["probes"]
    dry = cli("run", "--synthetic", "--scenario", "Server", "--workers", "1", "--threads", "1", "--dry-run")
    over_bound = any(f["rule"] == "latency_bound" and not f["met"] for f in perf["findings"])
    if over_bound:  # the searched rate did not hold: it was forgotten, and the next run searches again
        assert " search " in dry.stdout
    else:  # kept (a short run's INVALID for too few queries is no reason to search again)
        assert " search " not in dry.stdout and "searched:" in dry.stdout


def test_an_unreachable_bound_is_shown_quickly_and_the_server_run_is_refused(tuning_on, cli) -> None:
    # Every inference call 25 ms longer than the model needs: the 15 ms bound cannot be met at any rate.
    started = time.monotonic()
    done, record = _run_json(cli, "--scenario", "Server", "--mode", "performance",
                             env={"MLPERF_WIZARD_FAULT": "delay-ms:25"})
    assert time.monotonic() - started < 60
    assert done.returncode == 1
    search, perf = record["tests"]
    assert search["status"] == "completed" and search["metric"] == "no Server rate meets the latency bound"
    assert "even one query at a time" in search["findings"][0]["text"]
    assert perf["status"] == "refused" and "15 ms bound" in perf["error"]
    assert not (Path(perf["directory"]) / "mlperf_log_detail.txt").exists()
    assert "REFUSED: not run: no arrival rate can meet the 15 ms bound" in done.stderr
    # Remembered: the next plan refuses it before anything runs, and says how to search again.
    dry = cli("run", "--synthetic", "--scenario", "Server", "--mode", "performance", "--dry-run")
    assert "refused before it starts" in dry.stdout and "tune --force" in dry.stdout


# --- the Server queueing model ------------------------------------------------------------------------

def test_the_queue_model_agrees_with_the_m_m_1_formula() -> None:
    # Exponential calls of mean 10 ms, one worker, 50 queries/s: the latency is exponential with rate
    # mu - lambda = 50/s, so its 99th percentile is ln(100) / 50 s = 92.1 ms.
    import numpy as np

    service = np.random.default_rng(3).exponential(10.0, 50_000).tolist()
    p99 = tuning.queue_p99_ms(service, 1, 50.0, queries=200_000)
    assert p99 == pytest.approx(1000 * np.log(100) / 50, rel=0.08)


def test_the_modelled_rate_of_fixed_calls_matches_m_d_1() -> None:
    # 9 ms calls, one worker, a 13.5 ms bound: a query fails when it waits over 4.5 ms, which at light load
    # happens with probability rho * (1 - 4.5 / 9); 1 % gives rho = 0.02, 2.2 queries/s.
    rate = tuning.model_rate([9.0], 1, 13.5, capacity=111.0)
    assert 1.7 < rate < 2.8
    assert tuning.model_rate([20.0], 1, 13.5, capacity=50.0) == 0.0  # slower than the bound: no rate
    assert tuning.model_rate([1.0], 4, 13.5, capacity=100.0) == 100.0  # never near the bound: all of it


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(0.1, 50.0), min_size=1, max_size=40), st.integers(1, 8), st.floats(0.5, 400.0))
def test_the_modelled_latency_grows_with_the_rate_and_never_beats_the_calls(service, servers, rate) -> None:
    low = tuning.queue_p99_ms(service, servers, rate, queries=2000)
    high = tuning.queue_p99_ms(service, servers, rate * 1.5, queries=2000)
    assert high >= low - 1e-9 and low >= min(service) - 1e-9


def test_hostile_model_inputs_are_refused() -> None:
    for args in (([], 1, 10.0), ([5.0], 0, 10.0), ([5.0], 1, 0.0)):
        with pytest.raises(ValueError):
            tuning.queue_p99_ms(*args)


def test_a_rate_too_slow_to_probe_is_modelled_and_labelled(tuning_on, cli) -> None:
    # Every call 6 ms longer: one at a time within the 15 ms bound, but a query that waits behind another
    # can break it, so only about 1-3 queries/s can be VALID (less on a busy machine, whose calls vary
    # more): too slow to probe in seconds. Either the model's rate is used, labelled as such, and the run
    # goes ahead at it; or it is under 700 queries per 600 s, and the run is refused with that reason.
    done, record = _run_json(cli, "--scenario", "Server", "--workers", "1", "--threads", "1",
                             "--test-query-count", "8", env={"MLPERF_WIZARD_FAULT": "delay-ms:6"})
    search, perf = record["tests"]
    found = json.loads((Path(search["directory"]) / "search.json").read_text())
    assert found["probes"] == [], found
    (alone,) = found["isolated"]
    assert alone["alone_p99_ms"] < 13.5 and 0 <= alone["model_qps"] < 4, found
    if alone["model_qps"] * 600 >= 700:
        assert done.returncode in (0, 3), done.stderr[-3000:]
        assert found["found"] and found["qps"] == pytest.approx(alone["model_qps"], rel=0.01)
        assert found["reason"].startswith("modelled:") and "not probed" in found["reason"]
        assert found["basis"] == "modelled" and search["metric"].startswith("modelled Server rate")
        used = json.loads((Path(perf["directory"]) / "test.json").read_text())
        assert used["target"] == pytest.approx(found["qps"]) and used["target_reason"].startswith("modelled")
    else:
        assert done.returncode == 1 and not found["found"]
        assert "queueing lets the bound allow" in found["reason"] and "early stopping" in found["reason"]
        assert perf["status"] == "refused"
