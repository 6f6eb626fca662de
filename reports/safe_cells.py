"""Spreadsheet formula injection: a cell that starts with ``=``, ``+``, ``-``, ``@`` (or a tab /
carriage return) would run as a formula when a CSV or workbook is opened; tag values and names
come from Azure and may be hostile, so such text cells get a leading apostrophe (OWASP's
advice). Numbers and booleans are not text and stay as they are."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

TRIGGERS = frozenset("=+-@\t\r")
_TRIGGER_AFTER_NEWLINE = re.compile("\n[=+@\t\r-]")


def _missing(value: object) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and value != value)


def plain_text_joined(values: Sequence[object]) -> str | None:
    """The values joined by newlines when every value is a string and none starts with a
    trigger (so the usual column skips the per-cell pass entirely: the types in one C pass,
    then one search of the joined column for a trigger after a newline; a value holding a
    newline then a trigger only costs the per-cell pass); else None. The CSV writer reads its
    quoting needs from the same text."""
    if not values:
        return ""
    if set(map(type, values)) != {str}:
        return None
    joined = "\n".join(values)  # type: ignore[arg-type]
    if joined[:1] in TRIGGERS or _TRIGGER_AFTER_NEWLINE.search(joined) is not None:
        return None
    return joined


def _all_plain_text(values: Sequence[object]) -> bool:
    return plain_text_joined(values) is not None


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



def safe_column(series: pd.Series) -> list[str]:
    """``safe_values`` of a frame column, with integer and boolean columns turned to text in
    one numpy pass (the same texts: ``str`` of each number or bool, missing as ""); numbers and
    booleans are never text, so they need no formula check. Any other column goes through
    ``safe_values``."""
    dtype = series.dtype
    boolean = pd.api.types.is_bool_dtype(dtype)
    if len(series) and (boolean or pd.api.types.is_signed_integer_dtype(dtype)):
        missing = series.isna().to_numpy(bool)
        if boolean:
            flags = series.to_numpy(dtype=bool, na_value=False)
            texts = np.where(flags, "True", "False").astype(object)
        else:
            texts = series.to_numpy(dtype="int64", na_value=0).astype(str).astype(object)
        texts[missing] = ""
        return texts.tolist()
    return safe_values(series.tolist())
