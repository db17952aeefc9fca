"""Official model files: resumable, verified downloads, checksums, and import of a local copy.

A download goes to ``NAME.part`` next to its destination and is renamed to ``NAME`` only once its md5 is
right, so a file under the final name is always complete. An interrupted transfer resumes with an HTTP
Range request; each source is retried with exponential back-off, then the next source is tried.

``MLPERF_WIZARD_MODEL_MIRROR`` names a local mirror (one base URL, or several separated by spaces or
commas) tried before the official URLs, the file name appended: the way to serve the model files on an
air-gapped cluster (e.g. ``python -m http.server`` in a folder holding them).
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import logging
import os
import re
import socket
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from . import __version__, checksums
from .checksums import file_md5, hash_file, verify
from .checksums import remember as _remember
from .errors import ModelError, ResultsError, WizardError
from .models.registry import BACKEND_FORMAT, MODELS, ModelSpec, OfficialFile, official_file
from .paths import locations

MIRROR_ENV = "MLPERF_WIZARD_MODEL_MIRROR"
PART_SUFFIX = ".part"
CHUNK = 256 * 1024
PROGRESS_INTERVAL_S = 0.1
# A host that cannot be reached (no DNS, refused, no route) is tried again once, not ``retries`` times:
# on an air-gapped machine the full back-off would make the user wait a minute for a certain "no".
UNREACHABLE_RETRIES = 1
IMPORT_AGAIN = "import the file again"
NO_SOURCE_FIX = ("copy the file here with `mlperf-wizard models import PATH` (or serve a local mirror and set "
                 f"{MIRROR_ENV} to its URL), or use --model-source synthetic.")

log = logging.getLogger("mlperf_wizard.download")

Progress = Callable[[int, "int | None"], None]


class DownloadCancelled(WizardError):
    """The download was cancelled; what was transferred stays in the .part file for a later resume."""

    exit_code = 130

    def __init__(self, part: Path):
        kept = part.stat().st_size if part.is_file() else 0
        super().__init__(f"Download of {part.name[:-len(PART_SUFFIX)]} cancelled; {_size_text(kept)} kept in {part}.",
                         "fetch it again to resume from there.")
        self.part = part
        self.kept = kept


# --------------------------------------------------------------------------------------------- checksums
# The md5 helpers live in harness.checksums (the model registry verifies files without importing this
# module); the names stay importable from here.


def _hash_file(path: Path, cancel: threading.Event | None = None):
    hasher = checksums.md5_of(path, stop=cancel.is_set if cancel is not None else None)
    if hasher is None:
        raise DownloadCancelled(path)
    return hasher


# ---------------------------------------------------------------------------------------------- download


class _Unreachable(Exception):
    """No connection to the host at all (DNS, refused, no route, connect timeout)."""


class _Transient(Exception):
    """A failure worth retrying on the same source: 5xx, timeout, dropped connection."""


class _Permanent(Exception):
    """This source will not serve the file (404, 403, ...): go to the next one."""


class _WriteFailed(Exception):
    def __init__(self, exc: OSError):
        super().__init__(str(exc))
        self.exc = exc


class _Throttled:
    """Calls ``progress`` at most every PROGRESS_INTERVAL_S, and always for the last byte (once)."""

    def __init__(self, progress: Progress | None):
        self.progress = progress
        self.last = 0.0
        self.last_value: tuple[int, int | None] | None = None

    def __call__(self, done: int, total: int | None, *, final: bool = False) -> None:
        if self.progress is None or self.last_value == (done, total):
            return
        now = time.monotonic()
        if final or (total is not None and done >= total) or now - self.last >= PROGRESS_INTERVAL_S:
            self.last = now
            self.last_value = (done, total)
            self.progress(done, total)


@dataclass
class _Completed:
    md5: str
    size: int
    resumed: bool


def _reason(exc: BaseException) -> str:
    """A few words for the user: "connection refused", "host name not found", "timed out", ..."""
    if isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, BaseException):
        exc = exc.reason
    if isinstance(exc, socket.gaierror):
        return "host name not found"
    for cls, text in ((ConnectionRefusedError, "connection refused"), (ConnectionResetError, "connection reset"),
                      (TimeoutError, "timed out")):
        if isinstance(exc, cls):
            return text
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def _write_error(path: Path, exc: OSError, again: str = "fetch again: the download resumes where it stopped"
                 ) -> ResultsError:
    """The user's view of a failed write into the model cache (fsutil's wording, for models)."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return ResultsError(f"The disk is full: could not write {path}.",
                            f"free space on {path.parent} (or move the model cache with MLPERF_WIZARD_HOME), then "
                            f"{again}.")
    if exc.errno == errno.EFBIG:
        return ResultsError(f"Could not write {path}: the file is larger than this file system or a ulimit allows.",
                            "move the model cache with MLPERF_WIZARD_HOME to another file system, or raise "
                            f"the file size limit (ulimit -f), then {again}.")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return ResultsError(f"No permission to write {path}.",
                            f"make the model cache writable, or move it with MLPERF_WIZARD_HOME, then {again}.")
    return ResultsError(f"Could not write {path}: {exc.strerror or exc}.", f"check the folder, then {again}.")


