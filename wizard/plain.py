"""Plain prompts (questionary): the wizard for terminals where a full-screen app does not fit.

The questions are rendered from the profile's fields (:data:`harness.profile.FIELDS`) in their order and
their options from :func:`harness.guidance.options`: no list of choices is kept here. Nothing is written
until every question is answered, and profiles are written atomically, so Ctrl-C leaves nothing half-written.
"""

from __future__ import annotations

import io
import sys
from dataclasses import replace
from typing import Any, TextIO

import questionary
from prompt_toolkit.input import Input
from prompt_toolkit.output import Output, create_output

from harness import catalogue, coverage, guidance
from harness.detect import Detection, detect
from harness.errors import ProfileError, WizardError
from harness.plan import Plan, prepare
from harness.profile import (
    FIELDS,
    Field,
    Profile,
    equivalent_command,
    profile_name_problem,
    save_profile,
    saved_profile_path,
)
from harness.scenarios import any_latency, any_throughput

from .progress import run_headless, terminal_columns, wrap_text

# Only the Python reference harness exists (make_plan refuses cpp), so there is nothing to ask.
NOT_ASKED = ("implementation",)
ADVANCED = ("threads", "batch_size", "workers", "tune", "compile", "watchdog", "dataset_size")
# Fields that matter only given earlier answers (a target is per scenario kind, a path per local source).
ASKED_WHEN = {
    "compile": lambda p: bool(catalogue.backend(p.backend).compile_modes),
    "test_query_count": lambda p: p.style == "short",
    "target_qps": lambda p: any_throughput(p.scenarios),
    "target_latency": lambda p: any_latency(p.scenarios),
    "model_path": lambda p: p.model_source == "local",
    "dataset_path": lambda p: p.dataset_source == "local",
}
GROUP_TITLES = {"benchmark": "Benchmark", "run": "Run", "data": "Model and data", "submission": "Submission"}


class _Prompts:
    """questionary prompts on the given input/output; a cancelled prompt raises KeyboardInterrupt."""

    def __init__(self, input: Input | None, output: Output | None, out: TextIO):
        self.io = {k: v for k, v in (("input", input), ("output", output)) if v is not None}
        self.out = out
        """Where the text around the prompts goes."""

    def _ask(self, question: questionary.Question) -> Any:
        answer = question.unsafe_ask()
        if answer is None:
            raise KeyboardInterrupt
        return answer

    def select(self, message: str, choices: list[questionary.Choice], default: str | None) -> str:
        return self._ask(questionary.select(message, choices, default=default, **self.io))

    def checkbox(self, message: str, choices: list[questionary.Choice], validate) -> list[str]:
        return self._ask(questionary.checkbox(message, choices, validate=validate, **self.io))

    def text(self, message: str, default: str = "", validate=None) -> str:
        return self._ask(questionary.text(message, default=default, validate=validate, **self.io))

    def confirm(self, message: str, default: bool) -> bool:
        return self._ask(questionary.confirm(message, default=default, **self.io))


def _choice(option: guidance.Option, checked: bool = False) -> questionary.Choice:
    """An option as questionary shows it: a disabled one stays visible with its status (why, in full, is
    printed above the prompt by :func:`_why_not`: a choice line cannot wrap)."""
    if option.enabled:
        return questionary.Choice(option.label, value=option.value, checked=checked)
    return questionary.Choice(option.value, value=option.value, disabled=option.status)


def _why_not(options: list[guidance.Option], out: TextIO) -> None:
    """The reason (and install command) of each option that cannot be picked, wrapped to the terminal."""
    for option in options:
        if option.enabled or not (option.reason or option.install_command):
            continue
        why = option.reason or option.status
        if option.install_command:
            why += f"; install with `{option.install_command}`"
        print(_fit(f"  {option.value}: {why}", out), file=out, flush=True)


def _fit(text: str, out: TextIO) -> str:
    """``text`` wrapped between words to the terminal ``out`` writes to (80 columns elsewhere)."""
    return wrap_text(text, (terminal_columns(out) or 80) - 1)


def _validator(profile: Profile, f: Field):
    """questionary's validate=: True, or the profile's own error message (what the CLI prints).

    The message shows on one toolbar line under the prompt, which names the field already: the leading
    field name is dropped so the reason and the fix fit in 80 columns.
    """

    def check(raw: Any) -> bool | str:
        try:
            profile.with_values({f.name: raw})
        except ProfileError as exc:
            return str(exc).replace("\n  ", " ").removeprefix(f"{f.name}: ")
        return True

    return check


