"""Tables that fit the terminal: a cell too long for its column wraps (folds) instead of being cut with
an ellipsis, so part numbers, ranges and option names stay whole on an 80-column terminal."""

from __future__ import annotations

from typing import Any


def folded(table: Any) -> Any:
    """`table` (a rich Table) with every column set to fold overflowing text; returns it."""
    for col in table.columns:
        col.overflow = "fold"
    return table

