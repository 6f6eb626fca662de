"""Protected item routes: list, get, enable/change/stop protection (PUT), delete, on-demand backup.

Every change answers 202 (``Azure-AsyncOperation`` -> ``.../operationsStatus/{op}``,
``Location`` -> ``.../operationResults/{op}``) and runs a job (``ConfigureBackup``,
``DisableBackup``, ``DeleteBackupData``, ``Backup``). **While a change is in flight the item keeps
its old policy and state**; the new policy shows only once the operation succeeds. When the
ConfigureBackup job fails (fault ``fail_jobs_for``, or an ``OnlyCrashConsistent`` target policy
and a VM the support table rejects) the operation ends ``Failed`` with ``error`` {code, message}
and the item keeps its old policy. A newly protected VM is ``IRPending``/``Healthy`` with
``lastBackupStatus: ""`` and ``lastBackupTime: 2001-01-01T00:00:00Z`` until its first backup
succeeds, then ``Protected`` (MD ``backup-azure-arm-userestapi-backupazurevms.md``). Protecting a
VM needs it discovered by the vault (``backup_discovery``), room in the vault (1,000 VMs) and
write access to the VM (MD ``backup-rbac-rs-vault.md``).

Error codes, Azure's: ``BMSUserErrorInvalidConfigureProtectionRequest`` (malformed request,
its message), ``BMSUserErrorObjectLocked`` (another operation runs on the item; Azure's text),
``BMSUserErrorInvalidInput``. Chosen by the emulator (the service's are unpublished):
``BMSUserErrorPolicyNotFound``, ``BMSUserErrorSourceVmNotFound``,
``BMSUserErrorVmVaultLocationMismatch``, ``UserErrorVmAlreadyProtectedInOtherVault`` (message as
the service words it), ``UserErrorEnhancedToStandardPolicyChangeNotSupported``,
``BMSUserErrorProtectionStopped``, ``BMSUserErrorVaultCapacityReached``; a VM the principal may
not write answers ARM's ``LinkedAuthorizationFailed`` (unverified). On a vault linked to a
Resource Guard, a policy change that reduces retention, a stop and a delete are critical
operations (``emulator/resource_guard.py``, whose refusal code is unverified).
"""

from __future__ import annotations

import copy
import hashlib
import re
from datetime import datetime
from typing import Any

from .arm_types import ITEM_TYPE, VM_TYPE
from .backup_discovery import discovered
from .backup_policies import STOPPED_STATES, policy_type, refresh_count
from .http import ArmError, Request, Response, Router
from .jobs import Job, job_failure, late_job_failure, new_job
from .operations import (
    BackupService,
    Operation,
    V,
    accepted,
    failed_result,
    find_operation,
    iso,
    paged,
    parse_filter,
    service,
    status_response,
    still_running,
    vault_or_404,
)
from .resource_guard import (
    DELETE_PROTECTION,
    STOP_PROTECTION_RETAIN,
    UPDATE_PROTECTION,
    require_guard_request,
    retention_reduced,
)
from .state import ITEM, VAULT, VM, parse_id
from .world import World

router = Router()

P_ITEM = V + "/backupFabrics/{fabric}/protectionContainers/{container}/protectedItems/{item}"
VM_ITEM_TYPE = VM_TYPE  # protectedItemType of an Azure VM item
_CONTAINER = re.compile(r"^iaasvmcontainer;iaasvmcontainerv2;([^;]+);([^;]+)$", re.IGNORECASE)
_ITEM = re.compile(r"^vm;iaasvmcontainerv2;([^;]+);([^;]+)$", re.IGNORECASE)
_BAD_REQUEST = ("Input for configure protection is not in proper format\r\nPlease ensure that "
                "container exists and other parameters are in valid format. ")
# What a new item shows as its last backup until its first one (MD
# backup-azure-arm-userestapi-backupazurevms.md, the item after enabling protection).
NEVER_BACKED_UP = "2001-01-01T00:00:00Z"
_LOCKED = ("Another operation is in progress on the selected item. Wait for the other "
           "in-progress operation to complete and retry at a later time.")


