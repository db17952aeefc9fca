"""Issue 10's figures, side by side in one run on the same model file, images and cores:

1. a direct sweep: the model in a tight loop (ONNX Runtime, the project's task code) for every split of the
   cores (workers x intra-op threads) and batch size; the best is the figure to reach;
2. the project's first tune (``mlperf-wizard tune --force``: wall time, goal < 60 s on 2 cores) and a second
   ``tune`` (nothing measured again);
3. rounds in ABBA order of: the project's Offline run with its defaults (tuned settings, real images through
   its ImageNet loader) and MLCommons' reference ``main.py`` (unmodified, from --reference) on the same
   ONNX file and images with ``--threads`` = the cores, as its README runs it;
4. with --server: the project's Server search (``tune --scenario Server --force``) against a manual sweep
   of LoadGen Server runs at fixed rates with the split the search chose (goal: within 10 % of the sweep's
   best VALID rate), and the search's time where no rate can be VALID.

Goals (issue 10): Offline >= 0.97 of the best direct configuration, >= 1.2x the reference.
Synthetic weights and generated images: figures about the harness, not MLPerf results. Usage:

    python tests/bench/bench_tune.py [--images 1024] [--seconds 15] [--rounds 2] [--sweep-seconds 3]
        [--reference ../shared/vendor/mlcommons-inference/vision/classification_and_detection/python]
        [--server] [--variant full]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
DEFAULT_REFERENCE = REPO.parent / "shared/vendor/mlcommons-inference/vision/classification_and_detection/python"


def _path_with(first: Path) -> str:
    """PYTHONPATH with ``first`` in front of the caller's (the GPU machine keeps its extra wheels there)."""
    return os.pathsep.join(p for p in (str(first), os.environ.get("PYTHONPATH", "")) if p)


def wizard(*args: str, env: dict, timeout: float = 900) -> tuple[subprocess.CompletedProcess, float]:
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "wizard.cli", *args], capture_output=True, text=True, env=env,
                          timeout=timeout, cwd=REPO)
    return proc, time.monotonic() - start


def run_json(args: list[str], env: dict, timeout: float = 900) -> dict:
    proc, _ = wizard("run", "--json", *args, env=env, timeout=timeout)
    try:
        return json.loads(proc.stdout)
    except ValueError:
        sys.exit(f"mlperf-wizard run failed ({proc.returncode}):\n{proc.stderr[-3000:]}")


def direct_sweep(model: Path, images: Path, count: int, seconds: float) -> list[dict]:
    """Every split x batch of the direct loop, in this process (ONNX Runtime, the project's task code)."""
    from harness.backends import load_backend
    from harness.models.families import family
    from harness.staging import staged_batch
    from harness.tuning import measure, splits, usable_cores

    fam = family("resnet50")
    out = []
    cores = usable_cores()
    dataset = None
    for workers, threads in splits(cores):
        backend = load_backend("onnxruntime", model, device="cpu", threads=threads, outputs=fam.io.outputs,
                               model="resnet50")
        task = fam.task(backend)
        if dataset is None:
            dataset = fam.real_dataset(images, count, getattr(task, "layout", None), None)
        for batch in (1, 4, 8, 16, 32):
            m = measure(task.infer, staged_batch(backend.staging(), dataset, batch), workers=workers,
                        threads=threads, batch_size=batch, seconds=seconds)
            out.append({"workers": workers, "threads": threads, "batch": batch, "samples_per_s": m.samples_per_s})
            print(f"  direct {workers:>3} x {threads:<3} batch {batch:<3} {m.samples_per_s:9.2f} samples/s",
                  flush=True)
        del task, backend
    return out


