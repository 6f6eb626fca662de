"""Multi-user authorization (MUA): a vault's link to a Resource Guard, and the check on its
critical operations.

Sources:
- MD ``articles/backup/multi-user-authorization-concept.md``: the critical operations of a
  Recovery Services vault (disable soft delete and disable MUA are mandatory; modify policy /
  modify protection *with reduced retention*, stop protection with delete data and change MARS
  PIN are optional, excluded per guard); the guard may sit in another subscription or tenant.
- specs ``recoveryservicesbackup/.../2023-04-01/examples/ResourceGuardProxyCRUD/
  GetResourceGuardProxy.json``: the proxy's shape (``resourceGuardResourceId``,
  ``resourceGuardOperationDetails`` of ``{vaultCriticalOperation, defaultResourceRequest}``,
  ``lastUpdatedTime``, ``description``). That example's ``id`` is shortened
  (``/backupmanagement/resources/...``); the emulator serves the full ARM id. The list
  (``ResourceGuardProxies_Get``, ``.../backupResourceGuardProxies``) is
  ``{"value": [...], "nextLink"}`` (``ResourceGuardProxyBaseResourceList``; no example found).
- specs ``dataprotection`` ResourceGuardCRUD examples (as the Go SDK samples quote them): the
  guard's ``resourceGuardOperations`` of ``{vaultCriticalOperation, requestResourceType}`` and
  ``vaultCriticalOperationExclusionList``; request resources
  ``{guard}/{updateProtectedItemRequests|updateProtectionPolicyRequests|...}/default``.
- Azure/azure-cli ``command_modules/backup/custom_help.py``: ``operation_name_map`` (the
  ``vaultCriticalOperation`` strings below), ``has_resource_guard_mapping`` (lists the proxies,
  then looks for the operation in the first proxy's ``resourceGuardOperationDetails``),
  ``get_resource_guard_operation_request`` (GET ``VaultProxy``, take that operation's
  ``defaultResourceRequest``) and ``is_retention_duration_decreased``; ``custom.py``
  ``update_policy_for_item`` / ``set_policy`` put ``[request]`` in
  ``properties.resourceGuardOperationRequests`` only when retention decreases. The CLI adds the
  ``x-ms-authorization-auxiliary`` header only for a guard in another tenant (``aux_tenants``),
  always together with the request: the header alone approves nothing here.
- hashicorp/terraform-provider-azurerm#31887: a refused stop-protection reads "ResourceGuard
  Operation requestid is either null or empty". No public source gives that refusal's error
  code or status: ``REFUSAL_CODE`` below is **unverified** (400 and the ``UserError`` prefix
  follow the service's other user errors, e.g. ``UserErrorOperationDeniedOnImmutableItem`` in
  terraform-provider-azurerm#27950); clients must match the message as well.
- A request naming the guard is checked by ARM against the caller's rights on the guard
  (concept article, steps 5-8; "ResourceGuardOperationRequests on which LAC [linked access
  check] will be performed", @azure/arm-dataprotection ``SuspendBackupRequest`` reference). The
  role: "Backup MUA Operator ... Allows user to perform critical operation protected by
  resourceguard" (MD ``role-based-access-control/built-in-roles.md``; older concept text says
  Contributor). A missing role answers ARM's ``LinkedAuthorizationFailed`` (403; its wording
  for resource guards is **unverified**). The fault ``mua_operator_missing`` names guards on
  which the emulator's principal lacks that role.

The fleet file links a vault with two resources, as ARM returns them: the proxy
(``Microsoft.RecoveryServices/vaults/backupResourceGuardProxies``, id ``{vault}/
backupResourceGuardProxies/VaultProxy``) and the guard (``Microsoft.DataProtection/
resourceGuards``). The ``resource_guard_vaults`` fault is a shortcut: a named vault without a
proxy of its own is linked to a default guard ``{vault}-guard`` in its resource group that
protects every optional operation.
"""

from __future__ import annotations

from typing import Any

from .arm_types import GUARD_TYPE, PROXY_TYPE
from .config import named_in
from .http import ArmError, Request, Response, Router
from .operations import V, paged, vault_or_404
from .world import World

router = Router()

