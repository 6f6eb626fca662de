"""Assessment frames (as ``load_vms(..., tags=True)`` returns them) and vault policy lists (as
ARM lists them) for planner tests, built from the same helpers as the test fleets."""

from __future__ import annotations

import pandas as pd

from tasks.planning import VaultPolicies
from tasks.state.tables import VM_FIELDS
from tests.fleets import SUB_A, make_policy, make_vault, vault_id

RG_BACKUP = "rg-backup"


def vm(name: str, *, vault: str = "vault-a", policy: str = "enhanced-daily",
       readiness: str = "ready", warnings: str = "", blockers: str = "", unknowns: str = "",
       infos: str = "", sub: str = SUB_A, rg: str = "rg-app", location: str = "eastus",
       tags: dict | None = None) -> dict:
    """One assessed VM protected in ``vault`` by ``policy``."""
    vid = f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/" \
          f"virtualMachines/{name}"
    vault_ref = vault_id(sub, RG_BACKUP, vault)
    protected = readiness != "not_protected"
    return {
        "vm_id": vid, "vm_key": vid.lower(), "vm_name": name, "subscription_id": sub,
        "resource_group": rg, "location": location, "vm_size": "Standard_D4s_v5",
        "vault": vault if protected else "", "vault_id": vault_ref if protected else "",
        "policy_name": policy if protected else "",
        "policy_id": f"{vault_ref}/backupPolicies/{policy}" if protected else "",
        "item_id": f"{vault_ref}/backupFabrics/Azure/protectionContainers/c;{name}/"
                   f"protectedItems/vm;{name}" if protected else "",
        "protection_state": "Protected" if protected else "", "consistency_type": "",
        "readiness": readiness, "blockers": blockers, "warnings": warnings,
        "unknowns": unknowns, "infos": infos, "target_policy": f"{policy}-crash",
        "tags": tags or {},
    }


def frame(rows: list[dict]) -> pd.DataFrame:
    data = {name: pd.array([r[name] for r in rows], dtype="string") for name in VM_FIELDS}
    out = pd.DataFrame(data)
    out["tags"] = pd.Series([r["tags"] for r in rows], dtype=object)
    return out


def vault_policies(spec: dict[str, list[dict]], sub: str = SUB_A,
                   errors: dict[str, str] | None = None) -> VaultPolicies:
    """``{"vault-a": [policy, ...]}`` as the planner's view of ARM."""
    out = VaultPolicies()
    for name, policies in spec.items():
        out.policies[vault_id(sub, RG_BACKUP, name).lower()] = policies
        out.requests += 1
    for name, error in (errors or {}).items():
        out.errors[vault_id(sub, RG_BACKUP, name).lower()] = error
    return out


def policy(vault: str, name: str, *, v1: bool = False, crash: bool = False,
           sub: str = SUB_A) -> dict:
    return make_policy(make_vault(sub, RG_BACKUP, vault), name, v1=v1, crash=crash)
