"""The run history: every run directory, summarised, filtered, sorted, compared and exported.

A run directory holds ``run.json`` (the :class:`~harness.runner.RunRecord`), ``profile.yaml``,
``environment.json``, ``plan.json`` and each LoadGen test's logs. :func:`list_runs` reads only
``run.json`` and ``profile.yaml`` of each run, so it stays fast with hundreds of runs; :func:`load_run`
reads everything one run has. Nothing here writes to a run directory.
"""

from __future__ import annotations

import csv
import difflib
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psutil
import yaml

from . import safe_yaml
from .errors import ProfileError, ResultsError
from .paths import SHIPPED_PROFILES, locations
from .profile import FIELD_BY_NAME, Profile, coerce, load_profile, profile_files
from .results import TestResult
from .run_record import RunRecord

INDEX_NAME = "runs.jsonl"
RUN_FILE = "run.json"
PROFILE_FILE = "profile.yaml"
ENVIRONMENT_FILE = "environment.json"
PLAN_FILE = "plan.json"
# Which way is better, per unit: throughput up, latency down, accuracy (in %) up.
HIGHER_IS_BETTER = {"samples/s": True, "queries/s": True, "ms": False, "%": True}
EXPORT_FORMATS = ("csv", "json", "markdown")
EXPORT_COLUMNS = ("run_id", "started", "system_name", "model", "backend", "device", "precision", "style",
                  "test_query_count", "scenario", "mode", "status", "validity", "metric", "value", "unit",
                  "accuracy", "duration_s", "synthetic")
SORT_KEYS = ("started", "run_id", "model", "backend", "device", "precision", "status", "validity", "value",
             "duration")
LATEST = ("latest", "last")
PREVIOUS = ("previous", "prev")


class UnknownRunError(ResultsError):
    """A run reference (id, prefix, directory, latest/previous) matches no run, or more than one."""


# ------------------------------------------------------------------------------------------- records


@dataclass
class TestSummary:
    """One LoadGen test of a run, as the history shows it."""

    scenario: str
    mode: str
    status: str
    validity: str | None = None
    metric: str | None = None
    value: float | None = None
    unit: str | None = None
    accuracy: float | None = None
    """The accuracy metric's value in % (accuracy mode), when it was computed."""
    accuracy_metric: str | None = None
    accuracy_passed: bool | None = None
    """Whether the accuracy meets the closed-division target (None: no target known)."""
    directory: str | None = None
    duration_s: float | None = None
    """How long the LoadGen test ran, as its record says."""


@dataclass
class RunSummary:
    """One run, from its ``run.json`` and ``profile.yaml``. Fields the files do not give are None."""

    run_id: str
    run_dir: str
    started: str | None
    finished: str | None
    status: str
    """running | completed | failed | cancelled (a run killed outright stays 'running')."""
    model: str | None = None
    backend: str | None = None
    device: str | None = None
    precision: str | None = None
    scenarios: list[str] = field(default_factory=list)
    """The scenarios the profile asked for (the tests that ran are in ``tests``)."""
    style: str | None = None
    test_query_count: int | None = None
    """The profile's query count (None: the scenario's default)."""
    system_name: str | None = None
    synthetic: bool = False
    tests: list[TestSummary] = field(default_factory=list)
    profile_name: str | None = None
    """The saved or shipped profile whose choices equal this run's, if one does."""
    profile_path: str | None = None
    """That profile's file."""

    @property
    def duration_s(self) -> float | None:
        start, end = parse_time(self.started), parse_time(self.finished)
        return (end - start).total_seconds() if start and end else None

    @property
    def primary(self) -> TestSummary | None:
        """The first performance test with a value: the run's headline number."""
        return next((t for t in self.tests if t.mode == "performance" and t.value is not None), None)

    @property
    def all_scenarios(self) -> list[str]:
        """Scenarios asked for and scenarios run, in order, once each."""
        return list(dict.fromkeys([*self.scenarios, *(t.scenario for t in self.tests)]))

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["duration_s"] = self.duration_s
        return out