def reference_offline(reference: Path, model: Path, images: Path, count: int, seconds: int, threads: int,
                      work: Path) -> float | None:
    """MLCommons' main.py, Offline, on our ONNX file and images; its LoadGen samples/s."""
    import onnx

    output_name = onnx.load(str(model), load_external_data=False).graph.output[0].name
    out = work / f"reference-{time.monotonic_ns()}"
    out.mkdir(parents=True)
    (out / "user.conf").write_text("")
    cmd = [sys.executable, str(reference / "main.py"), "--profile", "resnet50-onnxruntime", "--model", str(model),
           "--dataset-path", str(images), "--scenario", "Offline", "--threads", str(threads), "--count", str(count),
           "--time", str(seconds), "--output", str(out), "--outputs", output_name,
           "--user_conf", str(out / "user.conf"), "--cache_dir", str(work / "reference-cache")]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=out, timeout=1200,
                          env={**os.environ, "PYTHONPATH": _path_with(reference)})
    from harness.results import parse_detail

    detail = parse_detail(out / "mlperf_log_detail.txt")
    value = detail.get("result_samples_per_second")
    if value is None:
        print(f"  reference failed ({proc.returncode}): {(proc.stderr or proc.stdout)[-1500:]}", flush=True)
        return None
    return float(value)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=1024)
    ap.add_argument("--seconds", type=int, default=15, help="each Offline run's length")
    ap.add_argument("--sweep-seconds", type=float, default=3.0, help="each direct configuration's span")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--reference", type=Path, default=DEFAULT_REFERENCE)
    ap.add_argument("--server", action="store_true", help="also the Server search against a manual sweep")
    ap.add_argument("--variant", default="full", choices=("full", "tiny"))
    ap.add_argument("--work", type=Path, default=None, help="a folder for the model, images and homes")
    ap.add_argument("--server-only", action="store_true",
                    help="only the Server search and sweep, with --backend/--device and synthetic model and data")
    ap.add_argument("--backend", default="onnxruntime")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--sweep-budget", type=float, default=300, help="seconds for the manual Server sweep")
    args = ap.parse_args()
    if args.server_only:
        work = args.work or Path(tempfile.mkdtemp(prefix="bench-server-"))
        env = {**os.environ, "MLPERF_WIZARD_HOME": str(work / "home"), "PYTHONPATH": _path_with(REPO),
               "MLPERF_WIZARD_SYNTHETIC_VARIANT": args.variant}
        env.pop("MLPERF_WIZARD_TUNE", None)
        print(f"ResNet50 {args.variant} (synthetic weights and data), {args.backend} on {args.device}", flush=True)
        server(["--backend", args.backend, "--device", args.device, "--synthetic"], env, work, args.sweep_budget)
        print("(synthetic model and data: harness figures, not an MLPerf result)")
        return

    from harness.datasets.imagenet_real import make_fake_imagenet
    from harness.models.families import build_synthetic
    from harness.tuning import usable_cores

    work = args.work or Path(tempfile.mkdtemp(prefix="bench-tune-"))
    work.mkdir(parents=True, exist_ok=True)
    cores = usable_cores()
    model = work / f"resnet50-{args.variant}.onnx"
    if not model.exists():
        build_synthetic("resnet50", model, args.variant, "fp32")
    images = work / "imagenet"
    if not (images / "val_map.txt").exists():
        make_fake_imagenet(images, args.images)
    env = {**os.environ, "MLPERF_WIZARD_HOME": str(work / "home"), "PYTHONPATH": _path_with(REPO)}
    env.pop("MLPERF_WIZARD_TUNE", None)
    common = ["--model-source", "local", "--model-path", str(model), "--dataset-source", "local",
              "--dataset-path", str(images), "--dataset-size", str(args.images)]
    print(f"ResNet50 {args.variant} (synthetic weights), {args.images} generated images, {cores} cores", flush=True)

    print("1. direct sweep (workers x threads, batch):", flush=True)
    sweep = direct_sweep(model, images, args.images, args.sweep_seconds)
    best = max(sweep, key=lambda r: r["samples_per_s"])
    print(f"  best direct: {best['workers']} x {best['threads']} batch {best['batch']}: "
          f"{best['samples_per_s']:.2f} samples/s", flush=True)

    print("2. the project's tune:", flush=True)
    # The dataset cache is prepared once before timing the tune: the tune is what is measured.
    run_json([*common, "--scenario", "Offline", "--mode", "performance", "--tune", "off", "--test-query-count", "8"],
             env)
    proc, first = wizard("tune", *common, "--scenario", "Offline", "--force", env=env)
    print(f"  first tune: {first:.1f} s wall (goal < 60 s on 2 cores), exit {proc.returncode}", flush=True)
    print("  " + "\n  ".join(line for line in proc.stdout.splitlines() if "chose" in line or "tuned" in line))
    proc, second = wizard("tune", *common, "--scenario", "Offline", env=env)
    print(f"  second tune: {second:.1f} s wall: {proc.stdout.strip().splitlines()[-1]}", flush=True)

    print("3. Offline rounds (ABBA): the project with its defaults, MLCommons' reference main.py:", flush=True)
    samples = max(args.images, int(best["samples_per_s"] * args.seconds))
    project, reference = [], []
    for r in range(args.rounds):
        order = ("project", "reference") if r % 2 == 0 else ("reference", "project")
        for who in order:
            if who == "project":
                record = run_json([*common, "--scenario", "Offline", "--mode", "performance",
                                   "--test-query-count", str(samples)], env)
                test = record["tests"][-1]
                used = json.loads((Path(test["directory"]) / "test.json").read_text())
                project.append(test["value"])
                print(f"  round {r + 1} project   {test['value']:9.2f} samples/s {test['validity']} "
                      f"({used['workers']} x {used['threads']} batch {used['batch_size']}: {used['sut_reason']})",
                      flush=True)
            else:
                value = reference_offline(args.reference, model, images, args.images, args.seconds, cores, work)
                if value is not None:
                    reference.append(value)
                    print(f"  round {r + 1} reference {value:9.2f} samples/s", flush=True)
    p = statistics.median(project)
    print(f"\nmedian project {p:.2f} samples/s; best direct {best['samples_per_s']:.2f}: "
          f"ratio {p / best['samples_per_s']:.3f} (goal >= 0.97)")
    if reference:
        ref = statistics.median(reference)
        print(f"median reference {ref:.2f} samples/s: project/reference {p / ref:.3f} (goal >= 1.2)")
    if args.server:
        server(common, env, work, args.sweep_budget)
    print("(synthetic model and data: harness figures, not an MLPerf result)")


