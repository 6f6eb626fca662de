"""A fleet whose vault-1111 is linked to a Resource Guard, as a fleet file states it: the
vault's ``backupResourceGuardProxies/VaultProxy`` and the guard, both as ARM returns them
(GetResourceGuardProxy.json; dataprotection ResourceGuardCRUD examples)."""

from __future__ import annotations

import copy

from emulator.resource_guard import REQUEST_TYPES
from tests.fleets import SUB_A, SUB_B, make_policy, small_fleet, vault_id

VAULT = "vault-1111"
RG = "rg-backup"
VAULT_ID = vault_id(SUB_A, RG, VAULT)
# The guard sits in another subscription, as the concept article recommends.
GUARD_ID = (f"/subscriptions/{SUB_B}/resourceGroups/rg-security/providers/"
            "Microsoft.DataProtection/resourceGuards/contoso-guard")
UPDATE_PROTECTION_REQUEST = f"{GUARD_ID}/updateProtectedItemRequests/default"
UPDATE_POLICY_REQUEST = f"{GUARD_ID}/updateProtectionPolicyRequests/default"


def guard(exclusions: list[str] | None = None) -> dict:
    return {"id": GUARD_ID, "name": "contoso-guard",
            "type": "Microsoft.DataProtection/resourceGuards", "location": "eastus",
            "tags": {},
            "properties": {
                "provisioningState": "Succeeded", "allowAutoApprovals": True,
                "description": "Take JIT access before any critical operation",
                "resourceGuardOperations": [
                    {"vaultCriticalOperation": op,
                     "requestResourceType": f"Microsoft.DataProtection/resourceGuards/{kind}"}
                    for op, kind in REQUEST_TYPES.items()],
                "vaultCriticalOperationExclusionList": list(exclusions or [])}}


def proxy() -> dict:
    return {"id": f"{VAULT_ID}/backupResourceGuardProxies/VaultProxy", "name": "VaultProxy",
            "type": "Microsoft.RecoveryServices/vaults/backupResourceGuardProxies",
            "properties": {
                "resourceGuardResourceId": GUARD_ID,
                "resourceGuardOperationDetails": [
                    {"vaultCriticalOperation": op,
                     "defaultResourceRequest": f"{GUARD_ID}/{kind}/default"}
                    for op, kind in REQUEST_TYPES.items()],
                "lastUpdatedTime": "2026-11-01T00:00:00.0000000Z",
                "description": "Take JIT access before any critical operation"}}


def short_policy(vault: dict, name: str = "enhanced-daily-7d", days: int = 7,
                 crash: bool = True) -> dict:
    """A crash-consistent policy keeping daily points ``days`` days (the others keep 30)."""
    policy = make_policy(vault, name, crash=crash)
    policy["properties"]["retentionPolicy"]["dailySchedule"]["retentionDuration"]["count"] = days
    return policy


def guarded_fleet(exclusions: list[str] | None = None, *, linked: bool = True) -> dict:
    """``small_fleet`` with vault-1111 linked to the guard (when ``linked``) and a 7-day
    crash-consistent policy beside the 30-day ones."""
    fleet = small_fleet()
    vault = next(r for r in fleet["resources"] if r["id"] == VAULT_ID)
    fleet["resources"].append(short_policy(vault))
    if linked:
        fleet["resources"] += [proxy(), guard(exclusions)]
    return copy.deepcopy(fleet)
