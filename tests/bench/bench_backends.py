"""ResNet50 Offline samples/s on every installed backend, side by side in one run, on the same synthetic model
(the one seeded network, in each backend's format), batch size, threads and device.

Per backend: a direct loop over the backend through the task code, then LoadGen's Offline samples/s through
the harness, sized to last about ``--seconds``. Rounds alternate across backends so that drift on a noisy
machine hits all of them; the figures are medians over rounds. Usage:

    python tests/bench/bench_backends.py [--backends onnxruntime pytorch tensorflow tvm-onnx] [--device cpu]
        [--variant full|tiny] [--rounds 2] [--seconds 10] [--batch 8] [--threads N]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from bench_overhead import harness_run  # noqa: E402


def timed_loop(task, batches: list, seconds: float) -> float:
    """Samples/s of the direct loop, repeated over ``batches`` for about ``seconds``."""
    task.infer(batches[0])
    start, n = time.perf_counter(), 0
    while True:
        for b in batches:
            task.infer(b)
            n += len(b)
        if time.perf_counter() - start >= seconds:
            return n / (time.perf_counter() - start)


def main() -> None:
    from harness import catalogue

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backends", nargs="+", default=[b.name for b in catalogue.BACKENDS])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--variant", default="full", choices=("full", "tiny"))
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()

    os.environ.setdefault("MLPERF_WIZARD_HOME", str(Path(tempfile.gettempdir()) / "mlperf-wizard-bench"))
    os.environ["MLPERF_WIZARD_SYNTHETIC_VARIANT"] = args.variant
    from harness.backends.base import load_backend
    from harness.models.families import build_synthetic, family
    from harness.models.registry import MODELS, synthetic_path

    fam = family("resnet50")
    loaded = {}
    for name in args.backends:
        if importlib.util.find_spec(catalogue.backend(name).module) is None:
            print(f"{name}: not installed here, skipped")
            continue
        path = synthetic_path(MODELS["resnet50"], args.variant, precision="fp32", backend=name)
        if not path.is_file():
            build_synthetic("resnet50", path, args.variant, "fp32")
        backend = load_backend(name, path, device=args.device, threads=args.threads, outputs=fam.io.outputs,
                               model="resnet50")
        task = fam.task(backend)
        data = fam.synthetic_dataset(64, getattr(task, "layout", None))
        staging = backend.staging()
        samples = [staging.stage(data.sample(i)) for i in range(data.count)]
        batches = [staging.batch(samples[i:i + args.batch]) for i in range(0, len(samples), args.batch)]
        task.infer(batches[0])  # a compile (TVM) happens here, outside the timed loops
        loaded[name] = (backend, task, batches)
    print(f"model: synthetic ResNet50 v1.5 ({args.variant}), batch {args.batch}, threads {args.threads}, "
          f"device {args.device}, {os.cpu_count()} CPUs, {args.rounds} rounds of about {args.seconds:.0f} s")
    direct: dict[str, list[float]] = {n: [] for n in loaded}
    harness: dict[str, list[float]] = {n: [] for n in loaded}
    for r in range(args.rounds):
        for name, (_, task, batches) in loaded.items():
            direct[name].append(timed_loop(task, batches, args.seconds))
            count = max(args.batch, int(direct[name][-1] * args.seconds))
            test = harness_run(name, "Offline", count, args.batch, args.threads, direct[name][-1] * 1.1,
                               args.device)
            harness[name].append(test.value)
            print(f"round {r + 1} {name:12s} direct {direct[name][-1]:9.2f}  harness {harness[name][-1]:9.2f} "
                  "samples/s", flush=True)
    print("\nmedians over rounds (Offline samples/s)")
    print(f"{'backend':12s} {'version':22s} {'direct':>10s} {'harness':>10s} {'ratio':>6s}")
    for name, (backend, _, _) in loaded.items():
        d, h = statistics.median(direct[name]), statistics.median(harness[name])
        print(f"{name:12s} {backend.version[:22]:22s} {d:10.2f} {h:10.2f} {h / d:6.3f}")
    print("(synthetic model and data: backend and harness figures, not an MLPerf result)")


if __name__ == "__main__":
    main()
