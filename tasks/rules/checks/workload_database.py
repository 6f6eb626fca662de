"""WORKLOAD_DATABASE: a database that may not tolerate crash-consistent recovery.

By image: a publisher in ``publishers``, or a publisher in ``publisher_offers`` whose offer
matches one of its glob patterns (SAP images); or by a SQL VM resource pointing at the VM
(``is_sql_vm``, when ``sql_vm_resource`` is true). All matching ignores case.
"""

from __future__ import annotations

import fnmatch
import re
from typing import TYPE_CHECKING, Any

import pandas as pd

from tasks.rules.predicates import equals_any, flag, per_value

if TYPE_CHECKING:
    from tasks.rules.engine import RuleContext

RULE_ID = "WORKLOAD_DATABASE"
PARAMS = {"publishers": list, "publisher_offers": dict, "sql_vm_resource": bool}


def check(vms: pd.DataFrame, disks: pd.DataFrame, params: dict[str, Any],
          ctx: RuleContext) -> pd.Series:
    fired = equals_any(vms["image_publisher"], params["publishers"])
    for publisher, patterns in params["publisher_offers"].items():
        if not patterns:
            continue
        offer = re.compile("|".join(fnmatch.translate(str(p).casefold()) for p in patterns))
        fired |= equals_any(vms["image_publisher"], [publisher]) & per_value(
            vms["image_offer"], lambda value, offer=offer: bool(offer.match(value)))
    if params["sql_vm_resource"]:
        fired |= flag(vms["is_sql_vm"])
    return fired.astype(bool)
