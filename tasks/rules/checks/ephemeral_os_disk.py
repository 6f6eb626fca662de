"""EPHEMERAL_OS_DISK: the OS disk is ephemeral (``diffDiskSettings.option == "Local"``).

Read from the VM row and, as a second witness, from the disk rows. An ephemeral OS disk has no
disk resource; DISK_NOT_FOUND skips it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from tasks.rules.predicates import any_disk, flag

if TYPE_CHECKING:
    from tasks.rules.engine import RuleContext

RULE_ID = "EPHEMERAL_OS_DISK"
PARAMS: dict[str, type] = {}


def check(vms: pd.DataFrame, disks: pd.DataFrame, params: dict[str, Any],
          ctx: RuleContext) -> pd.Series:
    return flag(vms["os_disk_ephemeral"]) | any_disk(vms, disks, flag(disks["ephemeral"]))