DEFAULT_PROXY = "VaultProxy"  # azure-cli custom_help.default_resource_guard

_RSV = "Microsoft.RecoveryServices/vaults"
# vaultCriticalOperation values (azure-cli custom_help.operation_name_map).
UPDATE_PROTECTION = f"{_RSV}/backupFabrics/protectionContainers/protectedItems/write"
STOP_PROTECTION_RETAIN = UPDATE_PROTECTION + "#stopProtectionWithRetainData"
DELETE_PROTECTION = f"{_RSV}/backupFabrics/protectionContainers/protectedItems/delete"
UPDATE_POLICY = f"{_RSV}/backupPolicies/write"
DELETE_PROXY = f"{_RSV}/backupResourceGuardProxies/delete"
SECURITY_PIN = f"{_RSV}/backupSecurityPIN/action"
DISABLE_SOFT_DELETE = f"{_RSV}/backupconfig/write"
# The guard's request resource type per operation (dataprotection ResourceGuardCRUD examples;
# the stop-with-retain type follows updateProtectedItemRequests: unverified).
REQUEST_TYPES: dict[str, str] = {
    UPDATE_PROTECTION: "updateProtectedItemRequests",
    STOP_PROTECTION_RETAIN: "updateProtectedItemRequests",
    DELETE_PROTECTION: "deleteProtectedItemRequests",
    UPDATE_POLICY: "updateProtectionPolicyRequests",
    DELETE_PROXY: "deleteResourceGuardProxyRequests",
    SECURITY_PIN: "backupSecurityPINRequests",
    DISABLE_SOFT_DELETE: "disableSoftDeleteRequests",
}
# Mandatory operations can't be excluded (concept article).
MANDATORY = frozenset({DELETE_PROXY, DISABLE_SOFT_DELETE})
# azure-cli's short names, accepted in an exclusion list too (the service's spelling of the
# list's entries is not shown by any example with a non-empty list: unverified).
SHORT_NAMES: dict[str, str] = {
    "updateprotection": UPDATE_PROTECTION, "deleteprotection": DELETE_PROTECTION,
    "updatepolicy": UPDATE_POLICY, "getsecuritypin": SECURITY_PIN,
    "recoveryservicesstopprotection": STOP_PROTECTION_RETAIN,
}

REFUSAL_STATUS = 400  # unverified (see module docstring)
REFUSAL_CODE = "UserErrorResourceGuardOperationRequestNullOrEmpty"  # unverified
# hashicorp/terraform-provider-azurerm#31887 quotes it.
REFUSAL_MESSAGE = "ResourceGuard Operation requestid is either null or empty"


# -- the link --------------------------------------------------------------------------------

def _guard_id_for(vault_id: str) -> str:
    """The shortcut's default guard: ``{vault}-guard`` in the vault's resource group."""
    parts = vault_id.split("/")
    return (f"/subscriptions/{parts[2]}/resourceGroups/{parts[4]}/providers/{GUARD_TYPE}/"
            f"{parts[-1]}-guard")


def default_guard(guard_id: str, location: str = "") -> dict[str, Any]:
    """A guard as ARM returns it, protecting every operation (nothing excluded)."""
    ops = [{"vaultCriticalOperation": op, "requestResourceType": f"{GUARD_TYPE}/{kind}"}
           for op, kind in REQUEST_TYPES.items()]
    return {"id": guard_id, "name": guard_id.rsplit("/", 1)[-1], "type": GUARD_TYPE,
            "location": location,
            "properties": {"provisioningState": "Succeeded", "allowAutoApprovals": True,
                           "resourceGuardOperations": ops,
                           "vaultCriticalOperationExclusionList": [],
                           "description": "Take JIT access before any critical operation"}}


