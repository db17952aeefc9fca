"""What each machine's runs showed, per coverage cell, as files that travel: export here, import elsewhere, and
the README's coverage table generated from the records the project ships.

A machine's record (``mlperf-wizard coverage --export FILE``) names the machine and says, for every row of the
coverage table, ``works`` (its last ``verify`` run there succeeded), ``fails`` (its last run failed, with the
reason) or ``untested`` (not run there, with the reason: not installed, no GPU, not offered, never run),
with the date, the backend's version and the run's duration and model variant. The project ships its own
machines' records in ``harness/data/verified/``; ``coverage --import FILE`` checks another one and keeps it
with this machine's state; ``coverage --markdown`` writes the table from both.

Imported files are untrusted input: the size, the schema, every key and every value are checked, and a bad
file is refused with what is wrong, never half-imported.
"""

from __future__ import annotations

import json
import platform
import re
from pathlib import Path
from typing import Any

from .coverage_table import load_table
from .errors import ProfileError

SCHEMA = 1
RESULTS = ("works", "fails", "untested")
MAX_BYTES = 1_000_000
"""An exported record of the whole table is a few tens of kB."""
SHIPPED = Path(__file__).parent / "data" / "verified"
IMPORTED_DIR = "verified-elsewhere"
MACHINE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_TEXT_LIMITS = {"reason": 400, "at": 40, "backend_version": 80, "variant": 20, "run_id": 120}
_FIX = "export it again with `mlperf-wizard coverage --export FILE` on that machine."


def machine_description(detection) -> dict[str, Any]:
    """The machine, in the words a reader of the table needs: CPU, cores, GPUs."""
    cpu = getattr(detection, "cpu", None)
    gpus = [getattr(g, "name", str(g)) for g in (getattr(detection, "gpus", None) or [])]
    return {"cpu": str(getattr(cpu, "model", "") or platform.processor() or "unknown CPU")[:120],
            "cores": int(getattr(cpu, "logical_cores", 0) or 0), "gpus": [str(g)[:80] for g in gpus][:16],
            "python": platform.python_version()}


def _bad(path: object, what: str) -> ProfileError:
    return ProfileError(f"{path} is not a machine record of mlperf-wizard's coverage: {what}.", _FIX)


def parse(text: str, source: object = "the record") -> dict[str, Any]:
    """A checked machine record from ``text`` (JSON). Raises :class:`ProfileError` naming what is wrong."""
    if len(text.encode("utf-8", errors="replace")) > MAX_BYTES:
        raise _bad(source, f"it is larger than {MAX_BYTES // 1000} kB")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise _bad(source, f"it is not JSON ({type(exc).__name__})") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise _bad(source, f"no \"schema\": {SCHEMA}")
    machine = data.get("machine")
    if not isinstance(machine, dict) or not isinstance(machine.get("name"), str) \
            or not MACHINE_NAME.fullmatch(machine["name"]):
        raise _bad(source, "no machine name (letters, digits, '.', '_', '-')")
    cells = data.get("cells")
    if not isinstance(cells, dict) or not cells:
        raise _bad(source, "no cells")
    known = {"/".join(row.key) for row in load_table()}
    clean: dict[str, dict] = {}
    for key, entry in cells.items():
        if key not in known:
            raise _bad(source, f"{str(key)[:80]!r} is not a cell of the coverage table")
        if not isinstance(entry, dict) or entry.get("result") not in RESULTS:
            raise _bad(source, f"the cell {key} has no result of {', '.join(RESULTS)}")
        out: dict[str, Any] = {"result": entry["result"]}
        for field, limit in _TEXT_LIMITS.items():
            value = entry.get(field)
            if value is None:
                continue
            if not isinstance(value, str) or len(value) > limit:
                raise _bad(source, f"the cell {key}'s {field} is not a text of at most {limit} characters")
            out[field] = value
        duration = entry.get("duration_s")
        if duration is not None:
            if isinstance(duration, bool) or not isinstance(duration, (int, float)) or not 0 <= duration < 1e6:
                raise _bad(source, f"the cell {key}'s duration_s is not a number of seconds")
            out["duration_s"] = float(duration)
        clean[key] = out
    description = {k: machine[k] for k in ("cpu", "python") if isinstance(machine.get(k), str)}
    description = {k: v[:120] for k, v in description.items()}
    cores = machine.get("cores")
    if isinstance(cores, int) and not isinstance(cores, bool) and 0 <= cores < 100_000:
        description["cores"] = cores
    gpus = machine.get("gpus")
    if isinstance(gpus, list):
        description["gpus"] = [g[:80] for g in gpus[:16] if isinstance(g, str)]
    exported = data.get("exported_at")
    return {"schema": SCHEMA, "machine": {"name": machine["name"], **description},
            "exported_at": exported[:40] if isinstance(exported, str) else "", "cells": clean}


