"""`mlperf-wizard models`: list, fetch, verify and import the official MLPerf model files.

The engine is harness.download. On an air-gapped cluster, serve the files from a local mirror and set
MLPERF_WIZARD_MODEL_MIRROR to its base URL (tried before the official URLs), or copy a file over and
`models import` it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TextIO

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness import download
from harness.cache_integrity import check_file
from harness.errors import WizardError
from harness.models.registry import BACKEND_FORMAT, MODELS, synthetic_path

from .render import human_size

PLAIN_INTERVAL_S = 5.0
PRECISIONS = sorted({f.precision for spec in MODELS.values() for f in spec.files})
STATE_STYLE = {"verified": "green", "wrong checksum": "red", "partial": "yellow", "missing": "dim"}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``models`` command and its actions to the CLI's subparsers."""
    models = subparsers.add_parser(
        "models", help="List, fetch, verify and import the official model files.",
        description="The official MLPerf model files in the model cache. Downloads resume and are verified by "
                    f"md5. Air-gapped cluster: set {download.MIRROR_ENV} to the base URL of a local mirror "
                    "(tried before the official URLs, the file name appended), or copy a file over and import it.")
    actions = models.add_subparsers(dest="models_action", metavar="ACTION")

    ls = actions.add_parser("list", help="Every official file: format, precision, md5, cached and verified? "
                            "(the default)")
    ls.add_argument("--json", action="store_true", help="Print the list as JSON on stdout.")

    which = argparse.ArgumentParser(add_help=False)
    which.add_argument("--backend", choices=list(BACKEND_FORMAT), default="onnxruntime",
                       help="The backend that will load the file (default: onnxruntime).")
    which.add_argument("--precision", choices=PRECISIONS, default="fp32", help="Default: fp32.")

    fetch = actions.add_parser("fetch", parents=[which], help="Download an official model file into the cache.",
                               description="Download, resume an interrupted download (Ctrl-C keeps what was "
                               f"transferred), verify the md5. Sources: ${download.MIRROR_ENV} first, then the "
                               "official URLs.")
    fetch.add_argument("model", metavar="MODEL", choices=list(MODELS), help=f"One of: {', '.join(MODELS)}.")
    fetch.add_argument("--retries", type=int, default=4, metavar="N",
                       help="Tries again per source after a failure, with back-off (default: 4).")
    fetch.add_argument("--timeout", type=float, default=30, metavar="S",
                       help="Seconds without data before a try is given up (default: 30).")

    ver = actions.add_parser("verify", help="Check the md5 of the cached official files (hashes them again).")
    ver.add_argument("model", metavar="MODEL", nargs="?", choices=list(MODELS),
                     help="Only this model's files (default: all).")
    ver.add_argument("--json", action="store_true", help="Print the results as JSON on stdout.")

    imp = actions.add_parser("import", help="Copy a local model file into the cache (verified by md5).",
                             description="Copy a model file you downloaded elsewhere into the model cache. "
                             "Without --model/--backend/--precision the file is recognised by its md5.")
    imp.add_argument("path", metavar="PATH", help="The model file.")
    imp.add_argument("--model", choices=list(MODELS), help="The model it must be.")
    imp.add_argument("--backend", choices=list(BACKEND_FORMAT), help="The backend that will load it.")
    imp.add_argument("--precision", choices=PRECISIONS, help="Its precision.")


def run(args: argparse.Namespace) -> int:
    """Carry out ``mlperf-wizard models ACTION``; user errors are raised as WizardError."""
    action = getattr(args, "models_action", None) or "list"
    return {"list": _list, "fetch": _fetch, "verify": _verify, "import": _import}[action](args)


def _state(status: download.OfficialStatus) -> str:
    if status.state == "partial":
        return f"partial ({human_size(status.partial_bytes)})"
    return status.state


# --------------------------------------------------------------------------------------------- list


def _list(args: argparse.Namespace) -> int:
    statuses = [download.file_status(spec, file) for spec, file in download.official_files()]
    if getattr(args, "json", False):
        print(json.dumps({"cache": str(download.official_dir()), "mirrors": download.mirror_bases(),
                          "files": [s.to_dict() for s in statuses]}, indent=2))
        return 0
    console = Console(highlight=False)
    table = Table(box=box.SIMPLE_HEAD, padding=0, show_edge=False)
    table.add_column("model", no_wrap=True)
    table.add_column("format", no_wrap=True)
    table.add_column("prec", no_wrap=True)
    table.add_column("file / md5", no_wrap=True)
    table.add_column("size", justify="right", no_wrap=True)
    table.add_column("state", no_wrap=True)
    for s in statuses:
        style = STATE_STYLE.get(s.state, "")
        label = {"wrong checksum": "wrong md5"}.get(s.state, s.state)  # short: the table must fit 80 columns
        table.add_row(s.model, s.file.backend_format, s.file.precision,
                      f"{escape(s.file.filename)}\n[dim]{s.file.md5}[/]", human_size(s.size or s.partial_bytes or None),
                      f"[{style}]{label}[/]")
    console.print(table)
    console.print(f"Cache: {escape(str(download.official_dir()))}\n"
                  "Fetch one: mlperf-wizard models fetch MODEL [--backend B] [--precision P]\n"
                  f"No internet? Set {download.MIRROR_ENV} to a local mirror's URL,\n"
                  "or copy the file over and run: mlperf-wizard models import PATH")
    return 0


# -------------------------------------------------------------------------------------------- fetch


