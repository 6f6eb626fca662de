"""SIZE_AZURE_BOOST: Azure Boost sizes as the support table names them are not supported.

Intel v6 and later (no AMD letter among the feature letters) and AMD v7 and later (AMD letter
present). Arm sizes (Arm letter present) are not named by the table and never fire. A size
without ``_vN`` is version 1. Parsing is ``tasks.rules.sizes.parse_sizes`` (vectorized).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from tasks.rules.predicates import per_value
from tasks.rules.sizes import parse_sizes

if TYPE_CHECKING:
    from tasks.rules.engine import RuleContext

RULE_ID = "SIZE_AZURE_BOOST"
PARAMS = {"intel_min_version": int, "amd_min_version": int, "amd_letter": str,
          "arm_letter": str}


def check(vms: pd.DataFrame, disks: pd.DataFrame, params: dict[str, Any],
          ctx: RuleContext) -> pd.Series:
    parts = parse_sizes(vms["vm_size"])
    amd_letter, arm_letter = params["amd_letter"].lower(), params["arm_letter"].lower()
    amd = per_value(parts["features"], lambda features: amd_letter in features)
    arm = per_value(parts["features"], lambda features: arm_letter in features)
    version = parts["version"].fillna(0).astype(int)
    boost = ((~amd & (version >= params["intel_min_version"]))
             | (amd & (version >= params["amd_min_version"])))
    return (parts["parsed"] & ~arm & boost).astype(bool)
