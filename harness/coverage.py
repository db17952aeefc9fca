"""Which (model, backend, device, precision) combinations can run, and whether they can run here.

The table is data (``harness/data/coverage.yaml``, read by :mod:`harness.coverage_table`). Guidance for
one combination is that table's row, plus what detection found on this machine (installed backends,
GPUs), plus what this machine verified before (``<state>/verified.json``, written after real runs).
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import catalogue, machine_records
from .coverage_table import (
    KEY_FIELDS,
    RUNNABLE_STATUSES,
    CoverageRow,
    label,
    load_table,
)
from .detect import INSTALL_COMMANDS, Detection, install_command
from .errors import CoverageError, ProfileError
from .fsutil import atomic_write_json
from .paths import locations
from .probe_backends import NO_CUDA

VERIFIED_FILE = "verified.json"

HERE = ("works", "verified", "untested", "broken", "unsupported", "not-installed", "no-device", "unknown")
"""The values of Verdict.here."""

ALIASES = {**catalogue.aliases(), "gpu": "cuda"}
"""Spellings users and the CM tool type (the backends' from harness.catalogue), mapped to this table's."""


@dataclass(frozen=True)
class Verdict:
    row: CoverageRow | None
    here: str
    """One of HERE."""
    reason: str
    install_command: str | None
    runnable: bool
    verified_at: str | None
    elsewhere: str = ""
    """What the shipped or imported machine records saw for this cell, e.g. "h200-16core: works (2026-12-04,
    onnxruntime 1.31.1)"; empty when no other machine ran it."""


def canonical(model: str, backend: str, device: str, precision: str) -> tuple[str, str, str, str]:
    """Lower-case the four values, drop a GPU index (cuda:1) and map the CM tool's spellings (gpu, tf, ...)
    onto this table's."""
    values = [str(v).strip().lower() for v in (model, backend, device, precision)]
    values[2] = values[2].partition(":")[0]  # the table is per kind of device: cuda:1 is a cuda
    return tuple(ALIASES.get(v, v) for v in values)  # type: ignore[return-value]


def _index(rows: Iterable[CoverageRow]) -> dict[tuple[str, str, str, str], CoverageRow]:
    return {row.key: row for row in rows}


# --- what this machine verified -------------------------------------------------------------------


def _verified_path() -> Path:
    return locations().state / VERIFIED_FILE


def _read_verified() -> dict[str, dict]:
    try:
        data = json.loads(_verified_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # none yet, or corrupt: the next record_verified rewrites it
    combos = data.get("combinations") if isinstance(data, dict) else None
    return {k: v for k, v in combos.items() if isinstance(v, dict)} if isinstance(combos, dict) else {}


def _verified_key(key: tuple[str, str, str, str]) -> str:
    return "/".join(key)


def record_verified(
    model: str, backend: str, device: str, precision: str, *, ok: bool, when: str | None = None,
    details: dict | None = None,
) -> None:
    """Remember the outcome of a real run of this combination on this machine (the latest one wins).
    ``details`` (JSON values: the backend's version, the duration, why it failed) are kept with it."""
    key = canonical(model, backend, device, precision)
    if key not in _index(load_table()):
        raise CoverageError(
            f"{label(*key)} is not in the coverage table, so it cannot be recorded as verified.",
            "record only combinations that coverage.assess() knows.",
        )
    path = _verified_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    # Two runs finishing together must not drop each other's record: serialise read-modify-write.
    with _Lock(path.with_name(path.name + ".lock")):
        combos = _read_verified()
        combos[_verified_key(key)] = {
            **(details or {}),
            "ok": bool(ok),
            "at": when or datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "host": socket.gethostname(),
        }
        atomic_write_json(path, {"schema": 1, "combinations": combos})


class _Lock:
    def __init__(self, path: Path):
        self.path = path
        self.fd: int | None = None

    def __enter__(self) -> _Lock:
        import fcntl

        self.fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc) -> None:
        import fcntl

        assert self.fd is not None
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


# --- verdicts -------------------------------------------------------------------------------------


def _seed_view(row: CoverageRow) -> str:
    if row.seed_status == "absent":
        return "not in CM's reference table"
    text = f"CM's reference table: {row.seed_status}"
    return f"{text}, '{row.seed_note}'" if row.seed_note else text


