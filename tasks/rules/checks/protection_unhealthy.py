"""PROTECTION_UNHEALTHY: the active protected item is not healthy yet or any more.

ARM ``protectionState`` in ``protection_states`` (ProtectionError; IRPending = first backup
not done). When the ARM state is empty (only Resource Graph was read), Resource Graph's
``currentProtectionState`` in ``arg_states`` counts instead: ProtectionError,
ConfiguringProtection (ARG's IRPending) and ConfiguringProtectionFailed. Waves only change items
that are ``Protected`` when they act.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from tasks.rules.predicates import active_item, equals_any

if TYPE_CHECKING:
    from tasks.rules.engine import RuleContext

RULE_ID = "PROTECTION_UNHEALTHY"
PARAMS = {"protection_states": list, "arg_states": list}


def check(vms: pd.DataFrame, disks: pd.DataFrame, params: dict[str, Any],
          ctx: RuleContext) -> pd.Series:
    arm = equals_any(vms["protection_state"], params["protection_states"])
    arg = (equals_any(vms["protection_state"], [""])
           & equals_any(vms["arg_protection_state"], params["arg_states"]))
    return active_item(vms) & (arm | arg)
