"""`mlperf-wizard datasets`: list, fetch and import the MLPerf datasets.

The engine is harness.datasets.store. On an air-gapped cluster, serve the files from a local mirror and
set MLPERF_WIZARD_DATASET_MIRROR (or MLPERF_WIZARD_MODEL_MIRROR) to its base URL, or copy a dataset over
and `datasets import` it.
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
from harness.datasets import store
from harness.errors import WizardError

from .render import human_size

PLAIN_INTERVAL_S = 5.0
TTY_INTERVAL_S = 0.1
NAMES = [d.name for d in store.DATASETS.values()]
CHOICES = NAMES + list(store.DATASETS)
STATE_STYLE = {"ready": "green", "incomplete": "yellow", "missing": "dim"}
STAGE_LABEL = {"verify": "checking the tar's md5", "extract": "extracting the tar", "preprocess": "preprocessing",
               "preprocessing": "preprocessing", "annotations": "annotation files", "images": "images",
               "coco": "writing openimages-mlperf.json", "tokenise": "tokenising", "check": "checking"}
MIRROR_HELP = (f"No internet? Serve the files from a local mirror and set {store.DATASET_MIRROR_ENV} (or "
               f"{download.MIRROR_ENV}) to its base URL: SQuAD as <base>/dev-v1.1.json and <base>/vocab.txt, "
               "OpenImages as <base>/openimages/class-descriptions-boxable.csv, "
               "<base>/openimages/validation-annotations-bbox.csv and <base>/openimages/validation/<ImageID>.jpg.")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``datasets`` command and its actions to the CLI's subparsers."""
    datasets = subparsers.add_parser(
        "datasets", help="List, fetch and import the MLPerf datasets (ImageNet, OpenImages, SQuAD).",
        description="The datasets in the dataset cache: downloaded (SQuAD, OpenImages) or imported from a "
                    "folder you have (all three; ImageNet cannot be downloaded). A dataset is ready only once it "
                    f"is complete; an interrupted fetch resumes. {MIRROR_HELP}")
    actions = datasets.add_subparsers(dest="datasets_action", metavar="ACTION")

    ls = actions.add_parser("list", help="Each dataset: missing, incomplete or ready, with its path, size and "
                            "item count (the default).")
    ls.add_argument("--json", action="store_true", help="Print the list as JSON on stdout.")

    fetch = actions.add_parser("fetch", help="Download a dataset into the cache (squad, openimages).",
                               description="Download, verify and prepare a dataset. Ctrl-C keeps what was "
                               f"transferred; the same command resumes. {MIRROR_HELP}")
    fetch.add_argument("dataset", metavar="DATASET", choices=CHOICES,
                       help="squad or openimages (imagenet cannot be downloaded: import it).")
    fetch.add_argument("--max-images", type=int, metavar="N",
                       help="OpenImages only: a random subset of N images, as the reference's --max-images.")
    fetch.add_argument("--retries", type=int, default=4, metavar="N",
                       help="SQuAD: tries again per source after a failure, with back-off (default: 4).")
    fetch.add_argument("--timeout", type=float, default=30, metavar="S",
                       help="Seconds without data before a try is given up (default: 30).")

    ver = actions.add_parser("verify", help="Hash the prepared datasets against what was recorded when they "
                             "were prepared (source files, preprocessed arrays).")
    ver.add_argument("dataset", metavar="DATASET", nargs="?", choices=CHOICES,
                     help="Only this dataset (default: all).")

    imp = actions.add_parser("import", help="Check a dataset you already have and use it for runs.",
                             description="imagenet: a folder with val_map.txt and the JPEGs (or "
                             "ILSVRC2012_img_val.tar), checked and preprocessed, then used where it is. "
                             "openimages: a folder with annotations/openimages-mlperf.json and validation/data/, "
                             "checked, then used where it is. squad: a folder with dev-v1.1.json and vocab.txt "
                             "(or the json file), copied into the cache.")
    imp.add_argument("dataset", metavar="DATASET", choices=CHOICES, help=f"One of: {', '.join(NAMES)}.")
    imp.add_argument("path", metavar="PATH", help="The dataset folder (or file).")


