"""The `mlperf-wizard` command line. Its run flags are generated from the profile's fields."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from harness import __version__
from harness.errors import ProfileError, WizardError
from harness.paths import SHIPPED_PROFILES, locations
from harness.profile import FIELDS, Profile, allowed_text, equivalent_command, load_profile, make_profile

from . import datasets_cmd, models_cmd, results_cmd
from .progress import run_headless

log = logging.getLogger("mlperf_wizard")
EXIT_BROKEN_PIPE = 141
"""128 + SIGPIPE: what a command killed by a closed pipe reports."""


def _add_field_flags(parser: argparse.ArgumentParser) -> None:
    groups: dict[str, argparse._ArgumentGroup] = {}
    titles = {"benchmark": "benchmark choices", "run": "run style and targets", "data": "model and data",
              "submission": "results and submission"}
    for f in FIELDS:
        group = groups.setdefault(f.group, parser.add_argument_group(titles[f.group]))
        extra: dict[str, Any] = {}
        if f.kind == "choices":
            extra["nargs"] = "+"
            extra["action"] = "extend"
        default = f.default if not isinstance(f.default, tuple) else " ".join(f.default)
        metavar = {"int": "N", "number_or_auto": "X|auto", "path": "PATH", "text": "NAME"}.get(f.kind)
        if f.kind in ("choice", "choices"):
            metavar = "{" + ",".join(f.choices) + "}"
        help_text = f"{f.help} Allowed: {allowed_text(f)}. Default: {'not set' if default is None else default}."
        group.add_argument(f.flag, dest=f.name, default=argparse.SUPPRESS, metavar=metavar,
                           help=help_text.replace("%", "%%"), **extra)
    parser.add_argument("--synthetic", action="store_true", default=argparse.SUPPRESS,
                        help="Shorthand for --model-source synthetic --dataset-source synthetic.")


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlperf-wizard",
        description="Run the MLPerf Inference benchmark: guided choices, real LoadGen runs, results explained.")
    parser.add_argument("--version", action="version", version=f"mlperf-wizard {__version__}")
    parser.add_argument("--debug", action="store_true", help="Show tracebacks of internal errors.")
    parser.add_argument("--plain", action="store_true",
                        help="Ask the questions as plain prompts instead of the full-screen wizard.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="Run a profile (and/or flags) with LoadGen.",
                         description="Run LoadGen tests from a saved profile, flags, or both (flags win).")
    run.add_argument("profile", nargs="?", help="A profile file, or the name of a saved or shipped profile.")
    run.add_argument("--dry-run", action="store_true", help="Print the plan and the equivalent command; run nothing.")
    run.add_argument("--json", action="store_true", help="Print the result records as JSON on stdout.")
    run.add_argument("--save", metavar="NAME", help="Also save the resulting profile under NAME.")
    run.add_argument("--force", action="store_true", help="With --save: replace a profile of the same name.")
    _add_field_flags(run)

    tune = sub.add_parser("tune", help="Measure the SUT settings (and Server's highest VALID rate) and keep them.",
                          description="Run only the measuring steps of a profile's plan: per scenario, workers x "
                          "threads x batch size (Offline), threads per query (SingleStream, MultiStream), the "
                          "highest Server rate that meets the latency bound. `run` does this by itself the "
                          "first time; this command measures ahead, or again with --force.")
    tune.add_argument("profile", nargs="?", help="A profile file, or the name of a saved or shipped profile.")
    tune.add_argument("--force", action="store_true", help="Measure again, replacing what this machine kept.")
    tune.add_argument("--dry-run", action="store_true", help="Print what would be measured; measure nothing.")
    tune.add_argument("--json", action="store_true", help="Print the run record as JSON on stdout.")
    _add_field_flags(tune)

    detect = sub.add_parser("detect", help="Show the hardware and the installed backends.")
    detect.add_argument("--json", action="store_true")
    detect.add_argument("--refresh", action="store_true", help="Probe the backends again instead of the cache.")

    cov = sub.add_parser("coverage", help="Which model/backend/device/precision combinations work here.",
                         description="The coverage table with this machine's verdicts. --export writes this "
                                     "machine's record of every cell (from `mlperf-wizard verify`), --import keeps "
                                     "another machine's, --markdown prints the table per machine from the records "
                                     "mlperf-wizard ships and the imported ones.")
    cov.add_argument("--json", action="store_true")
    what = cov.add_mutually_exclusive_group()
    what.add_argument("--export", metavar="FILE", help="Write this machine's record of every cell to FILE (JSON).")
    what.add_argument("--import", dest="import_file", metavar="FILE", help="Check and keep another machine's record.")
    what.add_argument("--markdown", action="store_true", help="Print the per-machine table as Markdown.")
    cov.add_argument("--machine-name", default=None, metavar="NAME",
                     help="With --export: the machine's name in the table (default: the host name).")
    cov.add_argument("--force", action="store_true", help="With --export: replace FILE if it exists.")

    ver = sub.add_parser(
        "verify", help="Smoke-test every combination that can run here and record the outcome for coverage.",
        description="One short real run (synthetic model and data, Offline, accuracy and performance, "
                    f"{_smoke_samples()} samples) per model/backend/device/precision that can run here; "
                    "`mlperf-wizard coverage` then shows each as verified, or why its last run failed.")
    ver.add_argument("--model", nargs="+", default=(), metavar="MODEL", help="Only these models.")
    ver.add_argument("--backend", nargs="+", default=(), metavar="BACKEND", help="Only these backends.")
    ver.add_argument("--device", nargs="+", default=(), metavar="DEVICE", help="Only these devices (cpu, cuda).")
    ver.add_argument("--json", action="store_true", help="Print the outcomes as JSON on stdout.")

    loc = sub.add_parser("locate", help="Print where profiles, caches and results are kept.")
    loc.add_argument("--json", action="store_true")

    results_cmd.add_parser(sub)
    models_cmd.add_parser(sub)
    datasets_cmd.add_parser(sub)

    prof = sub.add_parser("profiles", help="List, show or save profiles.")
    psub = prof.add_subparsers(dest="action", metavar="ACTION", required=True)
    psub.add_parser("list", help="Saved and shipped profiles.")
    show = psub.add_parser("show", help="Print a profile.")
    show.add_argument("name")
    save = psub.add_parser("save", help="Save the defaults plus the given flags (or another profile) as NAME.")
    save.add_argument("name")
    save.add_argument("--from", dest="source", metavar="PROFILE", help="Start from this profile.")
    save.add_argument("--force", action="store_true", help="Replace a profile of the same name.")
    _add_field_flags(save)
    return parser


def resolve_profile_path(name: str) -> Path:
    """A profile argument is a file path, or the name of a saved or shipped profile."""
    candidate = Path(name).expanduser()
    if candidate.is_file() or candidate.suffix in (".yaml", ".yml") or os.sep in name:
        return candidate
    for folder in (locations().profiles, SHIPPED_PROFILES):
        for suffix in (".yaml", ".yml"):
            path = folder / f"{name}{suffix}"
            if path.is_file():
                return path
    raise ProfileError(f"No profile named '{name}' (looked in {locations().profiles} and {SHIPPED_PROFILES}).",
                       "check the name with `mlperf-wizard profiles list`, or give a file path.")


def _profile_from_args(args: argparse.Namespace, base_name: str | None) -> Profile:
    base = load_profile(resolve_profile_path(base_name)) if base_name else Profile()
    values = {f.name: getattr(args, f.name) for f in FIELDS if hasattr(args, f.name)}
    if getattr(args, "synthetic", False):
        values.setdefault("model_source", "synthetic")
        values.setdefault("dataset_source", "synthetic")
    return make_profile(values, base, where="command line")


def _out(args: argparse.Namespace):
    """Human-readable text goes to stderr when stdout carries JSON."""
    return sys.stderr if getattr(args, "json", False) else sys.stdout


def cmd_run(args: argparse.Namespace) -> int:
    from harness.detect import detect
    from harness.plan import prepare
    from harness.profile import saved_profile_path

    out = _out(args)
    save_as = saved_profile_path(args.save) if args.save else None  # a bad name stops before anything is done
    profile = _profile_from_args(args, args.profile)
    profile_path = str(resolve_profile_path(args.profile)) if args.profile else None
    plan = prepare(profile, detect())
    if save_as:
        _save_from_run(profile, save_as, args, out)
    print(plan.describe(), file=out)
    print("Equivalent command: " + equivalent_command(profile, profile_path), file=out)
    if args.dry_run:
        if args.json:
            tests = [{**t.to_dict(), "expected": size.to_dict()}
                     for t, size in zip(plan.tests, plan.sizes(), strict=True)]
            print(json.dumps({"dry_run": True, "tests": tests,
                              "command": equivalent_command(profile, profile_path)}, indent=2))
        return 0
    record, code = run_headless(plan, out, profile_path)
    if args.json:
        print(json.dumps(record.to_dict(), indent=2))
    return code


def cmd_tune(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from harness import targets, tuning
    from harness.detect import detect
    from harness.plan import MEASURING_STEPS, prepare, sut_settings, target_key

    out = _out(args)
    profile = replace(_profile_from_args(args, args.profile), mode="performance", tune="auto")
    plan = prepare(profile, detect())
    if args.force and not args.dry_run:
        for scenario in profile.scenarios:
            tuning.forget(sut_settings(profile, scenario, plan.model).key)
            targets.forget(target_key(profile, scenario, plan.model))
        plan = prepare(profile, detect())
    steps = [t for t in plan.tests if t.mode in MEASURING_STEPS]
    kept = [t for t in plan.tests if t.mode == "performance" and t.scenario not in {s.scenario for s in steps}]
    for t in kept:
        print(f"{t.scenario}: nothing to measure: {t.refused or t.sut_reason or 'settings given'}", file=out)
    if not steps:
        print("Nothing to measure (--force measures again).", file=out)
        return 0
    plan.tests = steps
    print(plan.describe(), file=out)
    if args.dry_run:
        return 0
    record, code = run_headless(plan, out, None)
    if args.json:
        print(json.dumps(record.to_dict(), indent=2))
    return code


def _save_from_run(profile: Profile, path: Path, args: argparse.Namespace, out) -> None:
    """``run --save NAME``: save before running; a dry run saves nothing; the same choices saved again is fine."""
    from harness.profile import save_profile

    if args.dry_run:
        print(f"Not saved (--dry-run): run without --dry-run to save it as {path}", file=out)
        return
    if path.is_file() and not args.force:
        try:
            same = load_profile(path) == profile
        except ProfileError:
            same = False
        if same:
            print(f"Profile {path} already holds these choices; left unchanged.", file=out)
            return
    save_profile(profile, path, overwrite=args.force)
    print(f"Saved profile {path}", file=out)


def cmd_detect(args: argparse.Namespace) -> int:
    from harness.detect import detect

    d = detect(refresh=args.refresh)
    if args.json:
        print(json.dumps(d.to_dict(), indent=2))
        return 0
    from .render import render_detection

    render_detection(d)
    return 0


def cmd_coverage(args: argparse.Namespace) -> int:
    from harness import machine_records
    from harness.coverage import export_record, merged_table
    from harness.detect import detect

    if args.markdown:
        print(machine_records.markdown(machine_records.records()), end="")
        return 0
    from .progress import wrap_text

    def counted(record: dict) -> str:
        counts = {r: sum(c["result"] == r for c in record["cells"].values()) for r in machine_records.RESULTS}
        return ", ".join(f"{n} {r}" for r, n in counts.items())

    if args.import_file:
        record, target = machine_records.import_file(Path(args.import_file))
        print(wrap_text(f"Imported the record of {record['machine']['name']} ({counted(record)}) into {target}.",
                        80))
        return 0
    if args.export:
        import socket

        from harness.fsutil import atomic_write_json

        target = Path(args.export).expanduser()
        if target.exists() and not args.force:
            raise ProfileError(f"{target} exists: not replaced.", "give another FILE, or add --force.")
        name = args.machine_name or socket.gethostname().split(".")[0]
        record = export_record(detect(), name)
        atomic_write_json(target, record)
        print(wrap_text(f"Wrote the record of {name} ({counted(record)}) to {target}.", 80))
        return 0
    verdicts = merged_table(detect())
    if args.json:
        print(json.dumps([_verdict_dict(v) for v in verdicts], indent=2))
        return 0
    from .render import render_coverage

    render_coverage(verdicts)
    return 0


def _verdict_dict(v) -> dict[str, Any]:
    row = v.row
    return {"model": row.model if row else None, "backend": row.backend if row else None,
            "device": row.device if row else None, "precision": row.precision if row else None,
            "status": row.status if row else None, "here": v.here, "runnable": v.runnable, "reason": v.reason,
            "install_command": v.install_command, "verified_at": v.verified_at, "elsewhere": v.elsewhere,
            "seed_status": row.seed_status if row else None, "seed_note": row.seed_note if row else None}


def _smoke_samples() -> int:
    from harness.verify import SMOKE_SAMPLES

    return SMOKE_SAMPLES


def cmd_verify(args: argparse.Namespace) -> int:
    import time

    from harness import verify
    from harness.detect import detect
    from harness.plan import prepare

    from .progress import terminal_columns, wrap_text

    out = _out(args)
    # The profile's own parsing: aliases (ort, tf, gpu) and the same messages for a bad name.
    models = [make_profile({"model": m}, where="--model").model for m in args.model]
    backends = [make_profile({"backend": b}, where="--backend").backend for b in args.backend]
    devices = [make_profile({"device": d}, where="--device").device_kind for d in args.device]
    detection = detect()
    todo = verify.cells(detection, models=models, backends=backends, devices=devices)
    if not todo:
        print("Nothing to verify: no combination of these choices can run here (see `mlperf-wizard coverage`).",
              file=out)
        return 2
    print(f"Verifying {len(todo)} combination{'s' if len(todo) > 1 else ''} with short runs (synthetic model "
          f"and data, {verify.SMOKE_SAMPLES} samples):", file=out)
    outcomes = []
    cancelled = False
    for i, key in enumerate(todo, 1):
        print(f"\n=== [{i}/{len(todo)}] {verify.label(*key)} ===", file=out, flush=True)
        started = time.monotonic()
        try:
            record, _ = run_headless(prepare(verify.smoke_profile(key), detection), out)
        except WizardError as exc:  # refused before any run: that is this cell's outcome
            outcome = verify.Outcome(key, False, exc.message, time.monotonic() - started, None)
        else:
            outcome = verify.outcome_of(key, record, time.monotonic() - started)
            cancelled = record.status == "cancelled"
        if cancelled:
            break
        verify.remember(outcome, detection)
        outcomes.append(outcome)
    print("\nOutcomes:" if outcomes else "", file=out)
    for o in outcomes:
        text = f"works ({o.duration_s:.0f} s)" if o.ok else f"fails: {o.reason}"
        print(wrap_text(f"  {o.label}: {text}", terminal_columns(out) or 80), file=out)
    if cancelled:
        print("Cancelled: the combinations after this one were not run.", file=out)
    if args.json:
        print(json.dumps({"outcomes": [o.to_dict() for o in outcomes], "cancelled": cancelled}, indent=2))
    if cancelled:
        return 130
    return 0 if all(o.ok for o in outcomes) else 1


def cmd_locate(args: argparse.Namespace) -> int:
    data = locations().as_dict()
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        width = max(map(len, data))
        for key, value in data.items():
            print(f"{key:<{width}}  {value}")
    return 0


def cmd_profiles(args: argparse.Namespace) -> int:
    from harness.profile import dump_profile, profile_files, save_profile, saved_profile_path

    if args.action == "list":
        for title, folder in (("saved", locations().profiles), ("shipped", SHIPPED_PROFILES)):
            names = [p.stem for p in profile_files(folder)]
            print(f"{title} ({folder}):")
            print("  " + ("\n  ".join(names) if names else "(none)"))
        return 0
    if args.action == "show":
        print(dump_profile(load_profile(resolve_profile_path(args.name))), end="")
        return 0
    path = saved_profile_path(args.name)
    profile = _profile_from_args(args, args.source)
    path = save_profile(profile, path, overwrite=args.force)
    print(f"Saved profile {path}")
    return 0


def _why_not_full_screen() -> str | None:
    """Why the full-screen app cannot run here (it needs an interactive terminal of at least 80x24 that can
    address the cursor), or None when it can."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        return "input or output is not a terminal"
    if os.environ.get("TERM", "dumb") == "dumb":
        return f"TERM={os.environ.get('TERM', '')!r} cannot place the cursor"
    size = shutil.get_terminal_size((0, 0))
    if size.columns < 80 or size.lines < 24:
        return f"the terminal is {size.columns}x{size.lines}; the full-screen wizard needs 80x24"
    return None


