"""One preparation in a fresh process, as device_design.sh ran it (the harness variant comes from PYTHONPATH).

    python3 device_design_exp.py METHOD PRELOAD(0|1) CHUNK N KIND(processes|threads) WORKERS
"""

import os
import shutil
import sys
import tempfile
import time


def main():
    method, preload, chunk = sys.argv[1], sys.argv[2] == "1", int(sys.argv[3])
    n, kind, workers = int(sys.argv[4]), sys.argv[5], int(sys.argv[6])
    import multiprocessing

    import onnxruntime  # noqa: F401  a parent with ONNX Runtime loaded, as a run's child has

    from harness.datasets import imagenet_real

    imagenet_real.PROCESS_START_METHOD = method
    if not preload:
        imagenet_real._start_method_context = lambda: multiprocessing.get_context(method)
    imagenet_real.CHUNK_IMAGES = chunk
    src = f"/tmp/imgs{n}"
    cache = tempfile.mkdtemp(dir="/tmp")
    os.environ["MLPERF_WIZARD_HOME"] = cache
    t = time.perf_counter()
    ds = imagenet_real.ImageNetFolder(src, workers=workers, workers_kind=kind, cache_root=cache)
    dt = time.perf_counter() - t
    assert ds.preparation.processed == n and ds.preparation.workers_kind == kind
    variant = os.environ.get("VARIANT", "?")
    print(f"{variant:7s} {method:10s} preload={preload:d} chunk={chunk:3d} n={n:5d} {kind:9s} w={workers:2d} "
          f"{dt:7.3f} s {n / dt:7.0f} img/s", flush=True)
    shutil.rmtree(cache)


if __name__ == "__main__":
    main()
