"""Remembered targets: what a SUT sustained, per (system, model, backend, device, precision, scenario).

The seed kept hand-written per-``hw_name`` SUT configurations; here every completed performance run
updates them, and the next run with ``auto`` targets starts from the figure it left.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from .fsutil import atomic_write_json, read_json_object
from .paths import locations


@dataclass(frozen=True)
class Remembered:
    value: float
    when: str
    run_id: str
    valid: bool


def _path():
    return locations().state / "targets.json"


def key_text(key: dict[str, str]) -> str:
    """A key of named parts as one string, the same whatever order the parts come in."""
    return "|".join(f"{k}={key[k]}" for k in sorted(key))


def _read() -> dict:
    return read_json_object(_path())


def lookup(key: dict[str, str]) -> Remembered | None:
    entry = _read().get(key_text(key))
    if not isinstance(entry, dict):
        return None
    try:
        return Remembered(float(entry["value"]), str(entry["when"]), str(entry["run_id"]), bool(entry["valid"]))
    except (KeyError, TypeError, ValueError):
        return None


def remember(key: dict[str, str], value: float, *, run_id: str, valid: bool) -> None:
    """Store what the SUT sustained (queries/s for Offline/Server, ms for the stream scenarios)."""
    data = _read()
    data[key_text(key)] = {"value": value, "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                       "run_id": run_id, "valid": valid, "key": key}
    atomic_write_json(_path(), data)


def forget(key: dict[str, str]) -> None:
    """Drop a remembered figure that a later run showed to be wrong (a Server rate that went INVALID)."""
    data = _read()
    if data.pop(key_text(key), None) is not None:
        atomic_write_json(_path(), data)
