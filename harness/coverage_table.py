"""The coverage table as data: its rows, validated (``harness/data/coverage.yaml``).

Which (model, backend, device, precision) combinations mlperf-wizard implements, and what the seed's table
says of each. Detection reads it (which backends are implemented where) and :mod:`harness.coverage` judges
a combination on this machine from it; this module imports neither.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from . import catalogue, safe_yaml
from .errors import CoverageError

TABLE_PATH = Path(__file__).resolve().parent / "data" / "coverage.yaml"

STATUSES = ("works", "untested", "broken", "unsupported")
"""What mlperf-wizard itself implements: works and untested are runnable, the others never are."""
RUNNABLE_STATUSES = ("works", "untested")
SEED_STATUSES = ("works", "broken", "untested", "absent")
"""What the CM README's table says; absent where it has no row."""
DEVICES = ("cpu", "cuda")
PRECISIONS = catalogue.PRECISIONS
KEY_FIELDS = ("model", "backend", "device", "precision")
_ROW_KEYS = set(KEY_FIELDS) | {"status", "note", "seed_status", "seed_note"}


@dataclass(frozen=True)
class CoverageRow:
    model: str
    backend: str
    device: str
    precision: str
    status: str
    note: str
    seed_status: str
    seed_note: str

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.model, self.backend, self.device, self.precision)

    @property
    def label(self) -> str:
        return label(*self.key)


def label(model: str, backend: str, device: str, precision: str) -> str:
    """How a combination is written in messages: 'resnet50 + onnxruntime + cpu + fp32'."""
    return " + ".join((model, backend, device, precision))


# --- the table ------------------------------------------------------------------------------------

_table_cache: dict[str, tuple[tuple[int, int], list[CoverageRow]]] = {}


def load_table(path: Path | None = None) -> list[CoverageRow]:
    """The coverage table, validated; ``path`` defaults to the shipped harness/data/coverage.yaml."""
    path = Path(path) if path is not None else TABLE_PATH
    try:
        st = path.stat()
    except OSError as exc:
        raise CoverageError(f"The coverage table {path} cannot be read: {exc.strerror or exc}.") from exc
    stamp = (st.st_mtime_ns, st.st_size)
    hit = _table_cache.get(str(path))
    if hit is None or hit[0] != stamp:
        hit = (stamp, _parse_table(path))
        _table_cache[str(path)] = hit
    return list(hit[1])


def implemented_devices(backend: str) -> list[str]:
    """The devices on which mlperf-wizard implements ``backend`` for some model (a row not 'unsupported'):
    where it has none, installing the framework makes nothing runnable, so no install command is offered."""
    return sorted({r.device for r in load_table() if r.backend == backend and r.status != "unsupported"})


def _parse_table(path: Path) -> list[CoverageRow]:
    fix = f"correct {path} (its header lists the allowed values)."
    try:
        data = safe_yaml.load_file(path)
    except yaml.YAMLError as exc:
        raise CoverageError(f"The coverage table {path} is not valid YAML: {exc}", fix) from exc
    except OSError as exc:
        raise CoverageError(f"The coverage table {path} cannot be read: {exc.strerror or exc}.") from exc
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
        raise CoverageError(f"The coverage table {path} must be a mapping with a list under 'rows'.", fix)
    rows: list[CoverageRow] = []
    seen: dict[tuple[str, str, str, str], int] = {}
    for number, raw in enumerate(data["rows"], start=1):
        where = f"The coverage table {path}, row {number}"
        if not isinstance(raw, dict):
            raise CoverageError(f"{where} is not a mapping: {raw!r}.", fix)
        missing = [k for k in (*KEY_FIELDS, "status") if not raw.get(k)]
        if missing:
            raise CoverageError(f"{where} lacks {', '.join(missing)}: {raw!r}.", fix)
        unknown = sorted(set(raw) - _ROW_KEYS)
        if unknown:
            allowed = ", ".join(sorted(_ROW_KEYS))
            raise CoverageError(f"{where} has unknown key(s) {', '.join(unknown)}; allowed: {allowed}.", fix)
        row = CoverageRow(
            model=str(raw["model"]),
            backend=str(raw["backend"]),
            device=str(raw["device"]),
            precision=str(raw["precision"]),
            status=str(raw["status"]),
            note=str(raw.get("note") or ""),
            seed_status=str(raw.get("seed_status") or "absent"),
            seed_note=str(raw.get("seed_note") or ""),
        )
        where = f"{where} ({row.label})"
        for name, value, allowed in (
            ("backend", row.backend, catalogue.NAMES),
            ("device", row.device, DEVICES),
            ("precision", row.precision, PRECISIONS),
            ("status", row.status, STATUSES),
            ("seed_status", row.seed_status, SEED_STATUSES),
        ):
            if value not in allowed:
                raise CoverageError(f"{where} has {name} '{value}'; allowed: {', '.join(allowed)}.", fix)
        if row.key in seen:
            first = seen[row.key]
            raise CoverageError(f"{where} duplicates row {first}: each combination appears once.", fix)
        seen[row.key] = number
        rows.append(row)
    return rows
