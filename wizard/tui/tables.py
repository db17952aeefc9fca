"""Tables that fit the screen: columns are dropped whole, least important first, never cut mid-word."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text

SCROLLBAR = 2
"""Columns a DataTable keeps for its vertical scroll bar."""


def cell_width(cell) -> int:
    return cell.cell_len if isinstance(cell, Text) else Text(str(cell)).cell_len


def fitted_columns(columns: Sequence[str], labels: dict[str, str], cells: dict[str, list], width: int,
                   drop_first: Sequence[str], *, extra: int = 0) -> tuple[str, ...]:
    """The ``columns`` whose widest cell (or label) fit ``width`` together, dropping ``drop_first`` in order
    until they do. DataTable pads each cell by one column on either side; ``extra`` is added to the first
    column (a mark in front of a cell)."""
    def need(key: str) -> int:
        return max([cell_width(labels[key])] + [cell_width(c) for c in cells[key]]) + 2

    kept = list(columns)
    for drop in drop_first:
        if sum(need(k) for k in kept) + extra + SCROLLBAR <= width or len(kept) <= 2:
            break
        if drop in kept:
            kept.remove(drop)
    return tuple(kept)
