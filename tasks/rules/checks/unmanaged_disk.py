"""UNMANAGED_DISK: the OS disk or a data disk is a page-blob VHD instead of a managed disk
(restore points need managed disks)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from tasks.rules.predicates import any_disk, flag

if TYPE_CHECKING:
    from tasks.rules.engine import RuleContext

RULE_ID = "UNMANAGED_DISK"
PARAMS: dict[str, type] = {}


def check(vms: pd.DataFrame, disks: pd.DataFrame, params: dict[str, Any],
          ctx: RuleContext) -> pd.Series:
    return any_disk(vms, disks, flag(disks["unmanaged"]))
