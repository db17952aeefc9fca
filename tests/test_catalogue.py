"""The backend catalogue is the one source: profile choices and aliases, coverage spellings, the probe's
modules and distributions, install commands and the recorded package versions all come from it (issue 8,
part 1)."""

from __future__ import annotations

import pytest

from harness import catalogue, coverage, detect, environment, probe_backends
from harness.backends import load_backend
from harness.errors import CoverageError
from harness.profile import FIELD_BY_NAME, coerce


def test_every_list_of_backends_is_the_catalogues() -> None:
    names = tuple(b.name for b in catalogue.BACKENDS)
    assert FIELD_BY_NAME["backend"].choices == names
    assert probe_backends.BACKENDS == names
    assert set(probe_backends.MODULES) == set(probe_backends.DISTRIBUTIONS) == set(names)
    assert {r.backend for r in coverage.load_table()} == set(names)
    for b in catalogue.BACKENDS:
        assert probe_backends.MODULES[b.name] == b.module
        assert set(b.distributions) <= set(environment.PACKAGES)
        assert detect.INSTALL_COMMANDS[b.name] == b.install["cpu"]


@pytest.mark.parametrize("alias, name", sorted(catalogue.aliases().items()))
def test_an_alias_means_its_backend_everywhere(alias: str, name: str) -> None:
    assert coerce(FIELD_BY_NAME["backend"], alias) == name
    assert coerce(FIELD_BY_NAME["backend"], alias.upper()) == name
    assert coverage.canonical("resnet50", alias, "gpu", "fp32") == ("resnet50", name, "cuda", "fp32")


def test_install_commands_follow_the_descriptor() -> None:
    ort = catalogue.backend("onnxruntime")
    assert ort.install_command("cuda") == "pip install 'onnxruntime-gpu[cuda,cudnn]'"
    assert ort.install_command("cuda", "onnxruntime") == (
        "pip uninstall -y onnxruntime && pip install 'onnxruntime-gpu[cuda,cudnn]'")
    assert ort.install_command("cuda", "onnxruntime-gpu") == "pip install 'onnxruntime-gpu[cuda,cudnn]'"
    assert detect.install_command("tvm-onnx", "cuda") is None  # no pip wheel has TVM with CUDA
    assert detect.install_command("no-such-backend") is None


def test_only_backends_with_an_implementation_load(tmp_path) -> None:
    for b in catalogue.BACKENDS:
        if b.implementation is None:
            with pytest.raises(CoverageError, match=f"The {b.name} backend is not implemented") as caught:
                load_backend(b.name, tmp_path / "m", device="cpu", threads=None, outputs=())
            assert "--backend onnxruntime" in caught.value.fix


def test_scenarios_are_types_with_the_facts_code_asks_about() -> None:
    from harness.profile import SCENARIOS
    from harness.scenarios import SCENARIO_TYPES, scenario

    assert SCENARIOS == tuple(s.name for s in SCENARIO_TYPES)
    assert [s.name for s in SCENARIO_TYPES if s.throughput] == ["Offline", "Server"]
    assert [s.target_kind for s in SCENARIO_TYPES] == ["target_qps", "target_qps", "target_latency",
                                                       "target_latency"]
    assert [s.name for s in SCENARIO_TYPES if s.one_query] == ["Offline"]
    assert [s.name for s in SCENARIO_TYPES if s.scheduled] == ["Server"]
    assert [s.name for s in SCENARIO_TYPES if s.early_stopping] == ["Server", "SingleStream", "MultiStream"]
    assert scenario("MultiStream").batched_queries and not scenario("SingleStream").batched_queries
    assert scenario("MultiStream").percentile_key == "result_99.00_percentile_per_query_latency_ns"


def test_a_models_mlperf_facts_live_on_its_spec() -> None:
    from harness.guidance import options, required_scenarios
    from harness.models.registry import MODELS
    from harness.profile import Profile

    bert = MODELS["bert"]
    assert (bert.performance_sample_count, bert.server_latency_bound_ms, bert.offline_min_samples) == (
        10_833, 130, 10_833)
    assert bert.scenario_problem("MultiStream") and bert.scenario_problem("Server") is None
    assert MODELS["resnet50"].server_latency_bound_ms == 15 and MODELS["retinanet"].performance_sample_count == 64
    refused = {o.value: o.reason for o in options("scenarios", Profile(model="bert"), None) if not o.enabled}
    assert list(refused) == ["MultiStream"] and "MLPerf defines no MultiStream" in refused["MultiStream"]
    assert required_scenarios(Profile(model="bert", category="edge")) == ("SingleStream", "Offline")
    assert required_scenarios(Profile(model="resnet50", category="datacenter")) == ("Server", "Offline")
