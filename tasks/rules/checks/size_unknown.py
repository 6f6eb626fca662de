"""SIZE_UNKNOWN: the Resource SKU list can't say whether the size supports Premium storage.

Fires when the size is not in the SKU list for the VM's location, and also when it is listed
without a ``PremiumIO`` capability (both leave the question open). The name heuristic
(``tasks.rules.sizes.premium_hint``) is a hint for people, never a verdict.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from tasks.rules.predicates import flag

if TYPE_CHECKING:
    from tasks.rules.engine import RuleContext

RULE_ID = "SIZE_UNKNOWN"
PARAMS: dict[str, type] = {}


def check(vms: pd.DataFrame, disks: pd.DataFrame, params: dict[str, Any],
          ctx: RuleContext) -> pd.Series:
    unlisted = ~flag(vms["sku_known"])
    return (unlisted | vms["sku_premium_io"].astype("boolean").isna()).astype(bool)
