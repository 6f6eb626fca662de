"""Multi-user authorization (MUA) as ccmigrate meets it: which vaults a Resource Guard protects,
which planned changes are critical there, what the operator must request, and how Azure's
refusal is recognised.

What Azure does (sources; the emulator models the same in ``emulator/resource_guard.py``):

- A vault is linked to a Resource Guard through ``.../vaults/{vault}/backupResourceGuardProxies``
  (``VaultProxy``): ``resourceGuardResourceId`` and ``resourceGuardOperationDetails``, one
  ``{vaultCriticalOperation, defaultResourceRequest}`` per guarded operation (specs
  recoveryservicesbackup ``ResourceGuardProxyCRUD/GetResourceGuardProxy.json``).
- Only critical operations need the guard. For a Recovery Services vault: disabling soft delete
  and MUA always; modifying a policy or a protection *with reduced retention*, stopping
  protection with delete data and changing the MARS PIN unless the guard excludes them (MD
  ``backup/multi-user-authorization-concept.md``). Re-pointing a VM to a clone with the same
  retention is not critical; one that shortens any retention is.
- A critical request names the guard's request in ``properties.resourceGuardOperationRequests``:
  azure-cli reads the proxies, then, only when ``is_retention_duration_decreased`` (old vs new
  policy: instant restore days, daily/weekly/monthly/yearly counts, a tier dropped), sends
  ``[defaultResourceRequest]`` of ``.../protectedItems/write`` (Azure/azure-cli
  ``command_modules/backup/custom.py`` ``update_policy_for_item``; ``custom_help.py``
  ``operation_name_map``, ``get_resource_guard_operation_request``). The CLI also counts a
  longer RPO as a decrease; ccmigrate's clones keep the schedule, so it never arises here.
- The operator needs a role on the guard, granted just in time: "Backup MUA Operator ...
  Allows user to perform critical operation protected by resourceguard" (MD
  ``role-based-access-control/built-in-roles.md``, role f54b6d04-23c6-443e-b462-9c16ab7b4a52;
  the concept article's older text says Contributor). The request ids are where ARM runs its
  linked access check ("ResourceGuardOperationRequests on which LAC check will be performed",
  @azure/arm-dataprotection ``SuspendBackupRequest`` reference); without the role ARM answers
  ``LinkedAuthorizationFailed`` (ARM's code for a failed linked check; its exact wording for
  guards is unverified).
- A refusal for a missing request reads "ResourceGuard Operation requestid is either null or
  empty" (hashicorp/terraform-provider-azurerm#31887); no source gives its code, so
  ``is_guard_refusal`` matches the message too (``tasks/azure/error_codes.py``).

The guard's own exclusion list sits on the guard, often in another subscription or tenant
ccmigrate can't read; ccmigrate treats every operation the proxy lists as guarded (at worst it
sends a request the guard would not have needed).
"""

from __future__ import annotations

from typing import Any

from ..azure.guards import (
    MUA_ROLE,
    UPDATE_POLICY,
    UPDATE_PROTECTION,
    GuardLink,
    is_guard_refusal,
)
from ..policies.compare import retention_reductions

# The journal's name for a refusal by the guard (missing request or missing role): nothing
# changed, a re-run retries once the operator holds the role.
JOURNAL_CODE = "RESOURCE_GUARD"


# -- retention -------------------------------------------------------------------------------

def guard_requests_for(link: GuardLink | None, old: dict | None, new: dict | None,
                       operation: str = UPDATE_PROTECTION) -> list[str]:
    """The ``resourceGuardOperationRequests`` a change from ``old`` to ``new`` must carry:
    the guard's request when the vault is guarded for ``operation`` and retention shrinks."""
    if link is None or not retention_reductions(old, new):
        return []
    request = link.request_for(operation)
    return [request] if request else []


# -- refusals --------------------------------------------------------------------------------

def refusal_message(error: Any, link: GuardLink | None) -> str:
    """Azure's words, then what the operator does about it."""
    ask = (f"request the {link.operator_request()}" if link is not None
           else f"request the {MUA_ROLE} role on the vault's Resource Guard")
    return (f"refused by multi-user authorization (Resource Guard): {error}. Nothing changed; "
            f"{ask}, just in time (e.g. through PIM), then run the wave again")


__all__ = [
    "JOURNAL_CODE",
    "MUA_ROLE",
    "UPDATE_POLICY",
    "UPDATE_PROTECTION",
    "GuardLink",
    "guard_requests_for",
    "is_guard_refusal",
    "refusal_message",
]
