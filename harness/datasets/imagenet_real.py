"""ImageNet 2012 validation from the user's files: a folder of JPEGs or the val tar, plus ``val_map.txt``.

The images are checked against ``val_map.txt`` (missing, extra and unreadable files are reported by
name), preprocessed exactly as the MLCommons reference does (``pre_process_vgg``: OpenCV, short side to
256 with INTER_AREA, centre crop 224, RGB means subtracted) and cached, one ``.npy`` per image, under
``locations().datasets / "imagenet"``. The cache holds the 224x224 RGB crop as uint8: subtracting the
means in float32 at :meth:`ImageNetFolder.sample` time gives the reference's values bit for bit, takes a
quarter of the space (7.5 GB for the full set instead of 30 GB) and serves both layouts.

Each cached image is written through a temporary file and renamed, and a marker is written last, so an
interrupted preparation is resumed (finished images are kept) and never mistaken for a complete one. A real
import runs in worker processes (a few images in threads), which never outlive the preparation.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import mmap
import multiprocessing
import os
import re
import shutil
import signal
import sys
import tarfile
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import connection
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from .. import cache_integrity
from ..errors import DatasetError
from ..paths import locations
from .imagenet import MEANS, NUM_CLASSES

VAL_MAP = "val_map.txt"
VAL_TAR = "ILSVRC2012_img_val.tar"
VAL_TAR_MD5 = "29b22e2961454d5413ddabcf34fc5622"
FULL_COUNT = 50_000
LAYOUTS = ("NCHW", "NHWC")

# The reference's geometry: the output is 87.5 % of the resized image, so the short side goes to 256.
OUTPUT_SIZE = 224
_SCALE_PERCENT = 87.5
RESIZED_SHORT_SIDE = int(100.0 * OUTPUT_SIZE / _SCALE_PERCENT)

# Bump when the cached bytes would change (geometry, interpolation, storage format).
PREPROCESS_VERSION = 1
# The progress callback is called at most once per interval (plus at the start and the end of a stage).
PROGRESS_INTERVAL_S = 0.1

_MARKER = "complete.json"
_IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")
_FIRST_FEW = 5
_HASH_CHUNK = 4 << 20

Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``; stage is ``"verify"`` and ``"extract"`` (bytes of the tar) or
``"preprocess"`` (images). An exception it raises stops the preparation, which resumes on the next try."""


def _cv2():
    try:
        import cv2
    except ImportError as exc:
        raise DatasetError(
            "Preprocessing ImageNet needs OpenCV, which is not installed.",
            "pip install opencv-python-headless (the reference preprocesses with OpenCV; resizing with PIL "
            "instead costs about 0.3 % top-1).",
        ) from exc
    return cv2


def _first(names: list[str]) -> str:
    shown = ", ".join(names[:_FIRST_FEW])
    return shown + (", ..." if len(names) > _FIRST_FEW else "")


class _Throttle:
    """Forwards progress at most every PROGRESS_INTERVAL_S, always the first and the last call of a stage."""

    def __init__(self, progress: Progress | None):
        self.progress = progress
        self.last: dict[str, float] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self.progress is None:
            return
        now = time.monotonic()
        last = self.last.get(stage)
        if last is None or done >= total or now - last >= PROGRESS_INTERVAL_S:
            self.last[stage] = now
            self.progress(stage, done, total)


# ----------------------------------------------------------------------------------------------------------
# val_map.txt


