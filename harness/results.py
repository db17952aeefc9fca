"""Reading LoadGen's logs and explaining them: the metric, VALID/INVALID, and a fix for every unmet rule.

Numbers come from the detail log's ``result_*`` keys (``:::MLLOG {json}`` lines), not the summary
text, which prints some of them in scientific notation.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .models.registry import MODELS
from .plan import MEASURING_STEPS, TestSpec
from .records import from_json
from .scenarios import scenario as scenario_type


def parse_detail(path: Path) -> dict[str, Any]:
    """The last value of every key in ``mlperf_log_detail.txt``; errors and warnings as lists."""
    values: dict[str, Any] = {"_errors": [], "_warnings": []}
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return values
    for line in text.splitlines():
        start = line.find(":::MLLOG")
        if start < 0:
            continue
        try:
            record = json.loads(line[start + len(":::MLLOG"):].strip())
        except (ValueError, RecursionError):
            continue
        if not isinstance(record, dict) or not isinstance(record.get("key"), str):
            continue  # valid JSON but not a LoadGen record: skipped like a line that does not parse
        key = record["key"]
        value = record.get("value")
        values[key] = value
        meta = record.get("metadata") if isinstance(record.get("metadata"), dict) else {}
        if key.startswith("error") or meta.get("is_error"):
            values["_errors"].append(f"{key}: {value}")
        elif meta.get("is_warning"):
            values["_warnings"].append(f"{key}: {value}")
    return values


@dataclass
class Finding:
    """One MLPerf rule checked by LoadGen, in plain words."""

    rule: str
    met: bool
    text: str
    fix: str | None = None
    suggest: dict[str, Any] | None = None
    """The fix as profile values (e.g. ``{"test_query_count": 670}``), where it is one; front ends apply it."""
    confidence: str | None = None
    """How sure the tool is that ``suggest`` fixes the rule, in words ("likely: ...", "possible: ...")."""


@dataclass
class TestResult:
    """The parsed record of one LoadGen test, as saved in ``result.json`` and printed by ``--json``."""

    scenario: str
    mode: str
    status: str
    """completed | failed | cancelled | stalled | refused (not run: the plan or a search showed why)"""
    directory: str
    validity: str | None = None
    metric: str | None = None
    value: float | None = None
    unit: str | None = None
    findings: list[Finding] = field(default_factory=list)
    accuracy: dict[str, Any] | None = None
    synthetic: bool = False
    synthetic_model: bool = False
    synthetic_data: bool = False
    error: str | None = None
    target: dict[str, Any] | None = None
    duration_s: float | None = None
    latency_ms: dict[str, float] = field(default_factory=dict)
    sut_ms: dict[str, float] = field(default_factory=dict)
    """The SUT's own timing (inference call alone, issue to completion), to separate the harness's
    overhead from the backend's time."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> TestResult:
        """Tolerant of records written by other versions or damaged since: unknown keys are ignored and a
        mistyped field takes its default (see :func:`harness.records.from_json`)."""
        return cls.read(data)[0]

    @classmethod
    def read(cls, data: Any) -> tuple[TestResult, list[str]]:
        """The record and the names of the fields that were dropped as mistyped."""
        record, dropped = from_json(cls, data, fill={"scenario": "?", "mode": "?", "status": "?", "directory": ""})
        return record or cls("?", "?", "?", ""), dropped


def _ms(ns: Any) -> float | None:
    try:
        return float(ns) / 1e6
    except (TypeError, ValueError):
        return None


