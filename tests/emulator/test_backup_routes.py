"""The emulator's Recovery Services backup routes, driven by the real SDK over HTTPS.

What a user of ``ccmigrate migrate`` would notice: a cloned crash-consistent policy appears once
its operation succeeds, a re-pointed VM shows its new policy only when the change is done, an
unsupported VM's ConfigureBackup job fails and the VM keeps its old policy, and the service's
limits and locks answer with Azure's errors.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.identity import ClientSecretCredential
from azure.mgmt.recoveryservicesbackup import RecoveryServicesBackupClient

from emulator.config import EmulatorConfig, Faults
from emulator.server import Emulator
from tests.fleets import (
    SUB_A,
    SUB_B,
    make_item,
    make_policy,
    make_vm,
    small_fleet,
    vault_id,
)

RG = "rg-backup"
VAULT = "vault-1111"
VAULT_ID = vault_id(SUB_A, RG, VAULT)
FAST = {"operation_seconds": 0.05, "job_seconds": 0.05, "backup_job_seconds": 0.05}
VM_TYPE = "Microsoft.Compute/virtualMachines"


# -- fleet and clients -----------------------------------------------------------------------

def _vm(name: str, *, location: str = "eastus", size: str = "Standard_D4s_v5",
        tweak: Callable[[dict, list[dict]], None] | None = None) -> list[dict]:
    vm, disks = make_vm(SUB_A, "rg-app", name, location=location, size=size)
    if tweak:
        tweak(vm, disks)
    return [vm, *disks]


def _ultra(vm: dict, disks: list[dict]) -> None:
    vm["properties"]["storageProfile"]["dataDisks"][0]["managedDisk"]["storageAccountType"] = (
        "UltraSSD_LRS")
    disks[1]["sku"] = {"name": "UltraSSD_LRS", "tier": "Ultra"}


def _ephemeral(vm: dict, disks: list[dict]) -> None:
    os_disk = vm["properties"]["storageProfile"]["osDisk"]
    os_disk["diffDiskSettings"] = {"option": "Local", "placement": "ResourceDisk"}
    os_disk.pop("managedDisk")
    disks.pop(0)


def backup_fleet() -> dict:
    """``small_fleet`` plus, in vault-1111: VMs Azure refuses for crash-consistent backup (Ultra
    disk, ephemeral OS, Azure Boost size) on the app-consistent policy, an Ultra VM already on
    the crash-consistent policy, a Standard (V1) policy, and unprotected VMs in and out of the
    vault's region."""
    fleet = small_fleet()
    res = fleet["resources"]
    vault = next(r for r in res if r["id"] == VAULT_ID)
    app = next(r for r in res if r["id"] == f"{VAULT_ID}/backupPolicies/enhanced-daily")
    crash = next(r for r in res if r["id"] == f"{VAULT_ID}/backupPolicies/enhanced-daily-crash")
    for name, tweak, size, policy in (("vm-ultra", _ultra, "Standard_D4s_v5", app),
                                      ("vm-ephemeral", _ephemeral, "Standard_D4s_v5", app),
                                      ("vm-boost", None, "Standard_D4s_v6", app),
                                      ("vm-ultra-crash", _ultra, "Standard_D4s_v5", crash)):
        parts = _vm(name, size=size, tweak=tweak)
        res += [*parts, make_item(vault, parts[0], policy)]
    res += [make_policy(vault, "standard-daily", v1=True)]
    res += _vm("vm-new") + _vm("vm-west", location="westus")
    return fleet


@contextmanager
def running(fleet: dict | None = None, faults: Faults | None = None,
            **config: Any) -> Iterator[Emulator]:
    with Emulator(fleet or backup_fleet(), config=EmulatorConfig(**{**FAST, **config}),
                  faults=faults) as emu:
        yield emu


def client_for(emu: Emulator, subscription: str = SUB_A) -> RecoveryServicesBackupClient:
    cred = ClientSecretCredential(emu.tenant_id, emu.client_id, emu.client_secret,
                                  authority=emu.endpoint, disable_instance_discovery=True,
                                  connection_verify=str(emu.ca_bundle))
    return RecoveryServicesBackupClient(cred, subscription, base_url=emu.endpoint,
                                        connection_verify=str(emu.ca_bundle),
                                        credential_scopes=["https://management.azure.com/.default"],
                                        polling_interval=0)


