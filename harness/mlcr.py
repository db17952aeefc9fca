"""The closest equivalent `mlcr` command (MLCommons' automation, as its documentation writes it), for users
who follow the MLCommons inference docs. mlcr has no direct equivalent for some choices (synthetic
models, the watchdog); those are left out."""

from __future__ import annotations

import shlex

from .profile import Profile

ROUND_TAG = "_r5.1-dev"
STYLE_TAGS = {"short": "_find-performance", "full": "_full", "submission": "_submission,_full"}
EXECUTION_MODE = {"short": "test", "full": "valid", "submission": "valid"}


def mlcr_command(profile: Profile) -> str:
    """One line per scenario is what mlcr needs: it takes one --scenario at a time."""
    lines = []
    for scenario in profile.scenarios:
        parts = [f"mlcr run-mlperf,inference,{STYLE_TAGS[profile.style]},{ROUND_TAG}",
                 f"--model={profile.model}" + ("-99" if profile.model == "bert" else ""),
                 "--implementation=reference", f"--framework={profile.backend}",
                 f"--category={profile.category}", f"--scenario={scenario}",
                 f"--execution_mode={EXECUTION_MODE[profile.style]}", f"--device={profile.device}", "--quiet"]
        if profile.style == "short":
            parts.append(f"--test_query_count={profile.test_query_count}")
        if profile.mode != "both" and profile.style != "submission":
            parts.append(f"--mode={profile.mode}")
        if profile.precision == "int8":
            parts.append("--precision=int8")
        if profile.style == "submission":
            parts.append(f"--submitter={shlex.quote(profile.submitter)}")
            parts.append(f"--division={profile.division}")
        if profile.system_name:
            parts.append(f"--hw_name={shlex.quote(profile.system_name)}")
        lines.append(" ".join(parts))
    return "\n".join(lines)
