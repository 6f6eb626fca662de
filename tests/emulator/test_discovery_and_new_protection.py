"""How a vault comes to protect a VM that has no backup, as Microsoft documents it, through the
real RecoveryServicesBackupClient over HTTPS: container discovery (refreshContainers and its
operation result), the protectable items list, and what refuses a new protection (a VM the
vault has not discovered, a full vault, no write access to the VM)."""

from __future__ import annotations

from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError

from emulator.config import Faults
from flows.options import with_emulator_principal
from tasks.azure.clients import AzureAccess
from tasks.azure.resource_graph import query_page
from tasks.settings import load_settings
from tests.emulator.test_backup_routes import (
    RG,
    VAULT,
    VAULT_ID,
    _vm,
    client_for,
    error_code,
    get_item,
    item_names,
    op_id,
    policy_id,
    running,
    start_change,
    state_of,
    vm_id,
    wait_until,
)

VMS_FILTER = "backupManagementType eq 'AzureIaasVM'"
VM_TYPE = "Microsoft.Compute/virtualMachines"


def _status(capture: dict) -> Any:
    """A ``cls=`` hook keeping the status code and headers (these calls return None)."""
    def keep(pipeline_response: Any, deserialized: Any, _headers: Any) -> Any:
        capture["status"] = pipeline_response.http_response.status_code
        capture.update(pipeline_response.http_response.headers)
        return deserialized
    return keep


def _protectable(client) -> dict[str, dict]:
    """VM id (lower) -> protectable item, every page read (as azure-cli reads them)."""
    out = {}
    for item in client.backup_protectable_items.list(VAULT, RG, filter=VMS_FILTER):
        props = item.properties  # the base WorkloadProtectableItem: read by key
        out[props["virtualMachineId"].lower()] = {"id": item.id, "name": item.name, **props}
    return out


def _refresh(client) -> str:
    """Start a refresh; return its operation id (from ``Location``: there is no
    ``Azure-AsyncOperation``)."""
    capture: dict = {}
    client.protection_containers.refresh(VAULT, RG, "Azure", cls=_status(capture))
    assert capture["status"] == 202
    assert "Azure-AsyncOperation" not in capture and capture["Retry-After"]
    assert "/backupFabrics/Azure/operationResults/" in capture["Location"]
    return op_id(capture["Location"])


def _refresh_done(client, operation: str) -> bool:
    capture: dict = {}
    client.protection_container_refresh_operation_results.get(VAULT, RG, "Azure", operation,
                                                              cls=_status(capture))
    assert capture["status"] in (202, 204)
    return capture["status"] == 204


def test_a_vm_created_after_discovery_is_protectable_only_after_a_refresh() -> None:
    with running(operation_seconds=0.3) as emu:
        client = client_for(emu)
        assert vm_id("vm-new").lower() in _protectable(client)
        for part in _vm("vm-late"):
            emu.world.state.put(part)
        assert vm_id("vm-late").lower() not in _protectable(client)
        with pytest.raises(HttpResponseError) as info:
            start_change(client, "vm-late", policy_id("enhanced-daily-crash"))
        assert error_code(info.value) == "BMSUserErrorInvalidConfigureProtectionRequest"
        assert "refreshContainers" in info.value.error.message

        operation = _refresh(client)
        assert not _refresh_done(client, operation)  # 202 while discovery runs
        wait_until(lambda: _refresh_done(client, operation))  # then 204, no body
        status = client.protection_container_refresh_operation_statuses.get(  # (rg, vault)
            resource_group_name=RG, vault_name=VAULT, fabric_name="Azure",
            operation_id=operation)
        assert status.status == "Succeeded"

        found = _protectable(client)[vm_id("vm-late").lower()]
        container = "iaasvmcontainerv2;rg-app;vm-late"
        assert found["name"] == container
        assert found["id"] == (f"{VAULT_ID}/backupFabrics/Azure/protectionContainers/"
                               f"IaasVMContainer;{container}/protectableItems/vm;{container}")
        assert found["virtualMachineId"] == vm_id("vm-late")
        assert found["protectableItemType"] == "Microsoft.Compute/virtualMachines"
        assert found["protectionState"] == "NotProtected"
        start_change(client, "vm-late", policy_id("enhanced-daily-crash")).result()
        assert get_item(client, "vm-late")["protectionState"] == "IRPending"
        assert vm_id("vm-late").lower() not in _protectable(client)