def wait_until(check: Callable[[], Any], *, tries: int = 400, pause: float = 0.02) -> Any:
    """Poll ``check`` until it returns something truthy (bounded; no wall-clock assertions)."""
    for _ in range(tries):
        value = check()
        if value:
            return value
        time.sleep(pause)
    raise AssertionError("condition never became true")


def op_id(url: str) -> str:
    return urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]


def headers_of(capture: dict) -> Callable[..., Any]:
    """A ``cls=`` hook that keeps the response headers (a policy PUT returns None on 202)."""
    def keep(pipeline_response: Any, deserialized: Any, _headers: Any) -> Any:
        capture.update(pipeline_response.http_response.headers)
        return deserialized
    return keep


def item_names(vm: str) -> tuple[str, str]:
    return (f"IaasVMContainer;iaasvmcontainerv2;rg-app;{vm}", f"VM;iaasvmcontainerv2;rg-app;{vm}")


def vm_id(vm: str, sub: str = SUB_A) -> str:
    return (f"/subscriptions/{sub}/resourceGroups/rg-app/providers/Microsoft.Compute/"
            f"virtualMachines/{vm}")


def policy_id(name: str, vault: str = VAULT_ID) -> str:
    return f"{vault}/backupPolicies/{name}"


def protect_body(vm: str, policy: str, *, sub: str = SUB_A) -> dict:
    return {"properties": {"protectedItemType": VM_TYPE, "sourceResourceId": vm_id(vm, sub),
                           "policyId": policy}}


def get_item(client: RecoveryServicesBackupClient, vm: str) -> dict:
    """The item's properties (api-notes 4.2: items deserialise to the base ProtectedItem)."""
    container, item = item_names(vm)
    return dict(client.protected_items.get(VAULT, RG, "Azure", container, item).properties)


def start_change(client: RecoveryServicesBackupClient, vm: str, policy: str, **kw: Any) -> Any:
    container, item = item_names(vm)
    return client.protected_items.begin_create_or_update(VAULT, RG, "Azure", container, item,
                                                         protect_body(vm, policy), **kw)


def clone_policy(client: RecoveryServicesBackupClient, source: str, name: str, *,
                 vault: str = VAULT, rg: str = RG, **changes: Any) -> str:
    """Clone ``source`` under ``name`` (api-notes 3: drop the count, set the consistency);
    returns the operation id from the ``Azure-AsyncOperation`` header."""
    props = dict(client.protection_policies.get(vault, rg, source).properties)
    props.pop("protectedItemsCount", None)
    props.update(changes)
    captured: dict[str, str] = {}
    result = client.protection_policies.create_or_update(vault, rg, name, {"properties": props},
                                                         cls=headers_of(captured))
    assert result is None  # 202: not an LRO in the SDK
    return op_id(captured["Azure-AsyncOperation"])


def wait_policy_op(client: RecoveryServicesBackupClient, name: str, op: str,
                   vault: str = VAULT) -> Any:
    return wait_until(lambda: (lambda s: s if s.status != "InProgress" else None)(
        client.protection_policy_operation_statuses.get(vault, RG, name, op)))


def error_code(exc: HttpResponseError) -> str:
    return exc.error.code if exc.error else ""


def state_of(emu: Emulator) -> dict[str, dict]:
    """``GET /_emulator/state`` over HTTPS, resources by lower-case id."""
    resp = requests.get(f"{emu.endpoint}/_emulator/state", verify=str(emu.ca_bundle), timeout=10)
    resp.raise_for_status()
    return {r["id"].lower(): r for r in resp.json()["resources"]}


# -- policies --------------------------------------------------------------------------------

