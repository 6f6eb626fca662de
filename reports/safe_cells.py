"""Spreadsheet formula injection: a cell that starts with ``=``, ``+``, ``-``, ``@`` (or a tab /
carriage return) would run as a formula when a CSV or workbook is opened; tag values and names
come from Azure and may be hostile, so such text cells get a leading apostrophe (OWASP's
advice). Numbers and booleans are not text and stay as they are."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pandas as pd

TRIGGERS = frozenset("=+-@\t\r")


def _missing(value: object) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and value != value)


def _all_plain_text(values: Sequence[object]) -> bool:
    """True when every value is a string and none starts with a trigger: one set of first
    characters per column, so the usual column skips the per-cell pass entirely."""
    firsts = {v[:1] if type(v) is str else None for v in values}
    return None not in firsts and TRIGGERS.isdisjoint(firsts)


def safe_values(values: Iterable[object]) -> list[str]:
    """Cell texts for a CSV: missing values as "", formula-looking text made inert, numbers and
    booleans as their plain text."""
    values = values if isinstance(values, list) else list(values)
    if _all_plain_text(values):
        return values  # type: ignore[return-value]
    out: list[str] = []
    append = out.append
    for value in values:
        if _missing(value):
            append("")
        elif isinstance(value, str):
            append("'" + value if value and value[0] in TRIGGERS else value)
        else:
            append(str(value))
    return out


def safe_cells(values: Iterable[object]) -> list[object]:
    """Cell values for a workbook: like ``safe_values`` but numbers and booleans keep their type
    (Excel sorts and sums them) and missing values become empty cells."""
    values = values if isinstance(values, list) else list(values)
    if _all_plain_text(values):
        return values
    out: list[object] = []
    append = out.append
    for value in values:
        if _missing(value):
            append(None)
        elif isinstance(value, str):
            append("'" + value if value and value[0] in TRIGGERS else value)
        else:
            append(value)
    return out

