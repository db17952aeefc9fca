"""Ships the top-level ``profiles/`` folder inside the wheel as ``harness/shipped_profiles``.

The shipped profiles live at the checkout's root (where users and the README find them), which is
outside every package, so plain package data cannot reach them. Everything else is in pyproject.toml.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

PROFILES = Path(__file__).resolve().parent / "profiles"


class BuildPyWithProfiles(build_py):
    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "harness" / "shipped_profiles"
        target.mkdir(parents=True, exist_ok=True)
        for source in sorted(PROFILES.glob("*.yaml")):
            self.copy_file(str(source), str(target / source.name))


setup(cmdclass={"build_py": BuildPyWithProfiles})
