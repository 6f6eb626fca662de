"""Scored inventory frames shaped like the real one (every VM column plus the scored columns)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tasks.inventory.schema import READINESS_VALUES, SCORED_COLUMNS, VM_COLUMNS


def scored_frame(n: int, *, seed: int = 7, prefix: str = "vm") -> pd.DataFrame:
    """``n`` scored VMs in frame (not key) order, with the inventory's dtypes and some <NA>."""
    rng = np.random.default_rng(seed)
    subs = [f"{i:08x}-0000-4000-8000-{i:012x}" for i in range(max(1, n // 500 + 1))]
    sub = [subs[i % len(subs)] for i in range(n)]
    rg = [f"RG-{i % 37}" for i in range(n)]
    name = [f"{prefix}-{i:06d}" for i in rng.permutation(n)]
    vm_id = [f"/subscriptions/{s}/resourceGroups/{g}/providers/Microsoft.Compute/"
             f"virtualMachines/{v}" for s, g, v in zip(sub, rg, name, strict=True)]
    vault = [f"vault-{i % 5}" for i in range(n)]
    vault_id = [f"/subscriptions/{s}/resourceGroups/backup/providers/"
                f"Microsoft.RecoveryServices/vaults/{v}" for s, v in zip(sub, vault, strict=True)]
    data: dict[str, object] = {}
    for column, (dtype, _) in {**VM_COLUMNS, **SCORED_COLUMNS}.items():
        if dtype == "boolean":
            data[column] = pd.array(rng.choice([True, False], n), dtype="boolean")
        elif dtype == "Int64":
            data[column] = pd.array(rng.integers(0, 3, n), dtype="Int64")
        elif dtype == "object":
            data[column] = [{"env": "prod"} if i % 3 else {} for i in range(n)]
        else:
            data[column] = pd.array([f"{column}-{i % 11}" for i in range(n)], dtype="string")
    frame = pd.DataFrame(data)
    frame["vm_id"] = pd.array(vm_id, dtype="string")
    frame["vm_key"] = frame["vm_id"].str.lower()
    frame["vm_name"] = pd.array(name, dtype="string")
    frame["subscription_id"] = pd.array(sub, dtype="string")
    frame["resource_group"] = pd.array([g.lower() for g in rg], dtype="string")
    frame["vault"] = pd.array(vault, dtype="string")
    frame["vault_id"] = pd.array(vault_id, dtype="string")
    frame["policy_id"] = frame["vault_id"] + "/backupPolicies/DefaultPolicy"
    frame["item_id"] = frame["vault_id"] + "/protectedItems/vm;" + frame["vm_name"]
    frame["readiness"] = pd.array(rng.choice(READINESS_VALUES, n), dtype="string")
    frame["blockers"] = pd.array(rng.choice(["", "CC-B01", "CC-B01;CC-B07"], n), dtype="string")
    frame["vm_name"] = frame["vm_name"].where(np.arange(n) % 97 != 5)  # some <NA>
    frame["target_policy"] = frame["target_policy"].where(np.arange(n) % 13 != 1)
    frame["consistency_type"] = "é ü — 名前"  # non-ASCII survives
    return frame