def item_view(item: dict) -> dict[str, Any]:
    """The item as ARM returns it (Compute_ProtectedItem_Get.json keys)."""
    props = dict(item.get("properties") or {})
    props.setdefault("protectedItemDataId", _data_id(item["id"]))
    props.setdefault("lastRecoveryPoint", None)
    # ProtectedItem.policyName (azure-mgmt-recoveryservicesbackup models); `az backup item
    # set-policy` reads it to fetch the current policy (azure-cli backup/custom.py,
    # update_policy_for_item), so a real item carries it.
    if props.get("policyId"):
        props["policyName"] = str(props["policyId"]).rsplit("/", 1)[-1]
    return {**item, "properties": props}


def _data_id(item_id: str) -> str:
    return str(int(hashlib.sha256(item_id.lower().encode()).hexdigest()[:15], 16))


def _bad(detail: str) -> ArmError:
    return ArmError(400, "BMSUserErrorInvalidConfigureProtectionRequest", _BAD_REQUEST + detail)


def _item_id(vault: dict, fabric: str, container: str, item: str) -> str:
    return (f"{vault['id']}/backupFabrics/{fabric}/protectionContainers/{container}"
            f"/protectedItems/{item}")


def _item_or_404(world: World, vault: dict, item_id: str) -> dict:
    item = world.state.get(item_id)
    if item is None:
        name = item_id.rsplit("/", 1)[-1]
        raise ArmError(404, "ResourceNotFound",
                       f"The protected item '{name}' was not found in vault '{vault['name']}'.")
    return item


def _check_unlocked(world: World, svc: BackupService, item_id: str) -> None:
    if world.faults.object_locked and svc.busy(item_id):
        raise ArmError(400, "BMSUserErrorObjectLocked", _LOCKED)


# -- reads -----------------------------------------------------------------------------------

@router.route("GET", V + "/backupProtectedItems", "read")
def list_items(world: World, req: Request, sub: str, rg: str, vault: str) -> Response:
    """``$filter`` keys backupManagementType, itemType, policyName, friendlyName; ``$skipToken``
    paging."""
    res = vault_or_404(world, req, sub, rg, vault)
    flt = parse_filter(req.query.get("$filter", ""), ("backupManagementType", "itemType",
                                                      "policyName", "friendlyName"))
    picked = []
    for item in sorted(world.state.children(res["id"], ITEM), key=lambda i: i["id"].lower()):
        props = item.get("properties") or {}
        checks = {
            "backupmanagementtype": props.get("backupManagementType", ""),
            "itemtype": props.get("workloadType", ""),
            "policyname": (props.get("policyId") or "").rsplit("/", 1)[-1],
            "friendlyname": props.get("friendlyName", ""),
        }
        if all(str(checks[k]).lower() == v.lower() for k, v in flt.items()):
            picked.append(item_view(item))
    return paged(world, req, picked)


@router.route("GET", P_ITEM, "read")
def get_item(world: World, req: Request, sub: str, rg: str, vault: str, fabric: str,
             container: str, item: str) -> Response:
    """``$filter`` (expand=extendedinfo) is accepted and ignored."""
    res = vault_or_404(world, req, sub, rg, vault)
    return Response(200, item_view(_item_or_404(world, res,
                                                _item_id(res, fabric, container, item))))


# -- enable / change / stop protection -------------------------------------------------------

def _target_policy(world: World, vault: dict, policy_id: Any) -> dict:
    if not isinstance(policy_id, str) or not policy_id.strip():
        raise _bad("properties.policyId is required to enable or change protection.")
    segments = parse_id(policy_id)
    vault_prefix = vault["id"].lower() + "/backuppolicies/"
    policy = world.state.get(policy_id)
    if not policy_id.lower().startswith(vault_prefix) or policy is None:
        where = ("is in another vault" if "backuppolicies" in segments
                 and not policy_id.lower().startswith(vault_prefix) else "does not exist")
        raise ArmError(400, "BMSUserErrorPolicyNotFound",
                       f"The backup policy '{policy_id}' {where}. A protected item can only use "
                       f"a policy of its own vault '{vault['name']}'.")
    if str((policy.get("properties") or {}).get("backupManagementType", "")).lower() != (
            "azureiaasvm"):
        raise ArmError(400, "BMSUserErrorPolicyNotFound",
                       f"The backup policy '{policy['name']}' is not an Azure VM policy.")
    return policy


