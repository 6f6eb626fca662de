"""Spreadsheet formula injection: a cell that starts with ``=``, ``+``, ``-``, ``@`` (or a tab /
carriage return) would run as a formula when a CSV or workbook is opened; tag values and names
come from Azure and may be hostile, so such cells get a leading apostrophe (OWASP's advice)."""

from __future__ import annotations

import pandas as pd

TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(series: pd.Series) -> pd.Series:
    """The same strings, with formula-looking values made inert."""
    text = series.astype("string").fillna("")
    risky = text.str.startswith(TRIGGERS)
    return text.where(~risky, "'" + text)


def neutralise_frame(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object or str(out[col].dtype) == "string":
            out[col] = neutralise(out[col])
    return out