def test_cloned_crash_consistent_policy_appears_when_its_operation_succeeds() -> None:
    with running() as emu:
        client = client_for(emu)
        op = clone_policy(client, "enhanced-daily", "enhanced-daily-cc",
                          snapshotConsistencyType="OnlyCrashConsistent")
        status = wait_policy_op(client, "enhanced-daily-cc", op)
        assert status.status == "Succeeded"
        assert status.properties.object_type == "OperationStatusJobsExtendedInfo"
        assert status.properties.job_ids == []  # a new policy has no items to reconfigure
        policy = client.protection_policies.get(VAULT, RG, "enhanced-daily-cc")
        assert policy.properties.snapshot_consistency_type == "OnlyCrashConsistent"
        assert policy.properties.policy_type == "V2"
        assert policy.properties.protected_items_count == 0
        result = client.protection_policy_operation_results.get(VAULT, RG, "enhanced-daily-cc",
                                                                op)
        assert result.name == "enhanced-daily-cc"


def test_policy_put_answers_202_with_absolute_operation_urls_on_the_emulator() -> None:
    with running(operation_seconds=2.5) as emu:
        client = client_for(emu)
        props = dict(client.protection_policies.get(VAULT, RG, "enhanced-daily").properties)
        captured: dict[str, str] = {}
        client.protection_policies.create_or_update(VAULT, RG, "p2", {"properties": props},
                                                    cls=headers_of(captured))
        status_url, result_url = captured["Azure-AsyncOperation"], captured["Location"]
        assert status_url.startswith(f"{emu.endpoint}/subscriptions/{SUB_A}/")
        assert "/backupPolicies/p2/operations/" in status_url
        assert "/backupPolicies/p2/operationResults/" in result_url
        assert "api-version=2026-10-01" in status_url
        assert captured["Retry-After"] == "3"  # the remaining seconds, rounded up
        # Nothing exists until the operation succeeds.
        with pytest.raises(ResourceNotFoundError):
            client.protection_policies.get(VAULT, RG, "p2")
        raw = requests.get(result_url, verify=str(emu.ca_bundle), timeout=10,
                           headers={"Authorization": f"Bearer {_token(emu)}"})
        assert raw.status_code == 202


def _token(emu: Emulator) -> str:
    cred = ClientSecretCredential(emu.tenant_id, emu.client_id, emu.client_secret,
                                  authority=emu.endpoint, disable_instance_discovery=True,
                                  connection_verify=str(emu.ca_bundle))
    return cred.get_token("https://management.azure.com/.default").token


def test_fixed_retry_after_setting_is_sent_on_every_202() -> None:
    with running(retry_after=7) as emu:
        client = client_for(emu)
        props = dict(client.protection_policies.get(VAULT, RG, "enhanced-daily").properties)
        captured: dict[str, str] = {}
        client.protection_policies.create_or_update(VAULT, RG, "p3", {"properties": props},
                                                    cls=headers_of(captured))
        assert captured["Retry-After"] == "7"


def test_policy_list_honours_the_backup_management_filter_and_pages() -> None:
    with running(list_page_size=2) as emu:
        client = client_for(emu)
        names = [p.name for p in client.backup_policies.list(
            VAULT, RG, filter="backupManagementType eq 'AzureIaasVM'")]
        assert names == ["enhanced-daily", "enhanced-daily-crash", "standard-daily"]
        assert list(client.backup_policies.list(
            VAULT, RG, filter="backupManagementType eq 'AzureWorkload'")) == []


@pytest.mark.parametrize(("change", "fragment"), [
    ({"schedulePolicy": {"schedulePolicyType": "SimpleSchedulePolicy",
                         "scheduleRunFrequency": "Daily",
                         "scheduleRunTimes": ["2026-11-01T02:00:00Z"]}},
     "needs schedulePolicyType SimpleSchedulePolicyV2"),
    ({"snapshotConsistencyType": "ApplicationConsistent"}, "only value"),
    ({"backupManagementType": "AzureWorkload"}, "only 'AzureIaasVM'"),
    ({"schedulePolicy": {"schedulePolicyType": "SimpleSchedulePolicyV2",
                         "scheduleRunFrequency": "Hourly",
                         "hourlySchedule": {"interval": 5,
                                            "scheduleWindowStartTime": "2026-11-01T08:00:00Z",
                                            "scheduleWindowDuration": 12}}},
     "4, 6, 8 or 12"),
])
def test_invalid_policy_bodies_are_refused_with_bms_invalid_policy_input(
        change: dict, fragment: str) -> None:
    with running() as emu:
        client = client_for(emu)
        props = {**dict(client.protection_policies.get(VAULT, RG, "enhanced-daily").properties),
                 **change}
        with pytest.raises(HttpResponseError) as info:
            client.protection_policies.create_or_update(VAULT, RG, "bad", {"properties": props})
        assert info.value.status_code == 400
        assert error_code(info.value) == "BMSUserErrorInvalidPolicyInput"
        assert fragment in info.value.error.message