_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


def _transfer(url: str, part: Path, *, size: int | None, timeout_s: float, progress: _Throttled,
              cancel: threading.Event | None, notify: Callable[[str], None]) -> _Completed:
    """One HTTP request: continue ``part`` (Range) or start it over; return when the server says done."""
    offset = part.stat().st_size if part.is_file() else 0
    if size is not None and offset > size:
        notify(f"{part.name} is larger than the file ({offset} > {size} bytes): starting over")
        part.unlink()
        offset = 0
    headers = {"User-Agent": f"mlperf-wizard/{__version__}", "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout_s)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416 and offset:
            # The part already holds at least the whole file: let the checksum decide.
            return _Completed(_hash_file(part, cancel=cancel).hexdigest(), offset, resumed=True)
        what = f"HTTP {exc.code} {exc.reason}".strip()
        raise (_Transient if exc.code >= 500 or exc.code in (408, 429) else _Permanent)(what) from exc
    except urllib.error.URLError as exc:
        raise _Unreachable(_reason(exc)) from exc
    except (OSError, http.client.HTTPException) as exc:
        raise _Transient(_reason(exc)) from exc
    with response:
        total: int | None = None
        length = response.headers.get("Content-Length")
        if offset and response.status == 206:
            match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
            if not match or int(match.group(1)) != offset:
                part.unlink()
                raise _Transient(f"the server answered the resume request with another range "
                                 f"({response.headers.get('Content-Range')}): starting over")
            total = None if match.group(3) == "*" else int(match.group(3))
        else:
            if offset:
                notify(f"{urllib.parse.urlsplit(url).netloc} does not resume downloads: starting over")
                offset = 0
            total = int(length) if length and length.isdigit() else None
        if size is not None and total is not None and total != size:
            raise _Permanent(f"it serves {total} bytes, not the expected {size}")
        if total is None:
            total = size
        hasher = _hash_file(part, cancel=cancel) if offset else hashlib.md5()
        done = offset
        progress(done, total)
        try:
            fh = open(part, "ab" if offset else "wb")
        except OSError as exc:
            raise _WriteFailed(exc) from exc
        with fh:
            while True:
                if cancel is not None and cancel.is_set():
                    raise DownloadCancelled(part)
                try:
                    chunk = response.read1(CHUNK)
                except (OSError, http.client.HTTPException) as exc:
                    raise _Transient(f"{_reason(exc)} after {_size_text(done)}") from exc
                if not chunk:
                    break
                try:
                    fh.write(chunk)
                except OSError as exc:
                    raise _WriteFailed(exc) from exc
                hasher.update(chunk)
                done += len(chunk)
                progress(done, total)
            try:
                fh.flush()
                os.fsync(fh.fileno())
            except OSError as exc:
                raise _WriteFailed(exc) from exc
        if total is not None and done < total:
            raise _Transient(f"connection closed after {_size_text(done)} of {_size_text(total)}")
        return _Completed(hasher.hexdigest(), done, resumed=offset > 0)


def _wait(seconds: float, cancel: threading.Event | None, part: Path) -> None:
    if cancel is None:
        time.sleep(seconds)
    elif cancel.wait(seconds):
        raise DownloadCancelled(part)


def _size_text(n: int | None) -> str:
    if n is None:
        return "?"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def fetch(urls: Sequence[str], dest: Path, *, md5: str | None, size: int | None = None,
          progress: Progress | None = None, retries: int = 4, backoff_s: float = 1.0, timeout_s: float = 30,
          cancel: threading.Event | None = None, notify: Callable[[str], None] | None = None) -> Path:
    """Download ``dest`` from the first of ``urls`` that serves it whole and with the right md5.

    The bytes go to ``dest.part``; an existing part is continued with a Range request (or started over
    when the server ignores it) and ``dest`` appears, through ``os.replace``, only once verified. Each
    source gets ``retries`` more tries after a failure (back-off ``backoff_s`` x 1, 2, 4, ...; an
    unreachable host only one more), then the next source is tried; a complete file with the wrong md5 is
    deleted, fetched from scratch once more if it had been resumed, else the next source is tried.
    ``progress(done, total)`` is called at most ~10 times a second, ``notify(text)`` on each retry or
    fallback. A ``dest`` already present with the right md5 is returned without any request.

    Raises ModelError (no source reachable / wrong checksum everywhere / other failures, with the fix),
    ResultsError (cannot write: disk full, permissions), DownloadCancelled (``cancel`` was set; the part
    is kept). A KeyboardInterrupt also leaves the part in place, ready to resume.
    """
    dest = Path(dest)
    part = dest.with_name(dest.name + PART_SUFFIX)
    md5 = md5.lower() if md5 else None
    urls = list(dict.fromkeys(urls))
    if not urls:
        raise ModelError(f"No source is known for {dest.name}.", NO_SOURCE_FIX)
    if dest.is_file() and (size is None or dest.stat().st_size == size) and (md5 is None or verify(dest, md5)):
        return dest

    def say(text: str) -> None:
        log.info("%s: %s", dest.name, text)
        if notify is not None:
            notify(text)

    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _write_error(dest.parent, exc) from exc
    throttled = _Throttled(progress)
    failures: list[tuple[str, str, str]] = []  # (url, kind, reason)
    for n, url in enumerate(urls):
        attempt = 0
        refetched = False
        while True:
            if cancel is not None and cancel.is_set():
                raise DownloadCancelled(part)
            try:
                done = _transfer(url, part, size=size, timeout_s=timeout_s, progress=throttled, cancel=cancel,
                                 notify=say)
            except _WriteFailed as exc:
                raise _write_error(part, exc.exc) from exc.exc
            except _Permanent as exc:
                failures.append((url, "refused", str(exc)))
                break
            except (_Unreachable, _Transient) as exc:
                kind = "unreachable" if isinstance(exc, _Unreachable) else "failed"
                allowed = min(retries, UNREACHABLE_RETRIES) if kind == "unreachable" else retries
                if attempt >= allowed:
                    failures.append((url, kind, str(exc)))
                    break
                delay = backoff_s * 2 ** attempt
                attempt += 1
                say(f"{exc}; trying {urllib.parse.urlsplit(url).netloc} again in {delay:.3g} s "
                    f"(attempt {attempt + 1} of {allowed + 1})")
                _wait(delay, cancel, part)
                continue
            wrong_size = size is not None and done.size != size
            if wrong_size or (md5 is not None and done.md5 != md5):
                part.unlink(missing_ok=True)
                got = (f"wrong size: {done.size} bytes instead of {size}" if wrong_size
                       else f"wrong checksum: md5 {done.md5}")
                if done.resumed and not refetched:
                    refetched = True
                    say(f"the resumed download is not the expected file ({got}): downloading it again from scratch")
                    continue
                failures.append((url, "checksum", got))
                break
            try:
                os.replace(part, dest)
            except OSError as exc:
                raise _write_error(dest, exc) from exc
            _remember(dest, done.md5)
            throttled(done.size, done.size, final=True)
            return dest
        if n + 1 < len(urls):
            say(f"{url} failed ({failures[-1][2]}): trying {urls[n + 1]}")
    raise _failure(dest, part, md5, size, failures)


def _failure(dest: Path, part: Path, md5: str | None, size: int | None,
             failures: list[tuple[str, str, str]]) -> ModelError:
    listing = "\n".join(f"  {url} ({reason})" for url, _, reason in failures)
    if all(kind == "unreachable" for _, kind, _ in failures):
        return ModelError(f"Could not reach any source of {dest.name}:\n{listing}", NO_SOURCE_FIX)
    if all(kind == "checksum" for _, kind, _ in failures):
        expected = f"md5 {md5}" if md5 else f"{size} bytes"
        return ModelError(
            f"Every source served a {dest.name} that is not the expected file (expected {expected}):\n{listing}\n"
            "The downloaded file was not kept.",
            f"get the file with {expected} another way and add it with `mlperf-wizard models import PATH`, "
            "or use --model-source synthetic.")
    kept = part.stat().st_size if part.is_file() else 0
    note = f"\n{_size_text(kept)} downloaded so far are kept in {part}; fetching again resumes there." if kept else ""
    return ModelError(f"Could not download {dest.name}:\n{listing}{note}", "try again later, or " + NO_SOURCE_FIX)


# ------------------------------------------------------------------------------------- the official files


def official_dir() -> Path:
    """The model cache folder of the official files (``resolve_model`` looks there)."""
    return locations().models / "official"


def official_path(file: OfficialFile) -> Path:
    return official_dir() / file.filename


def official_files(model: str | None = None) -> Iterator[tuple[ModelSpec, OfficialFile]]:
    """Every official file in the registry (of ``model`` only, if given)."""
    for spec in MODELS.values():
        if model is None or spec.name == model:
            for file in spec.files:
                if not file.derived_from:  # made here from another official file, never downloaded
                    yield spec, file


def backends_for(file: OfficialFile) -> list[str]:
    """The backend names that load this file's format."""
    return [b for b, fmt in BACKEND_FORMAT.items() if fmt == file.backend_format]


def mirror_bases() -> list[str]:
    """The local mirror base URLs from MLPERF_WIZARD_MODEL_MIRROR (none if unset)."""
    return [b for b in re.split(r"[\s,]+", os.environ.get(MIRROR_ENV, "")) if b]


def mirror_urls(filename: str) -> list[str]:
    """The local mirror URLs of ``filename``."""
    return [b.rstrip("/") + "/" + urllib.parse.quote(filename) for b in mirror_bases()]


def sources(file: OfficialFile) -> list[str]:
    """Where a file is downloaded from, in order: the local mirror(s), then the official URLs."""
    return mirror_urls(file.filename) + list(file.urls)


def find_official(model: str, backend: str, precision: str) -> tuple[ModelSpec, OfficialFile]:
    """The official file of a model for a backend and precision; ModelError if there is none."""
    spec = MODELS.get(model)
    if spec is None:
        raise ModelError(f"Unknown model '{model}'.", f"choose one of: {', '.join(MODELS)}.")
    file = official_file(spec, backend, precision)
    if file is None:
        available = ", ".join(f"{f.backend_format} {f.precision}" for f in spec.files)
        raise ModelError(f"MLCommons publishes no {precision} {spec.title} model for {backend}.",
                         f"the official files are: {available}.")
    return spec, file


def fetch_official(file: OfficialFile, **kwargs) -> Path:
    """:func:`fetch` an official file into the model cache, from the mirror(s) then the official URLs."""
    return fetch(sources(file), official_path(file), md5=file.md5, **kwargs)


Known = Sequence[tuple[ModelSpec, OfficialFile]]


def identify(md5: str, known: Known | None = None) -> tuple[ModelSpec, OfficialFile] | None:
    """The official file with this md5 (among ``known``, default: the registry's), if any."""
    return next(((s, f) for s, f in (official_files() if known is None else known) if f.md5 == md5.lower()), None)


def describe(spec: ModelSpec, file: OfficialFile) -> str:
    return f"{file.filename} ({spec.title}, {file.backend_format} {file.precision})"


def import_file(src: Path, spec_file: OfficialFile, *, known: Known | None = None) -> Path:
    """Copy a local file into the official model cache, verified, and return its cache path.

    The copy goes through a temporary file and is renamed only when its md5 matches ``spec_file``; a file
    that does not match is refused (ModelError), naming what it is if it is another official file.
    """
    src = Path(src).expanduser()
    if not src.is_file():
        raise ModelError(f"{src} is not a file.", "give the path of the downloaded model file.")
    dest = official_path(spec_file)
    if dest.exists() and os.path.samefile(src, dest):
        if verify(dest, spec_file.md5, use_cache=False):
            return dest
        raise _not_this_file(src, file_md5(dest), spec_file, known)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".import", dir=dest.parent)
    except OSError as exc:
        raise _write_error(dest, exc, IMPORT_AGAIN) from exc
    tmp = Path(tmp_name)
    try:
        digest = _copy_hashing(src, fd, dest)
        if digest != spec_file.md5:
            raise _not_this_file(src, digest, spec_file, known)
        try:
            os.chmod(tmp, 0o644)
            os.replace(tmp, dest)
        except OSError as exc:
            raise _write_error(dest, exc, IMPORT_AGAIN) from exc
    finally:
        tmp.unlink(missing_ok=True)
    _remember(dest, digest)
    return dest