def parse_val_map(path: Path) -> list[tuple[str, int]]:
    """``(file name, label)`` per line of ``val_map.txt``, in file order; DatasetError on any bad line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise DatasetError(
            f"There is no {VAL_MAP} in {path.parent}.",
            f"put the reference's {VAL_MAP} (50,000 lines like 'ILSVRC2012_val_00000001.JPEG 65', from the "
            "MLCommons inference repository's ImageNet instructions) next to the images or the val tar.",
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path} cannot be read: {exc}.", f"check that {path} is a readable text file.") from exc
    entries: list[tuple[str, int]] = []
    seen: dict[str, int] = {}
    fix = f"each line of {VAL_MAP} must be '<image file name> <label 0..{NUM_CLASSES - 1}>'; fix or replace the file."
    for number, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or not parts[1].isdigit():
            raise DatasetError(f"{path}, line {number}: {line.strip()!r} is not '<file name> <label>'.", fix)
        name, label = parts[0], int(parts[1])
        if label >= NUM_CLASSES:
            raise DatasetError(f"{path}, line {number}: label {label} is outside 0..{NUM_CLASSES - 1}.", fix)
        if "/" in name or "\\" in name or name in (".", ".."):
            raise DatasetError(f"{path}, line {number}: {name!r} is not a plain file name.", fix)
        if name in seen:
            raise DatasetError(f"{path}, line {number}: {name} is listed twice (first on line {seen[name]}).", fix)
        seen[name] = number
        entries.append((name, label))
    if not entries:
        raise DatasetError(f"{path} lists no images.", fix)
    return entries


# ----------------------------------------------------------------------------------------------------------
# Preprocessing, as the reference's pre_process_vgg


def resize_and_crop(bgr: np.ndarray) -> np.ndarray:
    """The reference's geometry on an OpenCV BGR image: uint8 RGB [224,224,3].

    BGR -> RGB; resize with INTER_AREA so the short side is 256 keeping the aspect ratio (the sizes are
    truncated to integers as the reference does); centre crop 224 (offsets truncated too).
    """
    cv2 = _cv2()
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    height, width = rgb.shape[:2]
    if height > width:
        w = RESIZED_SHORT_SIDE
        h = int(RESIZED_SHORT_SIDE * height / width)
    else:
        h = RESIZED_SHORT_SIDE
        w = int(RESIZED_SHORT_SIDE * width / height)
    rgb = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
    left = int((w - OUTPUT_SIZE) / 2)
    top = int((h - OUTPUT_SIZE) / 2)
    return np.ascontiguousarray(rgb[top:top + OUTPUT_SIZE, left:left + OUTPUT_SIZE])


_MEANS_CHW = MEANS.reshape(3, 1, 1)
_MEANS_ROW = np.tile(MEANS, OUTPUT_SIZE)


def normalize(crop: np.ndarray, layout: str = "NCHW") -> np.ndarray:
    """uint8 RGB [H,W,3] -> float32 with the RGB means subtracted (no std), in ``layout``, C-contiguous.

    One pass straight into the layout: the float32 subtraction of a uint8 value cast to float32 is what
    casting first and subtracting after gave, bit for bit, at a tenth of the time (the cast, the subtraction
    along an axis of 3 and the transposing copy each walked the whole image).
    """
    height, width = crop.shape[:2]
    if layout == "NCHW":
        image = np.empty((3, height, width), dtype=np.float32)
        np.subtract(crop.transpose(2, 0, 1), _MEANS_CHW, out=image, dtype=np.float32)
        return image
    # Rows of W*3 values against the means repeated W times: a long inner loop instead of one of 3.
    means = _MEANS_ROW if width == OUTPUT_SIZE else np.tile(MEANS, width)
    return np.subtract(crop.reshape(height, width * 3), means, dtype=np.float32).reshape(height, width, 3)


def preprocess_vgg(bgr: np.ndarray, layout: str = "NCHW") -> np.ndarray:
    """The reference's ``pre_process_vgg`` on an OpenCV BGR image: float32 [3,224,224] or [224,224,3]."""
    return normalize(resize_and_crop(bgr), layout)


def read_image(path: Path) -> np.ndarray | None:
    """The image as the reference reads it (``cv2.imread``, BGR); None if OpenCV cannot decode it."""
    return _cv2().imread(str(path))


# ----------------------------------------------------------------------------------------------------------
# The val tar


def _file_md5(path: Path, size: int, throttle: _Throttle) -> str:
    digest = hashlib.md5()
    done = 0
    throttle("verify", 0, size)
    with open(path, "rb") as fh:
        while chunk := fh.read(_HASH_CHUNK):
            digest.update(chunk)
            done += len(chunk)
            throttle("verify", done, size)
    return digest.hexdigest()


def _refuse_member(tar_path: Path, member: tarfile.TarInfo, why: str) -> DatasetError:
    return DatasetError(
        f"{tar_path} holds a member {member.name!r} that {why}; refusing to extract it.",
        f"this is not the official {VAL_TAR} (md5 {VAL_TAR_MD5}): use that file, or extract the images "
        "yourself and pass the folder of JPEGs.",
    )


def _check_member(tar_path: Path, member: tarfile.TarInfo) -> None:
    name = PurePosixPath(member.name.replace("\\", "/"))
    if name.is_absolute() or re.match(r"^[A-Za-z]:", member.name):
        raise _refuse_member(tar_path, member, "has an absolute path")
    if ".." in name.parts:
        raise _refuse_member(tar_path, member, "would be written outside the extraction folder")
    if member.issym() or member.islnk():
        raise _refuse_member(tar_path, member, "is a link")
    if not (member.isfile() or member.isdir()):
        raise _refuse_member(tar_path, member, "is a device or special file")


