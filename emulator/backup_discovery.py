"""Container discovery and protectable items: how a vault learns of VMs it could protect.

Sources (specs = Azure/azure-rest-api-specs RecoveryServicesBackup, api-version 2026-11-01;
MD = MicrosoftDocs/azure-docs ``articles/backup``):

- ``POST {vault}/backupFabrics/{fabric}/refreshContainers`` "Discovers all the containers in
  the subscription that can be backed up" (specs ``routes.tsp``,
  ``ProtectionContainersOperationGroup.refresh``); it answers **202 only**, with ``Location``
  (``.../backupFabrics/Azure/operationResults/{op}``) and ``Retry-After: 60``, and no
  ``Azure-AsyncOperation`` (specs ``Common/RefreshContainers.json``; MD
  ``backup-azure-arm-userestapi-backupazurevms.md``).
- ``GET .../backupFabrics/{fabric}/operationResults/{op}`` answers 202 (``Location``,
  ``Retry-After``) while discovery runs and **204** with no body when it is done (specs
  ``Common/RefreshContainers_OperationResults.json``; the MD how-to: "Once all the Azure VMs
  are discovered, the GET command returns a 204 (No Content) response"). The status variant
  ``.../operationsStatus/{op}`` answers an ``OperationStatus`` body
  (``RefreshContainers_OperationStatus.json``).
- ``GET {vault}/backupProtectableItems?$filter=backupManagementType eq 'AzureIaasVM'`` lists the
  VMs the vault could protect, 200 a page (MD how-to: "limited to 200 for a 'page'"), in the
  shape the MD how-to shows (ids and names lower-cased, as a real answer quoted in
  Azure/azure-powershell#3164 has them; ``virtualMachineId`` and ``resourceGroup`` as ARM
  spells them). VMs protected by this or any other vault are left out (MicrosoftDocs/azure-docs
  PR #3244), so are soft-deleted and stopped ones (their item is still registered).

What a vault has discovered: the VMs that existed when the emulator started (Azure discovers on
its own too: a new VM appeared about 30 minutes after creation in Azure/azure-sdk-for-python
#22232), plus whatever its last completed refresh found. A VM created since shows only after a
refresh. Chosen by the emulator where Microsoft is silent (unverified): discovery covers every
region of the vault's subscription (the spec says "in the subscription"; the PUT then refuses
another region), a refresh's duration (``timing`` kind ``container_refresh``), refreshes of one
vault do not conflict, and a ``$filter`` for another workload discovers no VM.
"""

from __future__ import annotations

from typing import Any

from .http import ArmError, Request, Response, Router
from .operations import (
    V,
    find_operation,
    paged,
    parse_filter,
    retry_after,
    service,
    status_response,
    vault_or_404,
)
from .state import ITEM, VM, parse_id
from .world import World

router = Router()

P_FABRIC = V + "/backupFabrics/{fabric}"
PROTECTABLE_TYPE = ("Microsoft.RecoveryServices/vaults/backupFabrics/protectionContainers/"
                    "protectableItems")
_INVALID_INPUT = "Input provided for the call is invalid\r\nPlease check the required inputs"


def _fabric(fabric: str) -> None:
    if fabric.lower() != "azure":
        raise ArmError(400, "BMSUserErrorInvalidInput",
                       f"{_INVALID_INPUT}. Fabric '{fabric}' is not valid for Azure VMs; "
                       "use 'Azure'.")


def _for_vms(req: Request) -> bool:
    """Whether the request's ``$filter`` (none, or ``backupManagementType eq ...``) covers
    Azure VMs."""
    clauses = parse_filter(req.query.get("$filter", ""), ("backupManagementType",))
    wanted = clauses.get("backupmanagementtype")
    return wanted is None or wanted.lower() == "azureiaasvm"


def discovered(world: World, vault: dict) -> set[str]:
    """Lower ids of the VMs this vault has discovered (see the module docstring)."""
    svc = service(world)
    with svc.lock:
        found = svc.discovered.get(vault["id"].lower())
    return found if found is not None else world.vms_at_start