@dataclass
class RunDetail(RunSummary):
    """Everything one run directory holds: the summary, the full record, profile, environment and plan."""

    record: RunRecord | None = None
    profile: Profile | None = None
    """The profile used, validated; None when ``profile.yaml`` is missing or no longer valid."""
    profile_values: dict[str, Any] = field(default_factory=dict)
    """The profile's fields as written in ``profile.yaml`` (kept even when validation fails)."""
    environment: dict[str, Any] = field(default_factory=dict)
    plan: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def files(self) -> dict[str, str]:
        """Where the run's files are: the run's own, then each test's directory."""
        run_dir = Path(self.run_dir)
        out = {name: str(run_dir / name) for name in (RUN_FILE, PROFILE_FILE, ENVIRONMENT_FILE, PLAN_FILE)
               if (run_dir / name).exists()}
        for t in self.tests:
            if t.directory:
                out[f"{t.scenario} {t.mode}"] = t.directory
        return out

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(RunSummary)}
        out["tests"] = [asdict(t) for t in self.tests]
        out["duration_s"] = self.duration_s
        out["record"] = self.record.to_dict() if self.record else None
        out["profile"] = self.profile.to_dict() if self.profile else self.profile_values or None
        out["environment"] = self.environment
        out["environment_digest"] = environment_digest(self.environment)
        out["plan"] = self.plan
        out["files"] = self.files
        out["warnings"] = self.warnings
        return out


@dataclass
class RunList:
    """What :func:`list_runs` found: the runs (newest first) and a warning per run directory it skipped."""

    runs: list[RunSummary]
    warnings: list[str] = field(default_factory=list)
    roots: list[str] = field(default_factory=list)
    """The results folders that were scanned."""

    def __iter__(self):
        return iter(self.runs)

    def __len__(self) -> int:
        return len(self.runs)

    def to_dict(self) -> dict[str, Any]:
        return {"runs": [r.to_dict() for r in self.runs], "warnings": self.warnings, "roots": self.roots}


# ------------------------------------------------------------------------------------------- reading


def parse_time(text: str | None) -> datetime | None:
    """An ISO time from a run record (UTC when it names no zone); None when missing or unreadable."""
    if not text:
        return None
    try:
        stamp = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)


def _read_run_json(path: Path) -> dict[str, Any]:
    """``run.json`` as a dict; ValueError with a short reason when it is not a run record."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot be read ({getattr(exc, 'strerror', None) or exc})") from None
    if not text.strip():
        raise ValueError("is empty (the run may have been interrupted while writing it)")
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"is not valid JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("run_id"), str) or not isinstance(
            data.get("tests", []), list):
        raise ValueError("is not an mlperf-wizard run record (no run_id or tests)")
    return data


def run_status(data: dict[str, Any]) -> str:
    """The status of a ``run.json``: as written, except that a "running" record whose process is gone
    (killed, SIGKILL or power loss, before it could record an end) reads as "interrupted". The process
    is the recorded pid with the recorded start time: a pid since reused by another process is gone too."""
    status = _text(data.get("status")) or "unknown"
    pid, started = data.get("pid"), data.get("pid_started")
    if status != "running" or not isinstance(pid, int) or not isinstance(started, (int, float)):
        return status
    try:
        alive = abs(psutil.Process(pid).create_time() - started) < 0.5
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, ValueError, OverflowError):
        alive = False
    return status if alive else "interrupted"


def _read_profile_values(run_dir: Path, warnings: list[str] | None = None) -> dict[str, Any] | None:
    """The fields of the run's ``profile.yaml`` that are valid, each in canonical form (no check of how they
    combine: listing must stay fast and lenient). A field with a bad value is left out with a warning that
    names the file; None when the file is missing or is not a YAML mapping."""
    path = run_dir / PROFILE_FILE
    try:
        data = safe_yaml.load_file(path)
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        _warn(warnings, f"{path} cannot be read ({safe_yaml.quoted(str(exc).splitlines()[0] if str(exc) else exc)});"
                        " its run is shown without its profile.")
        return None
    if not isinstance(data, dict):
        _warn(warnings, f"{path} is not a profile (a YAML mapping); its run is shown without its profile.")
        return None
    values: dict[str, Any] = {}
    for key, raw in data.items():
        if key not in FIELD_BY_NAME:
            continue  # "version", or a newer version's field
        try:
            values[key] = coerce(FIELD_BY_NAME[key], raw, str(path))
        except ProfileError:
            _warn(warnings, f"{path}: {key} is {safe_yaml.quoted(raw, 30)}, not a valid value; ignored.")
    return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}


def _warn(warnings: list[str] | None, text: str) -> None:
    if warnings is not None and text not in warnings:
        warnings.append(text)


def _text(value: Any) -> str | None:
    """A string read from a record, or None for anything else."""
    return value if isinstance(value, str) else None


def _float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _test_summary(t: TestResult) -> TestSummary:
    acc = t.accuracy or {}
    passed = acc.get("passed")
    return TestSummary(scenario=t.scenario, mode=t.mode, status=t.status,
                       validity=t.validity if t.validity in ("VALID", "INVALID") else None, metric=t.metric,
                       value=t.value, unit=t.unit, accuracy=_float(acc.get("value")),
                       accuracy_metric=_text(acc.get("metric")),
                       accuracy_passed=passed if isinstance(passed, bool) else None, directory=t.directory or None,
                       duration_s=t.duration_s)


def _test_results(data: dict[str, Any], where: Path, warnings: list[str] | None) -> list[TestResult]:
    """The tests of a ``run.json``, each with its declared types; a mistyped field is dropped with a warning."""
    out = []
    for item in data.get("tests", []):
        if not isinstance(item, dict):
            _warn(warnings, f"{where}: a test record is not an object; it is left out.")
            continue
        result, dropped = TestResult.read(item)
        if dropped:
            _warn(warnings, f"{where}: {result.scenario} {result.mode}: unreadable "
                            + ", ".join(dropped) + "; shown without it.")
        out.append(result)
    return out


def _system_from_tests(run_dirs: list[Path], tests: list[TestSummary]) -> str | None:
    """The system name is the first folder of each test's directory (``<system>/<model>/<scenario>/...``)."""
    for t in tests:
        for run_dir in run_dirs:  # as recorded, and as found (they differ through a symbolic link)
            try:
                parts = Path(t.directory or "").relative_to(run_dir).parts
            except ValueError:
                continue
            if len(parts) > 1:
                return parts[0]
    return None


