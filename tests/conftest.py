"""Shared fixtures: an isolated MLPERF_WIZARD_HOME and the real CLI run as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.models.registry import SYNTHETIC_VARIANT_ENV
from harness.paths import HOME_ENV, RESULTS_ENV
from harness.plan import TUNE_ENV

CliRunner = Callable[..., subprocess.CompletedProcess]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh MLPERF_WIZARD_HOME (config, cache, results, state) using the tiny synthetic model."""
    root = tmp_path / "home"
    root.mkdir()
    monkeypatch.setenv(HOME_ENV, str(root))
    monkeypatch.setenv(SYNTHETIC_VARIANT_ENV, "tiny")
    # Runs keep the plan's default SUT settings unless a test is about tuning (tests/test_tuning.py).
    monkeypatch.setenv(TUNE_ENV, "off")
    monkeypatch.delenv(RESULTS_ENV, raising=False)
    return root


@pytest.fixture
def cli(home: Path, tmp_path: Path) -> CliRunner:
    """``cli("run", "--dry-run", ...)``: runs ``python -m wizard.cli ARGS`` in ``tmp_path``.

    Keyword arguments: ``env`` (extra variables), ``timeout`` (seconds, default 180), ``cwd``.
    Returns the CompletedProcess with text stdout and stderr; it never raises on a non-zero exit.
    """

    def run(*args: str, env: dict[str, str] | None = None, timeout: float = 180,
            cwd: Path | None = None) -> subprocess.CompletedProcess:
        full_env = {**os.environ, **(env or {})}
        return subprocess.run([sys.executable, "-m", "wizard.cli", *map(str, args)], cwd=cwd or tmp_path,
                              env=full_env, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)

    return run
