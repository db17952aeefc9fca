"""The one reader of LoadGen's ``mlperf_log_accuracy.json``, for every accuracy script.

The log is a JSON list with one object per response: ``qsl_idx`` (the sample's index in the QSL) and
``data`` (the response bytes, hex). Anything else (a truncated file, an entry that is not an object, an index
out of range, odd hex, a byte count that is not whole float32 values) is :class:`AccuracyLogError`, which
names the file and the entry, never a traceback.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DatasetError


class AccuracyLogError(DatasetError):
    """``mlperf_log_accuracy.json`` cannot be read or is not what LoadGen writes."""


@dataclass(frozen=True)
class Response:
    """One logged response: the sample's QSL index and its bytes."""

    qsl_idx: int
    data: bytes

    def floats(self, per_item: int = 1) -> np.ndarray:
        """The bytes as float32 values (``per_item`` of them per row: a 2-D array when more than 1)."""
        values = np.frombuffer(self.data, dtype=np.float32)
        return values.reshape(-1, per_item) if per_item > 1 else values


_FIX = "rerun the accuracy test: LoadGen writes the log, and the file was damaged or cut short since."


def corrupt(path: Path, why: str) -> AccuracyLogError:
    return AccuracyLogError(f"The accuracy log is corrupt: {path} ({why}).", _FIX)


def read_accuracy_log(path: Path | str, samples: int | None = None, floats_per_item: int = 1) -> list[Response]:
    """Every response of the log, in order. ``samples``: the QSL's size (an index outside it is an error);
    ``floats_per_item``: each response must hold a whole number of rows of that many float32 values."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AccuracyLogError(f"The accuracy log {path} does not exist.",
                               "rerun the accuracy test; LoadGen writes the log when the test ends.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise corrupt(path, f"cannot be read: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        entries = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise corrupt(path, f"not valid JSON: {str(exc)[:80]}") from None
    if not isinstance(entries, list):
        raise corrupt(path, f"a JSON {type(entries).__name__}, not the list of responses LoadGen writes")
    row_bytes = 4 * floats_per_item
    out = []
    for n, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise corrupt(path, f"entry {n} is not an object")
        idx, data = entry.get("qsl_idx"), entry.get("data")
        if not isinstance(idx, int) or isinstance(idx, bool) or idx < 0:
            raise corrupt(path, f"entry {n} has no sample index (qsl_idx)")
        if samples is not None and idx >= samples:
            raise corrupt(path, f"entry {n} answers sample {idx}, but the dataset has {samples} samples; "
                                "if the run used another dataset, score it against that one")
        if not isinstance(data, str):
            raise corrupt(path, f"entry {n} has no response data")
        try:
            raw = bytes.fromhex(data)
        except ValueError:
            raise corrupt(path, f"entry {n}'s data is not hexadecimal") from None
        if len(raw) % row_bytes:
            raise corrupt(path, f"entry {n} holds {len(raw)} bytes, not whole rows of {floats_per_item} "
                                "float32 values")
        out.append(Response(idx, raw))
    return out