def _summary(data: dict[str, Any], run_dir: Path, profile: dict[str, Any] | None,
             index_entry: dict[str, Any] | None, known: list[tuple[str, str, dict[str, Any]]],
             warnings: list[str] | None = None, results: list[TestResult] | None = None) -> RunSummary:
    if results is None:
        results = _test_results(data, run_dir / RUN_FILE, warnings)
    tests = [_test_summary(t) for t in results]
    prof = profile or {}
    fallback = index_entry or {}
    recorded_dir = _text(data.get("run_dir")) or str(run_dir)
    synthetic = data.get("synthetic")
    summary = RunSummary(
        run_id=data["run_id"], run_dir=str(run_dir), started=_text(data.get("started")),
        finished=_text(data.get("finished")), status=run_status(data),
        model=prof.get("model", _text(fallback.get("model"))),
        backend=prof.get("backend", _text(fallback.get("backend"))),
        device=prof.get("device", _text(fallback.get("device"))),
        precision=prof.get("precision"), scenarios=list(prof.get("scenarios") or []), style=prof.get("style"),
        test_query_count=prof.get("test_query_count"),
        system_name=_system_from_tests([Path(recorded_dir), run_dir], tests) or prof.get("system_name"),
        synthetic=synthetic if isinstance(synthetic, bool) else any(t.synthetic for t in results),
        tests=tests)
    if profile is not None:
        wanted = _normalised(profile)
        for name, path, values in known:
            if values == wanted:
                summary.profile_name, summary.profile_path = name, path
                break
    if isinstance(data.get("profile_name"), str):  # a record that names its profile is believed first
        summary.profile_name = data["profile_name"]
        summary.profile_path = data.get("profile_path") or summary.profile_path
    return summary


def _normalised(values: dict[str, Any]) -> dict[str, Any]:
    """A profile's fields with the defaults filled in, comparable across partial and full files."""
    out = Profile().to_dict()
    out.update({k: v for k, v in values.items() if k in out})
    out = {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}
    return out


def _known_profiles() -> list[tuple[str, str, dict[str, Any]]]:
    """Saved, then shipped profiles: (name, path, normalised fields). Unreadable ones are left out (the
    profiles list names them; here they only mean a run is not matched to a profile name)."""
    out = []
    for folder in (locations().profiles, SHIPPED_PROFILES):
        if not folder.is_dir():
            continue
        for path in profile_files(folder):
            try:
                values = load_profile(path).to_dict()
            except ProfileError:
                continue
            out.append((path.stem, str(path), _normalised(values)))
    return out


def _read_index(state: Path) -> list[dict[str, Any]]:
    """The lines of ``<state>/runs.jsonl`` that parse (a torn last line is ignored)."""
    path = state / INDEX_NAME
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    entries = []
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("run_dir"), str):
            entries.append(entry)
    return entries


def _sort_key(r: RunSummary) -> tuple:
    started = parse_time(r.started) or datetime.min.replace(tzinfo=timezone.utc)
    return (started, r.run_id)