def _interactive(args: argparse.Namespace) -> int:
    """No command: the TUI, or plain prompts where a full-screen app does not fit (and it says why)."""
    why = None if args.plain else _why_not_full_screen()
    if args.plain or why:
        if not sys.stdin.isatty():
            print("mlperf-wizard needs a terminal to ask questions. Use `mlperf-wizard run PROFILE` "
                  "(see `mlperf-wizard --help`).", file=sys.stderr)
            return 2
        if why:
            print(f"Using plain prompts: {why}. (--plain chooses them directly.)", file=sys.stderr)
        from .plain import run_plain

        return run_plain()
    from .tui.app import run_tui

    return run_tui()


COMMANDS = {"run": cmd_run, "tune": cmd_tune, "detect": cmd_detect, "coverage": cmd_coverage, "verify": cmd_verify,
            "locate": cmd_locate,
            "profiles": cmd_profiles, "results": results_cmd.run, "models": models_cmd.run,
            "datasets": datasets_cmd.run}


def main(argv: list[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        if not args.command:
            return _interactive(args)
        code = COMMANDS[args.command](args)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        return code
    except BrokenPipeError:
        # The reader went away (`... | head`): stop quietly, as a shell pipeline expects.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except WizardError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.debug:
            raise
        print(f"internal error: {type(exc).__name__}: {exc}\n  Rerun with --debug for the traceback, and "
              "please report it.", file=sys.stderr)
        return 70


if __name__ == "__main__":
    sys.exit(main())
