"""Which vaults a Resource Guard protects (multi-user authorization), read through ARM, and how
Azure's refusal of a critical operation is recognised. What is critical and what the wave
sends: ``tasks/migration/mua.py`` (its docstring names the sources).

- The link: ``.../vaults/{vault}/backupResourceGuardProxies`` (``VaultProxy``), with
  ``resourceGuardResourceId`` and ``resourceGuardOperationDetails`` of
  ``{vaultCriticalOperation, defaultResourceRequest}`` (specs recoveryservicesbackup
  ``ResourceGuardProxyCRUD/GetResourceGuardProxy.json``; azure-cli reads the first mapping,
  ``custom_help.has_resource_guard_mapping``).
- The operation names are azure-cli's ``custom_help.operation_name_map``.
- The refusal: "ResourceGuard Operation requestid is either null or empty"
  (hashicorp/terraform-provider-azurerm#31887), code unconfirmed; without a role on the guard,
  ARM's ``LinkedAuthorizationFailed`` (unverified for guards). See ``error_codes.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import backup
from .error_codes import MUA_REFUSAL_CODES, matches, matches_any

_RSV = "Microsoft.RecoveryServices/vaults"
UPDATE_PROTECTION = f"{_RSV}/backupFabrics/protectionContainers/protectedItems/write"
UPDATE_POLICY = f"{_RSV}/backupPolicies/write"
MUA_ROLE = "Backup MUA Operator"
# The guard's request type per operation (dataprotection ResourceGuardCRUD examples). The
# recoveryservicesbackup spec's proxy examples name an operation by this request type
# ("Microsoft.DataProtection/resourceGuards/deleteResourceGuardProxyRequests") where azure-cli
# compares with the vault operation ("Microsoft.RecoveryServices/vaults/.../delete"): which one
# Azure sends is unverified, so both spellings are read.
_REQUEST_TYPES = {UPDATE_PROTECTION: "updateProtectedItemRequests",
                  UPDATE_POLICY: "updateProtectionPolicyRequests"}
_BY_REQUEST_TYPE = {f"microsoft.dataprotection/resourceguards/{kind}".lower(): op.lower()
                    for op, kind in _REQUEST_TYPES.items()}


@dataclass(frozen=True)
class GuardLink:
    """A vault's link to its Resource Guard, as its ``VaultProxy`` states it."""

    vault_id: str
    guard_id: str
    requests: dict[str, str] = field(default_factory=dict)  # lower operation -> request id

    @property
    def guard_name(self) -> str:
        return self.guard_id.rstrip("/").rsplit("/", 1)[-1]

    def request_for(self, operation: str) -> str | None:
        """The guard's request for ``operation``; None when the guard does not cover it."""
        return self.requests.get(operation.lower())

    def operator_request(self, operation: str = UPDATE_PROTECTION) -> str:
        """What the operator must hold before a critical change, in one line."""
        return (f"{MUA_ROLE} role on Resource Guard {self.guard_id} (request "
                f"{self.request_for(operation) or 'n/a'})")


def guard_link(vault_id: str, proxies: list[dict]) -> GuardLink | None:
    """The link from a ``list_guard_proxies`` answer; azure-cli reads the first mapping only."""
    for proxy in proxies[:1]:
        props = proxy.get("properties") or {}
        guard_id = str(props.get("resourceGuardResourceId") or "")
        requests: dict[str, str] = {}
        for d in props.get("resourceGuardOperationDetails") or []:
            if not isinstance(d, dict) or not d.get("vaultCriticalOperation"):
                continue
            op = str(d["vaultCriticalOperation"]).lower()
            requests[_BY_REQUEST_TYPE.get(op, op)] = str(d.get("defaultResourceRequest") or "")
        if guard_id:
            return GuardLink(vault_id, guard_id, requests)
    return None


def read_link(access: Any, vault_id: str) -> GuardLink | None:
    """One vault's link, through ARM (raises ``AzureError``)."""
    ref = backup.vault_ref(vault_id)
    return guard_link(vault_id, backup.list_guard_proxies(access.backup(ref.subscription_id),
                                                          ref))


# -- refusals --------------------------------------------------------------------------------

def is_guard_refusal(error: Any) -> bool:
    """Azure refused a critical operation for the guard: no request in it (the refusal's code
    is unconfirmed, so its message counts too), or no role on the guard it named."""
    if matches_any(error, MUA_REFUSAL_CODES):
        return True
    return matches(error, "LinkedAuthorizationFailed") and "resourceguards" in str(
        error).lower()


__all__ = [
    "MUA_ROLE",
    "UPDATE_POLICY",
    "UPDATE_PROTECTION",
    "GuardLink",
    "guard_link",
    "is_guard_refusal",
    "read_link",
]