def server(common: list[str], env: dict, work: Path, budget_s: float) -> None:
    """The search's rate against a manual sweep of fixed rates at the split the search chose: up by 10 %
    steps from the searched rate while VALID, or down while INVALID; runs that would not fit in
    ``budget_s`` are said and skipped."""
    print("4. Server: the project's search, then a manual sweep of fixed rates:", flush=True)
    proc, took = wizard("tune", *common, "--scenario", "Server", "--force", env=env, timeout=900)
    print(f"  search: {took:.1f} s wall (process start and model load included), exit {proc.returncode}")
    store = json.loads((work / "home" / "state" / "tuning.json").read_text())
    found = next((v["search"] for v in store.values() if "search" in v), None) or {}
    for i in found.get("isolated", []):
        print(f"  split {i['workers']:>2} x {i['threads']:<2}: one query p50 {i['alone_p50_ms']:.3g} ms p99 "
              f"{i['alone_p99_ms']:.3g} ms; busy p99 {i['busy_p99_ms']:.3g} ms; capacity {i['capacity_qps']:.5g} "
              f"queries/s; modelled rate {i.get('model_qps', 0):.5g}")
    for p in found.get("probes", []):
        print(f"  probe {p['kind']:<24} {p['workers']} x {p['threads']} at {p['qps']:9.4g} queries/s, "
              f"{p['queries']} queries: p99 {p['p99_ms']} ms {'passed' if p['passed'] else 'failed'}")
    print(f"  search says ({found.get('seconds')} s measuring): {found.get('reason')}", flush=True)
    if not found.get("found"):
        print("  no rate found: nothing to sweep around")
        return
    c = found["config"]
    start = float(found["qps"])
    started = time.monotonic()
    results: dict[float, bool] = {}

    def manual(factor: float) -> bool | None:
        rate = start * factor
        queries = max(800, int(rate * 5))
        expected = queries / rate + 20
        left = budget_s - (time.monotonic() - started)
        if expected > left:
            print(f"  manual {rate:9.4g} queries/s: not run ({queries} queries take about {expected:.0f} s, "
                  f"{left:.0f} s of the sweep's budget left)", flush=True)
            return None
        threads_flag = ["--threads", str(c["threads"])] if c["threads"] else []
        record = run_json([*common, "--scenario", "Server", "--mode", "performance", "--tune", "off",
                           "--workers", str(c["workers"]), *threads_flag, "--batch-size", str(c["batch_size"]),
                           "--target-qps", f"{rate:.4f}", "--test-query-count", str(queries)], env)
        test = record["tests"][-1]
        p99 = (test.get("latency_ms") or {}).get("p99")
        valid = test.get("validity") == "VALID"
        results[rate] = valid
        print(f"  manual {rate:9.4g} queries/s ({factor:.2f} x searched, {queries} queries): "
              f"{test.get('validity')} p99 {p99} ms", flush=True)
        return valid

    first = manual(1.0)
    steps = (1.1, 1.2, 1.35, 1.5) if first else (0.9, 0.8, 0.65, 0.5)
    for factor in steps if first is not None else ():
        outcome = manual(factor)
        if outcome is None or outcome != first:
            break
    best_valid = max((r for r, v in results.items() if v), default=None)
    if best_valid:
        print(f"  search {start:.4g} vs best manual VALID {best_valid:.4g}: {start / best_valid:.3f} "
              "(goal >= 0.9)")
    else:
        print("  no manual rate was VALID" if results else "  no manual run fitted the budget")


if __name__ == "__main__":
    main()
