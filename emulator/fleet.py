"""Load and validate fleet files (DESIGN.md, "Fleet file").

A fleet file is what the emulator serves: subscriptions, management groups, ARM resources exactly
as an ARM GET returns them, and optionally Resource SKUs. Validation checks only what the emulator
relies on (ids it routes by, types it indexes, the few properties it reads) so that a bad file
fails at load time with one message that names the file, the resource and the fix, instead of as
a KeyError deep inside a request handler. References between resources (a VM's disk, an item's
policy) are deliberately NOT checked: dangling references are real scenarios the tool must report.

Validation is one plain loop over the resources (no jsonschema): a 100k-VM fleet has ~400k of them.
"""

from __future__ import annotations

import gc
import json
import re
from pathlib import Path
from typing import Any

from .arm_types import (
    DISK_TYPE,
    GUARD_TYPE,
    ITEM_TYPE,
    POLICY_TYPE,
    PROXY_TYPE,
    SQLVM_TYPE,
    VAULT_TYPE,
    VM_TYPE,
)

__all__ = ["RESOURCE_TYPES", "FleetError", "load_fleet", "validate_fleet"]


RESOURCE_TYPES: frozenset[str] = frozenset(
    {VM_TYPE, DISK_TYPE, VAULT_TYPE, POLICY_TYPE, ITEM_TYPE, SQLVM_TYPE, PROXY_TYPE, GUARD_TYPE}
)
_CANONICAL_TYPE = {t.lower(): t for t in RESOURCE_TYPES}
_NEEDS_LOCATION = frozenset(
    t.lower() for t in (VM_TYPE, DISK_TYPE, VAULT_TYPE, SQLVM_TYPE, GUARD_TYPE))
_VAULT_CHILDREN = frozenset(t.lower() for t in (POLICY_TYPE, ITEM_TYPE, PROXY_TYPE))
_SUBSCRIPTION_STATES = ("Enabled", "Disabled", "Warned", "PastDue", "Deleted")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")

_ID_EXAMPLE = {
    VM_TYPE: "/subscriptions/{sub}/resourceGroups/{rg}/providers/"
    "Microsoft.Compute/virtualMachines/{vm}",
    DISK_TYPE: "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/disks/{disk}",
    VAULT_TYPE: "/subscriptions/{sub}/resourceGroups/{rg}/providers/"
    "Microsoft.RecoveryServices/vaults/{vault}",
    POLICY_TYPE: "{vault id}/backupPolicies/{policy}",
    ITEM_TYPE: "{vault id}/backupFabrics/Azure/protectionContainers/"
    "IaasVMContainer;iaasvmcontainerv2;{rg};{vm}/protectedItems/VM;iaasvmcontainerv2;{rg};{vm}",
    SQLVM_TYPE: "/subscriptions/{sub}/resourceGroups/{rg}/providers/"
    "Microsoft.SqlVirtualMachine/sqlVirtualMachines/{vm}",
    PROXY_TYPE: "{vault id}/backupResourceGuardProxies/VaultProxy",
    GUARD_TYPE: "/subscriptions/{sub}/resourceGroups/{rg}/providers/"
    "Microsoft.DataProtection/resourceGuards/{guard}",
}


class FleetError(ValueError):
    """Bad fleet file. str(err) is one user-facing message naming the file, the first bad resource
    (its index in `resources` and its id/name when present) and the field, and what is expected."""

    def __init__(self, source: str, where: str, problem: str, field: str | None = None) -> None:
        self.source = source
        self.where = where
        self.field = field
        self.problem = problem
        location = f": {where}" if where else ""
        super().__init__(f"fleet file {source}{location}: {problem}")


def load_fleet(path: str | Path) -> dict:
    """Read a fleet file, validate it and return it; every failure is a FleetError."""
    source = str(path)
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise FleetError(
            source, "", "no such file; pass the path of a fleet JSON file, e.g. one written by "
            "`ccmigrate emulator generate --vms 1000 --out fleet.json`") from None
    except IsADirectoryError:
        raise FleetError(source, "", "is a directory; pass the path of a fleet JSON file") from None
    except OSError as err:
        raise FleetError(source, "", f"cannot be read ({err.strerror or err})") from None
    try:
        fleet = _parse(raw)
    except UnicodeDecodeError as err:
        raise FleetError(source, "", f"is not UTF-8 text (byte {err.start}); fleet files are "
                         "UTF-8 JSON") from None
    except json.JSONDecodeError as err:
        raise FleetError(
            source, "", f"is not valid JSON: {err.msg} at line {err.lineno}, column {err.colno}"
        ) from None
    validate_fleet(fleet, source)
    return fleet