def _ask_field(ui: _Prompts, f: Field, profile: Profile, detection: Detection) -> Profile:
    question = f.label.capitalize()
    current = getattr(profile, f.name)
    opts = guidance.options(f.name, profile, detection)
    if f.kind == "choice":
        if not any(o.enabled for o in opts):
            coverage.check(profile.model, profile.backend, profile.device, profile.precision, detection)
        default = current if any(o.value == current and o.enabled for o in opts) else None
        _why_not(opts, ui.out)
        value = ui.select(question, [_choice(o) for o in opts], default)
        # A select answer is already canonical; 'local' is only consistent once its path is asked next.
        profile = replace(profile, **{f.name: value})
        return guidance.nearest_runnable(profile, detection) if f.name in guidance.ORDER else profile
    if f.kind == "choices":
        _why_not(opts, ui.out)
        values = ui.checkbox(question, [_choice(o, o.value in current) for o in opts], _validator(profile, f))
        return profile.with_values({f.name: values})
    raw = ui.text(question, "" if current is None else str(current), _validator(profile, f))
    return profile.with_values({f.name: raw})


def _ask_profile(ui: _Prompts, out: TextIO, detection: Detection) -> Profile:
    """Walk FIELDS in order; each coverage choice re-judges the options of the fields after it."""
    profile = guidance.nearest_runnable(Profile(), detection)
    group = advanced = submission = None
    for f in FIELDS:
        if f.name in NOT_ASKED or not ASKED_WHEN.get(f.name, lambda p: True)(profile):
            continue
        if f.name in ADVANCED:
            if advanced is None:
                print(_fit("  Advanced settings: " + ", ".join(n.replace("_", " ") for n in ADVANCED) + ".", out),
                      file=out, flush=True)
                advanced = ui.confirm("Change advanced settings?", default=False)
            if not advanced:
                continue
        if f.group == "submission":
            if submission is None:
                submission = profile.style == "submission" or ui.confirm(
                    "Set submission details (submitter, system name, results folder)?", default=False)
            if not submission:
                continue
        if f.group != group:
            group = f.group
            print(f"\n{GROUP_TITLES[group]}", file=out, flush=True)
        print(_fit(f"  {f.help}", out), file=out, flush=True)
        profile = _ask_field(ui, f, profile, detection)
    return profile.with_values({})  # the whole profile checked once more (a source and its path together)


def _save(ui: _Prompts, out: TextIO, profile: Profile) -> None:
    """Ask for a name until the profile is saved or the user declines; never replace without a yes."""
    default_name = f"{profile.model}-{profile.backend}-{profile.device}"
    while ui.confirm("Save as profile?", default=True):
        name = ui.text("Profile name", default_name, lambda t: profile_name_problem(t) or True)
        path = saved_profile_path(name)
        overwrite = path.exists()
        if overwrite and not ui.confirm(f"A profile named '{path.stem}' exists ({path}). Overwrite?",
                                        default=False):
            print(f"Kept {path} unchanged.", file=out, flush=True)
            continue
        save_profile(profile, path, overwrite=overwrite)
        print(f"Saved profile {path}\nRerun it with: mlperf-wizard run {path.stem}", file=out, flush=True)
        return


def launch_plan(plan: Plan, out: TextIO) -> int:
    """Run the plan shown to the user, as `mlperf-wizard run` does, with the headless progress on ``out``."""
    return run_headless(plan, out)[1]


def _streams(output: Output | TextIO | None) -> tuple[TextIO, Output | None]:
    """Where text goes and where prompts render: a prompt_toolkit Output, a text stream, or stdout."""
    if output is None:
        return sys.stdout, None
    if isinstance(output, Output):
        # A DummyOutput has no stream: the text is dropped with the prompts.
        return getattr(output, "stdout", None) or io.StringIO(), output
    return output, create_output(output)


def run_plain(*, input: Input | None = None, output: Output | TextIO | None = None,
              detection: Detection | None = None, launch: bool | None = None) -> int:
    """Ask every question, show the plan and the equivalent command, offer to save and to launch.

    ``output`` is a prompt_toolkit Output (prompts and text go there) or a text stream (text goes there,
    prompts render on it as plain text unless it is a terminal). Returns the CLI's exit codes
    (:func:`harness.runner.exit_code` for a run; 2 a user error, printed without a traceback; 130 cancelled).
    """
    out, prompt_output = _streams(output)
    ui = _Prompts(input, prompt_output, out)
    try:
        detection = detection or detect()
        profile = _ask_profile(ui, out, detection)
        plan = prepare(profile, detection)
        print("\n" + _fit(plan.describe(), out), file=out)
        # Not wrapped: it is copied as one line.
        print("Equivalent command: " + equivalent_command(profile), file=out, flush=True)
        _save(ui, out, profile)
        if not (ui.confirm("Launch now?", default=True) if launch is None else launch):
            return 0
        return launch_plan(plan, out)
    except (KeyboardInterrupt, EOFError):
        print("\ncancelled", file=out, flush=True)
        return 130
    except WizardError as exc:
        print(f"error: {exc}", file=out, flush=True)
        return exc.exit_code
