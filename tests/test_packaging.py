"""A regular (non-editable) install ships the profiles: build the wheel, install it in a fresh
virtual environment, and run the quickstart from there, far from the checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "harness", "wizard", "profiles")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Build from a copy of the sources, so no build/ folder of the checkout (stale files) takes part.
    src = tmp_path_factory.mktemp("src")
    for name in SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, src / name, ignore=shutil.ignore_patterns("__pycache__", "shipped_profiles"))
        else:
            shutil.copy2(source, src / name)
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "-w", str(out), "-q"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    (built,) = out.glob("mlperf_wizard-*.whl")
    return built


def test_the_wheel_holds_every_shipped_profile(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = sorted(p.name for p in (ROOT / "profiles").glob("*.yaml"))
    assert shipped and all(f"harness/shipped_profiles/{n}" in names for n in shipped)
    assert "harness/data/coverage.yaml" in names


def test_the_quickstart_runs_from_a_wheel_installed_in_a_fresh_venv(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True, timeout=120)
    python = env_dir / "bin" / "python"
    proc = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q",
                           str(wheel)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    # The dependencies come from this interpreter's site-packages, added as a plain path: its .pth files
    # (among them the editable install of the checkout) are not processed, so `harness` is the wheel's.
    (site,) = (env_dir / "lib").glob("python3*/site-packages")
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "deps.pth").write_text("\n".join(sorted(deps)) + "\n")
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    env = {**os.environ, "MLPERF_WIZARD_HOME": str(tmp_path / "home")}
    env.pop("PYTHONPATH", None)
    where = subprocess.run([str(python), "-c", "import harness; print(harness.__file__)"], cwd=cwd, env=env,
                           capture_output=True, text=True, timeout=60)
    assert Path(where.stdout.strip()).is_relative_to(env_dir), where.stdout + where.stderr
    tool = env_dir / "bin" / "mlperf-wizard"
    listed = subprocess.run([str(tool), "profiles", "list"], cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert "quickstart" in listed.stdout and str(env_dir) in listed.stdout
    dry = subprocess.run([str(tool), "run", "quickstart", "--dry-run"], cwd=cwd, env=env, capture_output=True,
                         text=True, timeout=120)
    assert dry.returncode == 0, dry.stderr
    assert "Offline" in dry.stdout and "resnet50" in dry.stdout
