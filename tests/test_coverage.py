"""The coverage table and the verdicts built on it: real YAML files, real detection, no mocks.

Simulated machines are Detection objects built from plain dicts (data describing a machine).
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest

from harness.coverage import (
    HERE,
    assess,
    check,
    load_table,
    merged_table,
    nearest,
    record_verified,
)
from harness.detect import Detection, detect
from harness.errors import CoverageError

REPO = Path(__file__).resolve().parent.parent
SEED_NAME = Path("shared") / "seed" / "cm-mlperf-inference-readme.md"

# The seed README's "Current Coverage" table, row by row: (model, backend, device, precision) ->
# (status, comment). Kept here so the check runs where the seed file is not checked out.
SEED = {
    ("resnet50", "onnxruntime", "cpu", "fp32"): ("works", "Works on all tested versions"),
    ("resnet50", "tensorflow", "cpu", "fp32"): ("works", "Works on all tested versions"),
    ("resnet50", "pytorch", "cpu", "fp32"): ("broken", "Reference Implementation missing?"),
    ("resnet50", "onnxruntime", "cuda", "fp32"): ("works", "Works on all tested versions"),
    ("resnet50", "tensorflow", "cuda", "fp32"): ("untested", "Not tested"),
    ("resnet50", "pytorch", "cuda", "fp32"): ("broken", "Reference Implementation missing?"),
    ("retinanet", "onnxruntime", "cpu", "fp32"): ("works", "Works on all tested versions"),
    ("retinanet", "tensorflow", "cpu", "fp32"): ("broken", ""),
    ("retinanet", "pytorch", "cpu", "fp32"): ("works", "Works on all tested versions"),
    ("retinanet", "onnxruntime", "cuda", "fp32"): ("works", "Works on all tested versions"),
    ("retinanet", "tensorflow", "cuda", "fp32"): ("broken", ""),
    ("retinanet", "pytorch", "cuda", "fp32"): ("works", "Works on all tested versions"),
    ("bert", "onnxruntime", "cpu", "fp32"): ("works", "Works on all tested versions"),
    ("bert", "onnxruntime", "cpu", "int8"): ("works", "Works on all tested versions"),
    ("bert", "tensorflow", "cpu", "fp32"): ("works", "Works for torch<=1.12"),
    ("bert", "pytorch", "cpu", "fp32"): ("works", "Works but with strict check disabled"),
    ("bert", "onnxruntime", "cuda", "fp32"): ("untested", "Not tested"),
    ("bert", "onnxruntime", "cuda", "int8"): ("untested", "Not tested"),
    ("bert", "tensorflow", "cuda", "fp32"): ("untested", "Not tested"),
    ("bert", "pytorch", "cuda", "fp32"): ("untested", "Not tested"),
}
ONLY_CPU = ("resnet50", "onnxruntime", "cpu", "fp32")
ORT_CUDA = ("resnet50", "onnxruntime", "cuda", "fp32")
ORT_CPU_ONLY = {
    "installed": True,
    "version": "1.20.0",
    "devices": ["cpu"],
    "details": {"distribution": "onnxruntime", "providers": ["CPUExecutionProvider"],
                # what harness.probe_backends' device query says when the build has no CUDA provider
                "no_cuda_reason": "this onnxruntime build has no CUDAExecutionProvider (providers: "
                                  "CPUExecutionProvider)"},
}
ORT_WITH_CUDA = {
    "installed": True,
    "version": "1.20.0",
    "devices": ["cpu", "cuda"],
    "details": {
        "distribution": "onnxruntime-gpu",
        "providers": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    },
}
H200 = {
    "index": 0,
    "name": "NVIDIA H200",
    "memory_total_mib": 143771,
    "driver": "570.1",
    "cuda_driver_version": "12.8",
}


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("MLPERF_WIZARD_HOME", str(tmp_path))
    monkeypatch.delenv("MLPERF_WIZARD_RESULTS", raising=False)
    return tmp_path


@pytest.fixture(scope="module")
def here(tmp_path_factory):
    """This machine's real detection, probed once for the whole module (the probe imports frameworks)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLPERF_WIZARD_HOME", str(tmp_path_factory.mktemp("probe-home")))
        mp.delenv("MLPERF_WIZARD_RESULTS", raising=False)
        return detect()


