"""The one YAML reader: safe tags only, and bounded so a hostile file cannot exhaust time or memory.

A few hundred bytes of nested anchors and aliases ("billion laughs") expand to billions of nodes when
constructed. :class:`BoundedLoader` counts aliases and the nodes they stand for while composing and
refuses a document over :data:`MAX_ALIASES`, :data:`MAX_NODES`, :data:`MAX_DEPTH` or :data:`MAX_BYTES`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

MAX_BYTES = 1_000_000
MAX_ALIASES = 100
MAX_NODES = 100_000
"""Nodes of the document once every alias is expanded."""
MAX_DEPTH = 50
QUOTE_LIMIT = 60


class YamlLimitError(yaml.YAMLError):
    """The document is larger than the reader allows (bytes, aliases, expanded nodes or nesting)."""

    def __init__(self, problem: str, line: int | None = None):
        super().__init__(problem)
        self.problem = problem
        self.line = line
        self.problem_mark = None

    def __str__(self) -> str:
        return self.problem


def quoted(value: Any, limit: int = QUOTE_LIMIT) -> str:
    """``repr(value)`` cut to ``limit`` characters with an ellipsis: safe to put any user input in a message."""
    try:
        text = repr(value)
    except ValueError:  # an int longer than Python prints
        text = f"<{type(value).__name__} too long to print>"
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _size(node: yaml.Node, depth: int, memo: dict[int, int]) -> int:
    """Nodes under ``node`` with aliases expanded (shared nodes are counted each time they are used)."""
    if depth > MAX_DEPTH:
        raise YamlLimitError(f"nested deeper than {MAX_DEPTH} levels", node.start_mark.line + 1)
    known = memo.get(id(node))
    if known is not None:
        return known
    total = 1
    if isinstance(node, yaml.SequenceNode):
        for child in node.value:
            total += _size(child, depth + 1, memo)
            if total > MAX_NODES:
                break
    elif isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            total += _size(key, depth + 1, memo) + _size(value, depth + 1, memo)
            if total > MAX_NODES:
                break
    if total > MAX_NODES:
        raise YamlLimitError(f"expands to more than {MAX_NODES:,} values (nested aliases?)",
                             node.start_mark.line + 1)
    memo[id(node)] = total
    return total


class BoundedLoader(yaml.SafeLoader):
    """A SafeLoader that refuses documents over the module's limits, raising :class:`YamlLimitError`."""

    def __init__(self, stream: str):
        if len(stream) > MAX_BYTES:
            raise YamlLimitError(f"larger than {MAX_BYTES:,} characters")
        super().__init__(stream)
        self._aliases = 0
        self._depth = 0

    def compose_node(self, parent, index):  # noqa: ANN001 - PyYAML's signature
        line = self.peek_event().start_mark.line + 1
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise YamlLimitError(f"more than {MAX_ALIASES} aliases (*name)", line)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise YamlLimitError(f"nested deeper than {MAX_DEPTH} levels", line)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_document(self):
        node = super().compose_document()
        if node is not None:
            _size(node, 0, {})
        return node


def load_text(text: str) -> Any:
    """The one document in ``text``, constructed with safe tags only, within the limits."""
    loader = BoundedLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def load_file(path: str | Path) -> Any:
    """:func:`load_text` of a UTF-8 file (OSError and UnicodeDecodeError pass through)."""
    path = Path(path)
    with path.open(encoding="utf-8") as stream:
        text = stream.read(MAX_BYTES + 1)
    return load_text(text)
