"""Reading a dataclass back from JSON written earlier, by this or another version, or damaged since.

:func:`from_json` keeps each field whose value has the type the dataclass declares (converting nested
dataclasses, and ints where a float is declared), drops the rest and says which it dropped. Whatever comes
back has the declared types, so the code that formats, sorts or compares records never meets a list where
it expects a string. Unknown keys (a newer version's) are ignored silently.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from functools import cache
from typing import Any, TypeVar, Union

T = TypeVar("T")

_MISSING = object()


class _Mismatch(Exception):
    pass


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _convert(value: Any, hint: Any) -> Any:
    """``value`` as ``hint`` describes it, or _Mismatch."""
    if hint is Any:
        return value
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        for option in typing.get_args(hint):
            try:
                return _convert(value, option)
            except _Mismatch:
                continue
        raise _Mismatch
    if hint is type(None):
        if value is None:
            return None
        raise _Mismatch
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise _Mismatch
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _Mismatch
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
        raise _Mismatch
    if hint is str:
        if isinstance(value, str):
            return value
        raise _Mismatch
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise _Mismatch
        args = typing.get_args(hint)
        item = args[0] if args else Any
        items = [_convert(v, item) for v in value]
        return items if origin is list else tuple(items)
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise _Mismatch
        key_hint, value_hint = typing.get_args(hint) or (Any, Any)
        return {_convert(k, key_hint): _convert(v, value_hint) for k, v in value.items()}
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise _Mismatch
        obj, dropped = from_json(hint, value)
        if obj is None or dropped:
            raise _Mismatch
        return obj
    raise _Mismatch  # a declared type this reader does not know: never guess


def from_json(cls: type[T], data: Any, fill: dict[str, Any] | None = None) -> tuple[T | None, list[str]]:
    """``cls`` built from the JSON object ``data``, and the names of the fields dropped as mistyped.

    A field that is missing or mistyped takes its default; a required one takes ``fill[name]``, or the
    whole record is unusable (None). A list of nested dataclasses keeps the items that read.
    """
    if not isinstance(data, dict):
        return None, ["(the record is not an object)"]
    values: dict[str, Any] = {}
    dropped: list[str] = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        raw = data.get(f.name, _MISSING)
        hint = _hints(cls)[f.name]
        if raw is not _MISSING:
            try:
                values[f.name] = _convert(raw, hint)
                continue
            except _Mismatch:
                kept = _items_that_read(raw, hint)
                if kept is not None:
                    values[f.name] = kept
                dropped.append(f.name)
                if kept is not None:
                    continue
        has_default = f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        if not has_default:
            if fill is None or f.name not in fill:
                return None, dropped or [f.name]
            values[f.name] = fill[f.name]
    return cls(**values), dropped


def _items_that_read(raw: Any, hint: Any) -> list | None:
    """For a ``list[...]`` field holding some bad items: the items that convert (None if not such a field)."""
    if typing.get_origin(hint) is not list or not isinstance(raw, list):
        return None
    (item,) = typing.get_args(hint) or (Any,)
    kept = []
    for v in raw:
        try:
            kept.append(_convert(v, item))
        except _Mismatch:
            continue
    return kept