def _validate_new_item(world: World, vault: dict, fabric: str, container: str, item: str,
                       vm_id: Any, principal: str | None = None) -> dict:
    """A VM not yet protected here: names, VM, discovery, subscription, region, other vaults,
    the vault's capacity, and write access to the VM."""
    if not isinstance(vm_id, str) or not vm_id:
        raise _bad("properties.sourceResourceId (the VM's ARM id) is required to enable "
                   "protection.")
    if fabric.lower() != "azure":
        raise _bad(f"Fabric '{fabric}' is not valid for Azure VMs; use 'Azure'.")
    seg = parse_id(vm_id)
    rg, name = seg.get("resourcegroups", ""), seg.get("virtualmachines", "")
    cm, im = _CONTAINER.match(container), _ITEM.match(item)
    want = (rg.lower(), name.lower())
    if not cm or not im or tuple(g.lower() for g in cm.groups()) != want or tuple(
            g.lower() for g in im.groups()) != want:
        raise _bad(f"For VM '{name}' in resource group '{rg}' the container must be "
                   f"'IaasVMContainer;iaasvmcontainerv2;{rg};{name}' and the item "
                   f"'VM;iaasvmcontainerv2;{rg};{name}'.")
    vm = world.state.get(vm_id)
    if vm is None or vm["type"].lower() != VM:
        raise ArmError(400, "BMSUserErrorSourceVmNotFound",
                       f"The virtual machine '{vm_id}' was not found.")
    if parse_id(vm["id"]).get("subscriptions", "").lower() != parse_id(vault["id"]).get(
            "subscriptions", "").lower():
        raise _bad("Azure Backup protects VMs of the vault's own subscription only; "
                   f"'{vm['name']}' is in another subscription.")
    vm_loc = (vm.get("location") or "").replace(" ", "").lower()
    vault_loc = (vault.get("location") or "").replace(" ", "").lower()
    if vm_loc != vault_loc:
        raise ArmError(400, "BMSUserErrorVmVaultLocationMismatch",
                       f"VM '{vm['name']}' is in '{vm.get('location')}' and vault "
                       f"'{vault['name']}' is in '{vault.get('location')}'; a VM can only be "
                       "protected by a vault in its own region.")
    if vm["id"].lower() not in discovered(world, vault):
        # A VM the vault has not discovered has no container yet: Azure's answer to a PUT
        # naming one (hashicorp/terraform-provider-azurerm #2143, #2207).
        raise _bad(f"Container 'IaasVMContainer;iaasvmcontainerv2;{rg};{name}' has not been "
                   f"discovered by vault '{vault['name']}'; refresh the vault's containers "
                   "(POST backupFabrics/Azure/refreshContainers) and retry.")
    for other_vault_res in world.state.of_type(VAULT):
        if other_vault_res["id"].lower() == vault["id"].lower():
            continue
        # Item names follow the VM (ConfigureProtection.json), so look the VM's up directly.
        other = world.state.get(_item_id(other_vault_res, "Azure", container, item))
        if other is not None:
            other_vault = other_vault_res["name"]
            raise ArmError(400, "UserErrorVmAlreadyProtectedInOtherVault",
                           f"Virtual machine '{vm['name']}' is already registered with another "
                           f"recovery services vault ('{other_vault}'). Stop protection and "
                           "delete its backup data there before protecting it in this vault.")
    held = len(world.state.children(vault["id"], ITEM_TYPE))
    if held >= world.config.vault_vm_limit:
        raise ArmError(400, "BMSUserErrorVaultCapacityReached",
                       f"Vault '{vault['name']}' already protects {held} items, its limit of "
                       f"{world.config.vault_vm_limit} Azure VMs; protect '{vm['name']}' from "
                       "another vault in its region and subscription.")
    if world.faults.vm_write_refused(vm["id"]):
        raise ArmError(403, "LinkedAuthorizationFailed",
                       f"The client '{principal}' has permission to perform action "
                       "'Microsoft.RecoveryServices/vaults/backupFabrics/protectionContainers/"
                       f"protectedItems/write' on scope '{vault['id']}'; however, it does not "
                       "have permission to perform action(s) "
                       f"'Microsoft.Compute/virtualMachines/write' on the linked scope(s) "
                       f"'{vm['id']}' (respectively) or the linked scope(s) are invalid.")
    return vm