def _unknown_reason(key: tuple[str, str, str, str], rows: list[CoverageRow]) -> str:
    parts = []
    for i, name in enumerate(KEY_FIELDS):
        known = list(dict.fromkeys(r.key[i] for r in rows))
        if key[i] not in known:
            parts.append(f"{name} '{key[i]}' is not one of {', '.join(known)}")
    if parts:
        return "; ".join(parts)
    return "this combination is not in the coverage table"


def _device_reason(detection: Detection, backend: str, device: str) -> tuple[str, str | None]:
    """Why ``backend`` cannot use ``device`` here, and the install command if pip can fix it."""
    info = detection.backends[backend]
    if device == "cuda" and not detection.gpus and not int(info.details.get("cuda_device_count") or 0):
        return "cuda was asked for but this machine has no NVIDIA GPU (NVML finds none)", None
    if device != "cuda":
        return f"{backend} cannot use {device} here" + (f" ({info.error})" if info.error else ""), None
    dist = info.details.get("distribution")
    reason = info.details.get(NO_CUDA) or f"{backend} cannot use cuda here"
    if info.error:
        reason += f" ({info.error})"
    cmd = install_command(backend, device, dist)
    return reason, cmd


def _verdict(
    key: tuple[str, str, str, str],
    row: CoverageRow | None,
    rows: list[CoverageRow],
    detection: Detection | None,
    verified: dict[str, dict],
) -> Verdict:
    if row is None:
        return Verdict(None, "unknown", _unknown_reason(key, rows), None, False, None)
    model, backend, device, _ = key
    if row.status in ("unsupported", "broken"):
        return Verdict(row, row.status, f"{row.note} ({_seed_view(row)})", None, False, None)
    if detection is not None:
        info = detection.backends.get(backend)
        if info is None or not info.installed:
            return Verdict(
                row,
                "not-installed",
                f"{backend} is not installed in this Python environment",
                install_command(backend, device),
                False,
                None,
            )
        if not info.devices:
            version = f" {info.version}" if info.version else ""
            return Verdict(
                row,
                "not-installed",
                f"{backend}{version} is installed but does not load: {info.error or 'unknown error'}",
                INSTALL_COMMANDS.get(backend),
                False,
                None,
            )
        if not detection.backend_usable(backend, device):
            reason, cmd = _device_reason(detection, backend, device)
            return Verdict(row, "no-device", reason, cmd, False, None)
    record = verified.get(_verified_key(key))
    if record and record.get("ok"):
        at = str(record.get("at") or "")
        host = record.get("host")
        where = "this machine" if not host or host == socket.gethostname() else f"host {host}"
        version = record.get("backend_version")
        with_version = f" with {backend} {version}" if isinstance(version, str) and version else ""
        reason = f"a run succeeded on {where} at {at}{with_version} (table: {row.status}; {row.note})"
        return Verdict(row, "verified", reason, None, True, at or None)
    reason = row.note
    if record:
        why = record.get("reason")
        reason += f"; the last run on this machine failed at {record.get('at')}"
        if isinstance(why, str) and why:
            reason += f": {why[:300]}"
    return Verdict(row, row.status, reason, None, True, None)


def _elsewhere() -> dict[str, str]:
    """Per cell, what other machines' records (shipped with the project or imported) say of it."""
    seen: dict[str, list[str]] = {}
    try:
        found = machine_records.records()
    except ProfileError:  # a damaged shipped record: the tests catch that; guidance goes on without it
        return {}
    for record in found:
        for key, entry in record["cells"].items():
            if entry["result"] != "untested":
                backend = key.split("/")[1]
                seen.setdefault(key, []).append(
                    f"{record['machine']['name']}: {machine_records.cell_text(entry, backend)}")
    return {key: "; ".join(texts) for key, texts in seen.items()}


def _with_elsewhere(verdict: Verdict, elsewhere: dict[str, str]) -> Verdict:
    if verdict.row is None or verdict.here in ("unsupported", "broken"):
        return verdict
    return replace(verdict, elsewhere=elsewhere.get(_verified_key(verdict.row.key), ""))


