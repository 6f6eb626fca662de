"""``wave-K.csv`` and ``wave-K.xlsx``: what happened to every VM of a wave, from the journal.
Per VM: status, start and end, duration, job ids, error code and message, rollback outcome;
and a summary with the counts, the rate and, for a halted wave, why it stopped. With the
engine's figures, the in-flight curve too (``wave-K-in-flight.csv`` and a chart): how many VMs
the wave held in flight against what its limits allowed, second by second, so a wave that
met throttling shows where it shrank and how it grew back."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
from openpyxl import Workbook
from openpyxl.chart import LineChart, Reference

from .readiness_csv import write_csv
from .sheet_table import TableLayout, write_table
from .xlsx_style import RED

COLUMNS = ["wave", "vm_name", "vm_id", "vault", "status", "step", "started_at", "finished_at",
           "duration_s", "job_ids", "error_code", "error_message", "rollback_outcome",
           "original_policy_id", "target_policy_id", "attempt", "runner"]


def wave_table(entries: pd.DataFrame) -> pd.DataFrame:
    """One row per VM of the wave, times as ISO 8601 UTC text."""
    out = entries.copy()
    started = pd.to_datetime(out["started_at"], utc=True)
    finished = pd.to_datetime(out["finished_at"], utc=True)
    out["duration_s"] = (finished - started).dt.total_seconds().round(1)
    for column in ("started_at", "finished_at"):
        stamp = pd.to_datetime(out[column], utc=True)
        out[column] = stamp.dt.strftime("%Y-%m-%dT%H:%M:%SZ").where(stamp.notna(), "")
    out["job_ids"] = [";".join(ids) if isinstance(ids, list | tuple) else (ids or "")
                      for ids in out["job_ids"]]
    return out[COLUMNS]


def wave_summary(table: pd.DataFrame, *, plan_id: str, wave: int, status: str,
                 halted_reason: str | None, started_at: datetime,
                 stats: dict[str, Any] | None = None) -> list[tuple[str, Any]]:
    counts = table["status"].value_counts()
    finished = pd.to_datetime(table["finished_at"].replace("", None), utc=True)
    ended = finished.max() if finished.notna().any() else None
    minutes = ((ended - pd.Timestamp(started_at)).total_seconds() / 60
               if ended is not None else 0.0)
    moved = int(counts.get("done", 0))
    return [
        ("Plan", plan_id), ("Wave", wave), ("Status", status),
        ("Halted because", halted_reason or ""),
        ("VMs in the wave", len(table)),
        *((s, int(counts.get(s, 0))) for s in ("done", "rolled_back", "skipped",
                                              "rollback_failed", "in_progress", "pending")),
        ("Run started (UTC)", started_at.strftime("%Y-%m-%dT%H:%M:%SZ")),
        ("VMs moved per minute", round(moved / minutes, 2) if minutes > 0 else 0.0),
        *_engine_rows(stats or {}),
    ]


def _engine_rows(stats: dict[str, Any]) -> list[tuple[str, Any]]:
    if not stats:
        return []
    return [("Most VMs in flight at once", stats.get("peak_in_flight", 0)),
            ("Changes Azure throttled (429, waited out)", stats.get("throttled", 0)),
            ("Resource Graph requests (the looks before moving)",
             stats.get("resource_graph_requests", 0))]


def in_flight_frame(stats: dict[str, Any]) -> pd.DataFrame:
    """The curve as a table: seconds since the VMs started, VMs in flight, VMs allowed."""
    return pd.DataFrame(stats.get("in_flight_curve") or [],
                        columns=["seconds", "in_flight", "allowed"])


def write_wave_report(entries: pd.DataFrame, out_dir: Path, *, plan_id: str, wave: int,
                      status: str, halted_reason: str | None, started_at: datetime,
                      stats: dict[str, Any] | None = None) -> dict[str, Path]:
    table = wave_table(entries)
    csv_path = write_csv(table, out_dir / f"wave-{wave}.csv")
    files = {f"wave-{wave}.csv": csv_path}
    book = Workbook(write_only=True)
    summary = pd.DataFrame(wave_summary(table, plan_id=plan_id, wave=wave, status=status,
                                        halted_reason=halted_reason, started_at=started_at,
                                        stats=stats),
                           columns=["what", "value"])
    summary["value"] = summary["value"].astype(str)
    preface = [(f"Wave {wave} of plan {plan_id}: {status}", RED if status == "halted" else None)]
    write_table(book.create_sheet("Summary"), summary, TableLayout(
        headers={"what": "", "value": ""}, preface=preface, widths={"value": 60}))
    write_table(book.create_sheet("VMs"), table, TableLayout(
        widths={"vm_id": 50, "error_message": 60, "rollback_outcome": 50,
                "original_policy_id": 40, "target_policy_id": 40}))
    curve = in_flight_frame(stats or {})
    if len(curve):
        files[f"wave-{wave}-in-flight.csv"] = write_csv(curve,
                                                        out_dir / f"wave-{wave}-in-flight.csv")
        sheet = book.create_sheet("In flight")
        sheet.append(["Seconds since the VMs started", "VMs in flight", "VMs allowed"])
        for row in curve.itertuples(index=False):
            sheet.append(list(row))
        chart = LineChart()
        chart.title = "VMs in flight, and what the limits allowed"
        chart.x_axis.title, chart.y_axis.title = "seconds", "VMs"
        chart.add_data(Reference(sheet, min_col=2, max_col=3, min_row=1,
                                 max_row=len(curve) + 1), titles_from_data=True)
        chart.set_categories(Reference(sheet, min_col=1, min_row=2, max_row=len(curve) + 1))
        chart.width, chart.height = 24, 10
        sheet.add_chart(chart, "E2")
    xlsx_path = out_dir / f"wave-{wave}.xlsx"
    book.save(xlsx_path)
    files[f"wave-{wave}.xlsx"] = xlsx_path
    return files
