"""GPU use and memory of a CUDA run, read through NVML by the parent process while the run goes.

The child never does this: NVML calls cost milliseconds and would sit in the timed path. The parent asks at
most once per ``interval_s`` and keeps the last answer; anything NVML cannot answer (no library, no driver,
a lost GPU) turns the monitor off and it answers None from then on, never an error.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from .profile import device_index

MIB = 1024 * 1024


@dataclass(frozen=True)
class GpuSample:
    """One reading of one GPU."""

    label: str
    """How the GPU is named on screen: ``GPU0``, or ``GPU1`` for cuda:1."""
    util_pct: int
    """Percent of the last sample period in which a kernel ran (NVML's utilization.gpu)."""
    mem_used_mib: int
    mem_total_mib: int

    def text(self) -> str:
        """``GPU0 87% 12.3/140 GiB``: fits the live line beside the rate."""
        used, total = self.mem_used_mib / 1024, self.mem_total_mib / 1024
        return f"{self.label} {self.util_pct}% {used:.1f}/{total:.0f} GiB"


def nvml_target(device: str, visible: str | None) -> int | str | None:
    """The NVML handle key of the GPU a process with ``CUDA_VISIBLE_DEVICES=visible`` calls ``device``:
    an NVML index, a UUID (``GPU-...``/``MIG-...``), or None for the CPU or a number the list lacks.

    CUDA numbers the visible GPUs from 0 in the order listed; NVML numbers all GPUs of the machine."""
    index = device_index(device)
    if index is None:
        return None
    if visible is None:
        return index
    entries = [e.strip() for e in visible.split(",")]
    # CUDA stops at the first entry it cannot use: "0,x,1" makes only GPU 0 visible.
    usable = []
    for entry in entries:
        if entry.isdigit() or entry.startswith(("GPU-", "MIG-")):
            usable.append(int(entry) if entry.isdigit() else entry)
        else:
            break
    return usable[index] if index < len(usable) else None


class GpuMonitor:
    """Readings of the GPU a run on ``device`` uses, at most one NVML query per ``interval_s``."""

    def __init__(self, device: str, *, interval_s: float = 1.0, visible: str | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.label = f"GPU{device_index(device) or 0}"
        self.target = nvml_target(device, os.environ.get("CUDA_VISIBLE_DEVICES") if visible is None else visible)
        self.interval_s = interval_s
        self.clock = clock
        self.last: GpuSample | None = None
        self.asked_at: float | None = None
        self.handle = None
        self.dead = self.target is None
        self._nvml = None

    def _open(self):
        import pynvml

        pynvml.nvmlInit()
        self._nvml = pynvml
        if isinstance(self.target, str):
            return pynvml.nvmlDeviceGetHandleByUUID(self.target)
        return pynvml.nvmlDeviceGetHandleByIndex(self.target)

    def sample(self) -> GpuSample | None:
        """The latest reading; None where NVML cannot give one."""
        if self.dead:
            return None
        now = self.clock()
        if self.asked_at is not None and now - self.asked_at < self.interval_s:
            return self.last
        self.asked_at = now
        try:
            if self.handle is None:
                self.handle = self._open()
            nvml = self._nvml
            util = nvml.nvmlDeviceGetUtilizationRates(self.handle)
            mem = nvml.nvmlDeviceGetMemoryInfo(self.handle)
            self.last = GpuSample(self.label, int(util.gpu), int(mem.used) // MIB, int(mem.total) // MIB)
        except Exception:  # ImportError, NVMLError_*: no reading now or later
            self.close()
            self.dead, self.last = True, None
        return self.last

    def text(self) -> str | None:
        reading = self.sample()
        return reading.text() if reading else None

    def close(self) -> None:
        if self._nvml is not None:
            try:
                self._nvml.nvmlShutdown()
            except Exception:
                pass
            self._nvml, self.handle = None, None


def monitor_for(device: str) -> GpuMonitor | None:
    """A monitor for a run on ``device``; None for a CPU run (nothing to show)."""
    return GpuMonitor(device) if device_index(device) is not None else None
