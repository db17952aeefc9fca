"""Where the CPU goes inside the harness's test process during a LoadGen Offline run: CPU seconds per thread
(by the name the thread gave itself: sut-worker-0, progress-reporter, LoadGen's, the framework's pools),
sampled from /proc while the run lasts. Linux only. Usage:
    python tests/bench/thread_cpu.py --backend tensorflow [--samples 160] [--batch 8] [--threads 2]"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).parent))

from bench_overhead import harness_run  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def thread_times(pid: int) -> dict[int, tuple[str, float]]:
    """tid -> (name, CPU seconds) of every thread of ``pid``."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            out[int(task.name)] = (name, (int(fields[11]) + int(fields[12])) / TICK)
        except (OSError, IndexError, ValueError):
            continue
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="tensorflow")
    ap.add_argument("--samples", type=int, default=160)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--variant", default="full", choices=("full", "tiny"))
    args = ap.parse_args()
    os.environ.setdefault("MLPERF_WIZARD_HOME", str(Path(tempfile.gettempdir()) / "mlperf-wizard-bench"))
    os.environ["MLPERF_WIZARD_SYNTHETIC_VARIANT"] = args.variant

    result: dict = {}
    run = threading.Thread(target=lambda: result.setdefault("test", harness_run(
        args.backend, "Offline", args.samples, args.batch, args.threads, 1e6)), daemon=True)
    run.start()
    last: dict[int, tuple[str, float]] = {}
    child = None
    while run.is_alive():
        time.sleep(0.5)
        kids = []
        for p in psutil.Process().children(recursive=True):
            try:
                if "harness.child" in " ".join(p.cmdline()):
                    kids.append(p)
            except psutil.Error:  # ended (or a zombie) since it was listed
                continue
        if kids:
            child = kids[0].pid
            try:
                last.update(thread_times(child))
            except FileNotFoundError:
                pass
    run.join()
    by_name: dict[str, float] = defaultdict(float)
    for name, seconds in last.values():
        by_name[name] += seconds
    test = result.get("test")
    print(f"{args.backend}: Offline {test.value if test else '?'} samples/s; test process {child}; "
          f"CPU seconds per thread name (whole process life, {len(last)} threads):")
    for name, seconds in sorted(by_name.items(), key=lambda kv: -kv[1]):
        if seconds >= 0.05:
            print(f"  {name:24s} {seconds:8.2f}")
    print("per thread (Python threads show as python3 unless the OS name was set):")
    for tid, (name, seconds) in sorted(last.items(), key=lambda kv: -kv[1][1]):
        if seconds >= 0.05:
            print(f"  {tid:8d} {name:24s} {seconds:8.2f}")


if __name__ == "__main__":
    main()
