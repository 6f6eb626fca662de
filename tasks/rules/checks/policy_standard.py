"""POLICY_STANDARD: the VM's active protected item uses a Standard (V1) policy.

Crash-consistent snapshots need an Enhanced (V2) policy; moving Standard -> Enhanced is
supported but can never be undone, so it is a warning, and waves skip these unless the user opts
in. Only a policy that was read counts (an unreadable one is PROTECTION_DATA_UNREADABLE), and
only for an active item: a stopped item's policy is not what a wave would change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from tasks.rules.predicates import active_item, equals_any, flag

if TYPE_CHECKING:
    from tasks.rules.engine import RuleContext

RULE_ID = "POLICY_STANDARD"
PARAMS = {"policy_types": list, "schedule_types": list}


def check(vms: pd.DataFrame, disks: pd.DataFrame, params: dict[str, Any],
          ctx: RuleContext) -> pd.Series:
    standard = (equals_any(vms["policy_type"], params["policy_types"])
                | equals_any(vms["schedule_type"], params["schedule_types"]))
    return active_item(vms) & flag(vms["policy_readable"]) & standard
