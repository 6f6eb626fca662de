"""``readiness.csv`` and the other CSV files: UTF-8, a header row, a stable column order, every
text cell safe against formula injection. readiness.csv is the contract file (DESIGN.md): the
contract columns first in their fixed order, then protection and disk details, one row per VM in
discovery's order (by VM id, so grouped by subscription)."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd

from .safe_cells import safe_values

CONTRACT_COLUMNS = ["vm_id", "vm_name", "subscription_id", "resource_group", "location",
                    "vm_size", "vault", "policy_name", "readiness", "blockers", "warnings",
                    "unknowns", "infos", "target_policy"]
DETAIL_COLUMNS = ["os_type", "security_type", "protection_state", "consistency_type",
                  "policy_type", "policy_id", "item_id", "other_items", "last_backup_status",
                  "last_backup_time"]


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    """Write with the csv module over plain lists: about twice as fast as ``to_csv`` here."""
    cells = [safe_values(frame[c].tolist()) for c in frame.columns]
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(list(frame.columns))
        writer.writerows(zip(*cells, strict=True))
    return path


def write_readiness_csv(table: pd.DataFrame, path: Path) -> Path:
    """``table`` is ``report_tables.vm_table``: the contract columns come first."""
    if list(table.columns[:len(CONTRACT_COLUMNS)]) != CONTRACT_COLUMNS:
        raise ValueError("readiness.csv must start with the contract columns")
    return write_csv(table, path)