def test_crash_consistency_on_a_standard_policy_is_refused() -> None:
    with running() as emu:
        client = client_for(emu)
        props = dict(client.protection_policies.get(VAULT, RG, "standard-daily").properties)
        props["snapshotConsistencyType"] = "OnlyCrashConsistent"
        with pytest.raises(HttpResponseError) as info:
            client.protection_policies.create_or_update(VAULT, RG, "standard-daily",
                                                        {"properties": props})
        assert error_code(info.value) == "BMSUserErrorInvalidPolicyInput"
        assert "Enhanced (V2)" in info.value.error.message


def test_policy_writes_beyond_the_daily_vault_limit_are_refused() -> None:
    with running(policy_writes_per_vault_per_day=3) as emu:
        client = client_for(emu)
        for i in range(3):
            clone_policy(client, "enhanced-daily", f"clone-{i}")
        with pytest.raises(HttpResponseError) as info:
            clone_policy(client, "enhanced-daily", "clone-3")
        assert info.value.status_code == 400
        assert error_code(info.value) == "BMSUserErrorPolicyWriteLimitReached"
        assert "3 per vault in 24 hours" in info.value.error.message
        # Edits count too, and the quota is per vault: the other subscription's vault is free.
        with pytest.raises(HttpResponseError):
            clone_policy(client, "enhanced-daily", "enhanced-daily")
        other = client_for(emu, SUB_B)
        clone_policy(other, "enhanced-daily", "clone-b", vault="vault-2222")


def test_a_vault_holds_at_most_the_configured_number_of_policies() -> None:
    with running(policies_per_vault=4) as emu:  # the vault starts with 3
        client = client_for(emu)
        op = clone_policy(client, "enhanced-daily", "fourth")
        with pytest.raises(HttpResponseError) as info:
            clone_policy(client, "enhanced-daily", "fifth")  # the fourth is still in flight
        assert error_code(info.value) == "BMSUserErrorPolicyLimitReached"
        wait_policy_op(client, "fourth", op)
        clone_policy(client, "enhanced-daily", "enhanced-daily")  # editing is still allowed


def test_editing_a_policy_in_place_reconfigures_each_item_and_reports_failed_jobs() -> None:
    with running() as emu:
        client = client_for(emu)
        op = clone_policy(client, "enhanced-daily", "enhanced-daily",
                          snapshotConsistencyType="OnlyCrashConsistent")
        items_on_policy = 3 + 3  # small_fleet's VMs plus vm-ultra, vm-ephemeral, vm-boost
        status = wait_policy_op(client, "enhanced-daily", op)
        assert status.status == "Succeeded"  # the edit lands; unsupported VMs' jobs fail
        assert len(status.properties.job_ids) == items_on_policy
        for job_id in status.properties.job_ids:
            wait_until(lambda j=job_id: client.job_details.get(VAULT, RG, j).properties.status
                       != "InProgress")
        status = client.protection_policy_operation_statuses.get(VAULT, RG, "enhanced-daily", op)
        failed = status.properties.failed_jobs_error
        assert len(failed) == 3
        assert set(failed.values()) == {"UserErrorCrashConsistentSnapshotNotSupported"}
        entities = {client.job_details.get(VAULT, RG, j).properties.entity_friendly_name
                    for j in failed}
        assert entities == {"vm-ultra", "vm-ephemeral", "vm-boost"}
        assert get_item(client, "vm-ultra")["extendedInfo"]["policyInconsistent"] is True
        assert "extendedInfo" not in get_item(client, "vm-1111-0")