def list_runs(root: Path | str | None = None) -> RunList:
    """Every run, newest first.

    With ``root``, the runs directly under that folder. Without, those under ``locations().results`` plus
    every run the index (``<state>/runs.jsonl``) names, which may live in other ``--results-dir`` folders.
    A ``run.json`` that cannot be read is skipped with a warning in the result; a run whose directory
    was deleted is dropped silently. Never raises for what it finds on disk.
    """
    warnings: list[str] = []
    candidates: dict[Path, dict[str, Any] | None] = {}
    roots = [Path(root).expanduser()] if root is not None else [locations().results]
    for folder in roots:
        try:
            found = sorted(folder.glob(f"*/{RUN_FILE}"))
        except OSError as exc:
            warnings.append(f"cannot read the results folder {folder}: {exc.strerror or exc}")
            continue
        for run_file in found:
            candidates.setdefault(run_file.parent.resolve(), None)
        for orphan in sorted(folder.glob(f"*/{PLAN_FILE}")):  # written with run.json: a run that lost it
            if not (orphan.parent / RUN_FILE).exists():
                warnings.append(f"skipped {orphan.parent}: it has no {RUN_FILE} (deleted or never written).")
    if root is None:
        for entry in _read_index(locations().state):
            run_dir = Path(entry["run_dir"]).expanduser()
            if not (run_dir / RUN_FILE).is_file():
                continue  # deleted (or never finished its first write): not a run any more
            resolved = run_dir.resolve()
            if candidates.get(resolved) is None:
                candidates[resolved] = entry
            if resolved.parent not in [r.resolve() for r in roots]:
                roots.append(resolved.parent)
    known = _known_profiles()
    runs = []
    for run_dir, entry in candidates.items():
        try:
            data = _read_run_json(run_dir / RUN_FILE)
        except FileNotFoundError:
            continue
        except ValueError as why:
            warnings.append(f"skipped {run_dir / RUN_FILE}: it {why}.")
            continue
        runs.append(_summary(data, run_dir, _read_profile_values(run_dir, warnings), entry, known, warnings))
    runs.sort(key=_sort_key, reverse=True)
    return RunList(runs, warnings, [str(r) for r in roots])


# ------------------------------------------------------------------------------------ finding a run


def resolve_run(ref: str | Path, runs: Sequence[RunSummary] | None = None,
                root: Path | str | None = None) -> RunSummary | Path:
    """Which run ``ref`` means: ``latest``, ``previous``, a run id, a unique prefix of one, or a run
    directory (returned as a Path when it is outside the listed runs). UnknownRunError otherwise."""
    if runs is None:
        runs = list_runs(root).runs
    text = str(ref).strip()
    if text.lower() in LATEST + PREVIOUS:
        position = 0 if text.lower() in LATEST else 1
        if len(runs) <= position:
            raise UnknownRunError(f"There is no {text.lower()} run: {len(runs)} run(s) in the history.",
                                  "run a benchmark first (`mlperf-wizard run quickstart`).")
        return runs[position]
    exact = [r for r in runs if r.run_id == text]
    if exact:
        return exact[0]
    path = Path(text).expanduser()
    if path.name == RUN_FILE:
        path = path.parent
    if (path / RUN_FILE).is_file():
        resolved = path.resolve()
        return next((r for r in runs if Path(r.run_dir).resolve() == resolved), resolved)
    prefixed = [r for r in runs if r.run_id.startswith(text)] if text else []
    if len(prefixed) == 1:
        return prefixed[0]
    if len(prefixed) > 1:
        names = ", ".join(r.run_id for r in prefixed[:5]) + (", ..." if len(prefixed) > 5 else "")
        raise UnknownRunError(f"'{text}' is the start of {len(prefixed)} run ids: {names}.",
                              "give more of the run id (see `mlperf-wizard results list`).")
    close = difflib.get_close_matches(text, [r.run_id for r in runs], n=3, cutoff=0.6)
    hint = f" Did you mean {' or '.join(close)}?" if close else ""
    where = ("no runs in the history" if not runs else f"{len(runs)} run(s) in the history")
    raise UnknownRunError(f"No run '{text}' ({where}).{hint}",
                          "use a run id from `mlperf-wizard results list`, a unique start of one, a run "
                          "directory, or latest/previous.")


def _read_json_file(path: Path, what: str, warnings: list[str]) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        warnings.append(f"{what} is missing ({path}).")
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        warnings.append(f"{what} cannot be read ({path}: {exc}).")
    return None


