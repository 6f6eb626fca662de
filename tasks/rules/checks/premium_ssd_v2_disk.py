"""PREMIUM_SSD_V2_DISK: an attached disk is Premium SSD v2, by the VM's
``managedDisk.storageAccountType`` or the disk resource's ``sku.name``; restore points on
these are application-consistent only."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from tasks.rules.predicates import any_disk, equals_any

if TYPE_CHECKING:
    from tasks.rules.engine import RuleContext

RULE_ID = "PREMIUM_SSD_V2_DISK"
PARAMS = {"storage_types": list}


def check(vms: pd.DataFrame, disks: pd.DataFrame, params: dict[str, Any],
          ctx: RuleContext) -> pd.Series:
    kinds = params["storage_types"]
    mask = equals_any(disks["storage_type"], kinds) | equals_any(disks["sku_name"], kinds)
    return any_disk(vms, disks, mask)