def test_deleting_a_policy_in_use_is_refused_and_an_unused_one_is_deleted() -> None:
    with running() as emu:
        client = client_for(emu)
        with pytest.raises(HttpResponseError) as info:
            client.protection_policies.begin_delete(VAULT, RG, "enhanced-daily").result()
        assert error_code(info.value) == "BMSUserErrorPolicyObjectInUse"
        client.protection_policies.begin_delete(VAULT, RG, "standard-daily").result()
        with pytest.raises(ResourceNotFoundError):
            client.protection_policies.get(VAULT, RG, "standard-daily")
        assert policy_id("standard-daily").lower() not in state_of(emu)


# -- protected items -------------------------------------------------------------------------

def test_repointing_an_item_moves_it_and_records_a_configure_backup_job() -> None:
    with running() as emu:
        client = client_for(emu)
        target = policy_id("enhanced-daily-crash")
        result = start_change(client, "vm-1111-0", target).result()
        assert result.properties["policyId"] == target
        assert result.properties["policyType"] == "V2"
        assert get_item(client, "vm-1111-0")["policyId"] == target
        jobs = list(client.backup_jobs.list(VAULT, RG, filter="operation eq 'ConfigureBackup'"))
        assert [j.properties.entity_friendly_name for j in jobs] == ["vm-1111-0"]
        job = client.job_details.get(VAULT, RG, jobs[0].name)
        assert job.properties.job_type == "AzureIaaSVMJob"
        assert job.properties.status == "Completed"
        assert job.properties.operation == "ConfigureBackup"
        assert job.properties.extended_info.property_bag["Policy Name"] == "enhanced-daily-crash"
        assert job.id == f"{VAULT_ID}/backupJobs/{job.name}"
        counts = {p.name: p.properties.protected_items_count
                  for p in client.backup_policies.list(VAULT, RG)}
        assert counts["enhanced-daily-crash"] == 2  # vm-ultra-crash and the moved VM
        assert counts["enhanced-daily"] == 5


def test_an_item_keeps_its_old_policy_while_the_change_is_in_flight() -> None:
    with running(operation_seconds=1.0) as emu:
        client = client_for(emu)
        captured: dict[str, str] = {}
        poller = start_change(client, "vm-1111-1", policy_id("enhanced-daily-crash"),
                              raw_response_hook=lambda r: captured.update(r.http_response.headers)
                              if r.http_request.method == "PUT" else None)
        item = get_item(client, "vm-1111-1")
        assert item["policyId"] == policy_id("enhanced-daily")
        assert item["protectionState"] == "Protected"
        container, name = item_names("vm-1111-1")
        op = op_id(captured["Azure-AsyncOperation"])
        status = client.protected_item_operation_statuses.get(VAULT, RG, "Azure", container,
                                                              name, op)
        assert status.status == "InProgress"
        assert status.end_time is None
        job_id = status.properties.job_id
        assert client.job_details.get(VAULT, RG, job_id).properties.status == "InProgress"
        assert state_of(emu)[f"{VAULT_ID}/backupfabrics/azure/protectioncontainers/"
                             f"{container}/protecteditems/{name}".lower()]["properties"][
            "policyId"] == policy_id("enhanced-daily")
        poller.result()
        assert get_item(client, "vm-1111-1")["policyId"] == policy_id("enhanced-daily-crash")
        done = client.protected_item_operation_statuses.get(VAULT, RG, "Azure", container, name,
                                                           op)
        assert done.status == "Succeeded" and done.end_time is not None


