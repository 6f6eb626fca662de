"""SIZE_NOT_PREMIUM_CAPABLE: the Resource SKU for the size in the VM's location says
``PremiumIO = False``; crash consistency needs a size that supports Premium storage."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from tasks.rules.predicates import flag

if TYPE_CHECKING:
    from tasks.rules.engine import RuleContext

RULE_ID = "SIZE_NOT_PREMIUM_CAPABLE"
PARAMS: dict[str, type] = {}


def check(vms: pd.DataFrame, disks: pd.DataFrame, params: dict[str, Any],
          ctx: RuleContext) -> pd.Series:
    premium = vms["sku_premium_io"].astype("boolean")
    return flag(vms["sku_known"]) & premium.eq(False).fillna(False).astype(bool)