def machine(gpus=(), **backends) -> Detection:
    """A simulated machine: every backend not given is not installed."""
    names = ("onnxruntime", "pytorch", "tensorflow", "tvm-onnx")
    return Detection.from_dict(
        {
            "gpus": list(gpus),
            "backends": {n: backends.get(n.replace("-", "_"), {"installed": False}) for n in names},
        }
    )


def _parse_seed_readme(text: str) -> dict:
    """(model, backend, device, precision) -> (status, comment) from the seed README's HTML table."""
    body = text.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    models = {"ResNet50": "resnet50", "RetinaNet": "retinanet", "Bert": "bert"}
    backends = {"Onnxruntime": "onnxruntime", "Tensorflow": "tensorflow", "Pytorch": "pytorch"}
    statuses = {"✅": "works", "❌": "broken", "?": "untested"}
    rows, model, device = {}, None, None
    for tr in re.findall(r"<tr>(.*?)</tr>", body, re.S):
        cells = [html.unescape(c.strip()) for c in re.findall(r"<td[^>]*>(.*?)</td>", tr, re.S)]
        model = next((models[c] for c in cells if c in models), model)
        device = next((c.lower() for c in cells if c in ("CPU", "CUDA")), device)
        i = next(i for i, c in enumerate(cells) if c in backends)
        precision = "int8" if cells[i + 1] == "Y" else "fp32"
        key = (model, backends[cells[i]], device, precision)
        assert key not in rows, key
        rows[key] = (statuses[cells[i + 2]], cells[i + 3])
    return rows


def test_every_seed_row_present_with_the_seed_view():
    table = {row.key: row for row in load_table()}
    seed_rows = {k: (r.seed_status, r.seed_note) for k, r in table.items() if r.seed_status != "absent"}
    assert seed_rows == SEED
    counts = {m: sum(1 for k in SEED if k[0] == m) for m in ("resnet50", "retinanet", "bert")}
    assert counts == {"resnet50": 6, "retinanet": 6, "bert": 8}
    # tvm-onnx (absent from the seed) is covered too: every model x backend x device in fp32.
    for model in ("resnet50", "retinanet", "bert"):
        for backend in ("onnxruntime", "pytorch", "tensorflow", "tvm-onnx"):
            for device in ("cpu", "cuda"):
                assert (model, backend, device, "fp32") in table
    # 26 seed-shaped fp32/int8 cells, plus pytorch's bf16 on the CPU and tf32/fp16/bf16 on CUDA, plus
    # onnxruntime's fp16 on CUDA.
    assert len(table) == 26 + 3 * (1 + 3) + 3


def test_seed_readme_itself_matches():
    for root in (REPO, REPO.parent):
        if (root / SEED_NAME).is_file():
            assert _parse_seed_readme((root / SEED_NAME).read_text(encoding="utf-8")) == SEED
            return
    pytest.skip("the seed README is not checked out next to this repository")


def test_statuses_today():
    statuses = {row.key: row.status for row in load_table()}
    for model, precision in (("resnet50", "fp32"), ("retinanet", "fp32"), ("bert", "fp32"), ("bert", "int8")):
        assert statuses.pop((model, "onnxruntime", "cpu", precision)) == "works"
        # verify on the H200 (harness/data/verified/h200-16core.json)
        assert statuses.pop((model, "onnxruntime", "cuda", precision)) == "works"
    for model in ("resnet50", "bert"):
        assert statuses.pop((model, "onnxruntime", "cuda", "fp16")) == "works"
    assert statuses.pop(("retinanet", "onnxruntime", "cuda", "fp16")) == "unsupported"
    for model in ("resnet50", "retinanet", "bert"):
        for precision in ("fp32", "bf16"):
            assert statuses.pop((model, "pytorch", "cpu", precision)) == "works"
        for precision in ("fp32", "tf32", "fp16", "bf16"):
            # LoadGen runs on the H200 showed every one (docs/measurements/2026-12-03b-worker-streams/)
            assert statuses.pop((model, "pytorch", "cuda", precision)) == "works", (model, precision)
        assert statuses.pop((model, "tvm-onnx", "cpu", "fp32")) == "works"
        assert statuses.pop((model, "tensorflow", "cpu", "fp32")) == "works"
        # tensorflow-cpu has no GPU, and TensorFlow's CUDA build is not on the GPU machine: never run.
        assert statuses.pop((model, "tensorflow", "cuda", "fp32")) == "untested"
    assert set(statuses.values()) == {"unsupported"}
    for row in load_table():
        if row.status == "unsupported":
            expected = {"tvm-onnx": "CPU only", "onnxruntime": "no fp16 ONNX"}.get(row.backend, "not implemented yet")
            assert row.note.startswith(expected), row