@pytest.mark.parametrize(("vm", "reason"), [
    ("vm-ultra", "Ultra Disk"),
    ("vm-ephemeral", "Ephemeral OS"),
    ("vm-boost", "Azure Boost"),
])
def test_unsupported_vm_fails_its_configure_job_and_keeps_its_old_policy(vm: str,
                                                                         reason: str) -> None:
    with running() as emu:
        client = client_for(emu)
        with pytest.raises(HttpResponseError) as info:
            start_change(client, vm, policy_id("enhanced-daily-crash")).result()
        assert error_code(info.value) == "UserErrorCrashConsistentSnapshotNotSupported"
        assert reason in info.value.error.message
        assert get_item(client, vm)["policyId"] == policy_id("enhanced-daily")
        job = next(iter(client.backup_jobs.list(VAULT, RG, filter="status eq 'Failed'")))
        details = client.job_details.get(VAULT, RG, job.name).properties
        assert details.entity_friendly_name == vm
        assert details.error_details[0].error_title == (
            "UserErrorCrashConsistentSnapshotNotSupported")
        assert isinstance(details.error_details[0].error_code, int)
        assert reason in details.error_details[0].error_string
        assert details.extended_info.tasks_list[0].status == "Failed"


def test_injected_job_failure_fails_the_change_for_that_vm_only() -> None:
    with running(faults=Faults(fail_jobs_for=["vm-1111-2"])) as emu:
        client = client_for(emu)
        with pytest.raises(HttpResponseError) as info:
            start_change(client, "vm-1111-2", policy_id("enhanced-daily-crash")).result()
        assert error_code(info.value) == "UserErrorVmNotInDesirableState"
        assert get_item(client, "vm-1111-2")["policyId"] == policy_id("enhanced-daily")
        start_change(client, "vm-1111-0", policy_id("enhanced-daily-crash")).result()


def test_an_enhanced_item_cannot_move_back_to_a_standard_policy() -> None:
    with running() as emu:
        client = client_for(emu)
        with pytest.raises(HttpResponseError) as info:
            start_change(client, "vm-1111-0", policy_id("standard-daily"))
        assert info.value.status_code == 400
        assert error_code(info.value) == "UserErrorEnhancedToStandardPolicyChangeNotSupported"
        assert get_item(client, "vm-1111-0")["policyId"] == policy_id("enhanced-daily")


def test_a_policy_of_another_vault_or_a_missing_policy_is_refused() -> None:
    with running() as emu:
        client = client_for(emu)
        other = policy_id("enhanced-daily", vault_id(SUB_B, RG, "vault-2222"))
        for bad in (other, policy_id("no-such-policy")):
            with pytest.raises(HttpResponseError) as info:
                start_change(client, "vm-1111-0", bad)
            assert error_code(info.value) == "BMSUserErrorPolicyNotFound"


def test_a_second_change_while_one_runs_is_object_locked() -> None:
    with running(operation_seconds=1.0) as emu:
        client = client_for(emu)
        poller = start_change(client, "vm-1111-0", policy_id("enhanced-daily-crash"))
        with pytest.raises(HttpResponseError) as info:
            start_change(client, "vm-1111-0", policy_id("enhanced-daily"))
        assert info.value.status_code == 400
        assert error_code(info.value) == "BMSUserErrorObjectLocked"
        assert "Another operation is in progress" in info.value.error.message
        container, name = item_names("vm-1111-0")
        with pytest.raises(HttpResponseError) as info:
            client.backups.trigger(VAULT, RG, "Azure", container, name,
                                   {"properties": {"objectType": "IaasVMBackupRequest"}})
        assert error_code(info.value) == "BMSUserErrorObjectLocked"
        start_change(client, "vm-1111-1", policy_id("enhanced-daily-crash"))  # others are free
        poller.result()
        start_change(client, "vm-1111-0", policy_id("enhanced-daily")).result()


def test_without_the_object_locked_fault_concurrent_changes_apply_in_order() -> None:
    with running(faults=Faults(object_locked=False), operation_seconds=0.3) as emu:
        client = client_for(emu)
        first = start_change(client, "vm-1111-0", policy_id("enhanced-daily-crash"))
        second = start_change(client, "vm-1111-0", policy_id("enhanced-daily"))
        first.result()
        second.result()
        assert get_item(client, "vm-1111-0")["policyId"] == policy_id("enhanced-daily")