def assess(
    model: str, backend: str, device: str, precision: str, detection: Detection | None = None
) -> Verdict:
    """What mlperf-wizard says about this combination, here. ``detection=None`` skips installation checks."""
    rows = load_table()
    key = canonical(model, backend, device, precision)
    verdict = _verdict(key, _index(rows).get(key), rows, detection, _read_verified())
    return _with_elsewhere(verdict, _elsewhere())


def merged_table(detection: Detection | None) -> list[Verdict]:
    """A verdict for every row of the table, in the table's order."""
    rows = load_table()
    verified = _read_verified()
    elsewhere = _elsewhere()
    return [_with_elsewhere(_verdict(row.key, row, rows, detection, verified), elsewhere) for row in rows]


def nearest(
    model: str,
    backend: str,
    device: str,
    precision: str,
    detection: Detection | None = None,
    limit: int = 3,
) -> list[CoverageRow]:
    """Runnable rows differing from the request in the fewest fields; on ties the same model first."""
    key = canonical(model, backend, device, precision)
    rows = load_table()
    verified = _read_verified()
    ranked = []
    for order, row in enumerate(rows):
        if row.key == key or not _verdict(row.key, row, rows, detection, verified).runnable:
            continue
        distance = sum(a != b for a, b in zip(row.key, key, strict=True))
        ranked.append((distance, row.model != key[0], RUNNABLE_STATUSES.index(row.status), order, row))
    ranked.sort(key=lambda item: item[:4])
    return [item[-1] for item in ranked[: max(limit, 0)]]


def check(
    model: str, backend: str, device: str, precision: str, detection: Detection | None = None
) -> Verdict:
    """The verdict if the combination is runnable; CoverageError (why, and what to choose) if not."""
    verdict = assess(model, backend, device, precision, detection)
    if verdict.runnable:
        return verdict
    key = canonical(model, backend, device, precision)
    what = {
        "unsupported": "is not supported",
        "broken": "is known broken",
        "not-installed": "cannot run here",
        "no-device": "cannot run here",
        "unknown": "is not in the coverage table",
    }.get(verdict.here, "cannot run")
    fixes = []
    if verdict.install_command:
        fixes.append(f"install it with `{verdict.install_command}`")
    alternatives = nearest(*key, detection=detection)
    if alternatives:
        choices = "; ".join(f"{row.label} ({row.status})" for row in alternatives)
        fixes.append(f"{'or choose' if fixes else 'choose'} one of: {choices}")
    elif not fixes:
        fixes.append("no combination can run here yet: install a backend, e.g. `pip install onnxruntime`")
    seen = f" Other machines' runs: {verdict.elsewhere}." if verdict.elsewhere else ""
    raise CoverageError(f"{label(*key)} {what}: {verdict.reason}.{seen}", "; ".join(fixes) + ".")


def export_record(detection, name: str) -> dict[str, Any]:
    """This machine's record of every coverage cell, from its verify runs and today's detection."""
    if not machine_records.MACHINE_NAME.fullmatch(name):
        raise ProfileError(f"The machine name {name!r} is not a name: use letters, digits, '.', '_' or '-' "
                           "(at most 64).", "for example --machine-name h200-16core.")
    verified = _read_verified()
    cells: dict[str, dict] = {}
    for verdict in merged_table(detection):
        row = verdict.row
        key = _verified_key(row.key)
        record = verified.get(key)
        if record is not None and verdict.here not in ("unsupported", "broken", "not-installed", "no-device"):
            entry = {"result": "works" if record.get("ok") else "fails",
                     "reason": str(record.get("reason") or "") if not record.get("ok") else ""}
            for field in ("at", "backend_version", "duration_s", "variant"):
                if record.get(field) is not None:
                    entry[field] = record[field]
        else:
            why = row.note if verdict.here in ("unsupported", "broken") else verdict.reason \
                if verdict.here != row.status else "no verify run on this machine yet"
            entry = {"result": "untested", "reason": why}
        cells[key] = entry
    machine = {"name": name, **machine_records.machine_description(detection)}
    return {"schema": machine_records.SCHEMA, "machine": machine,
            "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "cells": cells}
