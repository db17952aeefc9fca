"""Hostile profile YAML: the loader raises only ProfileError (with a short message), quickly."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.errors import ProfileError
from harness.profile import parse_profile_text

QUICKSTART = (Path(__file__).resolve().parents[1] / "profiles" / "quickstart.yaml").read_text(encoding="utf-8")
BOMB = "".join(f"{c}: &{c} [{', '.join(['*' + p] * 9) if p else 'x, x, x, x, x, x, x, x, x'}]\n"
               for p, c in zip(["", "a", "b", "c", "d", "e", "f", "g"], "abcdefgh", strict=True))
FRAGMENTS = ["&a ", "*a", "<<: *a", "!!int ", "!!float ", "!!bool ", "!!timestamp ", "!!binary ", "!!python/name:x ",
             "? ", "[", "]", "{", "}", ": ", "- ", "'", '"', "\\0", "\x00", "\t", "\n  ", "#", "%YAML 1.1\n", "---\n",
             "9" * 5000, "version: true\n", "!!str ", "|\n", "~"]


def check(text: str) -> None:
    start = time.monotonic()
    try:
        parse_profile_text(text, "p.yaml")
    except ProfileError as exc:
        assert len(str(exc)) < 1000, str(exc)[:2000]
    assert time.monotonic() - start < 2


@pytest.mark.parametrize("text", [
    BOMB, "version: 1\n" + BOMB.replace("h:", "model:"), "version: 1\nmodel: !!int abc", "version: 1\nmodel: !!float x",
    "version: 1\nmodel: !!bool maybe", "version: 1\nmodel: !!timestamp x", "a: &a {model: bert}\nversion: 1\n<<: *a",
    "version: 1\n? [a, b]\n: 1", "version: 1\n!!python/name:os.system : 1", "version: 1\nthreads: " + "1" * 5000,
    "version: 1\nmodel: x\x01y", "[" * 10000, "a: &a [*a]\nversion: 1"])
def test_hostile_documents_are_profile_errors(text: str) -> None:
    with pytest.raises(ProfileError) as exc:
        parse_profile_text(text, "p.yaml")
    assert "p.yaml" in str(exc.value) and len(str(exc.value)) < 1000


def test_a_nul_in_a_path_and_a_non_integer_version_are_refused() -> None:
    with pytest.raises(ProfileError, match="control character"):
        parse_profile_text('version: 1\nmodel_path: "a\\0b"')
    for version in ("true", "1.0", "'1'"):
        with pytest.raises(ProfileError, match="version"):
            parse_profile_text(f"version: {version}\n")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=400))
def test_random_text_raises_only_profile_errors(text: str) -> None:
    check(text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, len(QUICKSTART)), st.sampled_from(FRAGMENTS) | st.characters()),
                max_size=6), st.lists(st.integers(0, len(QUICKSTART) - 1), max_size=4))
def test_mutated_quickstart_raises_only_profile_errors(inserts, deletes) -> None:
    text = QUICKSTART
    for position in sorted(deletes, reverse=True):
        text = text[:position] + text[position + 1:]
    for position, fragment in inserts:
        position = min(position, len(text))
        text = text[:position] + fragment + text[position:]
    check(text)