def test_a_newly_protected_vm_is_ir_pending_until_its_first_backup() -> None:
    with running() as emu:
        client = client_for(emu)
        item = start_change(client, "vm-new", policy_id("enhanced-daily-crash")).result()
        props = item.properties
        assert item.name == "VM;iaasvmcontainerv2;rg-app;vm-new"
        # As Microsoft's REST how-to shows the item after enabling protection.
        assert props["protectionState"] == "IRPending"
        assert props["protectionStatus"] == "Healthy"
        assert props["sourceResourceId"] == vm_id("vm-new")
        assert props["policyId"] == policy_id("enhanced-daily-crash")
        assert props["lastBackupStatus"] == ""
        assert props["lastBackupTime"] == "2001-01-01T00:00:00Z"
        assert item.id.lower() in state_of(emu)
        container, name = item_names("vm-new")
        client.backups.trigger(VAULT, RG, "Azure", container, name,
                               {"properties": {"objectType": "IaasVMBackupRequest"}})
        after = wait_until(lambda: (lambda p: p if p["lastBackupStatus"] else None)(
            get_item(client, "vm-new")))
        assert after["protectionState"] == "Protected"
        assert after["lastBackupStatus"] == "Completed"


def test_enabling_protection_is_refused_across_regions_and_vaults() -> None:
    fleet = backup_fleet()
    other_vault = next(r for r in fleet["resources"]
                       if r["id"] == vault_id(SUB_B, RG, "vault-2222"))
    other_vault["location"] = "eastus"
    with running(fleet) as emu:
        client = client_for(emu)
        with pytest.raises(HttpResponseError) as info:
            start_change(client, "vm-west", policy_id("enhanced-daily"))
        assert error_code(info.value) == "BMSUserErrorVmVaultLocationMismatch"
        with pytest.raises(HttpResponseError) as info:
            client.protected_items.begin_create_or_update(
                VAULT, RG, "Azure", "IaasVMContainer;iaasvmcontainerv2;rg-app;wrong",
                "VM;iaasvmcontainerv2;rg-app;wrong", protect_body("vm-new",
                                                                  policy_id("enhanced-daily")))
        assert error_code(info.value) == "BMSUserErrorInvalidConfigureProtectionRequest"
        with pytest.raises(HttpResponseError) as info:
            start_change(client, "vm-gone", policy_id("enhanced-daily"))
        assert error_code(info.value) == "BMSUserErrorSourceVmNotFound"


def test_a_vm_protected_in_another_vault_cannot_be_protected_here() -> None:
    fleet = copy.deepcopy(backup_fleet())
    second = {**next(r for r in fleet["resources"] if r["id"] == VAULT_ID)}
    second["id"], second["name"] = vault_id(SUB_A, RG, "vault-second"), "vault-second"
    fleet["resources"] += [second, make_policy(second, "enhanced")]
    with running(fleet) as emu:
        client = client_for(emu)
        container, item = item_names("vm-1111-0")
        with pytest.raises(HttpResponseError) as info:
            client.protected_items.begin_create_or_update(
                "vault-second", RG, "Azure", container, item,
                protect_body("vm-1111-0", policy_id("enhanced", second["id"])))
        assert error_code(info.value) == "UserErrorVmAlreadyProtectedInOtherVault"
        assert "vault-1111" in info.value.error.message


def test_stopping_protection_retains_the_item_and_blocks_backups() -> None:
    with running() as emu:
        client = client_for(emu)
        container, name = item_names("vm-1111-0")
        body = {"properties": {"protectedItemType": VM_TYPE,
                               "sourceResourceId": vm_id("vm-1111-0"),
                               "protectionState": "ProtectionStopped"}}
        stopped = client.protected_items.begin_create_or_update(VAULT, RG, "Azure", container,
                                                                name, body).result()
        assert stopped.properties["protectionState"] == "ProtectionStopped"
        assert stopped.properties["policyId"] == policy_id("enhanced-daily")  # StopProtection.json
        jobs = list(client.backup_jobs.list(VAULT, RG, filter="operation eq 'DisableBackup'"))
        assert [j.properties.status for j in jobs] == ["Completed"]
        assert client.protection_policies.get(
            VAULT, RG, "enhanced-daily").properties.protected_items_count == 5
        with pytest.raises(HttpResponseError) as info:
            client.backups.trigger(VAULT, RG, "Azure", container, name,
                                   {"properties": {"objectType": "IaasVMBackupRequest"}})
        assert error_code(info.value) == "BMSUserErrorProtectionStopped"
        # Resuming with a policy protects it again.
        resumed = start_change(client, "vm-1111-0", policy_id("enhanced-daily")).result()
        assert resumed.properties["protectionState"] == "Protected"


