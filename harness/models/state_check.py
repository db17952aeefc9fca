"""Checking a state dict against the tensors a definition expects, framework-free: the mismatch in words."""

from __future__ import annotations

from collections.abc import Mapping

from ..errors import ModelError


def _listed(label: str, keys: list[str]) -> str:
    return f"{label} {', '.join(keys[:5])}" + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")


def mismatch(expected: Mapping[str, tuple[int, ...]], state: Mapping[str, object]) -> str | None:
    """"missing ...; unexpected ...; wrong shape ..." (up to five keys of each), or None when ``state`` has
    exactly the keys of ``expected`` with those shapes (anything with a ``shape``: numpy, torch)."""
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state)
                   if tuple(getattr(state[k], "shape", (None,))) != tuple(expected[k]))
    parts = [_listed(label, keys) for label, keys in
             (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)) if keys]
    return "; ".join(parts) or None


def check_state(expected: Mapping[str, tuple[int, ...]], state: Mapping[str, object], what: str, fix: str) -> None:
    """Raise :class:`ModelError` "The weights do not fit ``what``: ..." unless ``state`` fits ``expected``."""
    problem = mismatch(expected, state)
    if problem:
        raise ModelError(f"The weights do not fit {what}: {problem}.", fix)
