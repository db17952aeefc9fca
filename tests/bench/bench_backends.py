"""ResNet50 Offline samples/s on every installed backend, side by side in one run, on the same synthetic model
(the one seeded network, in each backend's format), batch size, threads and device.

Per backend: a direct loop over the backend through the task code, then LoadGen's Offline samples/s through
the harness, sized to last about ``--seconds``. Each direct loop runs in a process of its own, with only its
framework loaded, as the harness's child does (the thread pools of four frameworks in one process slow each
other down). Rounds alternate across backends so that drift on a noisy machine hits all of them; the
figures are medians over rounds, and odd rounds measure the harness first. Usage:

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


def direct(name: str, args) -> tuple[float, str]:
    """Samples/s of the direct loop of backend ``name``, measured in a process of its own, and the version of
    the backend that process imported."""
    import json
    import subprocess

    command = [sys.executable, __file__, "--direct-only", name, "--device", args.device, "--variant", args.variant,
               "--seconds", str(args.seconds), "--batch", str(args.batch), "--threads", str(args.threads)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        sys.exit(f"the direct loop of {name} failed: {done.stderr[-2000:]}")
    figures = json.loads(lines[-1])
    return figures["samples_per_s"], figures["version"]


def direct_only(name: str, args) -> None:
    import json

    from harness.backends.base import load_backend
    from harness.models.families import build_synthetic, family
    from harness.models.registry import MODELS, synthetic_path

    fam = family("resnet50")
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
    task.infer(batches[0])  # a compile (TVM) happens here, outside the timed loop
    print(json.dumps({"backend": name, "version": backend.version,
                      "samples_per_s": timed_loop(task, batches, args.seconds)}), flush=True)


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
    ap.add_argument("--direct-only", metavar="BACKEND", help=argparse.SUPPRESS)
    args = ap.parse_args()

    os.environ.setdefault("MLPERF_WIZARD_HOME", str(Path(tempfile.gettempdir()) / "mlperf-wizard-bench"))
    os.environ["MLPERF_WIZARD_SYNTHETIC_VARIANT"] = args.variant
    if args.direct_only:
        direct_only(args.direct_only, args)
        return
    names = []
    for name in args.backends:
        if importlib.util.find_spec(catalogue.backend(name).module) is None:
            print(f"{name}: not installed here, skipped")
        else:
            names.append(name)
    print(f"model: synthetic ResNet50 v1.5 ({args.variant}), batch {args.batch}, threads {args.threads}, "
          f"device {args.device}, {os.cpu_count()} CPUs, {args.rounds} rounds of about {args.seconds:.0f} s")
    direct_rates: dict[str, list[float]] = {n: [] for n in names}
    harness: dict[str, list[float]] = {n: [] for n in names}
    versions: dict[str, str] = {}
    for r in range(args.rounds):
        for name in names:
            # Odd rounds run the harness first, so that a machine drifting within a round biases both ways; a
            # harness run is sized from the latest direct figure (round 1 measures direct first).
            order = ("direct", "harness") if r % 2 == 0 else ("harness", "direct")
            for what in order:
                if what == "direct":
                    rate, versions[name] = direct(name, args)
                    direct_rates[name].append(rate)
                else:
                    guess = direct_rates[name][-1]
                    test = harness_run(name, "Offline", max(args.batch, int(guess * args.seconds)), args.batch,
                                       args.threads, guess * 1.1, args.device)
                    harness[name].append(test.value)
            print(f"round {r + 1} {name:12s} direct {direct_rates[name][-1]:9.2f}  harness {harness[name][-1]:9.2f} "
                  f"samples/s  ratio {harness[name][-1] / direct_rates[name][-1]:6.3f}", flush=True)
    print("\nmedians over rounds (Offline samples/s); ratio: the median of the rounds' harness/direct, with its range")
    print(f"{'backend':12s} {'version':22s} {'direct':>10s} {'harness':>10s} {'ratio':>6s}  range")
    for name in names:
        d, h = statistics.median(direct_rates[name]), statistics.median(harness[name])
        ratios = [b / a for a, b in zip(direct_rates[name], harness[name], strict=True)]
        print(f"{name:12s} {versions.get(name, '?')[:22]:22s} {d:10.2f} {h:10.2f} {statistics.median(ratios):6.3f}  "
              f"{min(ratios):.3f}-{max(ratios):.3f}")
    print("(synthetic model and data: backend and harness figures, not an MLPerf result)")


if __name__ == "__main__":
    main()
