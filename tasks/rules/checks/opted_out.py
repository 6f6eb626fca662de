"""OPTED_OUT: the VM carries the opt-out tag from settings (``rules.opt_out_tag``).

Tag names and values match case-insensitively (Azure treats tag names so; values are compared
the same way to forgive hand-typed tags); an empty value in the setting matches any value.
Tags are dict cells, so this is one ``map`` over the column with a set lookup per VM.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from tasks.rules.engine import RuleContext

RULE_ID = "OPTED_OUT"
PARAMS: dict[str, type] = {}


def check(vms: pd.DataFrame, disks: pd.DataFrame, params: dict[str, Any],
          ctx: RuleContext) -> pd.Series:
    name, value = (s.strip().casefold() for s in ctx.opt_out_tag)

    def carries(tags: object) -> bool:
        if not isinstance(tags, Mapping) or not tags:
            return False
        found = {str(k).strip().casefold(): v for k, v in tags.items()}
        if name not in found:
            return False
        return not value or str(found[name] or "").strip().casefold() == value

    return vms["tags"].map(carries).astype(bool)