@router.route("PUT", P_ITEM, "write")
def put_item(world: World, req: Request, sub: str, rg: str, vault: str, fabric: str,
             container: str, item: str) -> Response:
    """Enable protection, change the policy, resume, or stop protection (retain data)."""
    res = vault_or_404(world, req, sub, rg, vault)
    body = req.body
    if not isinstance(body, dict) or not isinstance(body.get("properties"), dict):
        raise _bad("The request body needs a 'properties' object.")
    props = body["properties"]
    if str(props.get("protectedItemType", "")).lower() != VM_ITEM_TYPE.lower():
        raise _bad(f"protectedItemType must be '{VM_ITEM_TYPE}' (the emulator serves Azure VMs).")
    wanted_state = props.get("protectionState")
    if wanted_state not in (None, "Protected", "ProtectionStopped", "BackupsSuspended"):
        raise _bad(f"protectionState '{wanted_state}' can't be set; use ProtectionStopped to "
                   "stop protection or a policyId to protect.")
    if wanted_state is None and props.get("policyId") == "":
        # "Stop protection but retain existing data": the enable body with an empty policyId
        # (MD backup-azure-arm-userestapi-backupazurevms.md); StopProtection.json sends
        # protectionState instead, azure-cli both (custom.py _get_disable_protection_request).
        wanted_state = "ProtectionStopped"
    item_id = _item_id(res, fabric, container, item)
    svc = service(world)
    with svc.lock:
        existing = world.state.get(item_id)
        if wanted_state in ("ProtectionStopped", "BackupsSuspended"):
            # BackupsSuspended: stop, keeping recovery points as the policy retains them
            # (azure-cli --retain-as-per-policy sends it; custom.py).
            if existing is None:
                existing = _item_or_404(world, res, item_id)
            require_guard_request(world, res, req, STOP_PROTECTION_RETAIN,
                                  "Stop protection (retain data)")
            _check_unlocked(world, svc, existing["id"])
            op, job = _start(world, svc, res, existing["id"], _vm_of(existing), "DisableBackup")
            final = wanted_state
            svc.at(op.due, lambda: _finish_stop(world, svc, op, job, existing["id"], final))
        else:
            if existing is None:
                vm = _validate_new_item(world, res, fabric, container, item,
                                        props.get("sourceResourceId"), req.principal)
                vm_id = vm["id"]
            else:
                vm_id = _vm_of(existing)
                given = props.get("sourceResourceId")
                if given and given.lower() != vm_id.lower():
                    raise _bad(f"sourceResourceId '{given}' is not the VM of this item "
                               f"('{vm_id}').")
            policy = _target_policy(world, res, props.get("policyId"))
            if existing is not None:
                _refuse_downgrade(world, existing, policy)
            if existing is not None and _reduces_retention(world, existing, policy):
                require_guard_request(world, res, req, UPDATE_PROTECTION,
                                      "Modify protection (reduced retention)")
            _check_unlocked(world, svc, existing["id"] if existing else item_id)
            if existing is None:
                vm_seg = parse_id(vm_id)
                item_id = _item_id(res, "Azure",
                                   f"IaasVMContainer;iaasvmcontainerv2;"
                                   f"{vm_seg['resourcegroups']};{vm_seg['virtualmachines']}",
                                   f"VM;iaasvmcontainerv2;"
                                   f"{vm_seg['resourcegroups']};{vm_seg['virtualmachines']}")
            else:
                item_id = existing["id"]
            op, job = _start(world, svc, res, item_id, vm_id, "ConfigureBackup",
                             {"Policy Name": policy["name"]})
            target = item_id
            svc.at(op.due, lambda: _finish_configure(world, svc, op, job, res, target, vm_id,
                                                     policy))
    return accepted(world, req, req.raw_path, op, status_segment="operationsStatus",
                    result_segment="operationResults")


