"""Harness overhead, measured side by side in one run on the same model, batch size and threads.

1. Offline: LoadGen's samples/s through the harness (child process, SUT, QSL) against a tight loop
   that calls the same backend (onnxruntime, pytorch, tensorflow or tvm-onnx) through the same task code
   on the same batches. Goal: ratio >= 0.97 on the CPU, >= 0.95 on a GPU.
2. SingleStream: LoadGen's p50/p90 latency through the harness against direct single-sample calls.
   Goal: p50 overhead <= 0.2 ms. Two figures: LoadGen's p50 minus the p50 of the backend call timed
   inside the SUT (the harness's own cost, immune to drift between runs), and LoadGen's p50 minus the
   direct loop's (end to end; on a 2-core machine it also holds the slowdown of the backend by
   LoadGen's own threads competing for the cores, and the run-to-run noise).

Rounds alternate (direct, harness, direct, harness, ...) so drift on a noisy machine hits both sides;
the figures reported are medians over rounds. Usage:

    python tests/bench/bench_overhead.py [--backend onnxruntime] [--device cpu|cuda] [--variant full|tiny]
        [--rounds 3] [--samples 512]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def direct_offline(task, batches: list) -> float:
    """Samples/s of a tight loop over the same batches the harness would run, through the same task and
    backend code the SUT calls."""
    task.infer(batches[0])
    start = time.perf_counter()
    n = 0
    for b in batches:
        task.infer(b)
        n += len(b)
    return n / (time.perf_counter() - start)


def direct_single(task, staging, samples: list) -> tuple[float, float]:
    """p50/p90 in ms of direct single-sample calls."""
    task.infer(staging.batch(samples[:1]))
    times = []
    for s in samples:
        t = time.perf_counter()
        task.infer(staging.batch([s]))
        times.append((time.perf_counter() - t) * 1000)
    p50, p90 = np.percentile(times, [50, 90])
    return float(p50), float(p90)


def harness_run(backend: str, scenario: str, count: int, batch: int, threads: int, target: float,
                device: str = "cpu"):
    from harness.plan import make_plan
    from harness.profile import make_profile
    from harness.runner import Runner

    profile = make_profile({"backend": backend, "device": device, "scenarios": [scenario], "mode": "performance",
                            "style": "short",
                            "test_query_count": count, "batch_size": batch, "threads": threads,
                            "workers": 1, "tune": "off",  # the same settings as the direct loop
                            "model_source": "synthetic", "dataset_source": "synthetic",
                            "target_qps" if scenario == "Offline" else "target_latency": target})
    record = Runner(make_plan(profile)).run()
    test = record.tests[0]
    if test.status != "completed":
        sys.exit(f"harness run failed: {test.error}")
    return test


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="onnxruntime", help="onnxruntime, pytorch, tensorflow or tvm-onnx")
    ap.add_argument("--variant", default="full", choices=("full", "tiny"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--samples", type=int, default=512, help="Offline samples per round")
    ap.add_argument("--queries", type=int, default=300, help="SingleStream queries per round")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--device", default="cpu", help="cpu, or cuda for a GPU backend (goal >= 0.95 there)")
    args = ap.parse_args()
    goal = 0.97 if args.device == "cpu" else 0.95

    os.environ.setdefault("MLPERF_WIZARD_HOME", str(Path(tempfile.gettempdir()) / "mlperf-wizard-bench"))
    os.environ["MLPERF_WIZARD_SYNTHETIC_VARIANT"] = args.variant
    from harness.backends.base import load_backend
    from harness.models.families import build_synthetic, family
    from harness.models.registry import MODELS, synthetic_path

    fam = family("resnet50")
    path = synthetic_path(MODELS["resnet50"], args.variant, precision="fp32", backend=args.backend)
    if not path.is_file():
        build_synthetic("resnet50", path, args.variant, "fp32")
    backend = load_backend(args.backend, path, device=args.device, threads=args.threads, outputs=fam.io.outputs,
                           model="resnet50")
    task = fam.task(backend)
    data = fam.synthetic_dataset(min(args.samples, 1024), getattr(task, "layout", None))
    staging = backend.staging()
    samples = [staging.stage(data.sample(i)) for i in range(data.count)]
    batches = [staging.batch(samples[i:i + args.batch]) for i in range(0, len(samples), args.batch)]
    single = samples[: args.queries] if len(samples) >= args.queries else (samples * args.queries)[: args.queries]

    off_direct, off_harness, ss_direct, ss_harness = [], [], [], []
    print(f"model: synthetic ResNet50 v1.5 ({args.variant}), batch {args.batch}, threads {args.threads}, "
          f"{backend.name} {backend.version} on {args.device}, {args.rounds} rounds")
    for r in range(args.rounds):
        off_direct.append(direct_offline(task, batches))
        test = harness_run(args.backend, "Offline", args.samples, args.batch, args.threads, off_direct[-1] * 1.1,
                           args.device)
        off_harness.append(test.value)
        ss_direct.append(direct_single(task, staging, single))
        test = harness_run(args.backend, "SingleStream", args.queries, 1, args.threads, ss_direct[-1][0],
                           args.device)
        ss_harness.append((test.latency_ms["p50"], test.latency_ms["p90"], test.sut_ms["infer_p50"]))
        print(f"round {r + 1}: Offline direct {off_direct[-1]:.2f} / harness {off_harness[-1]:.2f} samples/s; "
              f"SingleStream p50 direct {ss_direct[-1][0]:.3f} / harness {ss_harness[-1][0]:.3f} ms")

    od, oh = statistics.median(off_direct), statistics.median(off_harness)
    d50, h50 = statistics.median(x[0] for x in ss_direct), statistics.median(x[0] for x in ss_harness)
    d90, h90 = statistics.median(x[1] for x in ss_direct), statistics.median(x[1] for x in ss_harness)
    own = statistics.median(x[0] - x[2] for x in ss_harness)
    spread = max(x[0] for x in ss_direct) - min(x[0] for x in ss_direct)
    ratio = oh / od
    print("\nmedians over rounds")
    print(f"Offline      direct {od:9.2f} samples/s   harness {oh:9.2f} samples/s   ratio {ratio:.3f}  "
          f"(goal >= {goal}: {'met' if ratio >= goal else 'NOT met'})")
    print(f"SingleStream direct p50 {d50:7.3f} ms  p90 {d90:7.3f} ms")
    print(f"             harness p50 {h50:7.3f} ms  p90 {h90:7.3f} ms")
    print(f"  harness's own p50 overhead (LoadGen p50 - backend call p50 inside the SUT): {own:+.3f} ms  "
          f"(goal <= 0.2 ms: {'met' if own <= 0.2 else 'NOT met'})")
    print(f"  end to end vs the direct loop: {h50 - d50:+.3f} ms (direct p50 varied by {spread:.3f} ms "
          "between rounds)")
    print("(synthetic model and data: harness overhead figures, not an MLPerf result)")


if __name__ == "__main__":
    main()