def _write_atomically(path: Path, write: Callable[[Any], None]) -> None:
    """Write through a temporary file in the same folder and rename: ``path`` is whole or absent."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.replace(tmp_name, path)
        tmp_name = None
    finally:
        if tmp_name is not None and os.path.exists(tmp_name):
            os.unlink(tmp_name)


def _write_error(path: Path, exc: OSError) -> DatasetError:
    return DatasetError(
        f"Could not write {path}: {exc.strerror or exc}.",
        f"make sure {path.parent} is writable and has space (the full preprocessed set takes about 7.5 GB, "
        "the extracted val tar 6.4 GB; set MLPERF_WIZARD_HOME to put the cache elsewhere), then rerun: "
        "finished images are kept.",
    )


def _remove_temporaries(folder: Path) -> None:
    for leftover in folder.glob(".*.tmp"):
        leftover.unlink(missing_ok=True)


def extract_val_tar(tar_path: Path, dest: Path, *, md5: str | None = VAL_TAR_MD5,
                    progress: Progress | None = None) -> Path:
    """Extract the val tar's images into ``dest`` (flat), safely, resuming a previous attempt.

    With ``md5`` set, the tar is checked against it first and refused if it differs. Members with an
    absolute path, a ``..`` component, links and special files are refused (DatasetError) before
    anything of theirs is written; images land as ``dest/<base name>``. A member already extracted with
    its size is skipped, so an interrupted extraction resumes. A marker written last records completion.
    """
    tar_path, dest = Path(tar_path), Path(dest)
    marker = dest / _MARKER
    stat = tar_path.stat()
    if marker.is_file():
        return dest
    throttle = _Throttle(progress)
    if md5 is not None:
        actual = _file_md5(tar_path, stat.st_size, throttle)
        if actual != md5:
            raise DatasetError(
                f"{tar_path} has md5 {actual}, not the official {md5}: it is incomplete, corrupt or another file.",
                f"download {VAL_TAR} again (compare its md5 with {md5}), or extract the images yourself "
                "and pass the folder of JPEGs.",
            )
    try:
        dest.mkdir(parents=True, exist_ok=True)
        _remove_temporaries(dest)
    except OSError as exc:
        raise _write_error(dest, exc) from exc
    images = 0
    try:
        with tarfile.open(tar_path, "r:*") as tar:
            throttle("extract", 0, stat.st_size)
            for member in tar:
                _check_member(tar_path, member)
                if not member.isfile() or not member.name.lower().endswith(_IMAGE_SUFFIXES):
                    continue
                target = dest / PurePosixPath(member.name.replace("\\", "/")).name
                images += 1
                if not (target.is_file() and target.stat().st_size == member.size):
                    source = tar.extractfile(member)
                    try:
                        _write_atomically(target, lambda fh, src=source: shutil.copyfileobj(src, fh))
                    except OSError as exc:
                        raise _write_error(target, exc) from exc
                    os.utime(target, (member.mtime, member.mtime))
                throttle("extract", min(member.offset_data + member.size, stat.st_size), stat.st_size)
    except tarfile.TarError as exc:
        raise DatasetError(
            f"{tar_path} is not a readable tar file: {exc}.",
            f"download {VAL_TAR} again (md5 {VAL_TAR_MD5}), or extract the images yourself and pass the folder.",
        ) from exc
    throttle("extract", stat.st_size, stat.st_size)
    record = {"tar": str(tar_path), "size": stat.st_size, "md5_checked": md5, "images": images}
    try:
        _write_atomically(marker, lambda fh: fh.write(json.dumps(record, indent=2).encode()))
    except OSError as exc:
        raise _write_error(marker, exc) from exc
    return dest


# ----------------------------------------------------------------------------------------------------------
# Preparing the cache: worker processes, or threads for a few images


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, which ``taskset`` and containers narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


WORKER_KINDS = ("processes", "threads")
PROCESS_START_METHOD = "forkserver"
"""Workers are forked from a fresh single-threaded server, not from this process, which may hold ONNX
Runtime, torch or LoadGen threads (forking those can deadlock). The server imports numpy and OpenCV once
for all of them and stays, idle, until this process exits. Measured on 2 pinned cores, 1024 images, medians
of 3: 3.53 s with the server's preload, 3.70 s without, 3.96 s with "spawn" (an interpreter and the imports
per worker)."""
PROCESSES_FROM_IMAGES = 2000
"""Fewer images to prepare than this use threads. Starting the processes costs 0.4 to 0.5 s, and on 2 cores
they prepare no faster than threads (OpenCV releases the GIL while it decodes and resizes): 2 pinned cores,
medians of 3, processes against threads: 64 images 0.74 s and 0.25 s, 1024 images 2.97 s and 2.72 s, 4096
images 9.9 s and 10.4 s. With more cores processes win (4096 images, 16 workers on 16 cores: 1058 images/s
against 824, the threads' Python parts queueing for the GIL), and a process pool keeps the work off the
GIL of the program importing. So a real import (thousands of images, 50,000 for the full set) uses them;
test subsets and short runs' few images use threads. Figures: docs/measurements/2026-12-04d-preprocess-2core."""
CHUNK_IMAGES = 16
"""Images per task sent to a worker process. A task's round trip through the pipe took 62 us for one image
and 87 us for 16 (2-core machine), against about 4 ms to prepare an image, so 16 make it negligible while
the work queued per worker (two chunks) stays a fraction of a second, which is what a cancel or the last
worker's tail waits for. On 2 pinned cores, 1024 images, the medians of 3 with 1, 4, 16 and 64 images a
chunk were within noise of each other (3.2 to 3.5 s)."""
STOP_GRACE_S = 5.0

_UNREADABLE = "unreadable"

Status = None | str | tuple[int | None, str]
"""Of one image: None (prepared), "unreadable" (OpenCV cannot decode it), or ``(errno, why)`` when its
cache file cannot be written."""


def prepare_file(source: str, target: str) -> bool:
    """Preprocess the image ``source`` into the cache file ``target`` (written atomically); False if OpenCV
    cannot decode it, OSError if ``target`` cannot be written.

    Module-level with plain arguments, so a worker process can run it.
    """
    cv2 = _cv2()
    try:
        bgr = read_image(Path(source))
        crop = None if bgr is None else resize_and_crop(bgr)
    except cv2.error:
        crop = None
    if crop is None or crop.shape != (OUTPUT_SIZE, OUTPUT_SIZE, 3):
        return False
    _write_atomically(Path(target), lambda fh: np.save(fh, crop, allow_pickle=False))
    return True


def _prepare_status(source: str, target: str) -> Status:
    try:
        return None if prepare_file(source, target) else _UNREADABLE
    except OSError as exc:
        return exc.errno, exc.strerror or str(exc)


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    sys.exit(128 + signum)


def _worker_main(conn: connection.Connection) -> None:
    """A worker process: receives chunks of ``(source, target)``, answers their statuses, until end of file.

    Ctrl-C is left to the parent, which stops its workers; SIGTERM exits through Python, so the temporary
    file of an image being written is removed. A parent that dies without stopping us (SIGKILL, or SIGTERM
    without a handler) is noticed at the next image (our parent pid changes: the fork server exits with
    it) or the next read (end of file), so no worker outlives it by more than one image.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    # One OpenCV thread each: the processes are the parallelism.
    _cv2().setNumThreads(1)
    parent = os.getppid()
    while True:
        try:
            chunk = conn.recv()
        except EOFError:
            return
        statuses = []
        for source, target in chunk:
            if os.getppid() != parent:
                return
            statuses.append(_prepare_status(source, target))
        try:
            conn.send(statuses)
        except OSError:
            return


class _Worker:
    """One worker process and our end of its pipe; ``sent`` holds the first job of each chunk it has."""

    def __init__(self, ctx: multiprocessing.context.BaseContext):
        self.conn, theirs = ctx.Pipe()
        self.sent: deque[int] = deque()
        self.process = ctx.Process(target=_worker_main, args=(theirs,), name="imagenet-prep", daemon=True)
        try:
            self.process.start()
        finally:
            theirs.close()  # only the worker holds its end: our death is its end of file

    def give(self, chunks: deque[tuple[int, list[tuple[str, str]]]]) -> None:
        if chunks:
            first, jobs = chunks.popleft()
            try:
                self.conn.send(jobs)
            except OSError as exc:
                raise self._died() from exc
            self.sent.append(first)

    def take(self) -> tuple[int, list[Status]]:
        try:
            statuses = self.conn.recv()
        except (EOFError, OSError) as exc:
            raise self._died() from exc
        return self.sent.popleft(), statuses

    def _died(self) -> DatasetError:
        self.process.join(STOP_GRACE_S)
        code = self.process.exitcode
        if code is not None and code < 0:
            return DatasetError(
                f"An image preprocessing worker process was killed (signal {-code}).",
                "rerun: the images already prepared are kept. If it happens again, look in the system log "
                "(dmesg) for the out-of-memory killer and free some memory.",
            )
        return DatasetError(
            f"An image preprocessing worker process ended unexpectedly (exit status {code}; its error, if "
            "any, is printed above).",
            "rerun: the images already prepared are kept. From a script of your own, create the ImageNetFolder "
            'under `if __name__ == "__main__":` (the workers are new processes, which import the main '
            'module), or pass workers_kind="threads".',
        )

    def stop(self, cancelled: bool) -> None:
        """End the process: at once when ``cancelled``, else after its last chunk; killed if it lingers."""
        self.conn.close()
        if self.process.pid is None:
            return
        if cancelled:
            self.process.terminate()
        self.process.join(STOP_GRACE_S)
        if self.process.exitcode is None:
            self.process.kill()
            self.process.join()


def _start_method_context() -> multiprocessing.context.BaseContext:
    if PROCESS_START_METHOD not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context(PROCESS_START_METHOD)
    if PROCESS_START_METHOD == "forkserver":
        # Imported once in the server, so each forked worker starts with OpenCV and numpy loaded. Only
        # takes effect before the server's first start; "__main__" is the default this keeps.
        ctx.set_forkserver_preload(["__main__", __name__])
    return ctx


def _in_processes(jobs: Sequence[tuple[str, str]], workers: int, chunk_images: int) -> Iterator[tuple[int, Status]]:
    """``(position in jobs, status)`` of each job as worker processes finish it; the workers are stopped on
    leaving, at once if the caller stops early (an exception, a cancel)."""
    chunk_images = max(1, chunk_images)
    chunks = deque((first, list(jobs[first:first + chunk_images])) for first in range(0, len(jobs), chunk_images))
    ctx = _start_method_context()
    pool: list[_Worker] = []
    finished = False
    try:
        for _ in range(min(workers, len(chunks))):
            pool.append(_Worker(ctx))
        # Two chunks each: a worker has the next one queued while we read its answer.
        for _ in range(2):
            for worker in pool:
                worker.give(chunks)
        by_conn = {worker.conn: worker for worker in pool}
        while busy := [worker.conn for worker in pool if worker.sent]:
            for conn in connection.wait(busy):
                worker = by_conn[conn]
                first, statuses = worker.take()
                worker.give(chunks)
                for offset, status in enumerate(statuses):
                    yield first + offset, status
        finished = True
    finally:
        for worker in pool:
            worker.stop(cancelled=not finished)


def _in_threads(jobs: Sequence[tuple[str, str]], workers: int) -> Iterator[tuple[int, Status]]:
    """``(position in jobs, status)`` of each job, in order, prepared by ``workers`` threads."""
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="imagenet-prep")
    window: deque[tuple[int, Future]] = deque()
    try:
        pending = iter(enumerate(jobs))
        while True:
            while len(window) < 2 * workers and (job := next(pending, None)) is not None:
                window.append((job[0], pool.submit(_prepare_status, *job[1])))
            if not window:
                break
            position, future = window.popleft()
            yield position, future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# ----------------------------------------------------------------------------------------------------------
# The dataset


def _scan(folder: Path) -> dict[str, os.stat_result]:
    """Regular files directly in ``folder`` that look like images, with their stat."""
    found: dict[str, os.stat_result] = {}
    try:
        with os.scandir(folder) as it:
            for entry in it:
                if entry.name.lower().endswith(_IMAGE_SUFFIXES) and entry.is_file():
                    found[entry.name] = entry.stat()
    except OSError as exc:
        raise DatasetError(f"The dataset folder {folder} cannot be read: {exc.strerror or exc}.",
                           "check the path given with --dataset-path and its permissions.") from exc
    return found


@dataclass
class Preparation:
    """What the last preparation of the cache did."""

    reused: int = 0
    """Images already in the cache (from a complete or an interrupted earlier preparation)."""
    processed: int = 0
    """Images decoded and preprocessed now."""
    seconds: float = 0.0
    """Wall time of the preparation, checks included."""
    extracted_from: Path | None = None
    """The val tar the images came from, if any."""
    workers: int = 0
    """How many workers preprocessed (0 when every image was reused)."""
    workers_kind: str = ""
    """``"processes"`` or ``"threads"`` (empty when every image was reused)."""


@dataclass
class _Work:
    names: list[str]
    folder: Path
    images: Path
    unreadable: list[str] = field(default_factory=list)


class ImageNetFolder:
    """The ImageNet 2012 validation set from the user's folder, preprocessed as the reference does.

    ``path`` holds ``val_map.txt`` and either the JPEGs (``ILSVRC2012_val_00000001.JPEG`` ...) or the
    val tar ``ILSVRC2012_img_val.tar`` (extracted into the cache, after an md5 check unless
    ``tar_md5=None``). ``count`` takes the first N images in ``val_map.txt`` order, as the reference's
    ``--count`` does; None takes all. Construction checks the files and prepares the preprocessed cache
    (resuming an interrupted preparation), calling ``progress(stage, done, total)`` at most about 10
    times a second. ``workers`` (default: the cores this process may use) decode and resize: worker
    processes from :data:`PROCESSES_FROM_IMAGES` images to prepare, threads below; ``workers_kind``
    (``"processes"`` or ``"threads"``) forces one. Ctrl-C, SIGTERM or an exception from ``progress``
    stops the workers; what they finished is kept, a file being written is never taken as finished.

    Raises :class:`~harness.errors.DatasetError` for a missing ``val_map.txt`` or malformed line, missing,
    extra or unreadable images, a bad tar or an unwritable cache, each with what to do about it.
    """

    synthetic = False

    def __init__(self, path: Path | str, *, layout: str = "NCHW", count: int | None = None,
                 progress: Progress | None = None, tar_md5: str | None = VAL_TAR_MD5,
                 workers: int | None = None, workers_kind: str | None = None, cache_root: Path | None = None):
        if layout not in LAYOUTS:
            raise ValueError(f"unknown layout {layout!r}; expected one of {LAYOUTS}")
        if workers_kind not in (None, *WORKER_KINDS):
            raise ValueError(f"unknown workers_kind {workers_kind!r}; expected one of {WORKER_KINDS} or None")
        start = time.perf_counter()
        path = Path(path).expanduser().resolve()
        tar_path: Path | None = None
        if path.is_file() and path.name.lower().endswith(".tar"):
            path, tar_path = path.parent, path
        if not path.is_dir():
            raise DatasetError(f"The ImageNet folder {path} does not exist.",
                               f"pass the folder holding {VAL_MAP} and the validation JPEGs (or {VAL_TAR}).")
        self.path = path
        self.layout = layout
        self.cache_root = Path(cache_root) if cache_root else locations().datasets / "imagenet"
        self.preparation = Preparation()

        val_map = path / VAL_MAP
        entries = parse_val_map(val_map)
        if count is None:
            count = len(entries)
        if not 0 < count <= len(entries):
            raise DatasetError(f"A subset of {count} images was asked for, but {val_map} lists {len(entries)}.",
                               f"choose a dataset size between 1 and {len(entries)}.")
        self.count = count
        self._names = [name for name, _ in entries[:count]]
        self._labels = np.array([label for _, label in entries[:count]], dtype=np.int64)

        folder = path
        files = _scan(folder)
        needed = self._names
        if tar_path is None and (path / VAL_TAR).is_file() and any(n not in files for n in needed):
            tar_path = path / VAL_TAR
        if tar_path is not None:
            folder = self._extract(tar_path, tar_md5, progress)
            files = _scan(folder)
        self.images_folder = folder
        self._check(folder, files, entries)

        val_map_sha = hashlib.sha256(val_map.read_bytes()).hexdigest()
        self.key = self._key(folder, val_map_sha)
        self.cache_dir = self.cache_root / self.key
        self._cache_files, self._sources = self._cache_names(files)
        self._prepare(_Work(needed, folder, self.cache_dir / "images"), progress, workers, workers_kind)
        self.preparation.seconds = time.perf_counter() - start

        size = "all" if count == len(entries) else f"the first {count} of"
        full = "" if len(entries) == FULL_COUNT else f" (val_map.txt lists {len(entries)}, not the full {FULL_COUNT})"
        source = f"{tar_path}" if tar_path else str(path)
        self.description = f"ImageNet 2012 validation: {size} {len(entries)} images from {source}{full}"

    # -- checks ---------------------------------------------------------------------------------------------

    def _check(self, folder: Path, files: dict[str, os.stat_result], entries: list[tuple[str, int]]) -> None:
        listed = {name for name, _ in entries}
        missing = [name for name in self._names if name not in files]
        extra = sorted(name for name in files if name not in listed)
        empty = [name for name in self._names if name in files and files[name].st_size == 0]
        if missing:
            hint = ""
            if not files and any(folder.glob("*/*.JPEG")):
                hint = " The images seem to be in subfolders (one per class): move them into the folder itself."
            raise DatasetError(
                f"{len(missing)} of the {len(self._names)} images listed in {VAL_MAP} are missing from {folder} "
                f"({len(files)} image files found; missing: {_first(missing)}).{hint}",
                f"copy the missing files from the ImageNet 2012 validation set, or put {VAL_TAR} "
                f"(md5 {VAL_TAR_MD5}) in {self.path} to extract it, or use a smaller dataset size "
                "that leaves them out (the first N images in val_map.txt order).",
            )
        if extra:
            raise DatasetError(
                f"{len(extra)} image files in {folder} are not listed in {VAL_MAP} ({_first(extra)}): the "
                "folder and the val_map do not belong together.",
                f"use the reference {VAL_MAP} of the 50,000 validation images, or move the other files out.",
            )
        if empty:
            raise self._unreadable_error(folder, empty)

    def _unreadable_error(self, folder: Path, names: list[str]) -> DatasetError:
        return DatasetError(
            f"{len(names)} images in {folder} cannot be decoded ({_first(names)}): empty, truncated or "
            "not images.",
            f"replace them with the originals from the ImageNet 2012 validation set (or {VAL_TAR}), then "
            "rerun: the images already prepared are kept.",
        )

    # -- tar ------------------------------------------------------------------------------------------------

    def _extract(self, tar_path: Path, md5: str | None, progress: Progress | None) -> Path:
        try:
            stat = tar_path.stat()
        except OSError as exc:
            raise DatasetError(f"{tar_path} cannot be read: {exc.strerror or exc}.",
                               "check the file and its permissions.") from exc
        identity = json.dumps([str(tar_path), stat.st_size, stat.st_mtime_ns, md5])
        dest = self.cache_root / f"val-{hashlib.sha256(identity.encode()).hexdigest()[:16]}"
        self.preparation.extracted_from = tar_path
        return extract_val_tar(tar_path, dest, md5=md5, progress=progress)

    # -- cache ----------------------------------------------------------------------------------------------

    def _key(self, folder: Path, val_map_sha: str) -> str:
        """Names the cache: changes with the folder, val_map.txt, the subset and the preprocessing."""
        cv2 = _cv2()
        header = [PREPROCESS_VERSION, cv2.__version__, str(self.path), str(folder), val_map_sha, self.count]
        return hashlib.sha256(json.dumps(header).encode()).hexdigest()[:24]

    def _cache_names(self, files: dict[str, os.stat_result]) -> tuple[list[str], str]:
        """Cache file per image, named after its source's size and mtime, and a digest of them all.

        A replaced image gets a new cache file (and the marker no longer matches), so it is redone while
        every unchanged image is kept.
        """
        names, digest = [], hashlib.sha256()
        for name in self._names:
            st = files[name]
            stamp = f"{name} {st.st_size} {st.st_mtime_ns}"
            digest.update(stamp.encode() + b"\n")
            names.append(f"{Path(name).stem}-{hashlib.sha256(stamp.encode()).hexdigest()[:10]}.npy")
        return names, digest.hexdigest()

    def _prepare(self, work: _Work, progress: Progress | None, workers: int | None,
                 workers_kind: str | None) -> None:
        marker = self.cache_dir / _MARKER
        record = self._complete(marker)
        if record is not None:
            # The marker's manifest (size, sha256 of every prepared image) says whether the cache is whole;
            # a marker from before manifests only has the sizes checked below, then gets one.
            broken = (cache_integrity.manifest_problems(work.images, record["files"], self._cache_files)
                      if "files" in record else {})
            if not broken and "files" in record:
                self.preparation.reused = self.count
                return
            if broken:
                self._report_broken(broken, progress)
            try:
                for name in broken:
                    (work.images / name).unlink(missing_ok=True)
                marker.unlink(missing_ok=True)
            except OSError as exc:
                raise _write_error(work.images, exc) from exc
        try:
            work.images.mkdir(parents=True, exist_ok=True)
            _remove_temporaries(work.images)
        except OSError as exc:
            raise _write_error(work.images, exc) from exc
        expected = _npy_size()
        todo = []
        for i in range(len(work.names)):
            target = self._cached(i)
            if target.is_file() and target.stat().st_size == expected:
                self.preparation.reused += 1
            else:
                todo.append(i)
        throttle = _Throttle(progress)
        done = self.preparation.reused
        throttle("preprocess", done, self.count)
        workers = max(1, min(workers or usable_cores(), len(todo)))
        kind = workers_kind or ("processes" if workers > 1 and len(todo) >= PROCESSES_FROM_IMAGES else "threads")
        self.preparation.workers, self.preparation.workers_kind = workers, kind
        jobs = [(str(work.folder / work.names[i]), str(self._cached(i))) for i in todo]
        results = _in_processes(jobs, workers, CHUNK_IMAGES) if kind == "processes" else _in_threads(jobs, workers)
        unreadable = []
        with contextlib.closing(results):
            for position, status in results:
                if status == _UNREADABLE:
                    unreadable.append(todo[position])
                elif status is not None:
                    target = self._cached(todo[position])
                    raise _write_error(target, OSError(*status))
                self.preparation.processed += 1
                done += 1
                throttle("preprocess", done, self.count)
        work.unreadable.extend(work.names[i] for i in sorted(unreadable))
        if work.unreadable:
            raise self._unreadable_error(work.folder, work.unreadable)
        # Cache files of images since replaced: nothing refers to them any more.
        keep = set(self._cache_files)
        for stale in work.images.glob("*.npy"):
            if stale.name not in keep:
                stale.unlink(missing_ok=True)
        try:
            files = cache_integrity.manifest(work.images, self._cache_files)
        except OSError as exc:
            raise _write_error(work.images, exc) from exc
        record = {"version": PREPROCESS_VERSION, "key": self.key, "count": self.count, "sources": self._sources,
                  "source": str(self.path), "images": str(work.folder), "files": files}
        try:
            _write_atomically(marker, lambda fh: fh.write(json.dumps(record, indent=2).encode()))
        except OSError as exc:
            raise _write_error(marker, exc) from exc

    def _complete(self, marker: Path) -> dict[str, Any] | None:
        """The marker of a finished preparation of this very cache, or None."""
        try:
            record = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(record, dict):
            return None
        same = (record.get("key"), record.get("count"), record.get("sources")) == (self.key, self.count,
                                                                                     self._sources)
        return record if same else None

    def _report_broken(self, broken: dict[str, str], progress: Progress | None) -> None:
        """Say which prepared images are rebuilt, through the progress (the only channel a run has here)."""
        if progress is not None:
            progress(cache_integrity.rebuilding_text(broken), len(broken), len(broken))

    def _cached(self, index: int) -> Path:
        return self.cache_dir / "images" / self._cache_files[index]

    # -- the dataset interface ------------------------------------------------------------------------------

    def sample(self, index: int) -> np.ndarray:
        """The preprocessed image: float32 [3,224,224] (NCHW) or [224,224,3] (NHWC)."""
        if not 0 <= index < self.count:
            raise IndexError(f"sample {index} is outside 0..{self.count - 1}")
        return normalize(_map_crop(self._cached(index)), self.layout)

    def label(self, index: int) -> int:
        return int(self._labels[index])

    def labels(self) -> np.ndarray:
        return self._labels.copy()

    def name(self, index: int) -> str:
        """The image's file name, as in val_map.txt."""
        return self._names[index]


def verify_cache(cache_dir: Path) -> dict[str, str]:
    """``{prepared file: why}`` for each broken file of a preprocessed cache folder, hashing every one."""
    marker = Path(cache_dir) / _MARKER
    try:
        record = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {str(marker): "the preparation is not finished (no readable marker)"}
    files = record.get("files") if isinstance(record, dict) else None
    if not isinstance(files, dict):
        return {str(marker): "it has no integrity manifest (prepared by an older version; the next run adds it)"}
    images = Path(cache_dir) / "images"
    return {str(images / name): why
            for name, why in cache_integrity.manifest_problems(images, files, deep=True).items()}


def _npy_header() -> bytes:
    """The header np.save writes before the pixels of every cached image."""
    crop = np.zeros((OUTPUT_SIZE, OUTPUT_SIZE, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    np.save(buffer, crop, allow_pickle=False)
    return buffer.getvalue()[:-crop.nbytes]


_NPY_HEADER = _npy_header()
_CROP_BYTES = OUTPUT_SIZE * OUTPUT_SIZE * 3


def _npy_size() -> int:
    """Bytes of one cached image file (header included)."""
    return len(_NPY_HEADER) + _CROP_BYTES


def _map_crop(path: Path) -> np.ndarray:
    """The cached crop of ``path``, memory-mapped read-only.

    A file that starts with the header every cached crop has is mapped after it: np.load would parse that
    header again (with ``ast``), which took longer than mapping and normalizing the pixels. Any other file
    goes through np.load, so it fails (or loads) as it always did.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        if os.pread(fd, len(_NPY_HEADER), 0) == _NPY_HEADER:
            mapped = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
            if len(mapped) >= len(_NPY_HEADER) + _CROP_BYTES:
                pixels = np.frombuffer(mapped, np.uint8, _CROP_BYTES, len(_NPY_HEADER))
                return pixels.reshape(OUTPUT_SIZE, OUTPUT_SIZE, 3)
    finally:
        os.close(fd)
    return np.load(path, mmap_mode="r", allow_pickle=False)


# ----------------------------------------------------------------------------------------------------------
# Generated data in the real format


# Pure hues 0, 60, ..., 300 degrees and the ImageNet labels they stand for: a solid image of one of them
# keeps its colour through JPEG, resizing and cropping, so its class can be read back from its mean.
FAKE_CLASS_COLOURS: dict[int, tuple[int, int, int]] = {
    65: (255, 0, 0),
    970: (255, 255, 0),
    230: (0, 255, 0),
    809: (0, 255, 255),
    516: (0, 0, 255),
    57: (255, 0, 255),
}


@dataclass(frozen=True)
class FakeImageNet:
    """What :func:`make_fake_imagenet` wrote."""

    folder: Path
    names: list[str]
    labels: list[int]


def make_fake_imagenet(folder: Path, n: int, seed: int = 0) -> FakeImageNet:
    """Write ``n`` JPEGs named as the validation set (``ILSVRC2012_val_00000001.JPEG`` ...) and a val_map.txt.

    Each image is a solid colour of its class's hue (:data:`FAKE_CLASS_COLOURS`), dimmed by up to 10 %,
    with a seeded size between 120 and 480 pixels a side (portrait and landscape, smaller and larger than
    the 256 the reference resizes to), so a classifier of mean colour recovers every label. Not ImageNet:
    for tests and for trying the real-data path without the real files.
    """
    cv2 = _cv2()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    classes = list(FAKE_CLASS_COLOURS)
    names, labels = [], []
    for i in range(1, n + 1):
        label = classes[int(rng.integers(len(classes)))]
        height, width = (int(v) for v in rng.integers(120, 481, size=2))
        rgb = np.array(FAKE_CLASS_COLOURS[label], dtype=np.float64) * rng.uniform(0.9, 1.0)
        image = np.empty((height, width, 3), dtype=np.uint8)
        image[:] = np.round(rgb[::-1]).astype(np.uint8)
        name = f"ILSVRC2012_val_{i:08d}.JPEG"
        if not cv2.imwrite(str(folder / name), image, [cv2.IMWRITE_JPEG_QUALITY, 95]):
            raise DatasetError(f"Could not write {folder / name}.", f"make sure {folder} is writable.")
        names.append(name)
        labels.append(label)
    (folder / VAL_MAP).write_text("".join(f"{n_} {lb}\n" for n_, lb in zip(names, labels, strict=True)),
                                  encoding="utf-8")
    return FakeImageNet(folder, names, labels)
