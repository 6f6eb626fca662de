"""SHARED_DISK: an attached disk resource has ``maxShares > 1`` (a shared disk)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from tasks.rules.predicates import any_disk

if TYPE_CHECKING:
    from tasks.rules.engine import RuleContext

RULE_ID = "SHARED_DISK"
PARAMS: dict[str, type] = {}


def check(vms: pd.DataFrame, disks: pd.DataFrame, params: dict[str, Any],
          ctx: RuleContext) -> pd.Series:
    shares = pd.to_numeric(disks["max_shares"], errors="coerce").astype("Int64")
    return any_disk(vms, disks, shares.gt(1).fillna(False))
