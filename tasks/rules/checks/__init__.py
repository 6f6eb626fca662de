"""The checks: one module per rule id, named after it (``ULTRA_DISK`` -> ``ultra_disk.py``).

Each module defines ``RULE_ID``, ``PARAMS`` (the params its rule needs from the pack, name ->
type, checked when a pack loads) and a vectorized::

    def check(vms, disks, params, ctx) -> pd.Series  # bool, on vms.index, True = fires

Modules are found by name, so adding a rule is: a module here, an entry in the packs.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

Check = Callable[[pd.DataFrame, pd.DataFrame, dict[str, Any], Any], pd.Series]


@dataclass(frozen=True)
class CheckSpec:
    rule_id: str
    check: Check
    params: dict[str, type]
    module: str


def _discover() -> dict[str, CheckSpec]:
    found: dict[str, CheckSpec] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        rule_id = module.RULE_ID
        if rule_id.lower() != info.name:
            raise ImportError(f"{module.__name__} defines RULE_ID {rule_id!r}; a check module "
                              "is named after its rule id in lower case")
        found[rule_id] = CheckSpec(rule_id, module.check, dict(getattr(module, "PARAMS", {})),
                                   module.__name__)
    return found


CHECKS: dict[str, CheckSpec] = _discover()