class _FetchProgress:
    """A live line on a terminal; elsewhere a plain line every few seconds. Notes go on their own line."""

    def __init__(self, out: TextIO, name: str):
        self.out = out
        self.name = name
        self.tty = out.isatty()
        self.line_open = False
        self.started: tuple[float, int] | None = None
        self.last_plain = 0.0

    def _text(self, done: int, total: int | None) -> str:
        now = time.monotonic()
        if self.started is None or done < self.started[1]:
            self.started = (now, done)
        elapsed = now - self.started[0]
        rate = (done - self.started[1]) / elapsed if elapsed > 0.5 else None
        of = f" of {human_size(total)} ({100 * done / total:.0f}%)" if total else ""
        parts = [f"{self.name}  {human_size(done)}{of}"]
        if rate:
            parts.append(f"{human_size(int(rate))}/s")
            if total and total > done:
                parts.append(f"ETA {int((total - done) / rate)} s")
        return "  ".join(parts)

    def __call__(self, done: int, total: int | None) -> None:
        text = self._text(done, total)
        if self.tty:
            self.out.write("\r\x1b[K" + text)
            self.line_open = True
        elif time.monotonic() - self.last_plain >= PLAIN_INTERVAL_S or (total and done >= total):
            self.last_plain = time.monotonic()
            self.out.write(text + "\n")
        self.out.flush()

    def close_line(self) -> None:
        if self.line_open:
            self.out.write("\n")
            self.out.flush()
            self.line_open = False

    def note(self, text: str) -> None:
        self.close_line()
        self.out.write(f"  {text}\n")
        self.out.flush()


def _fetch(args: argparse.Namespace) -> int:
    if args.timeout <= 0:
        raise WizardError(f"--timeout must be more than 0 seconds, not {args.timeout:g}.", "e.g. --timeout 30.")
    spec, file = download.find_official(args.model, args.backend, args.precision)
    status = download.file_status(spec, file)
    if status.verified:
        print(f"{download.describe(spec, file)} is already in the cache, verified: {status.path}")
        return 0
    print(f"Fetching {download.describe(spec, file)}")
    if status.state == "wrong checksum":
        print(f"  the cached file has the wrong md5 ({status.md5}): downloading it again")
    elif status.partial_bytes:
        print(f"  resuming: {human_size(status.partial_bytes)} already downloaded")
    for url in download.sources(file):
        print(f"  source: {url}")
    sys.stdout.flush()
    progress = _FetchProgress(sys.stderr, file.filename)
    try:
        path = download.fetch_official(file, progress=progress, notify=progress.note, retries=max(0, args.retries),
                                       timeout_s=args.timeout)
    except KeyboardInterrupt:
        progress.close_line()
        part = status.path.with_name(status.path.name + download.PART_SUFFIX)
        kept = part.stat().st_size if part.is_file() else 0
        print(f"interrupted: {human_size(kept)} kept in {part}; run the same command again to resume.", file=sys.stderr)
        return 130
    finally:
        progress.close_line()
    print(f"Saved {path} (md5 {file.md5} verified)")
    return 0


# ------------------------------------------------------------------------------------------- verify


def _verify(args: argparse.Namespace) -> int:
    statuses = [download.file_status(spec, file, use_cache=False)
                for spec, file in download.official_files(args.model)]
    bad = [s for s in statuses if s.present and not s.verified]
    if args.json:
        print(json.dumps([s.to_dict() for s in statuses], indent=2))
        return 1 if bad else 0
    for s in statuses:
        what = f"{s.model:<9} {s.file.backend_format:<10} {s.file.precision:<4} {s.file.filename}"
        if s.state == "wrong checksum":
            print(f"{what}: WRONG CHECKSUM (md5 {s.md5}, expected {s.file.md5}) {s.path}")
        else:
            print(f"{what}: {_state(s)}" + (f" {s.path}" if s.present else ""))
    broken_synthetic = _verify_synthetic(args.model)
    if broken_synthetic and not bad:
        return 1
    if bad:
        print(f"{len(bad)} cached file(s) are corrupt or not the official file. Fix: fetch them again with "
              "`mlperf-wizard models fetch MODEL --backend B --precision P` (the file is replaced once the new "
              "one is verified), or import the right file with `mlperf-wizard models import PATH`.",
              file=sys.stderr)
        return 1
    if not any(s.present for s in statuses):
        print("No official file is in the cache (" + str(download.official_dir()) + ").")
    return 0


def _verify_synthetic(model: str | None) -> int:
    """Hash every cached synthetic model against its integrity record; print each; how many are broken."""
    folder = synthetic_path(MODELS["resnet50"], "full").parent
    broken = 0
    for path in sorted(folder.glob("*.onnx")) if folder.is_dir() else []:
        if model and not path.name.startswith(f"{model}-"):
            continue
        problem = check_file(path, deep=True)
        if problem is None:
            print(f"synthetic {path.name}: verified {path}")
        else:
            broken += 1
            print(f"synthetic {path.name}: CORRUPT ({problem}) {path}")
    if broken:
        print(f"{broken} cached synthetic model(s) are corrupt. Fix: none needed, the next run rebuilds them "
              "(or delete them now).", file=sys.stderr)
    return broken


# ------------------------------------------------------------------------------------------- import


def _import(args: argparse.Namespace) -> int:
    src = Path(args.path).expanduser()
    print(f"Checking {src} ...", flush=True)
    spec, file, path = download.import_model_file(src, model=args.model, backend=args.backend,
                                                  precision=args.precision)
    print(f"Imported {download.describe(spec, file)}: {path} (md5 verified)")
    return 0
