"""CONFIDENTIAL_VM: ``securityType == "ConfidentialVM"``; restore points don't support crash
consistency for confidential VMs. Trusted Launch is supported and never fires."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from tasks.rules.predicates import equals_any

if TYPE_CHECKING:
    from tasks.rules.engine import RuleContext

RULE_ID = "CONFIDENTIAL_VM"
PARAMS = {"security_types": list}


def check(vms: pd.DataFrame, disks: pd.DataFrame, params: dict[str, Any],
          ctx: RuleContext) -> pd.Series:
    return equals_any(vms["security_type"], params["security_types"])
