"""``readiness.csv``: the contract file (DESIGN.md). One row per VM, header row, UTF-8, the
contract columns first in their fixed order, then protection details."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .safe_cells import neutralise_frame

CONTRACT_COLUMNS = ["vm_id", "vm_name", "subscription_id", "resource_group", "location",
                    "vm_size", "vault", "policy_name", "readiness", "blockers", "warnings",
                    "unknowns", "infos", "target_policy"]
DETAIL_COLUMNS = ["os_type", "security_type", "protection_state", "consistency_type",
                  "policy_type", "policy_id", "item_id", "other_items", "last_backup_status",
                  "last_backup_time"]


def readiness_frame(scored: pd.DataFrame) -> pd.DataFrame:
    """The rows and columns of readiness.csv, in order, formula-safe."""
    columns = CONTRACT_COLUMNS + [c for c in DETAIL_COLUMNS if c in scored.columns]
    frame = scored[columns].sort_values(["subscription_id", "vm_id"], kind="stable")
    return neutralise_frame(frame)


def write_readiness_csv(scored: pd.DataFrame, path: Path) -> Path:
    readiness_frame(scored).to_csv(path, index=False, encoding="utf-8", lineterminator="\n")
    return path