def load_run(ref: str | Path | RunSummary, root: Path | str | None = None) -> RunDetail:
    """Everything one run holds. ``ref`` is anything :func:`resolve_run` accepts, or a RunSummary.

    Raises UnknownRunError when no run matches, ResultsError when its ``run.json`` cannot be read.
    """
    if isinstance(ref, RunSummary):
        found: RunSummary | Path = ref
    elif isinstance(ref, Path) and (ref / RUN_FILE).is_file():
        found = ref  # a directory: no need to list every run
    else:
        found = resolve_run(ref, root=root)
    run_dir = Path(found.run_dir if isinstance(found, RunSummary) else found)
    try:
        data = _read_run_json(run_dir / RUN_FILE)
    except FileNotFoundError:
        raise UnknownRunError(f"The run directory {run_dir} has no {RUN_FILE} (deleted?).",
                              "list the runs with `mlperf-wizard results list`.") from None
    except ValueError as why:
        raise ResultsError(f"{run_dir / RUN_FILE} {why}.",
                           "the run's other files are still there; rerun the profile for a new record.") from None
    warnings: list[str] = []
    profile_values = _read_profile_values(run_dir, warnings)
    profile = None
    if profile_values is None:
        _warn(warnings, f"The profile of this run is missing or unreadable ({run_dir / PROFILE_FILE}).")
    else:
        try:
            profile = load_profile(run_dir / PROFILE_FILE)
        except ProfileError as exc:
            warnings.append(f"The profile of this run is not valid for this version: {exc.message}")
    results = _test_results(data, run_dir / RUN_FILE, warnings)
    summary = _summary(data, run_dir, profile_values, None, _known_profiles(), warnings, results)
    record = RunRecord(run_id=data["run_id"], run_dir=str(run_dir), started=summary.started or "",
                       status=summary.status, finished=summary.finished, synthetic=summary.synthetic,
                       tests=results)
    environment = _read_json_file(run_dir / ENVIRONMENT_FILE, "The environment record", warnings)
    plan = _read_json_file(run_dir / PLAN_FILE, "The plan", warnings)
    values = {f.name: getattr(summary, f.name) for f in fields(RunSummary)}
    return RunDetail(**values, record=record, profile=profile,
                     profile_values=_normalised(profile_values) if profile_values else {},
                     environment=environment if isinstance(environment, dict) else {},
                     plan=plan if isinstance(plan, dict) else None, warnings=warnings)


# ------------------------------------------------------------------------------- filtering, sorting


def _names(value: str | Iterable[str] | None) -> list[str]:
    if value is None:
        return []
    items = [value] if isinstance(value, str) else list(value)
    return [str(x) for x in items if str(x).strip()]


def _canonical(field_name: str, values: list[str]) -> set[str]:
    """Accept what the run flags accept (aliases, any case); an unknown name is a ProfileError that says so."""
    return {coerce(FIELD_BY_NAME[field_name], v, "filter") for v in values}


def filter_runs(runs: Iterable[RunSummary], text: str | None = None, model: str | Iterable[str] | None = None,
                backend: str | Iterable[str] | None = None, device: str | Iterable[str] | None = None,
                scenario: str | Iterable[str] | None = None, validity: str | Iterable[str] | None = None,
                status: str | Iterable[str] | None = None) -> list[RunSummary]:
    """The runs that match every criterion given (each may list several accepted values).

    ``text`` is a case-insensitive substring of the run id, profile name, system name or any choice.
    ``scenario`` and ``validity`` together ask for one test that has both (e.g. an INVALID Offline test).
    ``validity`` is VALID or INVALID (performance tests); ``status`` is the run's status.
    """
    models = _canonical("model", _names(model))
    backends = _canonical("backend", _names(backend))
    devices = _canonical("device", _names(device))
    scenarios = _canonical("scenarios", _names(scenario))
    scenarios = {s for group in scenarios for s in group}
    validities = {v.upper() for v in _names(validity)}
    unknown = validities - {"VALID", "INVALID"}
    if unknown:
        raise ProfileError(f"validity (filter): unknown value '{sorted(unknown)[0]}'.", "use VALID or INVALID.")
    statuses = {s.lower() for s in _names(status)}
    needle = (text or "").strip().lower()
    out = []
    for r in runs:
        if models and r.model not in models or backends and r.backend not in backends:
            continue
        # --device cuda finds the runs on every GPU; --device cuda:1 those on that one.
        if devices and r.device not in devices and (r.device or "").partition(":")[0] not in devices:
            continue
        if statuses and r.status.lower() not in statuses:
            continue
        if validities:
            if not any(t.validity in validities and (not scenarios or t.scenario in scenarios) for t in r.tests):
                continue
        elif scenarios and not scenarios & set(r.all_scenarios):
            continue
        if needle and needle not in _haystack(r):
            continue
        out.append(r)
    return out


def restrict_tests(runs: Iterable[RunSummary], scenario: str | Iterable[str] | None = None,
                   validity: str | Iterable[str] | None = None) -> list[RunSummary]:
    """Copies of ``runs`` that keep only the tests of ``scenario`` and/or ``validity``; runs left with no
    test are dropped (unless no criterion is given: then ``runs`` come back as they are)."""
    scenarios = {s for group in _canonical("scenarios", _names(scenario)) for s in group}
    validities = {v.upper() for v in _names(validity)}
    if not scenarios and not validities:
        return list(runs)
    out = []
    for r in runs:
        tests = [t for t in r.tests if (not scenarios or t.scenario in scenarios)
                 and (not validities or t.validity in validities)]
        if tests:
            out.append(replace(r, tests=tests))
    return out


