"""readiness.xlsx read back as a user's spreadsheet would: every sheet, its header, filters,
frozen panes, hyperlinks, charts and numbers, which must equal readiness.csv and summary.json."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
from collections import Counter
from dataclasses import replace

import pytest
from openpyxl import load_workbook

from flows.assess import run_assessment
from flows.emulated import emulated
from reports.labels import READINESS_LABELS
from reports.workbook import write_readiness_workbook
from tasks.settings import load_settings
from tests.reports.fleet import HOSTILE_NAME, HOSTILE_TAGS, first_fleet, second_fleet

SHEETS = ["Summary", "VMs", "Blockers", "Subscriptions", "Vaults and policies", "Not assessed",
          "Rules", "Changes", "Cost"]


def _run(tmp_path, fleet, name):
    settings = load_settings(environ={}, flags={"state_store": f"sqlite:///{tmp_path}/state.db"})
    with emulated(settings, fleet) as (_emu, emu_settings):
        return run_assessment(emu_settings, tmp_path / name)


@pytest.fixture(scope="module")
def assessed(prefect_api, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reports")
    first = _run(tmp, first_fleet(), "first")
    second = _run(tmp, second_fleet(), "second")
    return first, second


@pytest.fixture(scope="module")
def book(assessed):
    return load_workbook(assessed[1].files["readiness.xlsx"])


def _csv_rows(path):
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.reader(fh))


def _table(ws, header_row=1):
    rows = list(ws.iter_rows(min_row=header_row, values_only=True))
    return list(rows[0]), [list(r) for r in rows[1:]]


def _section(ws, title):
    """Rows after the Summary section whose heading starts with ``title``, up to a blank."""
    rows = list(ws.iter_rows(values_only=True))
    start = next(n for n, r in enumerate(rows) if isinstance(r[0], str)
                 and r[0].startswith(title))
    out = []
    for row in rows[start + 1:]:
        if row[0] is None:
            break
        out.append(list(row))
    return out


def test_the_assess_run_leaves_every_report_file(assessed):
    first, second = assessed
    assert set(first.files) == {"readiness.csv", "blockers.csv", "readiness.xlsx",
                                "summary.json"}
    assert set(second.files) == {"readiness.csv", "blockers.csv", "changes.csv",
                                 "readiness.xlsx", "summary.json"}


def test_sheets_come_in_the_documented_order(book, assessed):
    assert book.sheetnames == SHEETS
    first_book = load_workbook(assessed[0].files["readiness.xlsx"])
    assert "Changes" not in first_book.sheetnames  # no previous assessment of the scope


def test_vms_sheet_is_readiness_csv_with_one_row_per_vm(book, assessed):
    csv_rows = _csv_rows(assessed[1].files["readiness.csv"])
    header, rows = _table(book["VMs"])
    assert header == csv_rows[0]
    assert header[:14] == ["vm_id", "vm_name", "subscription_id", "resource_group", "location",
                           "vm_size", "vault", "policy_name", "readiness", "blockers",
                           "warnings", "unknowns", "infos", "target_policy"]
    assert len(rows) == len(csv_rows) - 1 == assessed[1].summary["vms"]
    as_text = [["" if v is None else str(v) for v in row] for row in rows]
    normalise = {"True": "True", "False": "False"}
    assert [[normalise.get(v, v) for v in r] for r in as_text] == csv_rows[1:]


def test_vms_sheet_filters_freezes_links_and_colours(book, assessed):
    ws = book["VMs"]
    n = assessed[1].summary["vms"]
    last_col = ws.cell(1, ws.max_column).column_letter
    assert ws.freeze_panes == "A2"
    assert ws.auto_filter.ref == f"A1:{last_col}{n + 1}"
    for row in range(2, n + 2):
        link = ws.cell(row, 2).hyperlink
        assert link is not None and link.target == (
            f"https://portal.azure.com/#resource{ws.cell(row, 1).value}/overview")
    readiness_ranges = [str(cf.sqref) for cf in ws.conditional_formatting]
    assert f"I2:I{n + 1}" in readiness_ranges
    rules = [r for cf in ws.conditional_formatting if str(cf.sqref) == f"I2:I{n + 1}"
             for r in cf.rules]
    assert {r.formula[0].strip('"') for r in rules} == set(READINESS_LABELS)
    assert all(ws.column_dimensions[c].width >= 8 for c in ("A", "B", "I"))


def test_summary_numbers_equal_the_csv_and_summary_json(book, assessed):
    summary = json.loads(assessed[1].files["summary.json"].read_text())
    csv_rows = _csv_rows(assessed[1].files["readiness.csv"])
    readiness = Counter(r[8] for r in csv_rows[1:])
    headline = _section(book["Summary"], "VMs by readiness")
    assert headline[0][:3] == ["Readiness", "VMs", "Share"]
    by_label = {row[0]: row[1:3] for row in headline[1:]}
    total = summary["vms"]
    for value, label in READINESS_LABELS.items():
        count, share = by_label[label]
        assert count == summary["by_readiness"][value] == readiness.get(value, 0)
        assert share == pytest.approx(count / total)
    assert by_label["Total"][0] == total == len(csv_rows) - 1


def test_summary_names_scope_pack_and_version(book, assessed):
    summary = assessed[1].summary
    values = {r[0]: r[1] for r in book["Summary"].iter_rows(max_col=2, values_only=True)
              if r[0]}
    assert values["Assessment"] == summary["assessment_id"]
    assert values["Rule pack"].startswith("ga-2025-07")
    assert values["Tool version"] == summary["tool_version"]
    assert values["Scope"].startswith("2 subscription(s)")
    assert values["Complete"].startswith("yes")


def test_summary_charts_read_the_tables_beside_them(book):
    ws = book["Summary"]
    charts = ws._charts
    assert len(charts) == 4
    refs = [[s.val.numRef.f for s in c.series] for c in charts]
    headline = next(r for r in ws.iter_rows(min_col=1, max_col=1)
                    if r[0].value == "Readiness")[0].row
    assert refs[0] == [f"'Summary'!$B${headline + 1}:$B${headline + 6}"]
    assert charts[0].series[0].cat.numRef.f == f"'Summary'!$A${headline + 1}:$A${headline + 6}"
    blockers = next(r for r in ws.iter_rows(min_col=1, max_col=1)
                    if r[0].value == "Rule")[0].row
    top = len(book["Blockers"]["A"]) and sum(
        1 for r in book["Blockers"].iter_rows(min_row=2, values_only=True) if r[1] == "blocker")
    assert refs[1] == [f"'Summary'!$B${blockers + 1}:$B${blockers + min(top, 10)}"
                       if top > 1 else f"'Summary'!$B${blockers + 1}"]
    # readiness by subscription and by region: one stacked series per readiness value
    for chart in charts[2:]:
        assert chart.grouping == "stacked"
        assert len(chart.series) == len(READINESS_LABELS)
        columns = [ref.split("!")[1].split(":")[0].split("$")[1] for ref in
                   (s.val.numRef.f for s in chart.series)]
        assert columns == ["B", "C", "D", "E", "F", "G"]


def test_blockers_sheet_counts_match_the_csv(book, assessed):
    csv_rows = _csv_rows(assessed[1].files["readiness.csv"])
    fired: Counter[str] = Counter()
    for row in csv_rows[1:]:
        for column in (9, 10, 11, 12):
            fired.update(filter(None, row[column].split(";")))
    header, rows = _table(book["Blockers"])
    assert header[:5] == ["Rule", "Severity", "Category", "Title", "VMs affected"]
    assert {r[0]: r[4] for r in rows} == dict(fired)
    opted_out = next(r for r in rows if r[0] == "OPTED_OUT")
    assert opted_out[1] == "blocker" and opted_out[6]  # remediation given
    link = book["Blockers"].cell(rows.index(opted_out) + 2, 8).hyperlink
    assert link is not None and link.target.startswith("https://learn.microsoft.com/")
    blockers_csv = _csv_rows(assessed[1].files["blockers.csv"])
    assert [r[0] for r in blockers_csv[1:]] == [r[0] for r in rows]


def test_subscriptions_sheet_adds_up(book, assessed):
    header, rows = _table(book["Subscriptions"])
    assert header[:3] == ["Subscription", "Name", "VMs"]
    assert sum(r[2] for r in rows) == assessed[1].summary["vms"]
    names = {r[1] for r in rows}
    assert names == {"contoso-prod", "contoso-dev"}


def test_vaults_sheet_says_whether_the_target_policy_exists(book):
    header, rows = _table(book["Vaults and policies"])
    col = {name: n for n, name in enumerate(header)}
    source = [r for r in rows if r[col["Source policy"]] == "enhanced-daily"]
    assert len(source) == 2  # one per vault
    for row in source:
        assert row[col["Crash-consistent policy they move to"]] == "enhanced-daily-crash"
        assert row[col["Target policy exists"]] == "yes"
        assert row[col["VMs on it"]] >= row[col["Ready"]] > 0


def test_not_assessed_and_rules_sheets(book, assessed):
    assert book["Not assessed"]["A1"].value == "Every scope in the request was read."
    header, rows = _table(book["Rules"], header_row=3)
    assert header[:3] == ["Rule", "Severity used", "Pack severity"]
    assert [r[0] for r in rows] == [r.id for r in assessed[1].report.pack.rules]
    assert book["Rules"].freeze_panes == "A4"


def test_changes_sheet_lists_what_moved_since_the_previous_assessment(book, assessed):
    header, rows = _table(book["Changes"], header_row=3)
    by_name = {r[header.index("vm_name")]: r for r in rows}
    change = header.index("change")
    assert "moved_to_crash_consistent" in by_name["vm-1111-0"][change]
    assert "new_blockers" in by_name["vm-1111-1"][change]
    assert "OPTED_OUT" in by_name["vm-1111-1"][header.index("new_blockers")]
    assert by_name["vm-1111-2"][header.index("readiness_after")] == "ready_with_conditions"
    changes_csv = _csv_rows(assessed[1].files["changes.csv"])
    assert len(changes_csv) - 1 == len(rows)
    counts = assessed[1].summary["changes"]["by_change"]
    assert counts["moved_to_crash_consistent"] == 1


def test_cost_sheet_says_units_only_without_prices(book, assessed):
    ws = book["Cost"]
    assert "units" in ws["A1"].value.lower()
    header, rows = _table(ws, header_row=3)
    assert "PI units" in header and not any("Monthly cost" in str(h) for h in header)
    cost = assessed[1].summary["cost"]
    assert cost["priced"] is False
    assert sum(r[header.index("PI units")] for r in rows) == pytest.approx(
        cost["totals"]["pi_units"])


def test_hostile_names_and_tags_never_become_formulas(book, assessed):
    for ws in book.worksheets:
        for row in ws.iter_rows():
            for cell in row:
                assert cell.data_type != "f", f"{ws.title}!{cell.coordinate} is a formula"
    header, rows = _table(book["VMs"])
    hostile = next(r for r in rows if r[1] == "'" + HOSTILE_NAME)
    tags = hostile[header.index("tags")]
    for value in HOSTILE_TAGS.values():
        assert value in tags
    assert hostile[header.index("resource_group")] == "'-rg-hostile"
    csv_rows = _csv_rows(assessed[1].files["readiness.csv"])
    row = next(r for r in csv_rows if r[1] == "'" + HOSTILE_NAME)
    assert row[3] == "'-rg-hostile"
    for path in assessed[1].files.values():
        if path.suffix == ".csv":
            for line in path.read_text(encoding="utf-8").splitlines()[1:]:
                for cell in next(csv.reader([line])):
                    assert not cell or cell[0] not in "=+-@", f"{path.name}: {cell!r}"


def test_partial_errors_show_in_red_on_summary_and_not_assessed(assessed, tmp_path):
    report = assessed[1].report
    errors = [{"scope": "subscriptions 3333", "error": "Resource Graph answered 503",
               "retry": "ccmigrate assess --subscription 3333 --out DIR"}]
    broken = replace(report, summary={**report.summary, "partial_errors": errors,
                                      "complete": False})
    wb = load_workbook(write_readiness_workbook(broken, tmp_path / "partial.xlsx"))
    summary = wb["Summary"]
    complete = next(r for r in summary.iter_rows(max_col=2) if r[0].value == "Complete")[1]
    assert complete.value.startswith("NO") and complete.font.color.rgb.endswith("C00000")
    error_cell = next(c for r in summary.iter_rows(max_col=2) for c in r
                      if c.value == "Resource Graph answered 503")
    assert error_cell.font.color.rgb.endswith("C00000")
    header, rows = _table(wb["Not assessed"], header_row=3)
    assert header == ["Scope", "Error", "Retry with"]
    assert rows == [["subscriptions 3333", "Resource Graph answered 503",
                     "ccmigrate assess --subscription 3333 --out DIR"]]


def test_a_spreadsheet_program_opens_the_workbook(assessed, tmp_path):
    office = shutil.which("libreoffice") or shutil.which("soffice")
    if office is None:
        pytest.skip("no spreadsheet program installed (libreoffice); CI does not install one")
    proc = subprocess.run([office, "--headless", "--convert-to", "pdf", "--outdir",
                           str(tmp_path), str(assessed[1].files["readiness.xlsx"])],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    pdf = tmp_path / "readiness.pdf"
    assert pdf.exists() and pdf.stat().st_size > 1000
