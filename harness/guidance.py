"""Guidance for every choice: each option of a profile field, enabled or not, and why.

This is the question model the TUI forms and the plain prompts both render: the fields and their allowed
values come from :mod:`harness.profile`, the verdicts from the coverage table merged with detection.
Choices are guided in order (model, backend, device, precision): each option is judged given the choices
before it, and is runnable when at least one combination through it can run here.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import catalogue
from .coverage import Verdict, assess, load_table
from .detect import Detection
from .models.families import supports_real_dataset
from .models.registry import MODELS, official_file
from .paths import locations
from .profile import FIELD_BY_NAME, Profile, device_kind

ORDER = ("model", "backend", "device", "precision")
RANK = {"verified": 0, "works": 1, "untested": 2, "no-device": 3, "not-installed": 4, "broken": 5,
        "unsupported": 6, "unknown": 7}


@dataclass(frozen=True)
class Option:
    """One allowed value of a field, as a front end shows it."""

    value: str
    enabled: bool
    status: str
    """A Verdict.here value for the coverage fields, 'ok' or 'not-defined' otherwise."""
    reason: str
    install_command: str | None = None

    @property
    def label(self) -> str:
        if self.status in ("ok", "works", "verified"):
            return self.value + (" (verified here)" if self.status == "verified" else "")
        return f"{self.value} ({self.status}: {self.reason})" if self.reason else f"{self.value} ({self.status})"


def _best(verdicts: list[Verdict]) -> Verdict | None:
    return min(verdicts, key=lambda v: RANK.get(v.here, 99), default=None)


def _verdicts_through(profile: Profile, field: str, value: str, detection: Detection | None) -> list[Verdict]:
    """Verdicts of every table row that keeps the choices before ``field`` and sets ``field`` to ``value``."""
    fixed = {name: getattr(profile, name) for name in ORDER[: ORDER.index(field)]}
    fixed[field] = value
    out = []
    for row in load_table():
        if all(getattr(row, k) == v for k, v in fixed.items()):
            out.append(assess(row.model, row.backend, row.device, row.precision, detection))
    return out


def options(field: str, profile: Profile, detection: Detection | None = None) -> list[Option]:
    """Every allowed value of ``field`` with whether it can be picked now, and why not."""
    f = FIELD_BY_NAME[field]
    if field in ORDER:
        out = []
        for value in f.choices:
            best = _best(_verdicts_through(profile, field, value, detection))
            if best is None:
                out.append(Option(value, False, "unknown", "not offered with the choices above"))
            else:
                if best.runnable and best.here in ("works", "verified"):
                    reason = ""
                elif best.here in ("unsupported", "broken") and best.row is not None:
                    reason = best.row.note
                else:
                    reason = best.reason
                out.append(Option(value, best.runnable, best.here, reason, best.install_command))
        return out
    if field == "scenarios":
        spec = MODELS[profile.model]
        return [Option(s, (why := spec.scenario_problem(s)) is None, "not-defined" if why else "ok", why or "")
                for s in f.choices]
    refusals = _refusals(field, profile)
    return [Option(value, value not in refusals, "unsupported" if value in refusals else "ok",
                   refusals.get(value, "")) for value in f.choices]


def _refusals(field: str, profile: Profile) -> dict[str, str]:
    """Values of the non-coverage fields that the engine would refuse for this profile, with the reason
    (the same checks make_plan makes, asked before the user picks rather than after)."""
    if field == "implementation":
        return {"cpp": "the C++ harness is not part of mlperf-wizard yet"}
    if field == "dataset_source":
        spec = MODELS[profile.model]
        if not supports_real_dataset(profile.model):
            why = f"reading the real {spec.dataset} is not supported yet"
            return {"official": why, "local": why}
        from .datasets import store

        if store.official_dataset_dir(profile.model) is None:
            return {"official": f"the {spec.dataset} is not prepared: `mlperf-wizard datasets fetch` or "
                                "`import` it (or give a folder: local)"}
        return {}
    if field == "compile":
        modes = catalogue.backend(profile.backend).compile_modes
        return {m: f"the {profile.backend} backend has no compile step" for m in catalogue.COMPILE_MODES
                if m not in modes}
    if field == "model_source":
        official = official_file(MODELS[profile.model], profile.backend, profile.precision)
        if official is None:
            return {"official": f"MLCommons publishes no {profile.precision} model for {profile.backend}"}
        needed = official.derived_from or official.filename
        if not (locations().models / "official" / needed).is_file():
            return {"official": f"{needed} is not in the model cache (download it, or give it "
                                "with model_path)"}
    return {}


def nearest_runnable(profile: Profile, detection: Detection | None = None) -> Profile:
    """``profile`` with model, backend, device and precision moved, in order, to runnable values where the
    current ones cannot run (what a form does after the user changes an earlier choice)."""
    values = {}
    current = profile
    for field in ORDER:
        opts = options(field, current, detection)
        chosen = getattr(current, field)
        kind = device_kind(chosen) if field == "device" else chosen  # cuda:1 is judged as a cuda
        if not any(o.value == kind and o.enabled for o in opts):
            runnable = [o for o in opts if o.enabled]
            if runnable:
                chosen = min(runnable, key=lambda o: RANK.get(o.status, 99)).value
                values[field] = chosen
                current = current.with_values({field: chosen})
    spec = MODELS[current.model]
    scenarios = tuple(s for s in current.scenarios if spec.scenario_problem(s) is None) or ("Offline",)
    if scenarios != current.scenarios:
        current = current.with_values({"scenarios": list(scenarios)})
    if current.compile in _refusals("compile", current):  # a backend without that compile step
        current = current.with_values({"compile": "off"})
    return current


def required_scenarios(profile: Profile) -> tuple[str, ...]:
    """The scenarios a submission in the profile's category must include for its model."""
    return MODELS[profile.model].scenarios.get(profile.category, ())