def _parse(raw: bytes) -> Any:
    """orjson when installed (it comes with Prefect; ~5x faster on a 600 MB fleet), else the
    stdlib. On any orjson error the stdlib parses again: it accepts what it accepts and its
    error carries the line and column users need."""
    try:
        import orjson
    except ImportError:  # pragma: no cover - orjson ships with prefect
        return json.loads(raw)
    # Millions of new containers make the cyclic GC rescan a growing heap; none form cycles.
    paused = gc.isenabled()
    gc.disable()
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)
    finally:
        if paused:
            gc.enable()


def _describe(value: Any) -> str:
    """Name a JSON value's kind the way a user reads the file."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "an empty string" if not value else f"the string {json.dumps(value)[:80]}"
    return f"the number {value}"


def _field_error(source: str, where: str, container: Any, key: str, path: str,
                 expect: str) -> FleetError:
    """FleetError for `path` (the field `key` of `container`), missing or of the wrong kind."""
    if not isinstance(container, dict) or key not in container:
        found = "missing"
    else:
        found = _describe(container[key])
    return FleetError(source, where, f"{path} is {found}; {expect}", path)


def validate_fleet(fleet: dict, source: str = "<fleet>") -> None:
    """Raise FleetError for the first problem the emulator would trip over; return None if fine."""
    if not isinstance(fleet, dict):
        raise FleetError(source, "", f"the top level is {_describe(fleet)}; a fleet file is a JSON "
                         'object {"subscriptions": [...], "resources": [...]}')
    subs = _validate_subscriptions(fleet, source)
    _validate_management_groups(fleet, source, subs)
    _validate_resources(fleet, source, subs)
    _validate_skus(fleet, source)


def _validate_subscriptions(fleet: dict, source: str) -> set[str]:
    if "subscriptions" not in fleet or not isinstance(fleet["subscriptions"], list):
        raise _field_error(
            source, "", fleet, "subscriptions", "subscriptions",
            'a fleet needs a list of subscriptions, e.g. [{"subscriptionId": '
            '"00000000-0000-0000-0000-000000000001", "displayName": "contoso-prod-01", '
            '"tenantId": "...", "state": "Enabled"}]')
    seen: dict[str, int] = {}
    for i, sub in enumerate(fleet["subscriptions"]):
        where = f"subscriptions[{i}]"
        if not isinstance(sub, dict):
            raise FleetError(source, where, f"is {_describe(sub)}; each subscription is an object "
                             "with subscriptionId, displayName, tenantId and state")
        sid = sub.get("subscriptionId")
        if isinstance(sid, str) and sid:
            where = f"subscriptions[{i}] ({sid})"
        if not isinstance(sid, str) or not _GUID.match(sid):
            raise _field_error(source, where, sub, "subscriptionId", "subscriptionId",
                               'expected a GUID, e.g. "00000000-0000-0000-0000-000000000001"')
        key = sid.lower()
        if key in seen:
            raise FleetError(source, where, f"subscriptionId {sid} is listed twice (first at "
                             f"subscriptions[{seen[key]}]); list each subscription once",
                             "subscriptionId")
        seen[key] = i
        name = sub.get("displayName")
        if not isinstance(name, str) or not name:
            raise _field_error(source, where, sub, "displayName", "displayName",
                               'expected the subscription\'s name, e.g. "contoso-prod-01"')
        tenant = sub.get("tenantId")
        if not isinstance(tenant, str) or not _GUID.match(tenant):
            raise _field_error(source, where, sub, "tenantId", "tenantId",
                               "expected the Entra tenant's GUID")
        state = sub.get("state")
        if state not in _SUBSCRIPTION_STATES:
            raise _field_error(source, where, sub, "state", "state",
                               f"expected one of {', '.join(_SUBSCRIPTION_STATES)}")
    return set(seen)


def _validate_management_groups(fleet: dict, source: str, subs: set[str]) -> None:
    groups = fleet.get("managementGroups", [])
    if not isinstance(groups, list):
        raise FleetError(source, "", f"managementGroups is {_describe(groups)}; expected a list of "
                         '{"name": ..., "subscriptions": [ids]} (or leave it out)',
                         "managementGroups")
    names: dict[str, int] = {}
    for i, mg in enumerate(groups):
        where = f"managementGroups[{i}]"
        if not isinstance(mg, dict):
            raise FleetError(source, where, f"is {_describe(mg)}; expected "
                             '{"name": "mg-prod", "subscriptions": [ids]}')
        name = mg.get("name")
        if not isinstance(name, str) or not name:
            raise _field_error(source, where, mg, "name", "name",
                               'expected the management group\'s name, e.g. "mg-prod"')
        where = f"managementGroups[{i}] ({name})"
        if name.lower() in names:
            raise FleetError(source, where, f"name is used twice (first at managementGroups"
                             f"[{names[name.lower()]}]); give each group its own name", "name")
        names[name.lower()] = i
        members = mg.get("subscriptions")
        if not isinstance(members, list):
            raise _field_error(source, where, mg, "subscriptions", "subscriptions",
                               "expected a list of subscription ids")
        for j, sid in enumerate(members):
            if not isinstance(sid, str) or sid.lower() not in subs:
                raise FleetError(source, where, f"subscriptions[{j}] is {_describe(sid)}, which is "
                                 "not a subscriptionId listed in `subscriptions`; add that "
                                 "subscription or remove it from the group", f"subscriptions[{j}]")


def _parse_arm_id(rid: str) -> tuple[str, str] | None:
    """(subscription, type as named by the id) for a resource-group-scoped ARM id, else None."""
    parts = rid.split("/")
    n = len(parts)
    if (n < 9 or n % 2 == 0 or parts[0] != "" or parts[1].lower() != "subscriptions"
            or parts[3].lower() != "resourcegroups" or parts[5].lower() != "providers"
            or "" in parts[1:]):
        return None
    return parts[2], parts[6] + "/" + "/".join(parts[7::2])


def _validate_resources(fleet: dict, source: str, subs: set[str]) -> None:
    resources = fleet.get("resources")
    if not isinstance(resources, list):
        raise _field_error(source, "", fleet, "resources", "resources",
                           "a fleet needs a list of ARM resource objects (it may be empty)")
    # Pass 1: the vaults, so a policy or protected item may come before its vault in the list.
    vault_key = VAULT_TYPE.lower()
    vaults = {
        r["id"].lower()
        for r in resources
        if isinstance(r, dict) and isinstance(r.get("type"), str)
        and r["type"].lower() == vault_key and isinstance(r.get("id"), str)
    }
    seen: dict[str, int] = {}
    for i, res in enumerate(resources):
        _validate_resource(i, res, source, subs, vaults, seen)


def _validate_resource(i: int, res: Any, source: str, subs: set[str], vaults: set[str],
                       seen: dict[str, int]) -> None:
    if not isinstance(res, dict):
        raise FleetError(source, f"resources[{i}]", f"is {_describe(res)}; each resource is an ARM "
                         "object with id, name, type and properties")
    rid = res.get("id")
    name = res.get("name")
    if isinstance(rid, str) and rid:
        where = f"resources[{i}] ({rid})"
    elif isinstance(name, str) and name:
        where = f"resources[{i}] ({name})"
    else:
        where = f"resources[{i}]"

    rtype = res.get("type")
    canonical = _CANONICAL_TYPE.get(rtype.lower()) if isinstance(rtype, str) else None
    if canonical is None:
        raise _field_error(source, where, res, "type", "type",
                           f"expected one of {', '.join(sorted(RESOURCE_TYPES))}")
    tkey = canonical.lower()

    if not isinstance(rid, str) or not rid:
        raise _field_error(source, where, res, "id", "id", f"every {canonical} needs its ARM "
                           f"id, e.g. \"{_ID_EXAMPLE[canonical]}\"")
    parsed = _parse_arm_id(rid)
    if parsed is None:
        raise FleetError(source, where, "id is not an ARM resource id; expected "
                         f"\"{_ID_EXAMPLE[canonical]}\"", "id")
    sub, id_type = parsed
    if id_type.lower() != tkey:
        raise FleetError(source, where, f"id names a {id_type} but type is {rtype}; the provider "
                         f"path of the id must match type, e.g. \"{_ID_EXAMPLE[canonical]}\"", "id")
    if sub.lower() not in subs and tkey != GUARD_TYPE.lower():
        # A Resource Guard may live in a subscription or tenant the fleet does not list
        # (multi-user-authorization-concept.md, "Usage scenarios").
        raise FleetError(source, where, f"id is in subscription {sub}, which is not listed in "
                         "`subscriptions`; add the subscription or fix the id", "id")
    key = rid.lower()
    if key in seen:
        raise FleetError(source, where, f"id duplicates resources[{seen[key]}] (ids are compared "
                         "ignoring case); every resource must be listed once", "id")
    seen[key] = i

    last = rid.rsplit("/", 1)[1]
    if not isinstance(name, str) or not name:
        raise _field_error(source, where, res, "name", "name",
                           f"expected the last segment of the id, \"{last}\"")
    if name.lower() != last.lower():
        raise FleetError(source, where, f"name is {json.dumps(name)} but the id ends in "
                         f"{json.dumps(last)}; name must be the id's last segment", "name")

    if tkey in _NEEDS_LOCATION:
        loc = res.get("location")
        if not isinstance(loc, str) or not loc:
            raise _field_error(source, where, res, "location", "location",
                               f"every {canonical} needs its region, e.g. \"eastus\"")
    if tkey in _VAULT_CHILDREN:
        vault = "/".join(rid.split("/")[:9])
        if vault.lower() not in vaults:
            raise FleetError(source, where, f"its vault {vault} is not in the fleet; add the "
                             f"{VAULT_TYPE} resource or remove this {canonical}", "id")

    props = res.get("properties")
    if not isinstance(props, dict):
        raise _field_error(source, where, res, "properties", "properties",
                           f"every {canonical} needs its ARM properties object")
    if tkey == VM_TYPE.lower():
        _validate_vm(props, source, where)
    elif tkey == ITEM_TYPE.lower():
        _validate_item(props, source, where)
    elif tkey == PROXY_TYPE.lower():
        _validate_proxy(props, source, where)
    elif tkey == GUARD_TYPE.lower():
        _validate_guard(props, source, where)


def _validate_vm(props: dict, source: str, where: str) -> None:
    hw = props.get("hardwareProfile")
    size = hw.get("vmSize") if isinstance(hw, dict) else None
    if not isinstance(size, str) or not size:
        raise _field_error(source, where, hw, "vmSize", "properties.hardwareProfile.vmSize",
                           f"every {VM_TYPE} needs its size, e.g. \"Standard_D4s_v5\"")
    storage = props.get("storageProfile")
    os_disk = storage.get("osDisk") if isinstance(storage, dict) else None
    if not isinstance(os_disk, dict):
        raise _field_error(source, where, storage, "osDisk", "properties.storageProfile.osDisk",
                           f"every {VM_TYPE} needs its OS disk object, e.g. "
                           '{"osType": "Linux", "managedDisk": {"id": "..."}}')


def _validate_item(props: dict, source: str, where: str) -> None:
    for field, example in (("sourceResourceId", "the protected VM's ARM id"),
                           ("protectionState", '"Protected"')):
        value = props.get(field)
        if not isinstance(value, str) or not value:
            raise _field_error(source, where, props, field, f"properties.{field}",
                               f"every protected item needs it, e.g. {example}")
    if props["protectionState"] == "ProtectionStopped":
        return
    policy = props.get("policyId")
    if not isinstance(policy, str) or not policy:
        raise _field_error(source, where, props, "policyId", "properties.policyId",
                           f"a protected item in state {props['protectionState']} needs the full "
                           "id of its backup policy, e.g. \"{vault id}/backupPolicies/"
                           "EnhancedPolicy\" (only ProtectionStopped items may have none)")


# The operations a guard can't exclude (multi-user-authorization-concept.md: disable soft
# delete and disable MUA are mandatory).
_MANDATORY_OPERATIONS = frozenset({
    "microsoft.recoveryservices/vaults/backupconfig/write",
    "microsoft.recoveryservices/vaults/backupresourceguardproxies/delete",
})


def _validate_proxy(props: dict, source: str, where: str) -> None:
    """A vault's link to its guard (GetResourceGuardProxy.json)."""
    guard = props.get("resourceGuardResourceId")
    parsed = _parse_arm_id(guard) if isinstance(guard, str) else None
    if parsed is None or parsed[1].lower() != GUARD_TYPE.lower():
        raise _field_error(source, where, props, "resourceGuardResourceId",
                           "properties.resourceGuardResourceId",
                           f"expected the guard's ARM id, e.g. \"{_ID_EXAMPLE[GUARD_TYPE]}\"")
    details = props.get("resourceGuardOperationDetails", [])
    if not isinstance(details, list):
        raise _field_error(source, where, props, "resourceGuardOperationDetails",
                           "properties.resourceGuardOperationDetails",
                           'expected a list of {"vaultCriticalOperation": ..., '
                           '"defaultResourceRequest": "{guard id}/{request type}/default"}')
    for j, detail in enumerate(details):
        path = f"properties.resourceGuardOperationDetails[{j}]"
        for key in ("vaultCriticalOperation", "defaultResourceRequest"):
            value = detail.get(key) if isinstance(detail, dict) else None
            if not isinstance(value, str) or not value:
                raise _field_error(source, where, detail, key, f"{path}.{key}",
                                   "expected a string, e.g. \"Microsoft.RecoveryServices/vaults/"
                                   "backupPolicies/write\" and \"{guard id}/"
                                   "updateProtectionPolicyRequests/default\"")
        if not detail["defaultResourceRequest"].lower().startswith(guard.lower() + "/"):
            raise FleetError(source, where, f"{path}.defaultResourceRequest is not a request of "
                             f"the guard {guard}; expected \"{guard}/{{request type}}/default\"",
                             f"{path}.defaultResourceRequest")