def proxy_for(vault: dict, guard: dict) -> dict[str, Any]:
    """The proxy linking ``vault`` to ``guard``, one operation detail per guarded operation
    (GetResourceGuardProxy.json)."""
    details = [{"vaultCriticalOperation": op["vaultCriticalOperation"],
                "defaultResourceRequest": f"{guard['id']}/"
                                          f"{op['requestResourceType'].rsplit('/', 1)[-1]}/default"}
               for op in (guard.get("properties") or {}).get("resourceGuardOperations") or []]
    return {"id": f"{vault['id']}/backupResourceGuardProxies/{DEFAULT_PROXY}",
            "name": DEFAULT_PROXY, "type": PROXY_TYPE,
            "properties": {"resourceGuardResourceId": guard["id"],
                           "resourceGuardOperationDetails": details,
                           "lastUpdatedTime": "2026-01-01T00:00:00.0000000Z",
                           "description": "Take JIT access before any critical operation"}}


def proxies(world: World, vault: dict) -> list[dict]:
    """The vault's proxies: those in the fleet, else the shortcut's default one."""
    stored = world.state.children(vault["id"], PROXY_TYPE)
    if stored or not world.faults.guarded(vault["id"]):
        return sorted(stored, key=lambda p: p["name"].lower())
    guard = default_guard(_guard_id_for(vault["id"]), vault.get("location") or "")
    return [proxy_for(vault, guard)]


def guard_of(world: World, vault: dict, proxy: dict) -> dict | None:
    """The guard a proxy names (None when it is not in the fleet, e.g. in another tenant)."""
    guard_id = (proxy.get("properties") or {}).get("resourceGuardResourceId") or ""
    stored = world.state.get(guard_id) if guard_id else None
    if stored is None and guard_id.lower() == _guard_id_for(vault["id"]).lower():
        return default_guard(guard_id, vault.get("location") or "")
    return stored


def excluded(guard: dict | None, operation: str) -> bool:
    """The guard excludes ``operation`` (never a mandatory one)."""
    if guard is None or operation in MANDATORY:
        return False
    names = (guard.get("properties") or {}).get("vaultCriticalOperationExclusionList") or []
    for name in names:
        full = SHORT_NAMES.get(str(name).lower(), str(name))
        if full.lower() == operation.lower():
            return True
    return False


def expected_request(world: World, vault: dict, operation: str) -> tuple[str, str] | None:
    """(guard id, default request id) when ``operation`` on ``vault`` needs the guard."""
    for proxy in proxies(world, vault)[:1]:  # azure-cli reads the first mapping only
        props = proxy.get("properties") or {}
        # The operation as azure-cli names it, or as the spec's proxy examples do (the guard's
        # request type): which one the service sends is unverified, so both count.
        names = {operation.lower(), f"{GUARD_TYPE}/{REQUEST_TYPES.get(operation, '')}".lower()}
        for detail in props.get("resourceGuardOperationDetails") or []:
            if str(detail.get("vaultCriticalOperation", "")).lower() not in names:
                continue
            if excluded(guard_of(world, vault, proxy), operation):
                return None
            return props.get("resourceGuardResourceId") or "", detail.get(
                "defaultResourceRequest") or ""
    return None


def require_guard_request(world: World, vault: dict, req: Request, operation: str,
                          what: str) -> None:
    """Refuse a critical ``operation`` that carries no request of the vault's guard.

    Call only when the write is critical (e.g. a policy change that reduces retention)."""
    needed = expected_request(world, vault, operation)
    if needed is None:
        return
    guard_id, default_request = needed
    body = req.body if isinstance(req.body, dict) else {}
    props = body.get("properties") if isinstance(body.get("properties"), dict) else {}
    sent = props.get("resourceGuardOperationRequests") or []
    kind = default_request.rsplit("/", 2)[-2].lower() if default_request.count("/") > 1 else ""
    prefix = f"{guard_id.lower()}/{kind}/"
    named = [r for r in sent if isinstance(r, str)
             and (r.lower() == default_request.lower() or (kind and r.lower().startswith(prefix)))]
    if not named:
        raise ArmError(REFUSAL_STATUS, REFUSAL_CODE,
                       f"{REFUSAL_MESSAGE}. '{what}' on vault '{vault['name']}' is a critical "
                       f"operation protected by Resource Guard '{guard_id}': send "
                       f"resourceGuardOperationRequests [\"{default_request}\"] with a role "
                       "(Backup MUA Operator) on that guard.")
    if named_in(guard_id, world.faults.mua_operator_missing):
        raise ArmError(403, "LinkedAuthorizationFailed",
                       f"The client '{req.principal}' has permission to perform action "
                       f"'{operation}' on scope '{vault['id']}'; however, it does not have "
                       f"permission to perform action(s) '{GUARD_TYPE}/{kind}/read' on the linked "
                       f"scope(s) '{named[0]}' (respectively) or the linked scope(s) are invalid.")


