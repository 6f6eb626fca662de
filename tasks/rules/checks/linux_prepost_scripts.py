"""LINUX_PREPOST_SCRIPTS: a Linux VM may use pre/post scripts for app-consistent backup; they
live in the guest, can't be seen from ARM, and don't run for crash-consistent backups."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from tasks.rules.predicates import equals_any

if TYPE_CHECKING:
    from tasks.rules.engine import RuleContext

RULE_ID = "LINUX_PREPOST_SCRIPTS"
PARAMS = {"os_types": list}


def check(vms: pd.DataFrame, disks: pd.DataFrame, params: dict[str, Any],
          ctx: RuleContext) -> pd.Series:
    return equals_any(vms["os_type"], params["os_types"])