def _haystack(r: RunSummary) -> str:
    words = [r.run_id, r.status, r.model, r.backend, r.device, r.precision, r.style, r.system_name,
             r.profile_name, *r.all_scenarios, *(t.validity for t in r.tests), "synthetic" if r.synthetic else ""]
    return " ".join(str(w) for w in words if w).lower()


def sort_runs(runs: Iterable[RunSummary], key: str = "started", reverse: bool = False) -> list[RunSummary]:
    """``runs`` ordered by ``key`` (one of SORT_KEYS), ascending unless ``reverse``; runs without a value
    for it always come last.

    ``value`` is each run's headline number (its first performance test); ``validity`` puts VALID first
    when ``reverse`` is False.
    """
    if key not in SORT_KEYS:
        hint = difflib.get_close_matches(key, SORT_KEYS, n=1)
        raise ResultsError(f"Cannot sort by '{key}'." + (f" Did you mean '{hint[0]}'?" if hint else ""),
                           "sort by one of: " + ", ".join(SORT_KEYS) + ".")

    def value(r: RunSummary) -> Any:
        if key == "started":
            return parse_time(r.started)
        if key == "value":
            return r.primary.value if r.primary else None
        if key == "duration":
            return r.duration_s
        if key == "validity":
            found = [t.validity for t in r.tests if t.validity]
            return None if not found else (0 if all(v == "VALID" for v in found) else 1)
        return getattr(r, key)

    items = list(runs)
    present = [r for r in items if value(r) is not None]
    missing = [r for r in items if value(r) is None]
    # Ties keep newest first whatever the direction, so equal rows read in a stable, useful order.
    present = sorted(present, key=_sort_key, reverse=True)
    present.sort(key=value, reverse=reverse)
    return present + missing


# ----------------------------------------------------------------------------------------- compare


@dataclass
class MetricComparison:
    """One (scenario, mode) of two runs side by side. ``ratio`` is b / a, only for the same metric and unit."""

    scenario: str
    mode: str
    metric_a: str | None
    metric_b: str | None
    value_a: float | None
    value_b: float | None
    unit_a: str | None
    unit_b: str | None
    validity_a: str | None
    validity_b: str | None
    status_a: str | None
    status_b: str | None
    ratio: float | None = None
    difference: float | None = None
    """b - a, in the unit."""
    percent: float | None = None
    """(b / a - 1) x 100."""
    higher_is_better: bool | None = None
    better: str | None = None
    """'a', 'b', 'same', or None when the two cannot be compared."""
    note: str | None = None
    """Why there is no ratio, or what to keep in mind reading it."""

    @property
    def verdict(self) -> str:
        """The change in words, e.g. 'b is 1.25x faster (+25.0%)'."""
        if self.note and self.ratio is None:
            return self.note
        if self.better == "same":
            return "the same"
        if self.ratio is None or self.better is None:
            return "-"
        if self.unit_a == "ms":
            factor = self.value_a / self.value_b if self.value_b else float("inf")
            word = "faster" if self.ratio < 1 else "slower"
            factor = factor if self.ratio < 1 else self.ratio
            return f"b is {factor:.3g}x {word} ({self.percent:+.1f}% latency)"
        if self.unit_a == "%":
            return f"b {self.difference:+.3g} points of accuracy"
        word = "faster" if self.ratio > 1 else "slower"
        factor = self.ratio if self.ratio > 1 else (1 / self.ratio if self.ratio else float("inf"))
        return f"b is {factor:.3g}x {word} ({self.percent:+.1f}%)"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["verdict"] = self.verdict
        return out


@dataclass
class Difference:
    """One setting that differs between two runs (a value is None where a run does not have it)."""

    field: str
    a: Any
    b: Any


@dataclass
class Comparison:
    """Two runs compared: their results per (scenario, mode), their profiles and their environments."""

    a: RunSummary
    b: RunSummary
    metrics: list[MetricComparison]
    profile: list[Difference]
    environment: list[Difference]
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        brief = ("run_id", "run_dir", "started", "status", "model", "backend", "device", "precision", "synthetic")
        return {"a": {k: getattr(self.a, k) for k in brief}, "b": {k: getattr(self.b, k) for k in brief},
                "metrics": [m.to_dict() for m in self.metrics],
                "profile": [asdict(d) for d in self.profile],
                "environment": [asdict(d) for d in self.environment], "notes": self.notes}