def read(path: Path) -> dict[str, Any]:
    """The checked record in ``path`` (see :func:`parse`)."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except OSError as exc:
        raise ProfileError(f"Cannot read {path}: {exc.strerror or exc}.", "check the path.") from None
    return parse(raw.decode("utf-8", errors="replace"), path)


def imported_dir() -> Path:
    from .paths import locations

    return locations().state / IMPORTED_DIR


def import_file(path: Path) -> tuple[dict[str, Any], Path]:
    """Check ``path`` and keep it as ``<state>/verified-elsewhere/<machine name>.json`` (replacing that
    machine's earlier record, never another's); returns the record and where it went."""
    from .fsutil import atomic_write_json, ensure_writable_dir

    record = read(path)
    folder = imported_dir()
    ensure_writable_dir(folder)
    target = folder / f"{record['machine']['name']}.json"
    atomic_write_json(target, record)
    return record, target


def records(include_imported: bool = True) -> list[dict[str, Any]]:
    """The shipped records, then the imported ones (a damaged imported file is skipped), by machine name."""
    found: dict[str, dict] = {}
    folders = [SHIPPED] + ([imported_dir()] if include_imported else [])
    for folder in folders:
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            try:
                record = read(path)
            except ProfileError:
                if folder == SHIPPED:
                    raise
                continue
            found[record["machine"]["name"]] = record
    return list(found.values())


def cell_text(entry: dict | None, backend: str) -> str:
    """One machine's cell in words: works (day, version), fails: why, untested: why."""
    if entry is None:
        return "untested: no record"
    version = f", {backend} {entry['backend_version']}" if entry.get("backend_version") else ""
    day = (entry.get("at") or "")[:10]
    if entry["result"] == "works":
        variant = f", {entry['variant']} model" if entry.get("variant") and entry["variant"] != "full" else ""
        return f"works ({day}{version}{variant})"
    reason = " ".join(str(entry.get("reason") or "").split())
    reason = reason if len(reason) <= 90 else reason[:87] + "..."
    return f"{entry['result']}: {reason}".replace("|", "/")


def markdown(machine_records: list[dict[str, Any]]) -> str:
    """The coverage table as Markdown: one column per machine, each cell works / fails (why) / untested (why)."""
    lines = ["Machines:", ""]
    for record in machine_records:
        m = record["machine"]
        gpus = ", ".join(m.get("gpus") or []) or "no GPU"
        lines.append(f"- **{m['name']}**: {m.get('cpu', 'unknown CPU')}, {m.get('cores', '?')} cores, {gpus}; "
                     f"Python {m.get('python', '?')}; exported {record['exported_at'][:10]}")
    lines += ["", "| model | backend | device | precision | " + " | ".join(r["machine"]["name"]
                                                                        for r in machine_records) + " |",
              "|---|---|---|---|" + "---|" * len(machine_records)]
    for row in load_table():
        key = "/".join(row.key)
        if row.status in ("unsupported", "broken"):  # the table's own verdict, the same on every machine
            cells = [f"not offered: {row.note}".replace("|", "/")] * len(machine_records)
        else:
            cells = [cell_text(r["cells"].get(key), row.backend) for r in machine_records]
        lines.append(f"| {row.model} | {row.backend} | {row.device} | {row.precision} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