def _reduces_retention(world: World, item: dict, policy: dict) -> bool:
    """Re-pointing ``item`` to ``policy`` keeps some recovery point for less time than its
    current policy does (what makes "modify protection" critical under MUA)."""
    current = (item.get("properties") or {}).get("policyId") or ""
    if not current or current.lower() == policy["id"].lower():
        return False
    return retention_reduced(world.state.get(current), policy)


def _vm_of(item: dict) -> str:
    props = item.get("properties") or {}
    return props.get("sourceResourceId") or props.get("virtualMachineId") or ""


def _refuse_downgrade(world: World, item: dict, policy: dict) -> None:
    """Enhanced (V2) -> Standard (V1) is one-way (Enhanced policy article)."""
    props = item.get("properties") or {}
    current = props.get("policyType")
    if current not in ("V1", "V2"):
        current = policy_type(world.state.get(props["policyId"])) if props.get(
            "policyId") and world.state.get(props["policyId"]) else None
    if current == "V2" and policy_type(policy) == "V1":
        raise ArmError(400, "UserErrorEnhancedToStandardPolicyChangeNotSupported",
                       f"VM '{props.get('friendlyName', '')}' is protected with an Enhanced (V2) "
                       f"policy and can't move to the Standard (V1) policy '{policy['name']}': "
                       "a VM can't be moved from Enhanced back to Standard policy.")


def _start(world: World, svc: BackupService, vault: dict, item_id: str, vm_id: str,
           operation: str, bag: dict[str, str] | None = None,
           seconds: float | None = None) -> tuple[Operation, Job]:
    kind = "item-delete" if operation == "DeleteBackupData" else "item"
    op = svc.new_operation(vault["id"], kind, item_id, svc.timing.seconds(
        "backup_operation" if operation == "Backup" else "item_operation")
        if seconds is None else seconds)
    job = new_job(svc, vault["id"], operation, vm_id, item_id, property_bag=bag)
    op.job_ids.append(job.id)
    return op, job


def _finish_configure(world: World, svc: BackupService, op: Operation, job: Job, vault: dict,
                      item_id: str, vm_id: str, policy: dict) -> None:
    current = world.state.get(policy["id"]) or policy
    error = job_failure(world, svc, vm_id, current)
    if error is None and world.faults.job_fails_after_operation(vm_id):
        # The operation succeeds and the item moves; its ConfigureBackup job fails later.
        late = op.due + svc.duration(svc.timing.seconds("policy_item_job"))
        svc.at(late, lambda: job.finish(late_job_failure(vm_id), at=late))
    else:
        job.finish(error, at=op.due)
    op.finish(error.arm() if error else None)
    if error:
        return
    item = world.state.get(item_id)
    old_policy = ((item or {}).get("properties") or {}).get("policyId")
    if _standard_to_enhanced(world, item, current):
        _start_move_backup(world, svc, vault, item_id, vm_id)
    fields = {"policyId": current["id"], "policyName": current["name"],
              "policyType": policy_type(current)}
    if item is None:
        world.state.put(_new_item(world, item_id, vm_id, fields))
    else:
        props = {**copy.deepcopy(item.get("properties") or {}), **fields}
        if props.get("protectionState") in STOPPED_STATES:
            props["protectionState"] = "Protected"
        if isinstance(props.get("extendedInfo"), dict):
            props["extendedInfo"] = {**props["extendedInfo"], "policyInconsistent": False}
        world.state.put({**item, "properties": props})
    if world.faults.item_deleted_after_change(vm_id):
        world.state.delete(item_id)
    refresh_count(world, vault["id"], current["id"])
    if old_policy and old_policy.lower() != current["id"].lower():
        refresh_count(world, vault["id"], old_policy)