def _measure(t: TestSummary | None) -> tuple[str | None, float | None, str | None]:
    """(metric, value, unit) of a test: the LoadGen metric in performance mode, the accuracy in accuracy mode."""
    if t is None:
        return None, None, None
    if t.mode == "accuracy":
        return t.accuracy_metric, t.accuracy, "%" if t.accuracy is not None else None
    return t.metric, t.value, t.unit


def _compare_test(scenario: str, mode: str, ta: TestSummary | None, tb: TestSummary | None) -> MetricComparison:
    metric_a, value_a, unit_a = _measure(ta)
    metric_b, value_b, unit_b = _measure(tb)
    row = MetricComparison(scenario, mode, metric_a, metric_b, value_a, value_b, unit_a, unit_b,
                           ta.validity if ta else None, tb.validity if tb else None,
                           ta.status if ta else None, tb.status if tb else None)
    if ta is None or tb is None:
        row.note = f"only in run {'a' if tb is None else 'b'}"
    elif value_a is None or value_b is None:
        row.note = "no value in " + ("both runs" if value_a is None and value_b is None else
                                     "run a" if value_a is None else "run b")
    elif unit_a != unit_b or metric_a != metric_b:
        row.note = f"different metrics ({metric_a} in {unit_a} vs {metric_b} in {unit_b}): no ratio"
    elif value_a == 0:
        row.difference = value_b - value_a
        row.note = "run a's value is 0: no ratio"
    else:
        row.ratio = value_b / value_a
        row.difference = value_b - value_a
        row.percent = (row.ratio - 1) * 100
        row.higher_is_better = HIGHER_IS_BETTER.get(unit_a or "")
        if value_a == value_b:
            row.better = "same"
        elif row.higher_is_better is not None:
            row.better = "b" if (value_b > value_a) == row.higher_is_better else "a"
        if row.validity_a != row.validity_b:
            row.note = f"validity differs ({row.validity_a} vs {row.validity_b})"
    return row


def _flat_profile(run: RunSummary) -> dict[str, Any]:
    if isinstance(run, RunDetail) and run.profile is not None:
        return _normalised(run.profile.to_dict())
    if isinstance(run, RunDetail) and run.profile_values:
        return run.profile_values
    return _normalised({k: getattr(run, k) for k in ("model", "backend", "device", "precision", "style")
                        if getattr(run, k) is not None})


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _items(value: Any) -> list:
    return value if isinstance(value, list) else []


def _words(value: Any) -> str:
    """A list of names from a record, joined; anything that is not a list of scalars reads as nothing."""
    return ", ".join(str(v) for v in _items(value) if isinstance(v, (str, int, float)) and not isinstance(v, bool))


def environment_digest(env: dict[str, Any]) -> dict[str, str]:
    """The environment record flattened to the lines that matter when two results differ. Any part of the
    record that does not have the shape this version writes is left out, never an error."""
    if not isinstance(env, dict) or not env:
        return {}
    hw = _mapping(env.get("hardware"))
    cpu = _mapping(hw.get("cpu"))
    out: dict[str, str] = {}

    def put(key: str, value: Any) -> None:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool) and value != "":
            out[key] = str(value)

    put("mlperf-wizard", env.get("mlperf_wizard"))
    put("python", env.get("python"))
    put("os", env.get("os"))
    put("machine", env.get("machine"))
    put("cpu", cpu.get("model"))
    if cpu:
        put("cpu cores", f"{cpu.get('physical_cores')} cores / {cpu.get('logical_cores')} threads")
        put("cpu isa", _words(cpu.get("isa")))
    memory = _float(hw.get("memory_total_bytes"))
    if memory:
        put("memory", f"{memory / 2**30:.1f} GiB")
    if hw:
        gpus = [g for g in _items(hw.get("gpus")) if isinstance(g, dict)]
        put("gpus", "; ".join(f"{g.get('name')} ({g.get('memory_total_mib')} MiB)" for g in gpus) or "none")
        put("gpu driver", ", ".join(sorted({str(g.get("driver")) for g in gpus if g.get("driver")})))
        for name, b in sorted(_mapping(hw.get("backends")).items()):
            if isinstance(b, dict) and b.get("installed"):
                put(f"backend {name}", f"{b.get('version')} on {_words(b.get('devices')) or 'no device'}")
    if env.get("hardware_error"):
        put("hardware", f"not detected: {env['hardware_error']}")
    for name, version in sorted(_mapping(env.get("packages")).items()):
        put(f"package {name}", version)
    return out


def _differences(a: dict[str, Any], b: dict[str, Any]) -> list[Difference]:
    keys = list(dict.fromkeys([*a, *b]))
    return [Difference(k, a.get(k), b.get(k)) for k in keys if a.get(k) != b.get(k)]