def run(args: argparse.Namespace) -> int:
    """Carry out ``mlperf-wizard datasets ACTION``; user errors are raised as WizardError."""
    action = getattr(args, "datasets_action", None) or "list"
    return {"list": _list, "fetch": _fetch, "import": _import, "verify": _verify}[action](args)


def _verify(args: argparse.Namespace) -> int:
    """Print each prepared dataset as verified or with its broken files; 1 when any is broken."""
    chosen = [store.dataset(args.dataset)] if args.dataset else list(store.DATASETS.values())
    bad = 0
    for ds in chosen:
        broken = store.verify_dataset(ds.model)
        if broken is None:
            print(f"{ds.name}: not prepared")
        elif not broken:
            print(f"{ds.name}: verified")
        else:
            bad += 1
            print(f"{ds.name}: {len(broken)} CORRUPT file(s)")
            for path, why in broken.items():
                print(f"  {path}: {why}")
    if bad:
        print("Fix: prepared arrays are rebuilt by the next run (or `mlperf-wizard datasets import` again); "
              "a broken downloaded or imported file needs `mlperf-wizard datasets fetch` or `import` again.",
              file=sys.stderr)
        return 1
    return 0


# --------------------------------------------------------------------------------------------- list


def _list(args: argparse.Namespace) -> int:
    statuses = store.status()
    if getattr(args, "json", False):
        print(json.dumps({"cache": str(store.store_root()), "mirrors": store.dataset_mirror_bases(),
                          "datasets": [s.to_dict() for s in statuses]}, indent=2))
        return 0
    console = Console(highlight=False)
    table = Table(box=box.SIMPLE_HEAD, padding=(0, 1, 0, 0), show_edge=False)
    table.add_column("dataset", no_wrap=True)
    table.add_column("state", no_wrap=True)
    table.add_column("items", justify="right", no_wrap=True)
    table.add_column("size", justify="right", no_wrap=True)
    table.add_column("path / what to do")
    for s in statuses:
        style = STATE_STYLE.get(s.state, "")
        items = "-" if s.items is None else f"{s.items:,}"
        where = escape(str(s.path)) if s.path else ""
        note = escape(s.detail) if s.detail else ""
        if s.state == "ready" and s.official is False:
            note = f"[yellow]{note or 'not the official set'}[/]"
        text = "\n".join(t for t in (where, f"[dim]{note}[/]" if s.state != "ready" else note) if t)
        table.add_row(f"{s.dataset.name}\n[dim]{s.dataset.model}[/]", f"[{style}]{s.state}[/]", items,
                      human_size(s.size), text)
    console.print(table)
    console.print(f"Cache: {escape(str(store.store_root()))}\n"
                  "Fetch: mlperf-wizard datasets fetch squad|openimages [--max-images N]\n"
                  "Import: mlperf-wizard datasets import imagenet|openimages|squad PATH\n"
                  f"No internet? Set {store.DATASET_MIRROR_ENV} to a local mirror's URL, or import a copy.")
    return 0


# ---------------------------------------------------------------------------------------- progress


class _Progress:
    """A live line on a terminal; elsewhere a plain line every few seconds and when a stage ends."""

    def __init__(self, out: TextIO):
        self.out = out
        self.tty = out.isatty()
        self.line_open = False
        self.stage: str | None = None
        self.started: tuple[float, int] = (0.0, 0)
        self.last = 0.0
        self.finished: set[str] = set()

    def _text(self, stage: str, done: int, total: int | None) -> str:
        now = time.monotonic()
        elapsed = now - self.started[0]
        rate = (done - self.started[1]) / elapsed if elapsed > 0.5 else None
        in_bytes = store.counts_bytes(stage)
        label = stage.removeprefix("download ") if stage.startswith("download ") else STAGE_LABEL.get(stage, stage)
        amount = human_size if in_bytes else (lambda n: f"{n:,}")
        text = f"{label}  {amount(done)}"
        if total:
            text += f" of {amount(total)} ({100 * done / total:.0f}%)"
        if rate:
            text += f"  {human_size(int(rate))}/s" if in_bytes else f"  {rate:,.0f}/s"
            if total and total > done:
                text += f"  ETA {int((total - done) / rate)} s"
        return text

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        now = time.monotonic()
        if stage != self.stage:
            self.close_line()
            self.stage = stage
            self.started = (now, done)
            self.last = 0.0
        ended = total is not None and done >= total
        if ended and stage in self.finished:
            return
        if ended:
            self.finished.add(stage)
        if not ended and now - self.last < (TTY_INTERVAL_S if self.tty else PLAIN_INTERVAL_S):
            return
        self.last = now
        text = self._text(stage, done, total)
        if self.tty:
            self.out.write("\r\x1b[K" + text)
            self.line_open = True
        else:
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


