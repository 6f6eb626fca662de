"""One table on one write-only sheet: header in row 1 (or under a short preface), frozen,
filterable, columns sized to fit, text made formula-safe, optional hyperlinks, percentages and
readiness colours. Every sheet but Summary is one of these. Rows go through ``xlsx_fast`` (cell
XML rendered in bulk); links look like links by one conditional format, not per-cell styles."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from .safe_cells import safe_cells
from .xlsx_fast import add_links, enable, render_rows
from .xlsx_style import (
    PERCENT,
    colour_readiness,
    header_row,
    look_like_links,
    set_widths,
    styled,
)


@dataclass
class TableLayout:
    """How a frame is shown. ``headers`` renames columns for readers (default: the column
    names); ``links`` maps a shown column to the column holding its URL (not shown itself), or
    to itself for a column of URLs."""

    headers: dict[str, str] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)
    percent: Sequence[str] = ()
    readiness: Sequence[str] = ()
    widths: dict[str, float] = field(default_factory=dict)
    preface: Sequence[tuple[str, Font | None]] = ()  # lines above the table


def write_table(ws: Any, frame: pd.DataFrame, layout: TableLayout | None = None) -> int:
    """Write ``frame`` to ``ws``; return the sheet row of the header."""
    layout = layout or TableLayout()
    url_columns = {url for shown, url in layout.links.items() if url != shown}
    shown = [c for c in frame.columns if c not in url_columns]
    names = [layout.headers.get(c, c) for c in shown]
    columns = [safe_cells(frame[c].tolist()) for c in shown]
    percent_style = styled(ws, 0.0, number_format=PERCENT).style_id if layout.percent else 0
    set_widths(ws, names, columns, {layout.headers.get(k, k): v
                                    for k, v in layout.widths.items()})
    header = len(layout.preface) + (1 if layout.preface else 0) + 1
    last = header + len(frame)
    # A write-only sheet writes its view (the frozen panes) with the first row: set it first.
    ws.freeze_panes = f"A{header + 1}"
    ws.auto_filter.ref = f"A{header}:{get_column_letter(max(len(shown), 1))}{max(last, header)}"
    enable(ws)
    for text, font in layout.preface:
        ws.append([styled(ws, text, font=font) if font else text])
    if layout.preface:
        ws.append([])

    first = header + 1
    styles = [percent_style if name in layout.percent else 0 for name in shown]
    for name, url in layout.links.items():
        n = shown.index(name)
        letter = get_column_letter(n + 1)
        targets, shown_values = frame[url].tolist(), columns[n]
        # Only cells with text get a link: an empty linked cell would be a hidden trap.
        rows = [r for r, (t, v) in enumerate(zip(targets, shown_values, strict=True))
                if isinstance(t, str) and t.startswith("https://") and v not in (None, "")]
        add_links(ws, [f"{letter}{first + r}" for r in rows], [targets[r] for r in rows])
        if len(frame):
            look_like_links(ws, f"{letter}{first}:{letter}{last}")
    for name in layout.readiness:
        if len(frame):
            letter = get_column_letter(shown.index(name) + 1)
            colour_readiness(ws, f"{letter}{first}:{letter}{last}")

    ws.append(header_row(ws, names))
    for chunk in render_rows(columns, first, styles):
        ws.append(chunk)
    return header
