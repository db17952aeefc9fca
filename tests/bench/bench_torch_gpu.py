"""PyTorch on one GPU, side by side in one run: the harness's LoadGen Offline throughput against a direct loop
calling the same backend object on the same batches, per precision.

Direct loop: batches of the performance sample set, staged on the GPU as the QSL stages them (cast once,
channels-last), through the task's ``infer`` (model, outputs back to the host) in a plain loop, timed after
one warm-up batch (which compiles, with --compile). Harness: ``mlperf-wizard run --backend pytorch --device
cuda --scenario Offline --mode performance --style short`` at the same batch size and compile mode, lasting
about as long as the direct loop; its LoadGen samples/s. Also the SingleStream p50/p90 (--singlestream).

    python tests/bench/bench_torch_gpu.py [--model resnet50] [--batch 256] [--precisions fp32,tf32,fp16,bf16]
        [--compile off|default|max-autotune] [--seconds 10] [--singlestream]

Synthetic model and data: the figures are about speed, NOT MLPerf results.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def direct(model: str, precision: str, batch: int, seconds: float, compile_mode: str) -> tuple[float, float]:
    """(samples/s of the direct loop, seconds of the first, untimed batch: the compile when there is one)."""
    import torch

    from harness.backends.base import load_backend
    from harness.models.families import build_synthetic, family
    from harness.models.registry import MODELS, synthetic_path, synthetic_variant

    spec = MODELS[model]
    path = synthetic_path(spec, synthetic_variant(), precision=precision, backend="pytorch")
    if not path.exists():
        build_synthetic(model, path, synthetic_variant(), precision)
    fam = family(model)
    backend = load_backend("pytorch", path, device="cuda", threads=None, outputs=fam.io.outputs,
                           model=model, precision=precision, compile_mode=compile_mode)
    task = fam.task(backend)
    data = fam.synthetic_dataset(spec.performance_sample_count, getattr(task, "layout", None))
    staging = backend.staging()
    staged = [staging.stage(data.sample(i)) for i in range(data.count)]
    batches = [staging.batch([staged[(i * batch + j) % data.count] for j in range(batch)]) for i in range(8)]
    first = time.perf_counter()
    task.infer(batches[0])
    torch.cuda.synchronize()
    first = time.perf_counter() - first
    start, n = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        for b in batches:
            task.infer(b)
            n += batch
    return n / (time.perf_counter() - start), first


def harness(model: str, precision: str, batch: int, scenario: str, samples: int | None = None,
            compile_mode: str = "off") -> dict:
    """One LoadGen performance run through the CLI; ``samples`` sets the short run's query count (a short
    Offline run's default of 100 samples is one batch: too short to measure a throughput)."""
    count = ["--test-query-count", str(samples)] if samples else []
    proc = subprocess.run([sys.executable, "-m", "wizard.cli", "run", "--model", model, "--backend", "pytorch",
                           "--device", "cuda", "--precision", precision, "--batch-size", str(batch),
                           "--compile", compile_mode, "--tune", "off", "--scenario", scenario, "--mode", "performance",
                           "--style", "short", "--json", *count],
                          capture_output=True, text=True, timeout=900)
    try:
        test = json.loads(proc.stdout)["tests"][0]
    except (ValueError, KeyError, IndexError):
        return {"error": (proc.stderr or proc.stdout)[-1500:]}
    return {"value": test.get("value"), "unit": test.get("unit"), "validity": test.get("validity"),
            "latency_ms": test.get("latency_ms"), "sut_ms": test.get("sut_ms")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="resnet50")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--precisions", default="fp32,tf32,fp16,bf16")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--singlestream", action="store_true")
    ap.add_argument("--compile", default="off", choices=("off", "default", "max-autotune"))
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    rows = []
    for precision in args.precisions.split(","):
        d, first_s = direct(args.model, precision, args.batch, args.seconds, args.compile)
        started = time.perf_counter()
        h = harness(args.model, precision, args.batch, "Offline", samples=max(args.batch * 8, int(d * args.seconds)),
                    compile_mode=args.compile)
        ratio = (h.get("value") or 0) / d if d else 0
        rows.append({"model": args.model, "precision": precision, "batch": args.batch, "compile": args.compile,
                     "direct": round(d, 1), "first_batch_s": round(first_s, 1), "harness": h,
                     "harness_wall_s": round(time.perf_counter() - started, 1), "ratio": round(ratio, 3)})
        print(json.dumps(rows[-1]), flush=True)
    if args.singlestream:
        print(json.dumps({"singlestream": harness(args.model, args.precisions.split(",")[0], 1, "SingleStream",
                                                  compile_mode=args.compile)}))
    print(f"# synthetic model and data, NOT an MLPerf result; host {os.uname().nodename}")


if __name__ == "__main__":
    main()