def _interrupted(progress: _Progress, what: str) -> int:
    progress.close_line()
    print(f"interrupted: {what} kept; run the same command again to resume.", file=sys.stderr)
    return 130


# -------------------------------------------------------------------------------------------- fetch


def _fetch(args: argparse.Namespace) -> int:
    ds = store.dataset(args.dataset)
    if args.timeout <= 0:
        raise WizardError(f"--timeout must be more than 0 seconds, not {args.timeout:g}.", "e.g. --timeout 30.")
    if args.max_images is not None and ds.name != "openimages":
        raise WizardError("--max-images applies to openimages only.", f"drop it to fetch {ds.name}.")
    before = store.dataset_status(ds.model)
    if ds.name == "squad" and before.state == "ready" and before.official:
        print(f"{ds.title} is already prepared: {before.path}")
        return 0
    kwargs: dict = {}
    if ds.name == "squad":
        kwargs = {"retries": max(0, args.retries), "timeout_s": args.timeout}
        print(f"Fetching {ds.title}")
        for file in store.SQUAD_FILES:
            print(f"  {file.filename} (md5 {file.md5}) from: {', '.join(store.sources(file))}")
    elif ds.name == "openimages":
        kwargs = {"max_images": args.max_images, "timeout_s": args.timeout}
        sources = store.openimages_sources()
        subset = f" ({args.max_images} random images)" if args.max_images else ""
        print(f"Fetching {ds.title}{subset} into {store.dataset_dir(ds.model)}")
        print(f"  annotations: {sources.class_descriptions_url}, {sources.annotations_url}")
        print(f"  images: {sources.images_base_url.rstrip('/')}/validation/<ImageID>.jpg")
    if before.state == "incomplete" and before.size:
        print(f"  resuming: {human_size(before.size)} already there")
    sys.stdout.flush()
    progress = _Progress(sys.stderr)
    if ds.name == "squad":
        kwargs["notify"] = progress.note
    try:
        path = store.fetch_dataset(ds.model, progress, **kwargs)
    except KeyboardInterrupt:
        return _interrupted(progress, "what was downloaded is")
    finally:
        progress.close_line()
    after = store.dataset_status(ds.model)
    print(f"Ready: {path} ({_summary(after)})")
    return 0


def _summary(s: store.DatasetStatus) -> str:
    parts = [f"{s.items:,} {s.dataset.unit}" if s.items is not None else "", human_size(s.size) if s.size else ""]
    text = ", ".join(p for p in parts if p)
    if s.official is False:
        text += f"; NOT the official set: {s.detail or 'see mlperf-wizard datasets list'}"
    return text


# ------------------------------------------------------------------------------------------- import


def _import(args: argparse.Namespace) -> int:
    ds = store.dataset(args.dataset)
    src = Path(args.path).expanduser()
    print(f"Checking {src} as {ds.title} ...", flush=True)
    progress = _Progress(sys.stderr)

    def warn(text: str) -> None:
        progress.close_line()
        print(f"warning: {text}", file=sys.stderr, flush=True)

    try:
        path = store.import_dataset(ds.model, src, progress, notify=warn)
    except KeyboardInterrupt:
        return _interrupted(progress, "the work done so far is")
    finally:
        progress.close_line()
    after = store.dataset_status(ds.model)
    where = "used where it is" if path != store.dataset_dir(ds.model) else "copied into the cache"
    print(f"Imported {ds.title} ({where}): {path} ({_summary(after)})")
    return 0