def _standard_to_enhanced(world: World, item: dict | None, policy: dict) -> bool:
    """The item leaves a Standard (V1) policy for an Enhanced (V2) one."""
    props = (item or {}).get("properties") or {}
    before = props.get("policyType")
    if before not in ("V1", "V2") and props.get("policyId"):
        old = world.state.get(props["policyId"])
        before = policy_type(old) if old else None
    return before == "V1" and policy_type(policy) == "V2"


def _start_move_backup(world: World, svc: BackupService, vault: dict, item_id: str,
                       vm_id: str) -> None:
    """Moving from Standard to Enhanced "triggers a backup job ... [that] might take up to
    several hours" (backup-azure-vm-migrate-enhanced-policy.md). Azure starts it, not the user;
    while it runs the item is busy like any other job on it."""
    job = new_job(svc, vault["id"], "Backup", vm_id, item_id, user_triggered=False,
                  property_bag={"Backup Type": "Migration to Enhanced policy"})
    due = job.start_mono + svc.duration(svc.timing.seconds("enhanced_move_job"))
    svc.at(due, lambda: _finish_backup(world, svc, job, item_id, due))


def _new_item(world: World, item_id: str, vm_id: str, fields: dict) -> dict:
    vm = world.state.get(vm_id) or {"id": vm_id, "name": vm_id.rsplit("/", 1)[-1]}
    rg = parse_id(vm["id"]).get("resourcegroups", "")
    return {
        "id": item_id, "name": item_id.rsplit("/", 1)[-1], "type": ITEM_TYPE,
        "properties": {
            "protectedItemType": VM_ITEM_TYPE, "workloadType": "VM",
            "backupManagementType": "AzureIaasVM", "friendlyName": vm["name"],
            "virtualMachineId": vm["id"], "sourceResourceId": vm["id"],
            "containerName": f"iaasvmcontainerv2;{rg};{vm['name']}",
            "protectionState": "IRPending", "protectionStatus": "Healthy",
            "healthStatus": "Passed", "lastBackupStatus": "", "lastBackupTime": NEVER_BACKED_UP,
            "lastRecoveryPoint": None, "protectedItemDataId": _data_id(item_id),
            "extendedInfo": {"recoveryPointCount": 0, "policyInconsistent": False}, **fields,
        },
    }


def _finish_stop(world: World, svc: BackupService, op: Operation, job: Job,
                 item_id: str, state: str = "ProtectionStopped") -> None:
    job.finish(None, at=op.due)
    op.finish()
    item = world.state.get(item_id)
    if item is None:
        return
    props = {**(item.get("properties") or {}), "protectionState": state}
    world.state.put({**item, "properties": props})
    refresh_count(world, op.vault_id, props.get("policyId"))


@router.route("DELETE", P_ITEM, "delete")
def delete_item(world: World, req: Request, sub: str, rg: str, vault: str, fabric: str,
                container: str, item: str) -> Response:
    """Stop protection and delete backup data: 202, the item disappears when the job is done."""
    res = vault_or_404(world, req, sub, rg, vault)
    existing = world.state.get(_item_id(res, fabric, container, item))
    if existing is None:
        return Response(204)
    require_guard_request(world, res, req, DELETE_PROTECTION, "Stop protection and delete data")
    svc = service(world)
    with svc.lock:
        _check_unlocked(world, svc, existing["id"])
        op, job = _start(world, svc, res, existing["id"], _vm_of(existing), "DeleteBackupData")

        def done() -> None:
            job.finish(None, at=op.due)
            op.finish()
            world.state.delete(existing["id"])
            refresh_count(world, res["id"], (existing.get("properties") or {}).get("policyId"))

        svc.at(op.due, done)
    return accepted(world, req, req.raw_path, op, status_segment="operationsStatus",
                    result_segment="operationResults")


# -- on-demand backup ------------------------------------------------------------------------

