"""Integrity records for what mlperf-wizard writes into its caches: the size and sha256 of each entry.

A record is written after the entry it describes, atomically: either as a sidecar ``NAME.integrity.json``
beside a single file (the synthetic models), or as a ``files`` manifest inside the marker a cache already
writes last (the prepared dataset arrays: ``complete.json``). An entry without a record was never
finished and is not trusted.

When the cache is used, the size is always checked (a stat). The content is hashed again only when the
file's stamp (mtime, size, inode) differs from the one recorded when it was hashed: a file rewritten or
modified in place always gets a new mtime, so a run does not rehash a 1.4 GB model or 50,000 images that
nobody touched, while a flipped byte or overwritten pixels are still caught. ``deep=True`` (the
``models verify`` and ``datasets verify`` commands) always hashes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .fsutil import write_bytes_atomically

RECORD_SUFFIX = ".integrity.json"
RECORD_VERSION = 1
_CHUNK = 4 << 20


@dataclass(frozen=True)
class Entry:
    """What a cache file was when it was written."""

    size: int
    sha256: str
    mtime_ns: int
    """Stamp of the file when it was hashed: unchanged stamp, unchanged content (see the module doc)."""
    inode: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> Entry | None:
        """The entry in ``data``, or None when it is not a well-formed record."""
        try:
            return cls(int(data["size"]), str(data["sha256"]), int(data["mtime_ns"]), int(data["inode"]))
        except (TypeError, KeyError, ValueError):
            return None


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def describe(path: Path, data: bytes | None = None) -> Entry:
    """Hash ``path`` now, or ``data`` when the caller has just written it (no second read); OSError when it
    cannot be read."""
    path = Path(path)
    before = path.stat()
    digest = hashlib.sha256(data).hexdigest() if data is not None else sha256_file(path)
    return Entry(before.st_size, digest, before.st_mtime_ns, before.st_ino)


def problem(path: Path, recorded: Entry | None, *, deep: bool = False) -> str | None:
    """Why ``path`` is not the entry ``recorded`` (in words: "size 10 bytes, expected 4,096"), or None."""
    path = Path(path)
    if recorded is None:
        return "it has no integrity record (an unfinished or older write)"
    try:
        st = path.stat()
    except FileNotFoundError:
        return "it is missing"
    except OSError as exc:
        return f"it cannot be read ({exc.strerror or exc})"
    if st.st_size != recorded.size:
        return f"size {st.st_size:,} bytes, expected {recorded.size:,}"
    if not deep and (st.st_mtime_ns, st.st_ino) == (recorded.mtime_ns, recorded.inode):
        return None
    try:
        digest = sha256_file(path)
    except OSError as exc:
        return f"it cannot be read ({exc.strerror or exc})"
    if digest != recorded.sha256:
        return f"its content changed (sha256 {digest[:12]}..., expected {recorded.sha256[:12]}...)"
    return None


# ------------------------------------------------------------------------------------ one file, a sidecar


def record_path(path: Path) -> Path:
    path = Path(path)
    return path.with_name(path.name + RECORD_SUFFIX)


def record_file(path: Path, data: bytes | None = None) -> Entry:
    """Hash ``path`` (or the ``data`` just written to it) and write its sidecar record, atomically, after the
    file. OSError as it is."""
    entry = describe(path, data)
    _write_record(path, entry)
    return entry


def _write_record(path: Path, entry: Entry) -> None:
    data = {"version": RECORD_VERSION, "file": Path(path).name, **entry.to_dict()}
    write_bytes_atomically(record_path(path), (json.dumps(data, indent=2) + "\n").encode("utf-8"), sync=False)


def read_record(path: Path) -> Entry | None:
    """The sidecar record of ``path``, or None when there is none (or it is damaged)."""
    try:
        data = json.loads(record_path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("version") != RECORD_VERSION:
        return None
    return Entry.from_dict(data)


def check_file(path: Path, *, deep: bool = False) -> str | None:
    """Why the cached file ``path`` cannot be trusted against its sidecar, or None.

    A file found whole after a rehash (touched, or copied back) gets its stamp refreshed, so the next
    check is a stat again.
    """
    recorded = read_record(path)
    found = problem(path, recorded, deep=deep)
    if found is None and recorded is not None:
        _refresh(path, recorded)
    return found


def _refresh(path: Path, recorded: Entry) -> None:
    try:
        st = Path(path).stat()
        if (st.st_mtime_ns, st.st_ino) != (recorded.mtime_ns, recorded.inode):
            _write_record(path, Entry(recorded.size, recorded.sha256, st.st_mtime_ns, st.st_ino))
    except OSError:
        pass  # only a shortcut: the next check hashes again


def remove(path: Path) -> None:
    """Remove a cache file and its sidecar (before it is rebuilt)."""
    for p in (record_path(path), Path(path)):
        p.unlink(missing_ok=True)


# ------------------------------------------------------------------------------- many files, a manifest


def manifest(folder: Path, names: Iterable[str]) -> dict[str, dict[str, Any]]:
    """``{name: entry}`` for files in ``folder``, to store in the marker a cache writes last."""
    return {name: describe(Path(folder) / name).to_dict() for name in names}


def manifest_problems(folder: Path, files: Any, names: Iterable[str] | None = None, *,
                      deep: bool = False) -> dict[str, str]:
    """``{name: why}`` for the files of a manifest (``names``: only these; default all) that are broken."""
    files = files if isinstance(files, dict) else {}
    found: dict[str, str] = {}
    for name in (files if names is None else names):
        why = problem(Path(folder) / name, Entry.from_dict(files.get(name)), deep=deep)
        if why is not None:
            found[name] = why
    return found


def rebuilding_text(broken: dict[str, str], what: str = "prepared image") -> str:
    """One line saying which cached files are rebuilt and why (the first one named, the rest counted)."""
    name, why = next(iter(broken.items()))
    more = f" and {len(broken) - 1} more" if len(broken) > 1 else ""
    return f"the cached {what} {name} was corrupt ({why}){more}: rebuilding"
