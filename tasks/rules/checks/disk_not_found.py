"""DISK_NOT_FOUND: a managed disk the VM references is not in the inventory, so its
``maxShares`` and ``dataAccessAuthMode`` can't be read. Ephemeral OS disks and unmanaged
VHDs have no disk resource to find and never fire."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from tasks.rules.predicates import any_disk, flag

if TYPE_CHECKING:
    from tasks.rules.engine import RuleContext

RULE_ID = "DISK_NOT_FOUND"
PARAMS: dict[str, type] = {}


def check(vms: pd.DataFrame, disks: pd.DataFrame, params: dict[str, Any],
          ctx: RuleContext) -> pd.Series:
    missing = flag(disks["managed"]) & ~flag(disks["ephemeral"]) & ~flag(disks["found"])
    return any_disk(vms, disks, missing)
