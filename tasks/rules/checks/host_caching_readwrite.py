"""HOST_CACHING_READWRITE: the OS disk or a data disk uses read/write host caching, so
multi-disk crash consistency can't be guaranteed. ``ReadOnly`` and ``None`` don't fire."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from tasks.rules.predicates import any_disk, equals_any

if TYPE_CHECKING:
    from tasks.rules.engine import RuleContext

RULE_ID = "HOST_CACHING_READWRITE"
PARAMS = {"caching": list}


def check(vms: pd.DataFrame, disks: pd.DataFrame, params: dict[str, Any],
          ctx: RuleContext) -> pd.Series:
    return any_disk(vms, disks, equals_any(disks["caching"], params["caching"]))
