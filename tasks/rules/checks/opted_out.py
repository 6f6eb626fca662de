"""OPTED_OUT: the VM carries the opt-out tag from settings (``rules.opt_out_tag``).

Tag names and values match case-insensitively (Azure treats tag names so; values are compared
the same way to forgive hand-typed tags); an empty value in the setting matches any value.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from tasks.rules.predicates import has_tag

if TYPE_CHECKING:
    from tasks.rules.engine import RuleContext

RULE_ID = "OPTED_OUT"
PARAMS: dict[str, type] = {}


def check(vms: pd.DataFrame, disks: pd.DataFrame, params: dict[str, Any],
          ctx: RuleContext) -> pd.Series:
    name, value = ctx.opt_out_tag
    return has_tag(vms["tags"], name, value)
