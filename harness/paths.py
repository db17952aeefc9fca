"""Where mlperf-wizard keeps things: one module, overridable by environment variables.

``MLPERF_WIZARD_HOME`` relocates everything (config, cache, results, state) under one folder;
tests and CI use it. Without it the platform's conventions apply (XDG on Linux).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

APP = "mlperf-wizard"
HOME_ENV = "MLPERF_WIZARD_HOME"
RESULTS_ENV = "MLPERF_WIZARD_RESULTS"



def _shipped_profiles() -> Path:
    """The shipped profiles: inside the installed package (a wheel), else the checkout's ``profiles/``.

    setup.py copies the checkout's ``profiles/`` into the wheel as ``harness/shipped_profiles``; an
    editable install reads the checkout's folder directly, so an edit there is seen at once.
    """
    packaged = Path(__file__).resolve().parent / "shipped_profiles"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parent.parent / "profiles"


SHIPPED_PROFILES = _shipped_profiles()


@dataclass(frozen=True)
class Locations:
    """Every folder the tool reads or writes."""

    config: Path
    """Saved profiles and settings."""
    cache: Path
    """Models, datasets, the detection cache: safe to delete, rebuilt on demand."""
    results: Path
    """One directory per run, never overwritten."""
    state: Path
    """Small records kept between runs: sustained targets, the run index."""

    @property
    def profiles(self) -> Path:
        return self.config / "profiles"

    @property
    def models(self) -> Path:
        return self.cache / "models"

    @property
    def datasets(self) -> Path:
        return self.cache / "datasets"

    def as_dict(self) -> dict[str, str]:
        return {
            "config": str(self.config),
            "profiles": str(self.profiles),
            "shipped_profiles": str(SHIPPED_PROFILES),
            "cache": str(self.cache),
            "models": str(self.models),
            "datasets": str(self.datasets),
            "results": str(self.results),
            "state": str(self.state),
        }


def locations() -> Locations:
    """The folders in force now (read from the environment on every call)."""
    home = os.environ.get(HOME_ENV)
    if home:
        root = Path(home).expanduser().resolve()
        loc = Locations(root / "config", root / "cache", root / "results", root / "state")
    else:
        loc = Locations(
            Path(platformdirs.user_config_dir(APP)),
            Path(platformdirs.user_cache_dir(APP)),
            Path(platformdirs.user_data_dir(APP)) / "results",
            Path(platformdirs.user_state_dir(APP)),
        )
    results = os.environ.get(RESULTS_ENV)
    if results:
        loc = Locations(loc.config, loc.cache, Path(results).expanduser().resolve(), loc.state)
    return loc
