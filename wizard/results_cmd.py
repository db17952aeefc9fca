"""`mlperf-wizard results`: list, show, compare and export past runs (the engine is harness.history).

RUN arguments accept a run id, a unique start of one, a run directory, or latest/previous.
Human-readable text fits 80 columns; with --json, stdout carries only JSON and warnings go to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness import history
from harness.errors import ResultsError
from harness.fsutil import atomic_write_text
from harness.results import summary_lines

STAMP_LENGTH = len("20260101-120000")
VALIDITY_STYLE = {"VALID": "green", "INVALID": "red", "PASS": "green", "BELOW": "red"}
SUFFIX_FORMAT = {".csv": "csv", ".json": "json", ".md": "markdown", ".markdown": "markdown"}
RUN_HELP = "a run id, a unique start of one, a run directory, or latest/previous"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``results`` command and its actions to the CLI's subparsers."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--results-dir", metavar="DIR", help="Look only in this results folder (default: the "
                        "results folder of `mlperf-wizard locate` plus every folder a past run used).")
    filters = argparse.ArgumentParser(add_help=False)
    group = filters.add_argument_group("filters (each accepts several values)")
    for name, what in (("model", "model"), ("backend", "backend"), ("device", "device"),
                       ("scenario", "scenario (a run with a test of it)")):
        group.add_argument(f"--{name}", nargs="+", action="extend", metavar=name.upper(), help=f"Only this {what}.")
    group.add_argument("--validity", nargs="+", action="extend", metavar="VALID|INVALID",
                       help="Only runs with a performance test of this validity (of --scenario, if given).")
    group.add_argument("--status", nargs="+", action="extend", metavar="STATUS",
                       help="Only runs with this status: completed, failed, cancelled, running.")
    group.add_argument("--search", metavar="TEXT", help="Only runs whose id, profile, system or choices contain TEXT.")

    results = subparsers.add_parser("results", help="List, show, compare and export past runs.",
                                    description="The history of runs: every run directory, newest first.")
    actions = results.add_subparsers(dest="results_action", metavar="ACTION")

    ls = actions.add_parser("list", parents=[common, filters], help="The past runs, newest first (the default).")
    ls.add_argument("--sort", choices=history.SORT_KEYS, help="Order by this instead of newest first.")
    ls.add_argument("--reverse", action="store_true", help="Reverse the order.")
    ls.add_argument("--limit", type=int, metavar="N", help="Show at most N runs.")
    ls.add_argument("--json", action="store_true", help="Print the runs as JSON on stdout.")

    show = actions.add_parser("show", parents=[common], help="One run: its results, files and environment.")
    show.add_argument("run", metavar="RUN", help=RUN_HELP.capitalize() + ".")
    show.add_argument("--json", action="store_true", help="Print everything the run holds as JSON on stdout.")

    cmp = actions.add_parser("compare", parents=[common], help="Two runs side by side: results, profile, "
                             "environment.")
    cmp.add_argument("run_a", metavar="RUN_A", help=f"The baseline: {RUN_HELP}.")
    cmp.add_argument("run_b", metavar="RUN_B", help=f"The run compared with it: {RUN_HELP}.")
    cmp.add_argument("--json", action="store_true", help="Print the comparison as JSON on stdout.")

    exp = actions.add_parser("export", parents=[common, filters], help="One row per LoadGen test as CSV, JSON "
                             "or Markdown.")
    exp.add_argument("runs", nargs="*", metavar="RUN", help=f"Only these runs ({RUN_HELP}); default: all.")
    exp.add_argument("--format", choices=history.EXPORT_FORMATS,
                     help="Default: from the --output file's extension (.csv, .json, .md), else csv.")
    exp.add_argument("--output", metavar="FILE", help="Write to FILE instead of stdout.")
    exp.add_argument("--force", action="store_true", help="Replace FILE if it exists.")


def run(args: argparse.Namespace) -> int:
    """Carry out ``mlperf-wizard results ACTION``; user errors are raised as WizardError."""
    action = getattr(args, "results_action", None) or "list"
    return {"list": _list, "show": _show, "compare": _compare, "export": _export}[action](args)


# ------------------------------------------------------------------------------------------ helpers


def _console(args: argparse.Namespace) -> Console:
    return Console(stderr=bool(getattr(args, "json", False)), highlight=False)


def _scan(args: argparse.Namespace) -> history.RunList:
    found = history.list_runs(getattr(args, "results_dir", None))
    for warning in found.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return found


def _filtered(args: argparse.Namespace, runs: list[history.RunSummary]) -> list[history.RunSummary]:
    return history.filter_runs(runs, text=getattr(args, "search", None), model=getattr(args, "model", None),
                               backend=getattr(args, "backend", None), device=getattr(args, "device", None),
                               scenario=getattr(args, "scenario", None), validity=getattr(args, "validity", None),
                               status=getattr(args, "status", None))


def short_ids(run_ids: list[str]) -> dict[str, str]:
    """The shortest start of each run id (at least its date-time stamp) that no other id shares."""
    ordered = sorted(set(run_ids))
    out = {}
    for i, rid in enumerate(ordered):
        # In sorted order the ids sharing the longest start with this one are its neighbours.
        shared = max((_common(rid, ordered[j]) for j in (i - 1, i + 1) if 0 <= j < len(ordered)), default=0)
        out[rid] = rid[:max(STAMP_LENGTH, shared + 1)]
    return out


def _common(a: str, b: str) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def _number(value: float | None, unit: str | None) -> str:
    if value is None:
        return "-"
    # Four significant digits, but never an exponent for a big throughput.
    text = f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    return f"{text} {unit or ''}".strip()


def _result_cells(t: history.TestSummary) -> tuple[str, str]:
    """(result, verdict) for one test: the metric and VALID/INVALID, or the accuracy and PASS/BELOW; a
    test that did not complete shows its mode and its status."""
    if t.status != "completed":
        return "(accuracy)" if t.mode == "accuracy" else "-", t.status.upper()
    if t.mode == "accuracy":
        if t.accuracy is None:
            return "no accuracy", "-"
        verdict = "-" if t.accuracy_passed is None else "PASS" if t.accuracy_passed else "BELOW"
        return f"{t.accuracy:.3g}% accuracy", verdict
    return _number(t.value, t.unit), t.validity or "-"


def _styled(verdict: str) -> str:
    style = VALIDITY_STYLE.get(verdict, "yellow" if verdict not in ("-", "") else "")
    return f"[{style}]{escape(verdict)}[/]" if style else escape(verdict)


def _when(stamp: str | None) -> str:
    parsed = history.parse_time(stamp)
    return parsed.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z") if parsed else "unknown"


# --------------------------------------------------------------------------------------------- list


def _list(args: argparse.Namespace) -> int:
    found = _scan(args)
    runs = _filtered(args, found.runs)
    if getattr(args, "sort", None):
        runs = history.sort_runs(runs, args.sort, reverse=args.reverse)
    elif getattr(args, "reverse", False):
        runs = list(reversed(runs))
    if getattr(args, "limit", None) is not None:
        runs = runs[:max(0, args.limit)]
    if getattr(args, "json", False):
        print(json.dumps({"runs": [r.to_dict() for r in runs], "total": len(found.runs),
                          "warnings": found.warnings, "roots": found.roots}, indent=2))
        return 0
    console = _console(args)
    if not found.runs:
        console.print(f"No runs yet (looked in {escape(', '.join(found.roots))}).\n"
                      "Run one with: mlperf-wizard run quickstart")
        return 0
    ids = short_ids([r.run_id for r in found.runs])
    # One space between columns (the box's divider): the widest usual row (a 16-character run, retinanet,
    # onnxruntime, cuda, SingleStream, "12,345 samples/s", CANCELLED) then fits 80 columns. The scenario,
    # result and verdict are never cut (an accuracy test's result says "accuracy"); on a narrower terminal
    # the model, backend and device names give way first.
    rows = []
    for r in runs:
        head = [ids[r.run_id] + ("*" if r.synthetic else ""), r.model or "?", r.backend or "?", r.device or "?"]
        if not r.tests:
            rows.append((*head, "-", "-", r.status.upper()))
        for i, t in enumerate(r.tests):
            rows.append((*(head if i == 0 else ["", "", "", ""]), t.scenario, *_result_cells(t)))
    labels = ("run", "model", "backend", "dev", "scenario", "result", "verdict")
    widths = [max([len(label)] + [len(row[k]) for row in rows]) for k, label in enumerate(labels)]
    excess = sum(widths) + len(widths) - 1 - console.width
    for k in (2, 1, 3):  # backend, model, dev: cut (with an ellipsis) only as far as needed
        cut = min(max(0, excess), widths[k] - len(labels[k]))
        widths[k] -= cut
        excess -= cut
    table = Table(box=box.SIMPLE_HEAD, padding=0, show_edge=False)
    for k, label in enumerate(labels):
        table.add_column(label, no_wrap=True, width=widths[k], justify="right" if label == "result" else "left",
                         overflow="ellipsis")
    for row in rows:
        table.add_row(*map(escape, row[:6]), _styled(row[6]))
    console.print(table)
    plural = "run" if len(found.runs) == 1 else "runs"
    shown = f"{len(runs)} of {len(found.runs)} {plural}" if len(runs) != len(found.runs) else f"{len(runs)} {plural}"
    console.print(f"{shown}. Details: mlperf-wizard results show RUN (e.g. latest)")
    if any(r.synthetic for r in runs):
        console.print("[dim]* synthetic model or data: NOT MLPerf results[/]")
    return 0


# --------------------------------------------------------------------------------------------- show


def _show(args: argparse.Namespace) -> int:
    detail = history.load_run(args.run, root=getattr(args, "results_dir", None))
    if args.json:
        print(json.dumps(detail.to_dict(), indent=2, default=str))
        for warning in detail.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        return 0
    out = sys.stdout
    duration = f", {detail.duration_s:.0f} s" if detail.duration_s is not None else ""
    print(f"Run {detail.run_id}: {detail.status} (started {_when(detail.started)}{duration})", file=out)
    choices = " / ".join(x for x in (detail.model, detail.backend, detail.device, detail.precision) if x)
    extra = [f"style {detail.style}" if detail.style else "", f"system {detail.system_name}"
             if detail.system_name else "", f"profile {detail.profile_name}" if detail.profile_name else ""]
    print("  " + ", ".join(x for x in [choices, *extra] if x), file=out)
    if detail.synthetic:
        print("  SYNTHETIC model and/or data: this is NOT an MLPerf result.", file=out)
    print(file=out)
    tests = detail.record.tests if detail.record else []
    if not tests:
        print("No LoadGen test finished in this run.", file=out)
    for test in tests:
        for line in summary_lines(test):
            print(line, file=out)
        print(file=out)
    print("Files", file=out)
    print(f"  run directory: {detail.run_dir}", file=out)
    for name in (history.RUN_FILE, history.PROFILE_FILE, history.ENVIRONMENT_FILE, history.PLAN_FILE):
        path = Path(detail.run_dir) / name
        if path.exists():
            print(f"  {name:<16} {path}", file=out)
    digest = history.environment_digest(detail.environment)
    if digest:
        print("\nEnvironment", file=out)
        width = max(map(len, digest))
        for key, value in digest.items():
            print(f"  {key:<{width}}  {value}", file=out)
    if detail.profile_name:
        print(f"\nRerun it: mlperf-wizard run {detail.profile_name}", file=out)
    else:
        print(f"\nRerun it: mlperf-wizard run {Path(detail.run_dir) / history.PROFILE_FILE}", file=out)
    for warning in detail.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


# ------------------------------------------------------------------------------------------ compare


def _compare(args: argparse.Namespace) -> int:
    root = getattr(args, "results_dir", None)
    runs = history.list_runs(root).runs
    a = history.load_run(history.resolve_run(args.run_a, runs, root))
    b = history.load_run(history.resolve_run(args.run_b, runs, root))
    comparison = history.compare(a, b)
    if args.json:
        print(json.dumps(comparison.to_dict(), indent=2, default=str))
        return 0
    console = _console(args)
    for label, r in (("a", a), ("b", b)):
        what = " / ".join(x for x in (r.model, r.backend, r.device, r.precision) if x)
        console.print(f"[bold]{label}[/]: {escape(r.run_id)}\n   {escape(what)}, started {_when(r.started)}")
    table = Table(title="Results", box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, title_justify="left")
    table.add_column("test", no_wrap=True)
    table.add_column("a", justify="right")
    table.add_column("b", justify="right")
    table.add_column("b vs a", ratio=1)
    for m in comparison.metrics:
        cells = []
        for value, unit, validity, status in ((m.value_a, m.unit_a, m.validity_a, m.status_a),
                                              (m.value_b, m.unit_b, m.validity_b, m.status_b)):
            if status is None:
                cells.append("[dim]not run[/]")
            elif status != "completed":
                cells.append(_styled(status.upper()))
            else:
                cells.append(escape(_number(value, unit)) + (f" {_styled(validity)}" if validity else ""))
        change = m.verdict
        style = {"a": "red", "b": "green"}.get(m.better or "", "")
        change_cell = f"[{style}]{escape(change)}[/]" if style else escape(change)
        if m.note and m.ratio is not None:
            change_cell += f"\n[yellow]{escape(m.note)}[/]"
        table.add_row(escape(f"{m.scenario} {m.mode}"), *cells, change_cell)
    console.print(table)
    for title, diffs in (("Profile differences", comparison.profile),
                         ("Environment differences", comparison.environment)):
        if not diffs:
            console.print(f"{title}: none")
            continue
        t = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, title_justify="left")
        t.add_column("field", no_wrap=True)
        t.add_column("a", overflow="fold")
        t.add_column("b", overflow="fold")
        for d in diffs:
            t.add_row(escape(d.field), escape(_plain(d.a)), escape(_plain(d.b)))
        console.print(t)
    for note in comparison.notes:
        console.print(f"[yellow]note:[/] {escape(note)}")
    return 0


def _plain(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, (list, tuple)):
        return " ".join(map(str, value))
    return str(value)


# ------------------------------------------------------------------------------------------- export


def _export(args: argparse.Namespace) -> int:
    root = getattr(args, "results_dir", None)
    found = _scan(args)
    runs = found.runs
    if args.runs:
        chosen = [history.resolve_run(ref, runs, root) for ref in args.runs]
        runs = [c if isinstance(c, history.RunSummary) else history.load_run(c) for c in chosen]
    # Rows are tests: --scenario and --validity keep only the tests that match, not whole runs.
    runs = history.restrict_tests(_filtered(args, runs), scenario=args.scenario, validity=args.validity)
    fmt = args.format or SUFFIX_FORMAT.get(Path(args.output or "").suffix.lower(), "csv")
    text = history.export(runs, fmt)
    if not args.output:
        sys.stdout.write(text)
        return 0
    path = Path(args.output).expanduser()
    refusal = ResultsError(f"{path} already exists; it was left unchanged.",
                           "choose another --output, or pass --force to replace it.")
    if path.is_dir():
        raise ResultsError(f"{path} is a folder.", "give --output a file name.")
    if path.exists() and not args.force:
        raise refusal
    try:
        atomic_write_text(path, text, overwrite=args.force)
    except FileExistsError:
        raise refusal from None
    rows = len(history.export_rows(runs))
    print(f"Wrote {rows} row(s) from {len(runs)} run(s) to {path} ({fmt}).")
    return 0
