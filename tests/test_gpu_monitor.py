"""GPU numbering (cuda:N), the NVML monitor of a CUDA run and its place on the 80-column live line."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness import events as ev
from harness.detect import Detection
from harness.errors import CoverageError, ProfileError
from harness.gpu_monitor import GpuMonitor, GpuSample, monitor_for, nvml_target
from harness.plan import prepare
from harness.profile import device_index, device_kind, make_profile
from tests.fixed_machine import MACHINE
from wizard.progress import fit_line, progress_parts


def _nvml_gpu_count() -> int:
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            return pynvml.nvmlDeviceGetCount()
        finally:
            pynvml.nvmlShutdown()
    except Exception:
        return 0


GPUS = _nvml_gpu_count()
needs_gpu = pytest.mark.skipif(GPUS == 0, reason="no NVIDIA GPU visible to NVML on this machine")


@pytest.mark.parametrize(("raw", "canonical"), [("cuda", "cuda"), ("cuda:0", "cuda:0"), ("CUDA:3", "cuda:3"),
                                                ("gpu:1", "cuda:1"), ("cpu", "cpu"), (" cuda:12 ", "cuda:12")])
def test_device_accepts_a_gpu_number(raw, canonical):
    profile = make_profile({"device": raw})
    assert profile.device == canonical
    assert profile.device_kind == canonical.partition(":")[0]


@pytest.mark.parametrize("raw", ["cuda:", "cuda:-1", "cuda:x", "cuda:100", "cpu:0", "cuda:1:2", "cuda :1"])
def test_device_refuses_a_bad_gpu_number(raw):
    with pytest.raises(ProfileError) as err:
        make_profile({"device": raw})
    assert "device" in str(err.value) and "cuda:N" in str(err.value)


@given(st.integers(min_value=0, max_value=99))
def test_device_number_round_trips(n):
    device = make_profile({"device": f"cuda:{n}"}).device
    assert device_kind(device) == "cuda" and device_index(device) == n
    assert device_index("cpu") is None and device_index("cuda") == 0


def _gpu_machine(torch_sees: int) -> Detection:
    data = copy.deepcopy(MACHINE)
    data["gpus"] = [{"index": i, "name": "Example GPU", "memory_total_mib": 81920, "driver": "580.1"}
                    for i in range(torch_sees)]
    data["backends"]["pytorch"] = {"installed": True, "version": "2.13.0", "devices": ["cpu", "cuda"],
                                   "details": {"cuda_device_count": torch_sees}}
    return Detection.from_dict(data)


def test_a_gpu_number_the_machine_lacks_stops_before_anything_runs():
    profile = make_profile({"backend": "pytorch", "device": "cuda:2", "model_source": "synthetic",
                            "dataset_source": "synthetic"})
    with pytest.raises(CoverageError) as err:
        prepare(profile, _gpu_machine(2))
    assert "cuda:2" in str(err.value) and "cuda:0 .. cuda:1" in err.value.fix
    plan = prepare(profile.with_values({"device": "cuda:1"}), _gpu_machine(2))
    assert plan.tests[0].device == "cuda:1"  # the child's backend gets the GPU's number


@given(st.lists(st.integers(min_value=0, max_value=15), min_size=1, max_size=8, unique=True),
       st.integers(min_value=0, max_value=9))
def test_cuda_numbers_follow_cuda_visible_devices(visible, n):
    """CUDA numbers the listed GPUs from 0; NVML numbers the machine's: cuda:N is the N-th listed."""
    target = nvml_target(f"cuda:{n}", ",".join(map(str, visible)))
    assert target == (visible[n] if n < len(visible) else None)


def test_cuda_visible_devices_by_uuid_and_cut_at_a_bad_entry():
    assert nvml_target("cuda:1", "GPU-aaa,MIG-bbb") == "MIG-bbb"
    assert nvml_target("cuda:1", "3,junk,4") is None  # CUDA stops at the first entry it cannot use
    assert nvml_target("cuda", "") is None
    assert nvml_target("cuda:1", None) == 1
    assert nvml_target("cpu", None) is None
    assert monitor_for("cpu") is None


@given(st.integers(0, 100), st.integers(0, 10**7), st.integers(1, 10**7), st.integers(0, 99))
def test_the_gpu_reading_keeps_the_live_line_inside_80_columns(util, used, total, n):
    reading = GpuSample(f"GPU{n}", util, used, total).text()
    event = ev.Progress(issued=24576, completed=12288, expected=24576, qps=27123.4, qps_window_s=2.0,
                        mean_qps=27000.0, elapsed_s=0.5, min_duration_s=600.0, p90_ms=1.25)
    parts = progress_parts(event, "Offline")
    parts.insert(2, reading)
    line = fit_line(["[1/2 Offline performance]", "[1/2 Offline]"], parts, 79)
    assert len(line) <= 79
    assert "samples/s" in line  # the rate is never the part dropped


def test_no_reading_where_nvml_cannot_answer():
    """A GPU number NVML lacks (or no NVML at all, as on CI) gives None, and then stays quiet."""
    monitor = GpuMonitor("cuda:97", visible="")
    assert monitor.sample() is None and monitor.text() is None
    monitor = GpuMonitor(f"cuda:{GPUS + 50}", visible=None)
    assert monitor.sample() is None and monitor.dead
    monitor.close()


@needs_gpu
def test_a_real_reading_of_this_gpu_at_most_once_per_interval():
    now = [100.0]
    monitor = GpuMonitor("cuda:0", visible=None, interval_s=1.0, clock=lambda: now[0])
    first = monitor.sample()
    assert first is not None and 0 <= first.util_pct <= 100
    assert 0 < first.mem_used_mib <= first.mem_total_mib
    now[0] += 0.5
    assert monitor.sample() is first  # inside the interval: the same reading, no NVML call
    now[0] += 0.6
    again = monitor.sample()
    assert again is not None and again.mem_total_mib == first.mem_total_mib
    assert again.text().startswith("GPU0 ") and again.text().endswith(" GiB")
    monitor.close()