def test_resnet50_onnxruntime_cpu_runs_here(home, here):
    verdict = check(*ONLY_CPU, detection=here)
    assert verdict.runnable and verdict.here == "works" and verdict.install_command is None
    assert assess(*ONLY_CPU).here == "works"


def test_an_unsupported_cell_is_refused_with_reason_and_alternatives(home, here):
    verdict = assess("retinanet", "tvm-onnx", "cuda", "fp32", here)
    assert verdict.here == "unsupported" and not verdict.runnable
    assert "CPU only" in verdict.reason
    with pytest.raises(CoverageError) as err:
        check("retinanet", "tvm-onnx", "cuda", "fp32", detection=here)
    assert "retinanet + tvm-onnx + cuda + fp32" in err.value.message
    assert "CPU only" in err.value.message
    assert "retinanet + tvm-onnx + cpu + fp32" in err.value.fix
    assert [r.key for r in nearest("retinanet", "tvm-onnx", "cuda", "fp32", here)][0] == (
        "retinanet", "tvm-onnx", "cpu", "fp32")


def test_the_seeds_broken_retinanet_on_tensorflow_works_and_keeps_the_seeds_view(home, here):
    verdict = assess("retinanet", "tensorflow", "cpu", "fp32", here)
    assert verdict.here in ("works", "not-installed") and verdict.row.status == "works"
    assert verdict.row.seed_status == "broken"  # the seed's view is kept alongside


def test_not_installed_backend_gives_install_command(home):
    bare = machine()
    verdict = assess(*ONLY_CPU, bare)
    assert verdict.here == "not-installed" and not verdict.runnable
    assert verdict.install_command == "pip install onnxruntime"
    with pytest.raises(CoverageError) as err:
        check(*ONLY_CPU, detection=bare)
    assert "pip install onnxruntime" in err.value.fix
    assert assess(*ORT_CUDA, machine(gpus=[H200])).install_command == "pip install 'onnxruntime-gpu[cuda,cudnn]'"
    # What the table refuses is refused first, whatever is installed.
    assert assess("retinanet", "tvm-onnx", "cuda", "fp32", bare).here == "unsupported"
    pytorch = assess("retinanet", "pytorch", "cpu", "fp32", bare)
    assert pytorch.here == "not-installed" and pytorch.install_command == "pip install 'mlperf-wizard[torch]'"


def test_installed_but_broken_import_is_not_runnable():
    error = "ImportError: libstdc++.so.6: version GLIBCXX_3.4.32 not found"
    broken = machine(onnxruntime={"installed": True, "version": "1.20.0", "devices": [], "error": error})
    verdict = assess(*ONLY_CPU, broken)
    assert verdict.here == "not-installed" and not verdict.runnable
    assert "GLIBCXX" in verdict.reason and verdict.install_command == "pip install onnxruntime"


def test_cuda_without_gpu_is_no_device(home, here):
    if not here.gpus:
        verdict = assess(*ORT_CUDA, here)
        assert verdict.here == "no-device" and "no NVIDIA GPU" in verdict.reason
    no_gpu = assess(*ORT_CUDA, machine(onnxruntime=ORT_WITH_CUDA))
    assert no_gpu.here == "no-device" and not no_gpu.runnable and "no NVIDIA GPU" in no_gpu.reason
    # A GPU, but an onnxruntime build without CUDA: say so, and how to swap builds.
    cpu_build = assess(*ORT_CUDA, machine(gpus=[H200], onnxruntime=ORT_CPU_ONLY))
    assert cpu_build.here == "no-device" and "CUDAExecutionProvider" in cpu_build.reason
    assert cpu_build.install_command == "pip uninstall -y onnxruntime && pip install 'onnxruntime-gpu[cuda,cudnn]'"
    gpu_machine = machine(gpus=[H200], onnxruntime=ORT_WITH_CUDA)
    ready = check(*ORT_CUDA, detection=gpu_machine)
    assert ready.here == "works" and ready.runnable


