"""REGION_NOT_SUPPORTED: crash-consistent backup is for Azure public regions only.

Fires for every VM when the settings' cloud is a sovereign one (the clouds param), and for
a VM whose location starts with a sovereign prefix (location_prefixes). A custom ARM
endpoint (the emulator, or a private cloud URL as cloud) is not in clouds, so it is
judged by location only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from tasks.rules.predicates import per_value

if TYPE_CHECKING:
    from tasks.rules.engine import RuleContext

RULE_ID = "REGION_NOT_SUPPORTED"
PARAMS = {"clouds": list, "location_prefixes": list}


def check(vms: pd.DataFrame, disks: pd.DataFrame, params: dict[str, Any],
          ctx: RuleContext) -> pd.Series:
    if str(ctx.cloud).strip().casefold() in {str(c).casefold() for c in params["clouds"]}:
        return pd.Series(True, index=vms.index)
    prefixes = tuple(str(p).casefold() for p in params["location_prefixes"])
    return per_value(vms["location"], lambda location: location.startswith(prefixes))
