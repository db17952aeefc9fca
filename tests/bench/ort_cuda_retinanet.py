"""Where ONNX Runtime CUDA spends its time on the synthetic full RetinaNet (batch 1, 800x800): the strict
no-CPU-fallback session's answer, the first call, and the steady per-image latency per cuDNN algorithm search
setting, beside the CPU; then ONNX Runtime's own profile of the CUDA session (time per operator type and the
slowest nodes) and which cuDNN library the process mapped. Usage:
    python tests/bench/ort_cuda_retinanet.py [--calls 5] [--torch-first] [--profile-only]
--torch-first imports torch before onnxruntime, so that torch's pip cuDNN is the one loaded."""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=5)
    ap.add_argument("--variant", default="full")
    ap.add_argument("--torch-first", action="store_true", help="import torch (and its cuDNN) first")
    ap.add_argument("--profile-only", action="store_true", help="only the profiled CUDA session")
    args = ap.parse_args()
    if args.torch_first:
        import torch  # noqa: F401 - loads torch's CUDA and cuDNN libraries into the process
    os.environ.setdefault("MLPERF_WIZARD_HOME", str(Path(tempfile.gettempdir()) / "mlperf-wizard-bench"))
    import onnxruntime as ort

    from harness.datasets.openimages import SyntheticOpenImages
    from harness.models.families import build_synthetic
    from harness.models.registry import MODELS, synthetic_path

    path = synthetic_path(MODELS["retinanet"], args.variant)
    if not path.is_file():
        t = time.perf_counter()
        build_synthetic("retinanet", path, args.variant, "fp32")
        print(f"built {path.name} in {time.perf_counter() - t:.1f} s", flush=True)
    if hasattr(ort, "preload_dlls"):
        ort.preload_dlls()
    image = SyntheticOpenImages(1).sample(0)[None]
    strict = ort.SessionOptions()
    strict.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
    try:
        ort.InferenceSession(str(path), strict, providers=["CUDAExecutionProvider"])
        print("strict CUDA session (no CPU fallback): accepted", flush=True)
    except Exception as exc:  # noqa: BLE001 - the message is the finding
        print(f"strict CUDA session (no CPU fallback): refused: {str(exc)[:600]}", flush=True)
    if args.profile_only:
        profile(path, image, args.calls)
        return
    settings = [("cpu", ["CPUExecutionProvider"])] + [
        (f"cuda {search}", [("CUDAExecutionProvider", {"cudnn_conv_algo_search": search}), "CPUExecutionProvider"])
        for search in ("EXHAUSTIVE", "HEURISTIC", "DEFAULT")]
    for label, providers in settings:
        t = time.perf_counter()
        session = ort.InferenceSession(str(path), providers=providers)
        made = time.perf_counter() - t
        t = time.perf_counter()
        out = session.run(None, {"images": image})
        first = time.perf_counter() - t
        times = []
        for _ in range(args.calls):
            t = time.perf_counter()
            session.run(None, {"images": image})
            times.append((time.perf_counter() - t) * 1000)
        print(f"{label:16s} session {made:6.2f} s  first call {first:7.2f} s  then median "
              f"{np.median(times):8.2f} ms ({len(out[1])} detections); providers {session.get_providers()}",
              flush=True)


def mapped_cudnn() -> list[str]:
    """The cuDNN and cuBLAS libraries this process has mapped (from /proc/self/maps)."""
    try:
        lines = Path("/proc/self/maps").read_text().splitlines()
    except OSError:
        return []
    return sorted({line.split()[-1] for line in lines if "libcudnn.so" in line or "libcublas.so" in line})


def profile(path: Path, image, calls: int) -> None:
    """ONNX Runtime's profile of the CUDA session: summed kernel time per operator type, the slowest nodes."""
    import json
    from collections import Counter

    import onnxruntime as ort

    options = ort.SessionOptions()
    options.enable_profiling = True
    options.profile_file_prefix = str(Path(tempfile.gettempdir()) / "retinanet_ort_profile")
    session = ort.InferenceSession(str(path), options, providers=["CUDAExecutionProvider"])
    session.run(None, {"images": image})
    times = []
    for _ in range(calls):
        t = time.perf_counter()
        session.run(None, {"images": image})
        times.append((time.perf_counter() - t) * 1000)
    events = json.loads(Path(session.end_profiling()).read_text())
    by_type: Counter = Counter()
    by_node: Counter = Counter()
    placement: Counter = Counter()
    for event in events:
        if event.get("cat") != "Node" or not event.get("name", "").endswith("_kernel_time"):
            continue
        args = event.get("args", {})
        by_type[args.get("op_name", "?")] += event["dur"]
        by_node[event["name"][: -len("_kernel_time")]] += event["dur"]
        placement[args.get("provider", "?")] += 1
    runs = calls + 1
    total = sum(by_type.values()) / runs / 1000
    print(f"profiled CUDA session: median {np.median(times):.2f} ms per image; kernel time summed {total:.2f} ms "
          f"per run; node runs per provider {dict(placement)}")
    for op, us in by_type.most_common(12):
        print(f"  {op:28s} {us / runs / 1000:9.2f} ms per run")
    print("slowest nodes:")
    for node, us in by_node.most_common(8):
        print(f"  {node:40s} {us / runs / 1000:9.2f} ms per run")
    print("mapped:", *mapped_cudnn(), sep="\n  ")


if __name__ == "__main__":
    main()