def _copy_hashing(src: Path, fd: int, dest: Path) -> str:
    """Copy ``src`` into the open temporary file ``fd`` (for ``dest``); return the md5 of what was copied."""
    hasher = hashlib.md5()
    with os.fdopen(fd, "wb") as out:
        try:
            inp = open(src, "rb")
        except OSError as exc:
            raise ModelError(f"Could not read {src}: {exc.strerror or exc}.", "check the file and its "
                             "permissions.") from exc
        with inp:
            while True:
                try:
                    chunk = inp.read(1024 * 1024)
                except OSError as exc:
                    raise ModelError(f"Could not read {src}: {exc.strerror or exc}.", "check the file.") from exc
                if not chunk:
                    break
                try:
                    out.write(chunk)
                except OSError as exc:
                    raise _write_error(dest, exc, IMPORT_AGAIN) from exc
                hasher.update(chunk)
        try:
            out.flush()
            os.fsync(out.fileno())
        except OSError as exc:
            raise _write_error(dest, exc, IMPORT_AGAIN) from exc
    return hasher.hexdigest()


def import_model_file(src: Path, *, model: str | None = None, backend: str | None = None,
                      precision: str | None = None, known: Known | None = None
                      ) -> tuple[ModelSpec, OfficialFile, Path]:
    """Import ``src`` as the official file it is, recognised by its md5 among those matching the filters.

    Returns (model spec, official file, cache path). Raises ModelError saying what the file is when it is
    another official file than the filters ask for, or that it is none of them.
    """
    known = list(official_files() if known is None else known)
    src = Path(src).expanduser()
    if not src.is_file():
        raise ModelError(f"{src} is not a file.", "give the path of the model file.")
    if backend is not None and backend not in BACKEND_FORMAT:
        raise ModelError(f"Unknown backend '{backend}'.", f"choose one of: {', '.join(BACKEND_FORMAT)}.")
    fmt = BACKEND_FORMAT.get(backend or "")
    candidates = [(s, f) for s, f in known if (model is None or s.name == model)
                  and (fmt is None or f.backend_format == fmt) and (precision is None or f.precision == precision)]
    asked = ", ".join(f"{k} {v}" for k, v in (("model", model), ("backend", backend), ("precision", precision)) if v)
    if not candidates:
        raise ModelError(f"No official model file matches {asked}.", "see `mlperf-wizard models list`.")
    # Hashed without a checksum sidecar: the user's own folder is left untouched.
    digest = hash_file(src)
    match = next(((s, f) for s, f in candidates if f.md5 == digest), None)
    if match is not None:
        return match[0], match[1], import_file(src, match[1], known=known)
    if len(candidates) == 1:
        raise _not_this_file(src, digest, candidates[0][1], known)
    other = identify(digest, known)
    if other is not None:
        raise ModelError(f"{src} is {describe(*other)}, which does not match {asked}; it was not imported.",
                         "drop --model/--backend/--precision to import it as what it is.")
    raise ModelError(f"{src} (md5 {digest}) is none of the official model files" + (f" for {asked}" if asked else "")
                     + "; it was not imported.",
                     "compare its md5 with `mlperf-wizard models list`, or give --model/--backend/--precision to "
                     "see which file is expected.")