def test_deleting_an_item_removes_it_once_its_job_is_done() -> None:
    with running() as emu:
        client = client_for(emu)
        container, name = item_names("vm-1111-2")
        client.protected_items.delete(VAULT, RG, "Azure", container, name)
        wait_until(lambda: "VM;iaasvmcontainerv2;rg-app;vm-1111-2".lower() not in
                   {i.name.lower() for i in client.backup_protected_items.list(VAULT, RG)})
        jobs = list(client.backup_jobs.list(VAULT, RG, filter="operation eq 'DeleteBackupData'"))
        assert len(jobs) == 1


def test_protected_item_list_filters_and_pages() -> None:
    with running(list_page_size=2) as emu:
        client = client_for(emu)
        items = list(client.backup_protected_items.list(
            VAULT, RG, filter="backupManagementType eq 'AzureIaasVM' and itemType eq 'VM'"))
        assert len(items) == 7
        crash = list(client.backup_protected_items.list(
            VAULT, RG, filter="policyName eq 'enhanced-daily-crash'"))
        assert [i.properties["friendlyName"] for i in crash] == ["vm-ultra-crash"]
        with pytest.raises(HttpResponseError) as info:
            list(client.backup_protected_items.list(VAULT, RG, filter="color eq 'blue'"))
        assert info.value.status_code == 400


def test_emulator_state_and_resource_graph_rows_follow_the_change() -> None:
    with running() as emu:
        client = client_for(emu)
        start_change(client, "vm-1111-0", policy_id("enhanced-daily-crash")).result()
        container, name = item_names("vm-1111-0")
        state = state_of(emu)
        item = state[f"{VAULT_ID}/backupFabrics/Azure/protectionContainers/{container}/"
                     f"protectedItems/{name}".lower()]
        assert item["properties"]["policyId"] == policy_id("enhanced-daily-crash")
        crash = state[policy_id("enhanced-daily-crash").lower()]
        assert crash["properties"]["protectedItemsCount"] == 2
        rows = {r["id"].lower(): r for r in emu.world.state.arg_tables()[
            "recoveryservicesresources"]}
        assert rows[item["id"].lower()]["properties"]["policyName"] == "enhanced-daily-crash"


def test_requests_without_api_version_or_for_unknown_vaults_are_refused() -> None:
    with running() as emu:
        token = _token(emu)
        url = f"{emu.endpoint}{VAULT_ID}/backupPolicies"
        resp = requests.get(url, verify=str(emu.ca_bundle), timeout=10,
                            headers={"Authorization": f"Bearer {token}"})
        assert resp.status_code == 400
        assert resp.json()["error"]["code"] == "MissingApiVersionParameter"
        client = client_for(emu)
        with pytest.raises(ResourceNotFoundError):
            list(client.backup_policies.list("no-vault", RG))


def test_parallel_changes_in_one_vault_all_land_and_counts_stay_right() -> None:
    from concurrent.futures import ThreadPoolExecutor

    vms = ["vm-1111-0", "vm-1111-1", "vm-1111-2", "vm-new"]
    with running(operation_seconds=0.2) as emu:
        client = client_for(emu)
        with ThreadPoolExecutor(len(vms)) as pool:
            results = list(pool.map(
                lambda vm: start_change(client, vm, policy_id("enhanced-daily-crash")).result(),
                vms))
        assert {r.properties["policyId"] for r in results} == {policy_id("enhanced-daily-crash")}
        counts = {p.name: p.properties.protected_items_count
                  for p in client.backup_policies.list(VAULT, RG)}
        assert counts == {"enhanced-daily": 3, "enhanced-daily-crash": 5, "standard-daily": 0}
        jobs = list(client.backup_jobs.list(VAULT, RG, filter="operation eq 'ConfigureBackup'"))
        assert sorted(j.properties.entity_friendly_name for j in jobs) == sorted(vms)
