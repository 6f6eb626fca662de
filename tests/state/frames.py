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


def plan_frames(n: int, sizes: tuple[int, ...] = (1, 3), *, seed: int = 7,
                irreversible_every: int = 4) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A planner's output for ``n`` VMs: wave items (wave 1 of ``sizes[0]`` VMs, then the other
    sizes, the last repeated) in frame order, and the policies they need per vault: one
    crash-consistent clone per source policy, plus an app-consistent rollback clone where
    irreversible (Standard-policy) VMs come from."""
    base = scored_frame(n, seed=seed, prefix="pvm")
    wave_of: list[int] = []
    wave, left = 1, sizes[0] if sizes else n
    for _ in range(n):
        if left == 0:
            wave += 1
            left = sizes[min(wave - 1, len(sizes) - 1)]
        wave_of.append(wave)
        left -= 1
    irreversible = np.arange(n) % irreversible_every == 2
    source = np.where(irreversible, "StandardPolicy", "EnhancedPolicy")
    vms = pd.DataFrame({
        "wave": wave_of,
        "vm_id": base["vm_id"],
        "vm_name": base["vm_name"],
        "subscription_id": base["subscription_id"],
        "vault_id": base["vault_id"],
        "vault": base["vault"],
        "item_id": base["item_id"],
        "source_policy_id": base["vault_id"] + "/backupPolicies/" + source,
        "source_policy": pd.array(source, dtype="string"),
        "target_policy": pd.array([f"{s}-crash" for s in source], dtype="string"),
        "irreversible": pd.array(irreversible, dtype="boolean"),
        "rollback_policy": pd.array(np.where(irreversible, "StandardPolicy-app", source),
                                    dtype="string"),
        "readiness": pd.array(np.where(np.arange(n) % 3 == 1, "ready_with_conditions",
                                       "ready"), dtype="string"),
        "warnings": pd.array(np.where(np.arange(n) % 3 == 1, "HOST_CACHING_READWRITE", ""),
                             dtype="string"),
    })
    rows: dict[tuple[str, str], dict[str, object]] = {}
    for item in vms.to_dict("records"):
        needs = [("crash_clone", item["target_policy"])]
        if item["irreversible"]:
            needs.append(("app_clone_for_rollback", item["rollback_policy"]))
        for kind, name in needs:
            key = (item["vault_id"], name)
            if key in rows:
                rows[key]["first_wave"] = min(rows[key]["first_wave"], item["wave"])
                continue
            rows[key] = {
                "vault_id": item["vault_id"], "policy_name": name, "vault": item["vault"],
                "kind": kind, "source_policy_id": item["source_policy_id"],
                "source_policy": item["source_policy"], "first_wave": item["wave"],
                "body": {"properties": {"policyType": "V2", "snapshotConsistencyType":
                                        "OnlyCrashConsistent" if kind == "crash_clone"
                                        else None}},
            }
    return vms, pd.DataFrame(list(rows.values()))