@router.route("POST", P_FABRIC + "/refreshContainers", "write")
def refresh_containers(world: World, req: Request, sub: str, rg: str, vault: str,
                       fabric: str) -> Response:
    res = vault_or_404(world, req, sub, rg, vault)
    _fabric(fabric)
    for_vms = _for_vms(req)
    svc = service(world)
    op = svc.new_operation(res["id"], "refresh", res["id"],
                           svc.timing.seconds("container_refresh"))

    def finish() -> None:
        if for_vms:
            vault_sub = parse_id(res["id"]).get("subscriptions", "").lower()
            found = {vm["id"].lower() for vm in world.state.of_type(VM, subscription=vault_sub)}
            with svc.lock:
                svc.discovered[res["id"].lower()] = found
        op.finish()

    svc.at(op.due, finish)
    return Response(202, None, {
        "Location": f"{world.base_url}{res['id']}/backupFabrics/{fabric}/operationResults/"
                    f"{op.id}?api-version={req.api_version}",
        "Retry-After": retry_after(world, op),
    })


@router.route("GET", P_FABRIC + "/operationResults/{op_id}", "read")
def refresh_result(world: World, req: Request, sub: str, rg: str, vault: str, fabric: str,
                   op_id: str) -> Response:
    """202 while discovery runs (``Location``, ``Retry-After``), 204 once it is done."""
    res = vault_or_404(world, req, sub, rg, vault)
    _fabric(fabric)
    op = find_operation(world, res, op_id)
    if not op.done:
        return Response(202, None, {
            "Location": f"{world.base_url}{req.raw_path.split('?', 1)[0]}"
                        f"?api-version={req.api_version}",
            "Retry-After": retry_after(world, op),
        })
    return Response(204)


@router.route("GET", P_FABRIC + "/operationsStatus/{op_id}", "read")
def refresh_status(world: World, req: Request, sub: str, rg: str, vault: str, fabric: str,
                   op_id: str) -> Response:
    res = vault_or_404(world, req, sub, rg, vault)
    _fabric(fabric)
    return status_response(world, find_operation(world, res, op_id))


@router.route("GET", V + "/backupProtectableItems", "read")
def list_protectable(world: World, req: Request, sub: str, rg: str, vault: str) -> Response:
    res = vault_or_404(world, req, sub, rg, vault)
    if not _for_vms(req):
        return paged(world, req, [])
    vault_sub = parse_id(res["id"]).get("subscriptions", "").lower()
    known = discovered(world, res)
    registered = _registered_vms(world)
    items = [protectable_item(res, vm) for vm in world.state.of_type(VM, subscription=vault_sub)
             if vm["id"].lower() in known and vm["id"].lower() not in registered]
    items.sort(key=lambda i: i["id"])
    return paged(world, req, items)


def _registered_vms(world: World) -> set[str]:
    """Lower ids of the VMs with a protected item in any vault, in any state (one pass over
    the items, cached while the estate does not change)."""
    svc = service(world)
    version = world.state.version
    with svc.lock:
        cached = svc.registered_vms
    if cached is not None and cached[0] == version:
        return cached[1]
    found = set()
    for item in world.state.of_type(ITEM):
        props = item.get("properties") or {}
        vm_id = props.get("sourceResourceId") or props.get("virtualMachineId")
        if vm_id:
            found.add(str(vm_id).lower())
    with svc.lock:
        svc.registered_vms = (version, found)
    return found


def protectable_item(vault: dict, vm: dict) -> dict[str, Any]:
    """One Azure VM as ``backupProtectableItems`` lists it (the MD how-to's shape)."""
    seg = parse_id(vm["id"])
    rg, name = seg.get("resourcegroups", ""), seg.get("virtualmachines", "")
    container = f"iaasvmcontainerv2;{rg.lower()};{name.lower()}"
    return {
        "id": f"{vault['id']}/backupFabrics/Azure/protectionContainers/IaasVMContainer;"
              f"{container}/protectableItems/vm;{container}",
        "name": container,
        "type": PROTECTABLE_TYPE,
        "properties": {
            "virtualMachineId": vm["id"], "virtualMachineVersion": "Compute",
            "resourceGroup": rg, "backupManagementType": "AzureIaasVM",
            "protectableItemType": "Microsoft.Compute/virtualMachines",
            "friendlyName": vm.get("name") or name, "protectionState": "NotProtected",
            "workloadType": "VM",
        },
    }