@router.route("POST", P_ITEM + "/backup", "write")
def trigger_backup(world: World, req: Request, sub: str, rg: str, vault: str, fabric: str,
                   container: str, item: str) -> Response:
    """202 (TriggerBackup_Post.json); the operation succeeds once the Backup job is started
    (its status names the job), the job itself takes ``backup_job`` seconds
    (``emulator/timing.py``) and updates the item when it ends."""
    res = vault_or_404(world, req, sub, rg, vault)
    existing = _item_or_404(world, res, _item_id(res, fabric, container, item))
    body = req.body
    props = body.get("properties") if isinstance(body, dict) else None
    if not isinstance(props, dict) or props.get("objectType") != "IaasVMBackupRequest":
        raise ArmError(400, "BMSUserErrorInvalidInput",
                       "The backup request needs properties.objectType 'IaasVMBackupRequest'.")
    expiry = props.get("recoveryPointExpiryTimeInUTC")
    if expiry is not None:
        try:
            datetime.fromisoformat(str(expiry).replace("Z", "+00:00"))
        except ValueError as exc:
            raise ArmError(400, "BMSUserErrorInvalidInput",
                           f"recoveryPointExpiryTimeInUTC '{expiry}' is not an ISO 8601 "
                           "time.") from exc
    iprops = existing.get("properties") or {}
    if iprops.get("protectionState") in STOPPED_STATES:
        raise ArmError(400, "BMSUserErrorProtectionStopped",
                       f"Protection of '{iprops.get('friendlyName', item)}' is stopped "
                       f"({iprops.get('protectionState')}); resume protection before taking a "
                       "backup.")
    svc = service(world)
    with svc.lock:
        _check_unlocked(world, svc, existing["id"])
        op, job = _start(world, svc, res, existing["id"], _vm_of(existing), "Backup")
        svc.at(op.due, op.finish)
        due = job.start_mono + svc.duration(svc.timing.seconds("backup_job"))
        svc.at(due, lambda: _finish_backup(world, svc, job, existing["id"], due))
    return accepted(world, req, req.raw_path.rsplit("/", 1)[0], op,
                    status_segment="operationsStatus", result_segment="operationResults")


def _finish_backup(world: World, svc: BackupService, job: Job, item_id: str,
                   due: float) -> None:
    item = world.state.get(item_id)
    props = (item or {}).get("properties") or {}
    policy = world.state.get(props["policyId"]) if props.get("policyId") else None
    error = job_failure(world, svc, job.vm_id, policy)
    job.finish(error, at=due)
    if item is None:
        return
    if error:
        update = {"lastBackupStatus": "Failed", "healthStatus": "ActionRequired"}
    else:
        update = {"lastBackupStatus": "Completed", "lastBackupTime": iso(job.ended),
                  "lastRecoveryPoint": iso(job.ended), "healthStatus": "Passed"}
        if props.get("protectionState") == "IRPending":  # the first recovery point exists
            update["protectionState"] = "Protected"
    world.state.put({**item, "properties": {**props, **update}})


# -- operation status / results --------------------------------------------------------------

@router.route("GET", P_ITEM + "/operationsStatus/{op_id}", "read")
def get_item_operation(world: World, req: Request, sub: str, rg: str, vault: str, fabric: str,
                       container: str, item: str, op_id: str) -> Response:
    res = vault_or_404(world, req, sub, rg, vault)
    op = find_operation(world, res, op_id, _item_id(res, fabric, container, item))
    return status_response(world, op)


@router.route("GET", P_ITEM + "/operationResults/{op_id}", "read")
def get_item_operation_result(world: World, req: Request, sub: str, rg: str, vault: str,
                              fabric: str, container: str, item: str, op_id: str) -> Response:
    """202 while running, 200 with the item when done, 204 when the item is gone; a failed
    operation answers its error."""
    res = vault_or_404(world, req, sub, rg, vault)
    item_id = _item_id(res, fabric, container, item)
    op = find_operation(world, res, op_id, item_id)
    if not op.done:
        return still_running(world, req, op, "operationsStatus")
    if op.status == "Failed":
        raise failed_result(op)
    stored = world.state.get(item_id)
    return Response(200, item_view(stored)) if stored else Response(204)
