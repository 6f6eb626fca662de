"""The hand-rolled writers under the reports (bulk sheet rows, CSV lines) give back exactly what
was written when read by openpyxl and Python's csv module, awkward text included."""

from __future__ import annotations

import csv

import pandas as pd
import pytest
from openpyxl import Workbook, load_workbook

from reports.readiness_csv import write_csv
from reports.sheet_table import TableLayout, write_table

AWKWARD = ["plain", "a & b <c> \"q\"", " leading space", "trailing space ", "tab\tinside",
           "line\nbreak", "comma, and \"quotes\"", "ünïcødé ✓", "", None, "bell\x07gone",
           "=1+2", "+1", "-1", "@SUM(A1)", "\tstarts with tab"]


def _frame() -> pd.DataFrame:
    n = len(AWKWARD)
    return pd.DataFrame({
        "text": pd.array(AWKWARD, dtype="string"),
        "count": pd.array([*list(range(n - 1)), None], dtype="Int64"),
        "share": [i / 10 for i in range(n - 1)] + [float("nan")],
        "flag": [i % 2 == 0 for i in range(n)],
        "url": [f"https://portal.azure.com/#resource/vm{i}?a=1&b=2" for i in range(n)],
    })


def _expected_text(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    value = value.replace("\x07", "")
    return "'" + value if value[0] in "=+-@\t" else value


def test_sheet_rows_read_back_exactly(tmp_path):
    book = Workbook(write_only=True)
    ws = book.create_sheet("T")
    frame = _frame()
    write_table(ws, frame, TableLayout(links={"text": "url"}, percent=["share"]))
    book.save(tmp_path / "t.xlsx")
    sheet = load_workbook(tmp_path / "t.xlsx")["T"]
    rows = list(sheet.iter_rows(min_row=2, values_only=True))
    assert [r[0] for r in rows] == [_expected_text(v) for v in AWKWARD]
    assert [r[1] for r in rows] == [*list(range(len(AWKWARD) - 1)), None]
    assert rows[3][2] == pytest.approx(0.3) and rows[-1][2] is None
    assert [r[3] for r in rows] == [i % 2 == 0 for i in range(len(AWKWARD))]
    assert sheet.cell(2, 3).number_format == "0.0%"
    links = [sheet.cell(n, 1).hyperlink for n in range(2, len(AWKWARD) + 2)]
    assert [link.target if link else None for link in links] == [
        url if text else None for url, text in zip(frame["url"], AWKWARD, strict=True)]
    assert sheet.max_column == 4  # the URL column feeds the links and is not shown


def test_csv_reads_back_as_written_and_neutralised(tmp_path):
    frame = _frame()
    path = write_csv(frame, tmp_path / "t.csv")
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == list(frame.columns)
    expected = [_expected_text(v) or "" for v in AWKWARD]
    expected = [v if "\x07" not in (orig or "") else (orig or "") for v, orig in
                zip(expected, AWKWARD, strict=True)]
    assert [r[0] for r in rows[1:]] == expected
    assert rows[-1][1] == "" and rows[1][1] == "0"
    assert rows[1][3] == "True"
