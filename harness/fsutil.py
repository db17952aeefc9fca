"""Small file helpers: atomic writes that never leave a half file under the final name."""

from __future__ import annotations

import errno
import json
import os
import tempfile
from pathlib import Path

from .errors import ResultsError


def _raise_for(path: Path, exc: OSError) -> None:
    if exc.errno == errno.ENOSPC:
        raise ResultsError(
            f"The disk is full: could not write {path}.",
            f"free space on {path.parent} (or choose another --results-dir) and rerun; "
            "files already written there are kept.",
        ) from exc
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        raise ResultsError(
            f"No permission to write {path}.",
            "choose a writable folder with --results-dir (or MLPERF_WIZARD_HOME).",
        ) from exc
    raise ResultsError(f"Could not write {path}: {exc.strerror or exc}.", "check the folder and rerun.") from exc


def write_bytes_atomically(path: Path, data: bytes, *, overwrite: bool = True, sync: bool = True) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder, then rename: ``path`` is
    whole or absent, never half. OS errors are raised as they are, for the caller to word.

    With ``overwrite=False`` an existing file is never replaced (FileExistsError). ``sync=False`` skips the
    fsync, for caches that can be rebuilt.
    """
    path = Path(path)
    tmp_name = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if sync:
                fh.flush()
                os.fsync(fh.fileno())
        if overwrite:
            os.replace(tmp_name, path)
        else:
            # link() fails if the target exists: no window where another writer's file is replaced.
            os.link(tmp_name, path)
            os.unlink(tmp_name)
        tmp_name = None
    finally:
        if tmp_name and os.path.exists(tmp_name):
            os.unlink(tmp_name)


def atomic_write_text(path: Path, text: str, *, overwrite: bool = True) -> None:
    """:func:`write_bytes_atomically` for text, with the results folder's wording for OS errors."""
    try:
        write_bytes_atomically(path, text.encode("utf-8"), overwrite=overwrite)
    except FileExistsError:
        raise
    except OSError as exc:
        _raise_for(Path(path), exc)


def atomic_write_json(path: Path, data: object, *, overwrite: bool = True) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n", overwrite=overwrite)


def ensure_writable_dir(path: Path) -> Path:
    """Create ``path`` if needed and prove it can be written; raise ResultsError otherwise."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-", delete=True)
        probe.close()
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            _raise_for(path / ".write-test", exc)
        # ENOTDIR/EEXIST: a part of the path is a file; EACCES/EROFS: permissions or a read-only mount.
        raise ResultsError(
            f"The folder {path} cannot be written: {exc.strerror or exc}.",
            "choose a writable folder with --results-dir (or MLPERF_WIZARD_HOME).",
        ) from exc
    return path


def read_json_object(path: Path) -> dict:
    """The JSON object in ``path``; {} when it is missing, unreadable, not JSON or not an object (state files
    that the next write rebuilds whole)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}