def _f(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def metric_of(scenario: str, detail: dict[str, Any]) -> tuple[str, float | None, str]:
    kind = scenario_type(scenario)
    name, unit = kind.metric_name, kind.unit
    value = detail.get(kind.metric_key)
    if kind.percentile_key and (not value or detail.get("early_stopping_met") is False):
        # Without enough queries LoadGen has no early-stopping estimate (it logs 0): report the plain
        # percentile and say so in the metric's name.
        value = detail.get(kind.percentile_key)
        name = name.replace("(early stopping)", "(measured; early stopping not met)")
    if unit == "ms":
        return name, _ms(value), unit
    return name, _f(value), unit


def latency_summary(detail: dict[str, Any]) -> dict[str, float]:
    out = {}
    for label, key in (("min", "result_min_latency_ns"), ("mean", "result_mean_latency_ns"),
                       ("p50", "result_50.00_percentile_latency_ns"), ("p90", "result_90.00_percentile_latency_ns"),
                       ("p99", "result_99.00_percentile_latency_ns"), ("max", "result_max_latency_ns")):
        value = _ms(detail.get(key))
        if value is not None:
            out[label] = round(value, 4)
    return out


def _more_queries(detail: dict[str, Any]) -> int | None:
    text = str(detail.get("early_stopping_result", ""))
    match = re.search(r"at least (\d+) more queries", text)
    if match:
        return int(match.group(1))
    # MultiStream words it as a total: "Only processed N queries. Need to process at least M queries".
    done = re.search(r"processed (\d+) queries", text)
    total = re.search(r"at least (\d+) queries", text)
    if done and total:
        return max(0, int(total.group(1)) - int(done.group(1)))
    return None


def explain(scenario: str, model: str, style: str, detail: dict[str, Any], *,
            test_query_count: int | None = None, target: float | None = None, target_reason: str = "",
            probes: list[dict[str, Any]] | None = None) -> list[Finding]:
    """Each rule LoadGen checked, met or not, with a concrete fix for the unmet ones."""
    findings: list[Finding] = []
    kind = scenario_type(scenario)
    min_duration_ms = _f(detail.get("effective_min_duration_ms"))
    needed_s = (min_duration_ms or 0) / 1000
    completed_qps = _f(detail.get("result_completed_samples_per_sec"))
    offline_qps = _f(detail.get("result_samples_per_second"))

    met = detail.get("result_min_duration_met")
    if met is not None:
        if met:
            findings.append(Finding("min_duration", True, f"Minimum duration met ({needed_s:g} s required)."))
        else:
            suggest = None
            if kind.one_query:
                measured = offline_qps
                fix = (f"set --target-qps to about {measured * 1.1:.4g} (10% above the {measured:.4g} samples/s "
                       "measured) or leave it on auto" if measured else "raise --target-qps")
                suggest = {"target_qps": round(measured * 1.1, 4)} if measured else None
                sure = "likely: LoadGen sizes an Offline run from the target, and this one is what it measured"
                why = (f"LoadGen sized the run from target QPS {target:g}, but the SUT was faster"
                       if target else "the SUT was faster than the declared target QPS")
            elif kind.scheduled:
                fix, why = "raise --target-qps", "too few queries were scheduled for the minimum duration"
                sure = None
            else:
                p = latency_summary(detail).get("p50")
                fix = (f"set --target-latency to about {p * 0.9:.3g} ms (the SUT's median was {p:.3g} ms)"
                       if p else "lower --target-latency")
                suggest = {"target_latency": round(p * 0.9, 4)} if p else None
                sure = "likely: LoadGen generates queries from the declared latency, and this is what it measured"
                why = "the declared target latency was longer than the SUT's, so too few queries were generated"
            findings.append(Finding("min_duration", False, f"The run was shorter than the required "
                                    f"{needed_s:g} s: {why}.", fix, suggest, sure if suggest else None))
    met = detail.get("result_min_queries_met")
    if met is not None:
        # Offline is one query of many samples: LoadGen's minimum that matters there is the sample count.
        what, plural = ("sample", "samples") if kind.one_query else ("query", "queries")
        wanted = detail.get(f"effective_min_{what}_count")
        if met:
            findings.append(Finding("min_queries", True, f"Minimum {what} count met ({wanted} required)."))
        else:
            findings.append(Finding("min_queries", False, f"Fewer {plural} than the {wanted} required ran.",
                                    "raise --target-qps (Offline/Server) or lower --target-latency so LoadGen "
                                    "generates enough queries"))
    met = detail.get("result_perf_constraints_met")
    if met is not None and kind.scheduled:
        bound = MODELS[model].server_latency_bound_ms if model in MODELS else None
        p99 = latency_summary(detail).get("p99")
        low = latency_summary(detail).get("min")
        if met:
            findings.append(Finding("latency_bound", True, f"99th percentile latency {p99:.4g} ms is within the "
                                    f"Server bound of {bound} ms." if p99 is not None and bound else
                                    "Server latency constraint met."))
        else:
            suggest, sure = None, None
            p50 = latency_summary(detail).get("p50")
            if low is not None and bound and low > bound:
                fix = (f"no target QPS can meet it: even the fastest query took {low:.4g} ms. Use a faster "
                       "device or backend, a smaller --batch-size, or the Offline scenario")
            elif p50 is not None and bound and p50 > bound / 2:
                # Half the queries already take over half the bound: the tail is the SUT's own jitter,
                # not queueing, and a lower arrival rate is not known to help.
                fix = (f"no target QPS is known to meet it: the median query already took {p50:.4g} ms of the "
                       f"{bound} ms bound. Use fewer --threads per query, a smaller --batch-size, a faster "
                       "device, or the Offline scenario")
            elif target_reason == "given in the profile":
                # A measurement beats a guess: the search probes rates against this bound on this SUT.
                fix = ("set --target-qps auto: the Server search probes arrival rates with short LoadGen runs "
                       "and runs the test at the highest one that met the bound")
                suggest = {"target_qps": "auto"}
                sure = ("likely: the rate comes from LoadGen runs on this SUT, confirmed by one long enough for "
                        "early stopping where time allows; a longer run's tail can still be worse")
            elif probes:
                # The searched rate failed in the long run: the search is forgotten and runs again.
                passed = sorted(p["qps"] for p in probes if p.get("passed") and (target is None or p["qps"] < target))
                fix = ("run again with --target-qps auto: the searched rate did not hold in this longer run, so "
                       "it was forgotten and the search probes again" +
                       (f" (its lower passing probes: {', '.join(f'{q:.4g}' for q in passed[-3:])} queries/s)"
                        if passed else ""))
                suggest = {"target_qps": "auto"}
                sure = ("possible: the search's own confirmation passed at the rate that failed here: this "
                        "SUT's tail varies from run to run")
            else:
                suggestion = (completed_qps or target or 0) * 0.8
                fix = (f"lower --target-qps to about {suggestion:.4g} (80% of what completed), or set it to "
                       "auto to search the rate" if suggestion else "lower --target-qps")
                suggest = {"target_qps": round(suggestion, 4)} if suggestion else None
                sure = ("possible: not measured; the median query was well inside the bound, so the tail is "
                        "probably queueing, which a lower rate shortens; jitter can still break the bound")
            findings.append(Finding("latency_bound", False, f"The 99th percentile latency ({p99:.4g} ms) is over "
                                    f"the Server bound of {bound} ms: queries arrived faster than the SUT "
                                    "answered them." if p99 is not None else "Server latency bound exceeded.",
                                    fix, suggest, sure))
    met = detail.get("early_stopping_met")
    if met is not None and kind.early_stopping:
        if met:
            findings.append(Finding("early_stopping", True, "Early stopping criterion met."))
        else:
            more = _more_queries(detail)
            suggest = sure = None
            if style == "short" and more is not None and test_query_count:
                fix = f"rerun with --test-query-count {_round_up(test_query_count + more)}"
                suggest = {"test_query_count": _round_up(test_query_count + more)}
                sure = ("likely: LoadGen's own estimate of the queries it needs, rounded up; a longer tail "
                        "in the rerun can ask for more")
            elif more is not None:
                fix = f"run at least {more} more queries (raise the target or the duration)"
            else:
                fix = "run more queries"
            findings.append(Finding("early_stopping", False, "Too few queries to bound the tail latency "
                                    "statistically (early stopping)" + (f": LoadGen needs at least {more} more."
                                                                        if more is not None else "."), fix,
                                    suggest, sure if suggest else None))
    if detail.get("_errors"):
        for err in detail["_errors"]:
            text = str(err)
            fix = None
            if "Ran out of generated queries" in text or "ran out" in text.lower():
                fix = ("declare a faster SUT: raise --target-qps or lower --target-latency (auto does this)")
            findings.append(Finding("loadgen_error", False, f"LoadGen reported an error: {text}", fix))
    if style == "short" and detail.get("result_validity") == "VALID":
        findings.append(Finding("short_run", True, "A short run skips mlperf.conf's 600 s minimum: use "
                                "--style full for a result that counts."))
    return findings


def _round_up(n: int) -> int:
    step = 10 ** max(0, len(str(n)) - 2)
    return int(math.ceil(n / step) * step)


def parse_test(spec: TestSpec, directory: Path, status: str, error: str | None = None) -> TestResult:
    """Build a TestResult from a test directory's LoadGen logs (whatever is there)."""
    detail = parse_detail(directory / "mlperf_log_detail.txt")
    result = TestResult(scenario=spec.scenario, mode=spec.mode, status=status, directory=str(directory),
                        synthetic=spec.model_synthetic or spec.dataset_synthetic,
                        synthetic_model=spec.model_synthetic, synthetic_data=spec.dataset_synthetic, error=error)
    if spec.mode == "performance" and "result_validity" in detail:
        validity = detail.get("result_validity")
        result.validity = validity if validity in ("VALID", "INVALID") else None
        result.metric, value, result.unit = metric_of(spec.scenario, detail)
        result.value = round(value, 4) if value is not None else None
        result.latency_ms = latency_summary(detail)
        result.findings = explain(spec.scenario, spec.model, spec.style, detail,
                                  test_query_count=spec.test_query_count, target=spec.target,
                                  target_reason=spec.target_reason, probes=spec.server_probes)
    elif spec.mode in MEASURING_STEPS:
        _read_step(result, spec, directory)
    elif spec.mode == "accuracy":
        acc_file = directory / "accuracy.json"
        if acc_file.is_file():
            try:
                result.accuracy = json.loads(acc_file.read_text(encoding="utf-8"))
            except ValueError:
                result.accuracy = None
        if detail.get("_errors"):
            result.findings = [Finding("loadgen_error", False, f"LoadGen reported an error: {e}")
                               for e in detail["_errors"]]
    return result


def _read_step(result: TestResult, spec: TestSpec, directory: Path) -> None:
    """A tune or search step's outcome as a result: the choice, its figure and the reason."""
    from .tuning import SutConfig, Tuned, read_step

    data = read_step(directory, spec.mode)
    if data is None:
        return
    if spec.mode == "tune":
        tuned = Tuned.from_dict(data)
        if tuned is None:
            return
        m = tuned.best_measure()
        result.metric = f"chose {tuned.best.text()}"
        if tuned.objective == "throughput":
            result.value, result.unit = m.samples_per_s, "samples/s"
        else:
            result.value, result.unit = m.p90_ms, "ms (p90 of one query)"
        result.findings = [Finding("tuned", True, tuned.reason())]
        result.findings += [Finding("tuned", True, note) for note in tuned.notes]
        return
    reason = str(data.get("reason") or "")
    config = data.get("config")
    if data.get("found") and isinstance(config, dict):
        try:
            chosen = SutConfig(int(config["workers"]), int(config["threads"]), int(config["batch_size"]))
            what = ("modelled Server rate (not probed)" if data.get("basis") == "modelled"
                    else "highest VALID Server rate")
            result.metric, result.value = f"{what}, {chosen.text()}", _f(data.get("qps"))
            result.unit = "queries/s"
        except (KeyError, TypeError, ValueError):
            return
        result.findings = [Finding("server_search", True, reason)]
    else:
        result.metric = "no Server rate meets the latency bound"
        result.findings = [Finding("server_search", False, reason, "use a faster device or backend, or the "
                                   "Offline scenario; in the open division a relaxed bound can be declared")]


def summary_lines(r: TestResult) -> list[str]:
    """A result in plain words, for terminals and logs."""
    head = f"{r.scenario} {r.mode}: "
    lines: list[str] = []
    if r.status != "completed":
        lines.append(head + r.status.upper() + (f": {r.error}" if r.error else ""))
    elif r.mode in MEASURING_STEPS:
        figure = f": {r.value:,.4g} {r.unit}" if r.value is not None else ""
        lines.append(head + f"{r.metric or 'no outcome recorded'}{figure}")
        for f in r.findings:
            lines.append(f"  {f.text}")
            if f.fix and not f.met:
                lines.append(f"    fix: {f.fix}")
    elif r.mode == "performance":
        value = "n/a" if r.value is None else f"{r.value:,.4g}"
        lines.append(head + f"{r.validity}  {r.metric}: {value} {r.unit}")
        for f in r.findings:
            if not f.met:
                lines.append(f"  - {f.text}")
                if f.fix:
                    lines.append(f"    fix: {f.fix}")
            elif f.rule == "short_run":
                lines.append(f"  note: {f.text}")
    else:
        acc = r.accuracy or {}
        if acc:
            # ImageNet counts right answers; mAP and F1 are not counts: then only how many were scored.
            counted = (f"({acc['good']}/{acc.get('total')})" if acc.get("good") is not None
                       else f"over {acc['images']} images" if acc.get("images") is not None
                       else f"over {acc['total']} questions" if acc.get("total") is not None else "")
            # The accuracy record is free-form JSON (and may come back damaged): numbers are read as numbers.
            value, target, fraction = _f(acc.get("value")), _f(acc.get("target")), _f(acc.get("target_fraction"))
            shown = "n/a" if value is None else f"{value:.3f}%"
            lines.append(head + f"{acc.get('metric')} = {shown} {counted}".rstrip())
            if target is not None:
                verdict = "meets" if acc.get("passed") else "is below"
                lines.append(f"  {verdict} the closed-division target {target:.3f}% "
                             f"({(fraction or 0.99) * 100:g}% of {acc.get('reference')}%)")
        else:
            lines.append(head + "no accuracy computed")
        for f in r.findings:
            if not f.met:
                lines.append(f"  - {f.text}")
    if r.target and r.target.get("text"):
        lines.append(f"  target: {r.target['text']}")
    if r.synthetic:
        what = " and ".join(x for x, on in (("model", r.synthetic_model), ("data", r.synthetic_data)) if on)
        lines.append(f"  SYNTHETIC {what}: this is NOT an MLPerf result.")
    lines.append(f"  files: {r.directory}")
    return lines


@dataclass(frozen=True)
class Suggestion:
    """Profile changes that should make one scenario's result VALID, and how sure the tool is."""

    scenario: str
    values: dict[str, Any]
    confidence: str

    @property
    def profile_values(self) -> dict[str, Any]:
        """What to apply to the profile: the changes, for this scenario alone."""
        return {**self.values, "scenarios": [self.scenario]}

    def text(self) -> str:
        changes = ", ".join(f"{k} = {v}" for k, v in self.values.items())
        return f"{self.scenario}: {changes} ({self.confidence})"


@dataclass(frozen=True)
class NoSuggestion:
    """A scenario with unmet rules that no profile change is known to fix, and why."""

    scenario: str
    why: str


def suggestions(tests: list[TestResult]) -> tuple[list[Suggestion], list[NoSuggestion]]:
    """Per scenario, the changes its unmet rules suggest, only where every unmet rule has one.

    A scenario whose result also breaks a rule with no known fix (e.g. a Server bound no rate can meet)
    gets no suggestion: more queries would leave it INVALID. One profile field (test_query_count) serves
    every scenario of a profile, so each suggestion is for its scenario alone (``profile_values``).
    """
    found: list[Suggestion] = []
    blocked: list[NoSuggestion] = []
    for t in tests:
        unmet = [f for f in t.findings if not f.met]
        if t.mode != "performance" or not unmet or any(s.scenario == t.scenario for s in found):
            continue
        stuck = [f for f in unmet if not f.suggest]
        if stuck:
            blocked.append(NoSuggestion(t.scenario, stuck[0].fix or stuck[0].text))
            continue
        values: dict[str, Any] = {}
        for f in unmet:
            for key, value in (f.suggest or {}).items():
                values[key] = max(values.get(key, value), value) if key == "test_query_count" else value
        sure = [f.confidence or "possible" for f in unmet]
        weakest = next((c for c in sure if c.startswith("possible")), sure[0])
        found.append(Suggestion(t.scenario, values, weakest))
    return found, blocked
