"""Writing a built model file: whole or absent, never half."""

from __future__ import annotations

from pathlib import Path

from ..cache_integrity import record_file
from ..errors import ModelError
from ..fsutil import write_bytes_atomically


def write_model(path: Path, data: bytes, what: str, size_hint: str) -> None:
    """Write ``data`` to ``path`` atomically and synced, then its integrity record (size, sha256) beside it;
    ``what`` names the model in the error ("synthetic ResNet50 model"), ``size_hint`` the space it needs."""
    try:
        write_bytes_atomically(path, data)
        record_file(path, data)
    except OSError as exc:
        raise ModelError(f"Could not write the {what} to {path}: {exc.strerror or exc}.",
                         f"make sure {path.parent} is writable and has space ({size_hint}), then rerun.") from exc