# -- retention comparison (azure-cli custom_help.is_retention_duration_decreased) -------------

_DAYS = {"days": 1, "weeks": 7, "months": 30, "years": 365}


def _days(schedule: Any) -> float | None:
    if not isinstance(schedule, dict):
        return None
    duration = schedule.get("retentionDuration") or {}
    count = duration.get("count")
    if not isinstance(count, int | float):
        return None
    return count * _DAYS.get(str(duration.get("durationType", "Days")).lower(), 1)


def retention_reduced(old: dict | None, new: dict | None) -> bool:
    """``new`` keeps any recovery point for less time than ``old``: a shorter daily, weekly,
    monthly or yearly retention (or one dropped), or fewer instant-restore days."""
    if not old or not new:
        return False
    o, n = old.get("properties") or {}, new.get("properties") or {}
    oi, ni = o.get("instantRpRetentionRangeInDays"), n.get("instantRpRetentionRangeInDays")
    if isinstance(oi, int) and (not isinstance(ni, int) or ni < oi):
        return True
    orp, nrp = o.get("retentionPolicy") or {}, n.get("retentionPolicy") or {}
    for key in ("dailySchedule", "weeklySchedule", "monthlySchedule", "yearlySchedule"):
        before = _days(orp.get(key))
        if before is None:
            continue
        after = _days(nrp.get(key))
        if after is None or after < before:
            return True
    return False


# -- routes ----------------------------------------------------------------------------------

@router.route("GET", V + "/backupResourceGuardProxies", "read")
def list_proxies(world: World, req: Request, sub: str, rg: str, vault: str) -> Response:
    """ResourceGuardProxies_Get: the vault's links; an empty list for an unguarded vault."""
    res = vault_or_404(world, req, sub, rg, vault)
    return paged(world, req, proxies(world, res))


@router.route("PUT", V + "/backupResourceGuardProxies/{name}", "write")
def put_proxy(world: World, req: Request, sub: str, rg: str, vault: str, name: str) -> Response:
    """ResourceGuardProxy_Put (PutResourceGuardProxy.json): link the vault to a guard of the
    fleet; the answer lists the guard's operations, as the example's does. Linking is not
    itself critical; changing or removing a link is not modelled (its unlockDelete dance)."""
    res = vault_or_404(world, req, sub, rg, vault)
    body = req.body if isinstance(req.body, dict) else {}
    props = body.get("properties") if isinstance(body.get("properties"), dict) else {}
    guard_id = str(props.get("resourceGuardResourceId") or "")
    guard = world.state.get(guard_id) if guard_id else None
    if guard is None or guard.get("type", "").lower() != GUARD_TYPE.lower():
        raise ArmError(400, "BMSUserErrorInvalidInput",
                       f"properties.resourceGuardResourceId '{guard_id}' is not a Resource Guard "
                       "the emulator knows; add the Microsoft.DataProtection/resourceGuards "
                       "resource to the fleet first (error code chosen by the emulator).")
    linked = proxy_for(res, guard)
    linked["id"] = f"{res['id']}/backupResourceGuardProxies/{name}"
    linked["name"] = name
    return Response(200, world.state.put(linked))


@router.route("GET", V + "/backupResourceGuardProxies/{name}", "read")
def get_proxy(world: World, req: Request, sub: str, rg: str, vault: str, name: str) -> Response:
    """ResourceGuardProxy_Get (GetResourceGuardProxy.json); 404 when the vault has no such
    link (azapi#122 shows a 404 for an absent VaultProxy; its error code is unverified)."""
    res = vault_or_404(world, req, sub, rg, vault)
    for proxy in proxies(world, res):
        if proxy["name"].lower() == name.lower():
            return Response(200, proxy)
    raise ArmError(404, "ResourceNotFound",
                   f"The resource guard proxy '{name}' was not found in vault '{res['name']}'.")

