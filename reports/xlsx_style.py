"""The workbook's look, in one place: readiness colours, header style, column widths, and the
cells that need a style in write-only mode (a styled cell costs a ``WriteOnlyCell``, so only
headings and a few summary cells get one; big sheets are coloured by conditional formatting)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from openpyxl.cell import WriteOnlyCell
from openpyxl.formatting.rule import CellIsRule, FormulaRule
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter

# readiness -> (fill for cells, darker colour for chart series, font colour)
READINESS_COLOURS: dict[str, tuple[str, str, str]] = {
    "ready": ("C6EFCE", "4CAF50", "006100"),
    "ready_with_conditions": ("E2F0D9", "A9D18E", "375623"),
    "not_ready": ("FFC7CE", "E53935", "9C0006"),
    "already_crash_consistent": ("DDEBF7", "5B9BD5", "1F4E78"),
    "not_protected": ("EDEDED", "A5A5A5", "404040"),
    "unknown": ("FFEB9C", "FFC000", "7F6000"),
}
HEADER_FILL = PatternFill("solid", fgColor="1F4E78")
HEADER_FONT = Font(bold=True, color="FFFFFF")
TITLE_FONT = Font(bold=True, size=16)
SECTION_FONT = Font(bold=True, size=12, color="1F4E78")
BOLD = Font(bold=True)
RED = Font(bold=True, color="C00000")
LINK_FONT = Font(color="0563C1", underline="single")
WRAP = Alignment(wrap_text=True, vertical="top")
PERCENT = "0.0%"
MIN_WIDTH, MAX_WIDTH, SAMPLE_ROWS = 8, 60, 2000


def styled(ws: Any, value: Any, *, font: Font | None = None, fill: PatternFill | None = None,
           number_format: str | None = None, wrap: bool = False,
           link: str | None = None) -> WriteOnlyCell:
    cell = WriteOnlyCell(ws, value=value)
    if link:
        cell.hyperlink = link
        cell.font = LINK_FONT
    if font is not None:
        cell.font = font
    if fill is not None:
        cell.fill = fill
    if number_format:
        cell.number_format = number_format
    if wrap:
        cell.alignment = WRAP
    return cell


def header_row(ws: Any, names: Sequence[str]) -> list[WriteOnlyCell]:
    return [styled(ws, name, font=HEADER_FONT, fill=HEADER_FILL) for name in names]


def readiness_fill(readiness: str) -> PatternFill:
    return PatternFill("solid", fgColor=READINESS_COLOURS[readiness][0])


def set_widths(ws: Any, header: Sequence[str], columns: Sequence[Sequence[Any]],
               fixed: dict[str, float] | None = None) -> None:
    """Widths that fit the header and a sample of the values (the first rows are enough to size
    a column, and reading every cell of 100k rows would cost more than the sheet is worth)."""
    fixed = fixed or {}
    for n, (name, values) in enumerate(zip(header, columns, strict=True), start=1):
        if name in fixed:
            width = fixed[name]
        else:
            longest = max((len(str(v)) for v in values[:SAMPLE_ROWS] if v is not None),
                          default=0)
            width = min(MAX_WIDTH, max(MIN_WIDTH, len(name) + 2, longest + 2))
        ws.column_dimensions[get_column_letter(n)].width = width


def colour_readiness(ws: Any, cell_range: str) -> None:
    """One conditional format per readiness value over the column: Excel paints it on open, so
    the writer never styles a cell of the big sheet."""
    for readiness, (fill, _, font) in READINESS_COLOURS.items():
        ws.conditional_formatting.add(cell_range, CellIsRule(
            operator="equal", formula=[f'"{readiness}"'],
            fill=PatternFill("solid", fgColor=fill, bgColor=fill), font=Font(color=font)))


def look_like_links(ws: Any, cell_range: str) -> None:
    """Blue underline for a column of hyperlinks, by conditional format instead of per cell."""
    first = cell_range.split(":")[0]
    ws.conditional_formatting.add(cell_range, FormulaRule(
        formula=[f"LEN({first})>0"], font=Font(color="0563C1", underline="single")))
