"""The ``Summary`` sheet: the answer in ten seconds. Everything on it comes from summary.json
(``reports.summary``), so the sheet, the file and the terminal printout show the same numbers.

Tables run down columns A-H; native Excel charts sit to their right and read those tables.
"""

from __future__ import annotations

from typing import Any

from openpyxl.chart import BarChart, PieChart, Reference
from openpyxl.chart.series import DataPoint
from openpyxl.styles import Font

from tasks.inventory.schema import READINESS_VALUES

from .labels import READINESS_LABELS
from .safe_cells import safe_cells
from .xlsx_style import (
    BOLD,
    PERCENT,
    READINESS_COLOURS,
    RED,
    SECTION_FONT,
    TITLE_FONT,
    header_row,
    readiness_fill,
    styled,
)

TOP_SUBSCRIPTIONS = 20
AT_RISK_ROWS = 10
CHART_COLUMN = "J"


class _Rows:
    """Rows appended in order, remembering where each table landed for the charts."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.rows: list[list[Any]] = []

    @property
    def next(self) -> int:
        return len(self.rows) + 1

    def add(self, *cells: Any) -> int:
        self.rows.append(list(cells))
        return len(self.rows)

    def section(self, title: str, font: Font = SECTION_FONT) -> None:
        self.add()
        self.add(styled(self.ws, title, font=font))

    def header(self, *names: str) -> int:
        return self.add(*header_row(self.ws, names))


def _scope_text(summary: dict[str, Any]) -> str:
    scope = summary["scope"]
    subs = len(scope.get("subscriptions") or [])
    parts = [f"{subs} subscription(s)"]
    if scope.get("management_groups"):
        parts.append("management group(s) " + ", ".join(scope["management_groups"]))
    excluded = [f"{len(scope[k])} {k.removeprefix('exclude_').replace('_', ' ')}"
                for k in ("exclude_subscriptions", "exclude_resource_groups", "exclude_tags")
                if scope.get(k)]
    if excluded:
        parts.append("excluding " + ", ".join(excluded))
    return "; ".join(parts)


def _overrides_text(summary: dict[str, Any]) -> str:
    overrides = summary["rule_pack"].get("overrides") or []
    if not overrides:
        return "none"
    return "; ".join(", ".join(f"{k}={v}" for k, v in o.items()) for o in overrides)


def _sub_label(summary: dict[str, Any], sub: str) -> str:
    name = (summary.get("subscription_names") or {}).get(sub)
    return f"{name} ({sub[:8]})" if name else sub


def _readiness_matrix(rows: _Rows, summary: dict[str, Any], first: str,
                      table: list[tuple[str, dict[str, int]]]) -> tuple[int, int]:
    """A label column then one column per readiness value and a total; returns the header row
    and the last row."""
    header = rows.header(first, *READINESS_LABELS.values(), "Total")
    for label, counts in table:
        rows.add(*safe_cells([label]), *(counts[r] for r in READINESS_VALUES), counts["vms"])
    return header, rows.next - 1


def _stacked_chart(ws: Any, title: str, header: int, last: int, anchor: str,
                   axis_title: str) -> None:
    chart = BarChart()
    chart.type = "bar"
    chart.grouping = "stacked"
    chart.overlap = 100
    chart.title = title
    chart.y_axis.title = "VMs"
    chart.x_axis.title = axis_title
    data = Reference(ws, min_col=2, max_col=1 + len(READINESS_VALUES), min_row=header,
                     max_row=last)
    chart.add_data(data, titles_from_data=True)
    chart.set_categories(Reference(ws, min_col=1, min_row=header + 1, max_row=last))
    for series, readiness in zip(chart.series, READINESS_VALUES, strict=True):
        series.graphicalProperties.solidFill = READINESS_COLOURS[readiness][1]
        series.graphicalProperties.line.solidFill = READINESS_COLOURS[readiness][1]
    chart.width, chart.height = 20, max(7.5, 0.6 * (last - header) + 3)
    _readable_axes(chart)
    ws.add_chart(chart, anchor)


def _readable_axes(chart: BarChart) -> None:
    """First table row at the top of a horizontal bar chart (Excel draws categories bottom-up
    by default), and both axes shown (recent Excel hides axes openpyxl leaves unset)."""
    chart.x_axis.scaling.orientation = "maxMin"
    chart.x_axis.delete = False
    chart.y_axis.delete = False


def write_summary_sheet(ws: Any, summary: dict[str, Any], *, has_changes_sheet: bool) -> None:
    rows = _Rows(ws)
    total = summary["vms"]
    rows.add(styled(ws, "Crash-consistent VM backup readiness", font=TITLE_FONT))
    rows.add()
    pack = summary["rule_pack"]
    meta = [
        ("Assessment", summary["assessment_id"]),
        ("Assessed at (UTC)", summary["created_at"]),
        ("Scope", _scope_text(summary)),
        ("Cloud", summary["cloud"]),
        ("Rule pack", f"{pack['name']} ({pack['doc_version']})"),
        ("Rule overrides", _overrides_text(summary)),
        ("Tool version", summary["tool_version"]),
        ("VMs assessed", total),
        ("VMs excluded by settings", summary.get("vms_excluded", 0)),
    ]
    for label, value in meta:
        rows.add(styled(ws, label, font=BOLD), *safe_cells([value]))
    errors = summary["partial_errors"]
    if errors:
        rows.add(styled(ws, "Complete", font=BOLD),
                 styled(ws, f"NO: {len(errors)} scope(s) could not be read; their VMs are not "
                            "counted (see 'Not assessed')", font=RED))
    else:
        rows.add(styled(ws, "Complete", font=BOLD), "yes: every scope was read")

    rows.section("VMs by readiness")
    readiness_header = rows.header("Readiness", "VMs", "Share")
    for value, label in READINESS_LABELS.items():
        count = summary["by_readiness"][value]
        rows.add(styled(ws, label, fill=readiness_fill(value)), count,
                 styled(ws, count / total if total else 0.0, number_format=PERCENT))
    readiness_last = rows.next - 1
    rows.add(styled(ws, "Total", font=BOLD), styled(ws, total, font=BOLD),
             styled(ws, 1.0 if total else 0.0, number_format=PERCENT, font=BOLD))

    at_risk = summary.get("at_risk") or {"vms": summary.get("crash_consistent_with_blockers",
                                                            0), "examples": []}
    if at_risk["vms"]:
        rows.section(f"At risk: {at_risk['vms']} VM(s) already back up crash-consistent but "
                     "have blockers: their backups may not be usable. Fix or move them back "
                     "to an application-consistent policy.", font=RED)
        rows.header("VM", "Subscription", "Vault", "Blockers")
        for vm in at_risk["examples"][:AT_RISK_ROWS]:
            rows.add(*safe_cells([vm["vm_name"], vm["subscription_id"], vm["vault"],
                                  vm["blockers"]]))
        if at_risk["vms"] > AT_RISK_ROWS:
            rows.add(f"... and {at_risk['vms'] - AT_RISK_ROWS} more: filter the VMs sheet on "
                     "readiness = already_crash_consistent and a non-empty blockers column")
    else:
        rows.section("At risk: no crash-consistent VM has a blocker")

    if errors:
        rows.section(f"Not assessed: {len(errors)} scope(s)", font=RED)
        rows.header("Scope", "Error", "Retry with")
        for e in errors:
            rows.add(*(styled(ws, v, font=Font(color="C00000"))
                       for v in safe_cells([e.get("scope", ""), e.get("error", ""),
                                            e.get("retry", "")])))

    guarded = summary.get("guarded_vaults") or []
    if guarded:
        rows.section(f"Multi-user authorization: {len(guarded)} vault(s) linked to a Resource "
                     "Guard. Re-pointing a VM to a policy with shorter retention (any tier or "
                     "instant restore days) is a critical operation there: the operator needs "
                     "the Backup MUA Operator role on the guard. A same-retention clone is not.")
        rows.header("Vault", "VMs", "Resource Guard", "Operator must request")
        for g in guarded:
            rows.add(*safe_cells([g["vault"], g["vms"], g["guard_id"], g["operator_request"]]))
    else:
        rows.section("Multi-user authorization: no vault in scope is linked to a Resource Guard")

    rows.section("Top blockers")
    blockers_header = rows.header("Rule", "VMs", "Title")
    for b in summary["top_blockers"]:
        rows.add(b["rule"], b["vms"], *safe_cells([b["title"]]))
    blockers_last = rows.next - 1

    rows.section(f"Readiness by subscription (the {TOP_SUBSCRIPTIONS} with most VMs; all on "
                 "the Subscriptions sheet)")
    subs = sorted(summary["by_subscription"].items(), key=lambda kv: (-kv[1]["vms"], kv[0]))
    subs_table = [(_sub_label(summary, sub), counts) for sub, counts in subs[:TOP_SUBSCRIPTIONS]]
    if len(subs) > TOP_SUBSCRIPTIONS:
        rest = {k: sum(c[k] for _, c in subs[TOP_SUBSCRIPTIONS:])
                for k in (*READINESS_VALUES, "vms")}
        subs_table.append((f"{len(subs) - TOP_SUBSCRIPTIONS} other subscription(s)", rest))
    subs_header, subs_last = _readiness_matrix(rows, summary, "Subscription", subs_table)

    rows.section("Readiness by region")
    regions = sorted(summary["by_region"].items(), key=lambda kv: (-kv[1]["vms"], kv[0]))
    region_header, region_last = _readiness_matrix(rows, summary, "Region", regions)

    cost = summary.get("cost")
    if cost:
        rows.section("Cost view: crash-consistent protected instances (PI) by subscription")
        rows.add(*safe_cells([cost["note"]]))
        money = cost.get("priced")
        currency = cost.get("currency") or ""
        names = ["Subscription", "VMs", "Provisioned GB", "PI basis GB", "PI units"]
        rows.header(*names, *([f"Monthly cost ({currency})"] if money else []))
        for sub, c in cost["by_subscription"].items():
            rows.add(_sub_label(summary, sub), c["vms"], c["provisioned_gb"], c["pi_basis_gb"],
                     c["pi_units"], *([c["monthly_cost"]] if money else []))
        t = cost["totals"]
        rows.add(*(styled(ws, v, font=BOLD) for v in
                   ["Total", t["vms"], t["provisioned_gb"], t["pi_basis_gb"], t["pi_units"],
                    *([t["monthly_cost"]] if money else [])]))

    changes = summary.get("changes")
    if changes:
        rows.section(f"Changes since assessment {changes.get('previous_id', '')}"
                     + (" (details on the Changes sheet)" if has_changes_sheet else ""))
        for kind, n in (changes.get("by_change") or {}).items():
            rows.add(kind.replace("_", " "), n)

    migration = summary.get("migration")
    if migration:
        rows.section("Migration progress (from the wave journal; details on the Migration "
                     "sheet)")
        for status, n in migration.items():
            rows.add(status.replace("_", " "), n)

    for width, letter in zip((34, 12, 12, 14, 14, 14, 14, 12), "ABCDEFGH", strict=True):
        ws.column_dimensions[letter].width = width
    for row in rows.rows:
        ws.append(row)

    pie = PieChart()
    pie.title = "VMs by readiness"
    pie.add_data(Reference(ws, min_col=2, min_row=readiness_header, max_row=readiness_last),
                 titles_from_data=True)
    pie.set_categories(Reference(ws, min_col=1, min_row=readiness_header + 1,
                                 max_row=readiness_last))
    for n, value in enumerate(READINESS_VALUES):
        point = DataPoint(idx=n)
        point.graphicalProperties.solidFill = READINESS_COLOURS[value][1]
        pie.series[0].dPt.append(point)
    pie.width, pie.height = 16, 9
    ws.add_chart(pie, f"{CHART_COLUMN}2")

    bars = BarChart()
    bars.type = "bar"
    bars.title = "Top blockers (VMs)"
    bars.legend = None
    if blockers_last > blockers_header:
        bars.add_data(Reference(ws, min_col=2, min_row=blockers_header, max_row=blockers_last),
                      titles_from_data=True)
        bars.set_categories(Reference(ws, min_col=1, min_row=blockers_header + 1,
                                      max_row=blockers_last))
        bars.series[0].graphicalProperties.solidFill = READINESS_COLOURS["not_ready"][1]
    bars.width, bars.height = 16, 9
    _readable_axes(bars)
    ws.add_chart(bars, f"{CHART_COLUMN}21")

    _stacked_chart(ws, "Readiness by subscription", subs_header, subs_last,
                   f"{CHART_COLUMN}40", "Subscription")
    _stacked_chart(ws, "Readiness by region", region_header, region_last,
                   f"{CHART_COLUMN}{42 + max(15, int(0.6 * (subs_last - subs_header)) + 6)}",
                   "Region")