def _validate_guard(props: dict, source: str, where: str) -> None:
    """A Resource Guard (dataprotection ResourceGuardCRUD examples)."""
    ops = props.get("resourceGuardOperations", [])
    if not isinstance(ops, list) or not all(
            isinstance(o, dict) and isinstance(o.get("vaultCriticalOperation"), str)
            and isinstance(o.get("requestResourceType"), str) for o in ops):
        raise _field_error(source, where, props, "resourceGuardOperations",
                           "properties.resourceGuardOperations",
                           'expected a list of {"vaultCriticalOperation": ..., '
                           '"requestResourceType": "Microsoft.DataProtection/resourceGuards/..."}')
    excluded = props.get("vaultCriticalOperationExclusionList", [])
    if not isinstance(excluded, list) or not all(isinstance(e, str) for e in excluded):
        raise _field_error(source, where, props, "vaultCriticalOperationExclusionList",
                           "properties.vaultCriticalOperationExclusionList",
                           "expected a list of vaultCriticalOperation strings")
    for j, name in enumerate(excluded):
        if name.lower() in _MANDATORY_OPERATIONS:
            raise FleetError(source, where, f"{name} is mandatory and can't be excluded (disable "
                             "soft delete and disable MUA are always protected); remove it",
                             f"properties.vaultCriticalOperationExclusionList[{j}]")


def _validate_skus(fleet: dict, source: str) -> None:
    if "resourceSkus" not in fleet:
        return
    skus = fleet["resourceSkus"]
    if not isinstance(skus, list):
        raise FleetError(source, "", f"resourceSkus is {_describe(skus)}; expected a list of "
                         "Resource SKU objects (or leave it out to use the built-in catalogue)",
                         "resourceSkus")
    for i, sku in enumerate(skus):
        where = f"resourceSkus[{i}]"
        if not isinstance(sku, dict):
            raise FleetError(source, where, f"is {_describe(sku)}; expected a Resource SKU object")
        name = sku.get("name")
        if isinstance(name, str) and name:
            where = f"resourceSkus[{i}] ({name})"
        for field, example in (("resourceType", '"virtualMachines"'),
                               ("name", '"Standard_D4s_v5"')):
            value = sku.get(field)
            if not isinstance(value, str) or not value:
                raise _field_error(source, where, sku, field, field,
                                   f"expected a string, e.g. {example}")
        locs = sku.get("locations")
        if not isinstance(locs, list) or not all(isinstance(x, str) for x in locs):
            raise _field_error(source, where, sku, "locations", "locations",
                               'expected a list of region names, e.g. ["eastus"]')
