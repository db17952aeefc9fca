"""Random corruptions of a finished run's files, and of a saved profile, never break the history
(issue 7, item 4): `results list/show/compare/export` still answer, for the damaged run with a warning
that names the file, and for every other run as before. Nothing but the project's own errors is raised.

Two real runs of the tiny synthetic model are made once; each example copies them, damages one file of
one run (a value replaced by random JSON or YAML at a random place, truncation, a flipped byte, the file
deleted or replaced by a folder) and runs the real CLI entry point in-process.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.models.registry import SYNTHETIC_VARIANT_ENV
from harness.paths import HOME_ENV, RESULTS_ENV
from wizard.cli import main

ACTIONS = (("list",), ("list", "--json"), ("list", "--sort", "value"), ("list", "--sort", "duration"),
           ("list", "--search", "resnet"), ("list", "--model", "resnet50"), ("show", "latest"),
           ("show", "previous"), ("show", "previous", "--json"), ("compare", "previous", "latest"),
           ("compare", "previous", "latest", "--json"), ("export",), ("export", "--format", "markdown"),
           ("export", "--format", "json"))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home with two finished runs (performance and accuracy) and one saved profile."""
    root = tmp_path_factory.mktemp("history") / "home"
    root.mkdir()
    env = {**os.environ, HOME_ENV: str(root), SYNTHETIC_VARIANT_ENV: "tiny"}
    env.pop(RESULTS_ENV, None)
    for count in ("16", "24"):
        done = subprocess.run([sys.executable, "-m", "wizard.cli", "run", "--mode", "both", "--test-query-count",
                               count, "--save", f"saved-{count}"], env=env, capture_output=True, text=True,
                              timeout=300, stdin=subprocess.DEVNULL)
        assert done.returncode in (0, 3), done.stderr
    return root


def brief(run: dict[str, Any]) -> tuple:
    """What `results list` shows of a run, without the paths (which differ between copies)."""
    return (run["run_id"], run["status"], run["model"], run["backend"], run["device"], run["precision"],
            run["scenarios"], run["profile_name"], [(t["scenario"], t["mode"], t["validity"], t["value"],
                                                    t["accuracy"]) for t in run["tests"]])


@pytest.fixture(scope="module")
def baseline(template: Path) -> dict[str, tuple]:
    env = {**os.environ, HOME_ENV: str(template)}
    env.pop(RESULTS_ENV, None)
    done = subprocess.run([sys.executable, "-m", "wizard.cli", "results", "list", "--json"], env=env,
                          capture_output=True, text=True, timeout=120, check=True)
    runs = json.loads(done.stdout)["runs"]
    assert len(runs) == 2 and not json.loads(done.stdout)["warnings"]
    return {r["run_id"]: brief(r) for r in runs}


def paths_in(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every place in a JSON/YAML document (the root included) a corruption can replace."""
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += paths_in(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += paths_in(v, (*prefix, i))
    return out


def replaced(document: Any, where: tuple, new: Any) -> Any:
    if not where:
        return new
    head, *rest = where
    document[head] = replaced(document[head], tuple(rest), new)
    return document


def run_files(home: Path) -> list[Path]:
    runs = sorted((home / "results").glob("*/run.json"))
    files = []
    for run_json in runs:
        folder = run_json.parent
        files += [folder / n for n in ("run.json", "profile.yaml", "environment.json", "plan.json")]
    files += sorted((home / "config" / "profiles").glob("*.yaml"))
    files += sorted((home / "state").glob("runs.jsonl"))
    return files


@st.composite
def corruption(draw) -> tuple[int, str, Any]:
    kind = draw(st.sampled_from(["value", "value", "value", "truncate", "flip", "delete", "folder"]))
    return draw(st.integers(0, 100)), kind, draw(json_values if kind == "value" else st.integers(0, 10**6))


def damage(path: Path, kind: str, arg: Any, pick: int) -> None:
    raw = path.read_bytes()
    if kind == "truncate":
        path.write_bytes(raw[: arg % (len(raw) + 1)])
    elif kind == "flip":
        at = arg % len(raw)
        path.write_bytes(raw[:at] + bytes([raw[at] ^ (1 << (arg % 8))]) + raw[at + 1:])
    elif kind == "delete":
        path.unlink()
    elif kind == "folder":
        path.unlink()
        path.mkdir()
    else:
        if path.suffix == ".jsonl":  # the index: one line replaced by a random JSON value
            lines = raw.decode().splitlines()
            lines[pick % len(lines)] = json.dumps(arg)
            path.write_text("\n".join(lines) + "\n")
            return
        is_json = path.suffix == ".json"
        document = json.loads(raw) if is_json else yaml.safe_load(raw)
        places = paths_in(document)
        document = replaced(document, places[pick % len(places)], arg)
        if is_json:
            path.write_text(json.dumps(document))
        else:
            path.write_text(yaml.safe_dump(document, allow_unicode=False))


def cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["results", *args])
    return code, out.getvalue(), err.getvalue()


@given(file_pick=st.integers(0, 100), change=corruption())
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_one_damaged_file_never_breaks_the_history(template: Path, baseline: dict[str, tuple], tmp_path_factory,
                                                   monkeypatch, file_pick: int, change) -> None:
    home = tmp_path_factory.mktemp("case") / "home"
    shutil.copytree(template, home, symlinks=True, ignore=lambda folder, names: ["cache"] if folder == str(template)
                    else [])
    index = home / "state" / "runs.jsonl"  # it names run directories by absolute path: point it at the copy
    index.write_text(index.read_text().replace(str(template), str(home)))
    monkeypatch.setenv(HOME_ENV, str(home))
    monkeypatch.setenv(SYNTHETIC_VARIANT_ENV, "tiny")
    files = run_files(home)
    target = files[file_pick % len(files)]
    pick, kind, arg = change
    damage(target, kind, arg, pick)

    for action in ACTIONS:
        code, out, err = cli(*action)
        assert "internal error" not in err, (action, target, kind, arg, err)
        assert "Traceback" not in err
        assert code in (0, 1, 2), (action, code, err)
        if action == ("list", "--json"):
            listed = json.loads(out)
            damaged_run = target.parent.name if target.parent.parent.name == "results" else None
            shown = {r["run_id"]: r for r in listed["runs"]}
            folders = {Path(r["run_dir"]).name for r in listed["runs"]}
            for run_id, expected in baseline.items():
                if run_id == damaged_run:
                    # listed (perhaps with less, its id itself perhaps damaged: found by its folder), or left
                    # out with a warning that names its file
                    assert run_id in folders or any(run_id in w for w in listed["warnings"]), listed["warnings"]
                elif target.suffix != ".jsonl" and target.parent.name != "profiles":
                    assert brief(shown[run_id]) == expected  # the other run is untouched
                else:
                    assert run_id in shown  # the runs live in the results folder whatever the index says
    shutil.rmtree(home.parent)