def test_record_verified_flips_here(home, here):
    assert assess(*ONLY_CPU).here == "works"
    record_verified(*ONLY_CPU, ok=True, when="2026-01-02T03:04:05+00:00")
    verdict = assess(*ONLY_CPU, here)
    assert verdict.here == "verified" and verdict.runnable
    assert verdict.verified_at == "2026-01-02T03:04:05+00:00"
    stored = json.loads((home / "state" / "verified.json").read_text(encoding="utf-8"))
    assert stored["combinations"]["resnet50/onnxruntime/cpu/fp32"]["ok"] is True
    record_verified(*ONLY_CPU, ok=False, when="2026-01-03T00:00:00+00:00")
    later = assess(*ONLY_CPU)
    assert later.here == "works" and "failed" in later.reason
    # A verified run never makes an unimplemented combination runnable, nor hides missing software.
    record_verified("retinanet", "tvm-onnx", "cuda", "fp32", ok=True)
    assert assess("retinanet", "tvm-onnx", "cuda", "fp32").here == "unsupported"
    record_verified(*ONLY_CPU, ok=True)
    assert assess(*ONLY_CPU, machine()).here == "not-installed"
    with pytest.raises(CoverageError):
        record_verified("resnet51", "onnxruntime", "cpu", "fp32", ok=True)


def test_corrupt_verified_file_is_ignored(home):
    (home / "state").mkdir()
    (home / "state" / "verified.json").write_text("[1, 2", encoding="utf-8")
    assert assess(*ONLY_CPU).here == "works"
    record_verified(*ONLY_CPU, ok=True)
    assert assess(*ONLY_CPU).here == "verified"


def test_aliases_and_unknown_combinations():
    assert assess("ResNet50", "onnxruntime", "gpu", "fp32").row.device == "cuda"
    assert assess("bert", "tf", "cpu", "fp32").row.backend == "tensorflow"
    unknown = assess("resnet50", "onnxruntime", "npu", "fp32")
    assert unknown.here == "unknown" and unknown.row is None and not unknown.runnable
    assert "device 'npu'" in unknown.reason and "cpu, cuda" in unknown.reason
    with pytest.raises(CoverageError) as err:
        check("resnet50", "onnxruntime", "npu", "fp32")
    assert "resnet50 + onnxruntime + cpu + fp32" in err.value.fix


def test_nearest_orders_by_distance():
    gpu_machine = machine(gpus=[H200], onnxruntime=ORT_WITH_CUDA)
    got = [r.key for r in nearest("resnet50", "tensorflow", "cuda", "fp32", gpu_machine)]
    assert got[:2] == [ORT_CUDA, ONLY_CPU]  # one field away, then two; the same model first
    assert [r.key for r in nearest("resnet50", "tensorflow", "cuda", "fp32", gpu_machine, limit=1)] == [ORT_CUDA]
    # Nothing installed: nothing is runnable, so nothing is suggested.
    assert nearest("bert", "onnxruntime", "cpu", "fp32", machine()) == []


def test_merged_table_covers_every_row(home, here):
    verdicts = merged_table(here)
    assert [v.row for v in verdicts] == load_table()
    assert all(v.here in HERE for v in verdicts)
    expected = {r.key for r in load_table()
                if r.status in ("works", "untested") and here.backend_usable(r.backend, r.device)}
    assert ("resnet50", "onnxruntime", "cpu", "fp32") in expected
    assert {v.row.key for v in verdicts if v.runnable} == expected


ROW = "{model: resnet50, backend: onnxruntime, device: cpu, precision: fp32, status: %s}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "rows:\n  - " + ROW % "sometimes",
            ["row 1", "resnet50 + onnxruntime + cpu + fp32", "'sometimes'", "works"],
        ),
        ("rows:\n  - " + ROW % "works" + "\n  - " + ROW % "untested", ["row 2", "duplicates row 1"]),
        (
            "rows:\n  - {model: bert, backend: onnxruntime, device: cpu, precision: fp32, stauts: works}",
            ["row 1", "lacks status"],
        ),
        (
            "rows:\n  - {model: bert, backend: caffe, device: cpu, precision: fp32, status: works}",
            ["row 1", "backend 'caffe'"],
        ),
        ("rows: [ {model: bert", ["not valid YAML"]),
        ("- just a list", ["a list under 'rows'"]),
    ],
)
def test_bad_yaml_rejected_with_a_clear_message(tmp_path, text, expected):
    path = tmp_path / "coverage.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CoverageError) as err:
        load_table(path)
    message = str(err.value)
    assert str(path) in message
    for part in expected:
        assert part in message
