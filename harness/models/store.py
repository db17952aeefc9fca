"""Writing a built model file: whole or absent, never half."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..errors import ModelError


def write_model(path: Path, data: bytes, what: str, size_hint: str) -> None:
    """Write ``data`` to ``path`` through a synced temporary file in the same folder, then rename.

    ``what`` names the model in the error ("synthetic ResNet50 model"), ``size_hint`` the space it needs.
    """
    tmp_name = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp_name, path)
        tmp_name = None
    except OSError as exc:
        raise ModelError(f"Could not write the {what} to {path}: {exc.strerror or exc}.",
                         f"make sure {path.parent} is writable and has space ({size_hint}), then rerun.") from exc
    finally:
        if tmp_name is not None and os.path.exists(tmp_name):
            os.unlink(tmp_name)
