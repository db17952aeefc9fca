"""harness/ is the engine: it never imports a UI package, so it works with none installed."""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import harness

UI = ("textual", "textual_plotext", "questionary", "rich", "prompt_toolkit", "wizard")
HARNESS = Path(harness.__file__).parent


def test_no_ui_import_in_harness_sources():
    offenders = []
    for path in HARNESS.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
            offenders += [f"{path.relative_to(HARNESS)}: {n}" for n in names if n.split(".")[0] in UI]
    assert not offenders


def test_importing_every_harness_module_loads_no_ui_package():
    """What the frameworks themselves load is theirs (TensorFlow imports rich and prompt_toolkit through
    Keras): they are imported first, and the harness's modules must add no UI package to them."""
    from harness import catalogue

    modules = [m.name for m in pkgutil.walk_packages(harness.__path__, "harness.")]
    frameworks = [b.module for b in catalogue.BACKENDS]
    code = ("import importlib, importlib.util, sys\n"
            f"for f in {frameworks!r}:\n"
            "    if importlib.util.find_spec(f): importlib.import_module(f)\n"
            f"before = {{n for n in sys.modules if n.split('.')[0] in {UI!r}}}\n"
            f"for m in {modules!r}: importlib.import_module(m)\n"
            f"print(sorted(n for n in sys.modules if n.split('.')[0] in {UI!r} and n not in before))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
