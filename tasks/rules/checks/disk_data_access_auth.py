"""DISK_DATA_ACCESS_AUTH: an attached disk resource has ``dataAccessAuthMode ==
"AzureActiveDirectory"``; Enhanced policy backups fail for such disks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from tasks.rules.predicates import any_disk, equals_any

if TYPE_CHECKING:
    from tasks.rules.engine import RuleContext

RULE_ID = "DISK_DATA_ACCESS_AUTH"
PARAMS = {"modes": list}


def check(vms: pd.DataFrame, disks: pd.DataFrame, params: dict[str, Any],
          ctx: RuleContext) -> pd.Series:
    return any_disk(vms, disks, equals_any(disks["data_access_auth_mode"], params["modes"]))
