"""md5 of files, remembered in a sidecar ``NAME.md5.json`` keyed by size and mtime: how official models and
datasets are recognised (MLCommons publishes md5s). Imports nothing of the model registry or the
downloader, which both use it."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

from .errors import WizardError
from .fsutil import atomic_write_json

log = logging.getLogger(__name__)

CHECKSUM_SUFFIX = ".md5.json"


def checksum_file(path: Path) -> Path:
    return path.with_name(path.name + CHECKSUM_SUFFIX)


def md5_of(path: Path, stop: Callable[[], bool] | None = None):
    """The md5 hasher of ``path``'s bytes, read in 1 MiB chunks; None when ``stop()`` turns true first."""
    hasher = hashlib.md5()
    with open(path, "rb") as fh:
        while chunk := fh.read(1024 * 1024):
            hasher.update(chunk)
            if stop is not None and stop():
                return None
    return hasher


def hash_file(path: Path) -> str:
    """The md5 of ``path``, read in full (no sidecar is read or written)."""
    return md5_of(Path(path)).hexdigest()


def file_md5(path: Path, *, use_cache: bool = True) -> str:
    """The md5 of ``path``, remembered in a sidecar ``NAME.md5.json`` keyed by size and mtime.

    With ``use_cache=False`` the file is hashed again (and the sidecar refreshed).
    """
    path = Path(path)
    st = path.stat()
    sidecar = checksum_file(path)
    if use_cache:
        try:
            cached = json.loads(sidecar.read_text(encoding="utf-8"))
            if cached.get("size") == st.st_size and cached.get("mtime_ns") == st.st_mtime_ns:
                return str(cached["md5"])
        except (OSError, ValueError, KeyError, AttributeError):
            pass
    digest = hash_file(path)
    remember(path, digest, st)
    return digest


def remember(path: Path, digest: str, st: os.stat_result | None = None) -> None:
    """Record ``digest`` as the md5 of ``path`` as it is now."""
    st = st or path.stat()
    try:
        atomic_write_json(checksum_file(path), {"md5": digest, "size": st.st_size, "mtime_ns": st.st_mtime_ns})
    except WizardError as exc:
        # Only a cache: a read-only folder just means hashing again next time.
        log.debug("could not record the checksum of %s: %s", path, exc)


def verify(path: Path, md5: str, *, use_cache: bool = True) -> bool:
    """Whether ``path`` exists and has this md5 (see :func:`file_md5` for the cache)."""
    path = Path(path)
    return path.is_file() and file_md5(path, use_cache=use_cache) == md5.lower()
