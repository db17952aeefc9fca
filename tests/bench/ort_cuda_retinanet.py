"""Where ONNX Runtime CUDA spends its time on the synthetic full RetinaNet (batch 1, 800x800): the strict
no-CPU-fallback session's answer, the first call, and the steady per-image latency per cuDNN algorithm search
setting, beside the CPU. Usage: python tests/bench/ort_cuda_retinanet.py [--calls 5]"""

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
    args = ap.parse_args()
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


if __name__ == "__main__":
    main()
