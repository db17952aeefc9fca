"""The CLI at its edges: a reader that goes away, a model path that is not a file, too many threads."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.parametrize("command", [("coverage", "--json"), ("locate",), ("profiles", "list")])
def test_a_closed_stdout_ends_quietly(home: Path, command: tuple[str, ...]) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first write, as with `| head -1` on a long output
    proc = subprocess.run([sys.executable, "-m", "wizard.cli", *command], stdout=write_end,
                          stderr=subprocess.PIPE, text=True, timeout=120, stdin=subprocess.DEVNULL)
    os.close(write_end)
    assert proc.returncode == 141, proc.stderr
    assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr
    assert "BrokenPipe" not in proc.stderr


@pytest.mark.parametrize(("path", "what"), [("/dev/zero", "is a character device"), ("/tmp", "is a folder")])
def test_a_model_path_that_is_not_a_file_says_what_it_is(cli, path: str, what: str) -> None:
    proc = cli("run", "--model", "resnet50", "--backend", "onnxruntime", "--model-path", path, "--dry-run")
    assert proc.returncode == 2
    assert f"Model file {path} {what}, not a regular model file" in proc.stderr
    assert "does not exist" not in proc.stderr


def test_a_missing_model_path_does_not_exist(cli, tmp_path: Path) -> None:
    missing = tmp_path / "nothing.onnx"
    proc = cli("run", "--model", "resnet50", "--backend", "onnxruntime", "--model-path", missing, "--dry-run")
    assert proc.returncode == 2
    assert f"Model file {missing} does not exist" in proc.stderr


def test_more_threads_than_cores_is_warned_about(cli) -> None:
    cores = os.cpu_count() or 1
    proc = cli("run", "--synthetic", "--threads", str(cores + 1), "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert f"--threads {cores + 1} oversubscribes the {cores} logical cores" in proc.stdout
    fits = cli("run", "--synthetic", "--threads", "1", "--dry-run")
    assert "oversubscribes" not in fits.stdout