def compare(a: RunSummary | str | Path, b: RunSummary | str | Path) -> Comparison:
    """Compare two runs (details, summaries, or anything :func:`load_run` accepts).

    Per (scenario, mode) in either run: both values, and where metric and unit agree the ratio b / a,
    the difference and which run is better (throughput: higher; latency: lower; accuracy: higher).
    Then the profile fields and the environment lines that differ.
    """
    run_a = a if isinstance(a, RunDetail) else load_run(a)
    run_b = b if isinstance(b, RunDetail) else load_run(b)
    keys = list(dict.fromkeys((t.scenario, t.mode) for t in [*run_a.tests, *run_b.tests]))
    first_a = {}
    for t in run_a.tests:
        first_a.setdefault((t.scenario, t.mode), t)
    first_b = {}
    for t in run_b.tests:
        first_b.setdefault((t.scenario, t.mode), t)
    metrics = [_compare_test(s, m, first_a.get((s, m)), first_b.get((s, m))) for s, m in keys]
    notes = []
    if run_a.run_id == run_b.run_id and run_a.run_dir == run_b.run_dir:
        notes.append("Both sides are the same run.")
    if run_a.synthetic or run_b.synthetic:
        which = "both runs" if run_a.synthetic and run_b.synthetic else "run a" if run_a.synthetic else "run b"
        notes.append(f"Synthetic model or data in {which}: NOT MLPerf results; compare them only with each other.")
    for what, why in (("model", "their results measure different work and cannot be compared as one"),
                      ("precision", "a lower precision trades accuracy for speed: check that both met the "
                                    "accuracy target")):
        value_a, value_b = getattr(run_a, what), getattr(run_b, what)
        if value_a and value_b and value_a != value_b:
            notes.append(f"Different {what}s ({value_a} vs {value_b}): {why}.")
    if run_a.style != run_b.style and run_a.style and run_b.style:
        notes.append(f"Different run styles ({run_a.style} vs {run_b.style}): short runs are noisier.")
    return Comparison(run_a, run_b, metrics, _differences(_flat_profile(run_a), _flat_profile(run_b)),
                      _differences(environment_digest(getattr(run_a, "environment", {})),
                                   environment_digest(getattr(run_b, "environment", {}))), notes)


# ------------------------------------------------------------------------------------------ export


def export_rows(runs: Iterable[RunSummary]) -> list[dict[str, Any]]:
    """One row per LoadGen test (a run with no test gets one row with the test's columns empty)."""
    rows = []
    for r in runs:
        base = {"run_id": r.run_id, "started": r.started, "system_name": r.system_name, "model": r.model,
                "backend": r.backend, "device": r.device, "precision": r.precision, "style": r.style,
                "test_query_count": r.test_query_count}
        for t in r.tests or [None]:
            row = dict(base)
            row.update({"scenario": t.scenario if t else None, "mode": t.mode if t else None,
                        "status": t.status if t else r.status, "validity": t.validity if t else None,
                        "metric": t.metric if t else None, "value": t.value if t else None,
                        "unit": t.unit if t else None, "accuracy": t.accuracy if t else None,
                        "duration_s": t.duration_s if t else r.duration_s, "synthetic": r.synthetic})
            rows.append(row)
    return rows


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _markdown_cell(value: Any) -> str:
    text = "yes" if value is True else "no" if value is False else _cell(value)
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def export(runs: Iterable[RunSummary], fmt: str) -> str:
    """The runs' tests as ``csv``, ``json`` (a list of row objects) or ``markdown`` (a table), with the
    columns of EXPORT_COLUMNS. Empty values are empty cells (CSV, Markdown) or null (JSON)."""
    fmt = fmt.lower()
    if fmt == "md":
        fmt = "markdown"
    if fmt not in EXPORT_FORMATS:
        raise ResultsError(f"Unknown export format '{fmt}'.", "use one of: " + ", ".join(EXPORT_FORMATS) + ".")
    rows = export_rows(runs)
    if fmt == "json":
        return json.dumps(rows, indent=2) + "\n"
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=EXPORT_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _cell(v) for k, v in row.items()})
        return buffer.getvalue()
    lines = ["| " + " | ".join(EXPORT_COLUMNS) + " |", "|" + "|".join("---" for _ in EXPORT_COLUMNS) + "|"]
    lines += ["| " + " | ".join(_markdown_cell(row[c]) for c in EXPORT_COLUMNS) + " |" for row in rows]
    if any(row["synthetic"] for row in rows):
        lines += ["", "Rows with synthetic = yes used a synthetic model or data: they are NOT MLPerf results."]
    return "\n".join(lines) + "\n"
