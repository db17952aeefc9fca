"""ImageNet preprocessing into the cache, side by side in one run on the same JPEGs and the same number of
workers: the project with worker processes, the project with threads (its path for a few images), and the
MLCommons reference's ``Imagenet`` class as its ``main.py`` builds it for ``--profile resnet50-onnxruntime``
(``--dataset imagenet``: ``pre_process_vgg``, NCHW, ``--threads N``, a fresh ``--cache_dir``). Then the QSL
load of every sample from the project's cache (``ImageNetFolder.sample``, memory-mapped), and the reference's
``load_query_samples`` from its cache, for comparison.

The JPEGs are generated (not ImageNet): seeded sizes of 300 to 500 pixels a side, content with edges, smooth
shading and sensor-like noise at JPEG quality 95, so decoding costs about what a real validation image
costs (real ones average about 110 KB at about 400x350). Each preparation runs in a process of its own
(as a user's import starts: no worker processes already running) and writes into an empty cache folder;
the rounds run the three in ABC then CBA order, so drift on a noisy machine hits all of them. The project's
figures are of the whole ``ImageNetFolder`` construction a user waits for (val_map, checks, preprocessing,
the integrity manifest hashed over every cached file); the reference's of its constructor. Usage:

    python tests/bench/bench_preprocess.py [--images 1024] [--threads 2] [--rounds 2] [--chunk 16]
        [--reference PATH] [--images-dir DIR]

``--reference`` is the reference's ``vision/classification_and_detection/python`` folder (default: the
vendored copy in /work/shared, else ``.vendor-ref/`` in the checkout); it is imported as it is, never copied
into the project.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from harness.datasets import imagenet_real  # noqa: E402
from harness.datasets.imagenet import MEANS  # noqa: E402
from harness.datasets.imagenet_real import ImageNetFolder  # noqa: E402

REFERENCE_CANDIDATES = (
    Path("/work/shared/vendor/mlcommons-inference/vision/classification_and_detection/python"),
    ROOT / ".vendor-ref" / "vision" / "classification_and_detection" / "python",
)


def natural_image(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A BGR uint8 image with what makes a photo cost to decode: shading at several scales, shapes with
    anti-aliased edges, and per-pixel noise."""
    image = np.full((height, width, 3), rng.uniform(60, 190, 3), dtype=np.float32)
    for cells, amplitude in ((3, 80.0), (12, 40.0), (48, 20.0)):
        coarse = rng.standard_normal((cells, cells, 3), dtype=np.float32)
        image += amplitude * cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    for _ in range(int(rng.integers(4, 12))):
        colour = tuple(float(v) for v in rng.uniform(0, 255, 3))
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        if rng.random() < 0.5:
            cv2.circle(image, centre, int(rng.integers(10, min(height, width) // 3)), colour, -1, cv2.LINE_AA)
        else:
            end = (int(rng.integers(0, width)), int(rng.integers(0, height)))
            cv2.line(image, centre, end, colour, int(rng.integers(1, 8)), cv2.LINE_AA)
    image += 8.0 * rng.standard_normal(image.shape, dtype=np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


def write_images(folder: Path, n: int, seed: int = 0, quality: int = 95) -> list[str]:
    """``n`` JPEGs named as the validation set, and a val_map.txt with seeded labels; their names."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names, lines = [], []
    for i in range(1, n + 1):
        name = f"ILSVRC2012_val_{i:08d}.JPEG"
        height, width = (int(v) for v in rng.integers(300, 501, size=2))
        if not cv2.imwrite(str(folder / name), natural_image(rng, height, width), [cv2.IMWRITE_JPEG_QUALITY, quality]):
            sys.exit(f"could not write {folder / name}")
        names.append(name)
        lines.append(f"{name} {int(rng.integers(0, 1000))}\n")
    (folder / "val_map.txt").write_text("".join(lines), encoding="utf-8")
    return names


def project(images: Path, cache: Path, threads: int, kind: str, chunk: int) -> float:
    """Seconds of ``ImageNetFolder(...)`` preparing every image with ``threads`` workers of ``kind``."""
    imagenet_real.CHUNK_IMAGES = chunk
    start = time.perf_counter()
    ds = ImageNetFolder(images, workers=threads, workers_kind=kind, cache_root=cache)
    seconds = time.perf_counter() - start
    assert (ds.preparation.processed, ds.preparation.workers_kind) == (ds.count, kind)
    return seconds


def reference(images: Path, cache: Path, threads: int) -> float:
    """Seconds of the reference's ``Imagenet(...)`` as main.py builds it for resnet50-onnxruntime."""
    import backend_onnxruntime
    import dataset
    import imagenet

    # main.py: image_format = backend.image_format() ("NCHW" for ONNX Runtime); SUPPORTED_DATASETS["imagenet"].
    image_format = backend_onnxruntime.BackendOnnxruntime().image_format()
    start = time.perf_counter()
    ds = imagenet.Imagenet(data_path=str(images), image_list=None, name="imagenet", image_format=image_format,
                           pre_process=dataset.pre_process_vgg, use_cache=0, count=None, cache_dir=str(cache),
                           preprocessed_dir=None, threads=threads, image_size=[224, 224, 3])
    seconds = time.perf_counter() - start
    assert len(ds.image_list) == len(list(images.glob("*.JPEG")))
    return seconds


def one(name: str, args) -> float:
    """Seconds of one preparation, measured in a process of its own (so each starts as a user's does: no fork
    server already running, nothing already imported but numpy and OpenCV)."""
    import json
    import subprocess

    command = [sys.executable, __file__, "--one", name, "--images-dir", str(args.images_dir), "--cache",
               str(args.cache), "--threads", str(args.threads), "--chunk", str(args.chunk), "--reference",
               str(args.reference)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        sys.exit(f"the {name} preparation failed: {done.stderr[-3000:]}")
    return json.loads(lines[-1])["seconds"]


def one_only(name: str, args) -> None:
    import json

    if name == "reference":
        seconds = reference(args.images_dir, args.cache, args.threads)
    else:
        seconds = project(args.images_dir, args.cache, args.threads, name, args.chunk)
    print(json.dumps({"seconds": seconds}), flush=True)


def qsl_load(images: Path, cache: Path, threads: int) -> tuple[float, float, int]:
    """Seconds of ``sample(i)`` over every index (NCHW, memory-mapped), of the previous formula (astype, subtract,
    contiguous transpose) on the same memory-mapped crops, and the count."""
    ds = ImageNetFolder(images, workers=threads, cache_root=cache)
    start = time.perf_counter()
    for i in range(ds.count):
        ds.sample(i)
    now = time.perf_counter()
    for i in range(ds.count):
        image = np.load(ds._cached(i), mmap_mode="r", allow_pickle=False).astype(np.float32)
        image -= MEANS
        np.ascontiguousarray(image.transpose(2, 0, 1))
    return now - start, time.perf_counter() - now, ds.count


def reference_load(cache: Path, images: Path, threads: int) -> float:
    """Seconds of the reference's ``load_query_samples`` over every index, from its cache (already written)."""
    import dataset
    import imagenet

    ds = imagenet.Imagenet(data_path=str(images), image_list=None, name="imagenet", image_format="NCHW",
                           pre_process=dataset.pre_process_vgg, use_cache=0, count=None, cache_dir=str(cache),
                           preprocessed_dir=None, threads=threads, image_size=[224, 224, 3])
    start = time.perf_counter()
    ds.load_query_samples(list(range(len(ds.image_list))))
    return time.perf_counter() - start


def versions() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor() or "?")
    return (f"machine: {cpu}, {os.cpu_count()} CPUs ({imagenet_real.usable_cores()} usable), {platform.system()} "
            f"{platform.release()}\nsoftware: Python {platform.python_version()}, numpy {np.__version__}, "
            f"opencv {cv2.__version__}, start method {imagenet_real.PROCESS_START_METHOD}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=imagenet_real.usable_cores(),
                    help="workers of the project and --threads of the reference")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--chunk", type=int, default=imagenet_real.CHUNK_IMAGES, help="images per process task")
    ap.add_argument("--reference", type=Path, default=next((p for p in REFERENCE_CANDIDATES if p.is_dir()), None))
    ap.add_argument("--images-dir", type=Path, help="generate the JPEGs here (kept), or reuse the ones there")
    ap.add_argument("--one", choices=("processes", "threads", "reference"), help=argparse.SUPPRESS)
    ap.add_argument("--cache", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.reference is None or not (args.reference / "imagenet.py").is_file():
        sys.exit("the reference's vision/classification_and_detection/python folder was not found: pass --reference")
    sys.path.insert(0, str(args.reference))
    # The reference logs at INFO on import (logging.basicConfig): keep its lines out of the figures.
    logging.disable(logging.INFO)
    if args.one:
        one_only(args.one, args)
        return

    work = Path(tempfile.mkdtemp(prefix="bench-preprocess-"))
    os.environ.setdefault("MLPERF_WIZARD_HOME", str(work / "home"))
    try:
        args.images_dir = args.images_dir or work / "images"
        images = args.images_dir
        if not (images / "val_map.txt").is_file():
            start = time.perf_counter()
            write_images(images, args.images)
            print(f"generated {args.images} JPEGs in {time.perf_counter() - start:.1f} s", flush=True)
        jpegs = sorted(images.glob("*.JPEG"))
        shapes = [cv2.imread(str(p)).shape for p in jpegs[:100]]
        kb = sum(p.stat().st_size for p in jpegs) / len(jpegs) / 1024
        print(versions())
        print(f"images: {len(jpegs)} JPEGs in {images}, {kb:.0f} KB average, the first 100 "
              f"{np.mean([h for h, _, _ in shapes]):.0f}x{np.mean([w for _, w, _ in shapes]):.0f} px on average")
        print(f"command: python3 tests/bench/bench_preprocess.py --images {args.images} --threads {args.threads} "
              f"--rounds {args.rounds} --chunk {args.chunk}")
        default = "processes" if len(jpegs) >= imagenet_real.PROCESSES_FROM_IMAGES else "threads"
        print(f"workers: {args.threads} (processes: chunks of {args.chunk} images; the project's default for "
              f"{len(jpegs)} images: {default}); reference: {args.reference}")
        print(f"load average at the start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}\n", flush=True)

        names = ("processes", "threads", "reference")
        seconds: dict[str, list[float]] = {name: [] for name in names}
        for r in range(args.rounds):
            order = list(names) if r % 2 == 0 else list(reversed(names))
            for name in order:
                args.cache = work / f"cache-{name}"
                shutil.rmtree(args.cache, ignore_errors=True)
                seconds[name].append(one(name, args))
                if name == "reference" and r < args.rounds - 1:
                    shutil.rmtree(args.cache)  # 600 KB of float32 per image: keep only the last round's
            line = "  ".join(f"{name} {seconds[name][-1]:6.2f} s {len(jpegs) / seconds[name][-1]:6.1f} img/s"
                             for name in names)
            print(f"round {r + 1} ({' '.join(order)}): {line}  reference/processes "
                  f"{seconds['reference'][-1] / seconds['processes'][-1]:.2f}", flush=True)

        print("\nmedians over rounds (each preparation in a process of its own, into an empty cache)")
        print(f"{'':10s} {'seconds':>8s} {'images/s':>9s} {'reference/this':>15s}  range of seconds")
        ref = statistics.median(seconds["reference"])
        for name in names:
            s = statistics.median(seconds[name])
            print(f"{name:10s} {s:8.2f} {len(jpegs) / s:9.1f} {ref / s:15.2f}  "
                  f"{min(seconds[name]):.2f}-{max(seconds[name]):.2f}")

        load, old, count = qsl_load(images, work / "cache-processes", args.threads)
        ref_load = reference_load(work / "cache-reference", images, args.threads)
        print(f"\nQSL load of all {count} samples from the cache (NCHW float32):")
        for label, t in (("project sample(): mapped uint8 crop, one-pass normalize", load),
                         ("the previous sample(): np.load mmap, cast, subtract, transpose", old),
                         ("reference load_query_samples: np.load of its float32 .npy", ref_load)):
            print(f"  {label:63s} {t:6.3f} s {count / t:7.0f} samples/s {1e6 * t / count:6.1f} us each")
        print(f"load average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
        print("(generated images, not ImageNet; the JPEGs are read from the page cache in every run)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