def test_protectable_items_leave_out_every_vm_registered_to_a_vault_and_are_paged() -> None:
    with running(list_page_size=1) as emu:
        client = client_for(emu)
        found = _protectable(client)
        items = {i["properties"]["sourceResourceId"].lower(): i["properties"]["protectionState"]
                 for i in state_of(emu).values() if "/protecteditems/" in i["id"].lower()}
        assert items and not set(items) & set(found)  # protected or stopped: all left out
        # Every VM of the vault's subscription not registered anywhere, across pages of one
        # (Azure's pages hold 200); another region's too (the PUT refuses it).
        assert sorted(found) == sorted(vm_id(v).lower() for v in ("vm-new", "vm-west"))
        other = list(client.backup_protectable_items.list(
            VAULT, RG, filter="backupManagementType eq 'AzureWorkload'"))
        assert other == []  # the emulator serves Azure VMs only


def test_a_full_vault_refuses_a_new_protection_and_creates_nothing() -> None:
    with running() as emu:
        held = sum(1 for key in state_of(emu)
                   if key.startswith(VAULT_ID.lower() + "/") and "/protecteditems/" in key)
        emu.world.config.vault_vm_limit = held
        client = client_for(emu)
        with pytest.raises(HttpResponseError) as info:
            start_change(client, "vm-new", policy_id("enhanced-daily-crash"))
        assert info.value.status_code == 400
        assert error_code(info.value) == "BMSUserErrorVaultCapacityReached"
        assert vm_id("vm-new").lower() in _protectable(client)  # still unprotected


def test_protecting_a_vm_the_principal_may_not_write_is_refused_naming_the_permission() -> None:
    with running(faults=Faults(vm_write_denied=["vm-new"])) as emu:
        client = client_for(emu)
        with pytest.raises(HttpResponseError) as info:
            start_change(client, "vm-new", policy_id("enhanced-daily-crash"))
        assert info.value.status_code == 403
        assert error_code(info.value) == "LinkedAuthorizationFailed"
        assert "Microsoft.Compute/virtualMachines/write" in info.value.error.message
        assert vm_id("vm-new").lower() in _protectable(client)
        # A resource group named denies every VM in it.
        emu.world.faults.update({"vm_write_denied": [vm_id("vm-new").rsplit("/providers", 1)[0]]})
        with pytest.raises(HttpResponseError):
            start_change(client, "vm-new", policy_id("enhanced-daily-crash"))


def test_a_new_protection_shows_in_resource_graph_as_configuring() -> None:
    with running() as emu:
        client = client_for(emu)
        start_change(client, "vm-new", policy_id("enhanced-daily-crash")).result()
        settings = with_emulator_principal(load_settings(environ={}), emu.connection_info())
        page = query_page(
            AzureAccess(settings).resource_graph(),
            "RecoveryServicesResources | where type == "
            "'microsoft.recoveryservices/vaults/backupfabrics/protectioncontainers/protecteditems'"
            " | where tolower(tostring(properties.sourceResourceId)) == "
            f"'{vm_id('vm-new').lower()}' | project id, state = "
            "tostring(properties.currentProtectionState)")
        assert [r["state"] for r in page.rows] == ["ConfiguringProtection"]


def test_a_stopped_vm_resumes_in_its_vault_with_a_new_policy() -> None:
    with running() as emu:
        client = client_for(emu)
        container, name = item_names("vm-1111-0")

        def put(properties: dict) -> dict:
            body = {"properties": {"protectedItemType": VM_TYPE,
                                   "sourceResourceId": vm_id("vm-1111-0"), **properties}}
            return dict(client.protected_items.begin_create_or_update(
                VAULT, RG, "Azure", container, name, body).result().properties)

        # Each way Microsoft's texts stop protection and keep the data.
        assert put({"policyId": ""})["protectionState"] == "ProtectionStopped"  # MD how-to
        assert put({"policyId": policy_id("enhanced-daily")})["protectionState"] == "Protected"
        assert put({"protectionState": "BackupsSuspended", "policyId": ""})[
            "protectionState"] == "BackupsSuspended"  # azure-cli --retain-as-per-policy
        assert put({"protectionState": "ProtectionStopped", "policyId": ""})[
            "protectionState"] == "ProtectionStopped"  # azure-cli
        # Resumed with another (crash-consistent) policy of the same vault: "You don't need to
        # choose the VM's initial protection policy" (MD backup-azure-manage-vms.md).
        resumed = put({"policyId": policy_id("enhanced-daily-crash")})
        assert resumed["protectionState"] == "Protected"
        assert resumed["policyId"] == policy_id("enhanced-daily-crash")
