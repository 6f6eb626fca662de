"""PROTECTION_DATA_UNREADABLE: the VM has an active protected item but its policy could not be
read (vault not readable, policy id missing or dangling), so its consistency type is unknown."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from tasks.rules.predicates import active_item, flag

if TYPE_CHECKING:
    from tasks.rules.engine import RuleContext

RULE_ID = "PROTECTION_DATA_UNREADABLE"
PARAMS: dict[str, type] = {}


def check(vms: pd.DataFrame, disks: pd.DataFrame, params: dict[str, Any],
          ctx: RuleContext) -> pd.Series:
    return active_item(vms) & ~flag(vms["policy_readable"])
