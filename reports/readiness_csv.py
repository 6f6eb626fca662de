"""``readiness.csv``: the contract file (DESIGN.md). One row per VM, header row, UTF-8, the
contract columns first in their fixed order, then protection details. Rows keep discovery's
order (by VM id, so grouped by subscription)."""

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


def readiness_columns(scored: pd.DataFrame) -> list[str]:
    return CONTRACT_COLUMNS + [c for c in DETAIL_COLUMNS if c in scored.columns]


def write_readiness_csv(scored: pd.DataFrame, path: Path) -> Path:
    """Write with the csv module over plain lists: about twice as fast as ``to_csv`` here."""
    columns = readiness_columns(scored)
    cells = [safe_values(scored[c].tolist()) for c in columns]
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(zip(*cells, strict=True))
    return path