def _not_this_file(src: Path, digest: str, wanted: OfficialFile, known: Known | None) -> ModelError:
    other = identify(digest, known)
    if other is not None:
        return ModelError(f"{src} is {describe(*other)}, not {wanted.filename}; it was not imported as that.",
                          "run `mlperf-wizard models import PATH` without --model/--backend/--precision to "
                          "import it as what it is, or give the right file.")
    where = f" (MLCommons publishes it at {wanted.urls[0]})" if wanted.urls else ""
    return ModelError(f"{src} is not the official {wanted.filename}: its md5 is {digest}, expected {wanted.md5}. "
                      "It was not imported.", f"check the file{where}, or use --model-source synthetic.")


@dataclass(frozen=True)
class OfficialStatus:
    """Whether an official file is in the model cache, and intact."""

    model: str
    file: OfficialFile
    path: Path
    present: bool
    verified: bool
    md5: str | None
    """The md5 of the cached file (None when missing)."""
    size: int | None
    partial_bytes: int
    """Bytes of an unfinished download waiting to be resumed."""

    @property
    def state(self) -> str:
        """verified | wrong checksum | partial | missing"""
        if self.present:
            return "verified" if self.verified else "wrong checksum"
        return "partial" if self.partial_bytes else "missing"

    def to_dict(self) -> dict:
        return {"model": self.model, "backend_format": self.file.backend_format, "backends": backends_for(self.file),
                "precision": self.file.precision, "filename": self.file.filename, "expected_md5": self.file.md5,
                "urls": list(self.file.urls), "path": str(self.path), "state": self.state, "cached": self.present,
                "verified": self.verified, "md5": self.md5, "size": self.size, "partial_bytes": self.partial_bytes}


def file_status(spec: ModelSpec, file: OfficialFile, *, use_cache: bool = True) -> OfficialStatus:
    path = official_path(file)
    part = path.with_name(path.name + PART_SUFFIX)
    present = path.is_file()
    digest = file_md5(path, use_cache=use_cache) if present else None
    return OfficialStatus(spec.name, file, path, present, digest == file.md5, digest,
                          path.stat().st_size if present else None, part.stat().st_size if part.is_file() else 0)


def official_status(model: str, backend: str, precision: str, *, use_cache: bool = True) -> OfficialStatus:
    """present / verified / missing, with the path, of the official file of this model, backend, precision."""
    spec, file = find_official(model, backend, precision)
    return file_status(spec, file, use_cache=use_cache)
