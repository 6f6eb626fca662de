"""The REST-example contract as a whole: every example file is covered, the contract fleet built
from the examples is a valid fleet file, what cannot be checked as published is listed with its
reason, and every example response body deserialises with the SDK model the client would use.

The emulator side (request accepted, every example key in the answer) is in
``test_compute_examples``, ``test_vault_examples``, ``test_resource_graph_examples`` and
``test_backup_examples``; the comparison rules are in ``fleet_from_examples``. Everywhere the SDK
sends its own api-version (what ccmigrate sends), not the example's; the emulator accepts both.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import azure.mgmt.compute.models as compute
import azure.mgmt.recoveryservices.models as vaults
import azure.mgmt.recoveryservicesbackup.models as backup
import azure.mgmt.resourcegraph.models as graph
import pytest

from emulator.fleet import validate_fleet
from emulator.server import Emulator
from tests.contract import (
    test_backup_examples,
    test_compute_examples,
    test_resource_graph_examples,
    test_vault_examples,
)
from tests.contract.fleet_from_examples import (
    CREATE_EXAMPLES,
    EXAMPLES_ROOT,
    SERVICES,
    contract_config,
    contract_fleet,
    example_stems,
    indexed_examples,
    load_example,
    response_bodies,
)

_CREATE = ("the emulator does not create {what} (ccmigrate never does), so the create request "
           "is not applicable; the response shape is checked against the emulator's GET of the "
           "fleet resource loaded from the example's 200 body (in a resource group of its own: "
           "the create examples all name myResourceGroup/{name})")

# Examples, or parts of them, that cannot be checked as published, and what is checked instead.
NOT_APPLICABLE: dict[str, str] = {
    **{stem: _CREATE.format(what="VMs", name="myVM")
       for stem in CREATE_EXAMPLES if stem.startswith("VirtualMachine_")},
    **{stem: _CREATE.format(what="disks", name="myDisk")
       for stem in CREATE_EXAMPLES if stem.startswith("Disk_")},
    "ResourcesNextPageQuery": (
        "its $skipToken was issued by Azure, not by the emulator: the literal request must get "
        "ARG's 400 BadRequest; the keys are checked on the next page for a token the emulator "
        "issued for ResourcesFirstPageQuery's request (same query and subscriptions)"),
    "ListJobsWithAllSupportedFilters": (
        "its time window (2016-01-01 .. 2017-11-29) can hold no emulator job (they start now): "
        "the literal filter must be accepted (200); the keys are checked with the window moved "
        "around now, same format and other clauses"),
    "TriggerBackup_Post": (
        "the example documents no response body (202 headers only): the headers are checked, "
        "and its request body is the one deserialised with the SDK"),
}

# Names and values the contract swaps, because the example's own cannot exist in any emulator.
SWAPPED: dict[str, str] = {
    "VirtualMachine_Get": "{subscription-id} -> cfbbd179-... (the resourcegraph examples' "
                          "subscription); the VM also gets properties.hostGroup (see below)",
    "VirtualMachine_Get_InstanceViewAutoPlacedOnDedicatedHostGroup": (
        "{subscription-id} as above; myVM is placed on a host group in the fleet, as the "
        "example's VM is"),
    "VirtualMachine_ListAll_MaximumSet_Gen": (
        "its items' {resourceGroupName}/{virtualMachineName} ids -> rg-maxset/maxset-vm-N"),
    "VirtualMachine_ListAll_MinimumSet_Gen": "{subscription-id} as above",
    "VirtualMachine_List_MinimumSet_Gen": "{subscription-id}; rgcompute holds filler VMs",
    "Disk_Get": "{subscription-id} as above",
    "Disk_ListByResourceGroup": (
        "its items share one id (.../disks/myManagedDisk) contradicting their names: the fleet "
        "holds Disk_ListBySubscription's copies of the same three disks"),
    "Disk_ListBySubscription": "{subscription-id} as above",
    "ListAvailableResourceSkus": "{subscription-id}; the fleet's resourceSkus are the "
                                 "WithExtendedLocations example's",
    "ListAvailableResourceSkusForARegion": "{subscription-id} as above",
    "ListAvailableResourceSkusWithExtendedLocations": "{subscription-id} as above",
    "Compute_ProtectedItem_Get": (
        "the item's VM id has no resource group (resourceGroups/providers/...): -> "
        "iaasvm-rg/iaasvm-1, a filler VM"),
    "BackupProtectedItems_List": (
        "the item's id lacks backupFabrics/Azure and its classic VM id has no resource group: "
        "both completed"),
    "ConfigureProtection": (
        "the 200 body names another vault (PySDKBackupTestRsVault): it is loaded into "
        "NetSDKTestRsVault, where the request puts it, for StopProtection and the operation "
        "examples; ConfigureProtection itself runs without it (enable protection)"),
    "GetJobDetails": "job name -> the Backup job the emulator started for TriggerBackup_Post's "
                     "request on ConfigureProtection's item in NetSDKTestRsVault",
    "ListJobs": "the jobs are ConfigureProtection's (Completed) and TriggerBackup_Post's "
                "(InProgress) on NetSDKTestRsVault's item",
    "ProtectedItemOperationResults": (
        "operation id -> ones the emulator issued: ConfigureProtection's request (200), a "
        "delete of the item (204), the same request with the operation stuck (202)"),
    "ProtectedItemOperationStatus": "operation id -> ConfigureProtection's request's",
    "ProtectionPolicyOperationResults_Get": (
        "operation id -> ProtectionPolicies_CreateOrUpdate_Simple's PUT of testPolicy1"),
    "ProtectionPolicyOperationStatuses_Get": "operation id as above",
    "ProtectionPolicies_CreateOrUpdate_Simple": (
        "the emulator answers every write 202: the 202 headers are checked, and the 200 body "
        "against the operation's result (operationResults) once done"),
    "ProtectionPolicies_CreateOrUpdate_Complex": "202, as above",
    "IaaS_v2_hourly": "202, as above",
    "StopProtection": "202, as above; the 200 body against the item once the LRO is done",
}

_SCENARIOS = {
    "compute": test_compute_examples.SCENARIOS,
    "recoveryservices": test_vault_examples.SCENARIOS,
    "recoveryservicesbackup": test_backup_examples.SCENARIOS,
    "resourcegraph": test_resource_graph_examples.SCENARIOS,
}
_ALL = [(service, stem) for service in SERVICES for stem in example_stems(service)]


def test_every_example_the_index_names_is_in_the_project_with_its_source() -> None:
    """The examples travel with the project: each file ``INDEX.md`` names exists under
    ``tests/contract/rest_examples`` (a missing one fails here, never skips), and each example file
    there is named by the index with its source path and commit in azure-rest-api-specs."""
    indexed = indexed_examples()
    on_disk = {p.relative_to(EXAMPLES_ROOT).as_posix() for p in EXAMPLES_ROOT.rglob("*.json")}
    assert len(indexed) == 44, f"the indexes name {len(indexed)} examples, INDEX.md says 44"
    assert not sorted(set(indexed) - on_disk), f"missing examples: {sorted(set(indexed) - on_disk)}"
    assert not sorted(on_disk - set(indexed)), (
        f"examples with no source in INDEX.md: {sorted(on_disk - set(indexed))}")
    assert all(src.endswith(Path(name).name) for name, (src, _) in indexed.items())


def test_no_code_reads_examples_from_outside_the_project() -> None:
    """A clone anywhere runs the contract: no test, tool or product code reads the workplace's
    research folder beside the repository (its relative path, or one built to it)."""
    repo = EXAMPLES_ROOT.parents[2]
    folder = "sha" + "red"  # spelled apart so this file does not match itself
    needle = re.compile(rf"\.\./{folder}\b|[\"']{folder}[\"']\s*/|/ *[\"']{folder}[\"']")
    hits = [p.relative_to(repo).as_posix()
            for top in ("tests", "emulator", "tasks", "flows", "reports", "bench", "config")
            for p in (repo / top).rglob("*.py") if needle.search(p.read_text())]
    assert not hits, f"files that read the research folder outside the repository: {hits}"


def test_every_example_file_has_exactly_one_contract_scenario() -> None:
    """A new example in azure/rest-examples fails here until someone writes its contract."""
    for service in SERVICES:
        files, covered = set(example_stems(service)), set(_SCENARIOS[service])
        assert files == covered, (f"{service}: no scenario for {sorted(files - covered)}; "
                                  f"scenario without a file: {sorted(covered - files)}")
    assert len(_ALL) == 44, "azure/rest-examples/INDEX.md lists 44 example files"
    missing = {stem for _, stem in _ALL} ^ set(DESERIALISE)
    assert not missing, f"SDK deserialisation checks out of step with the files: {missing}"
    assert len({stem for _, stem in _ALL}) == len(_ALL), "example names repeat across services"


def test_not_applicable_and_swapped_tables_name_real_examples_with_reasons() -> None:
    stems = {stem for _, stem in _ALL}
    for table in (NOT_APPLICABLE, SWAPPED):
        assert set(table) <= stems, sorted(set(table) - stems)
        assert all(reason.strip() for reason in table.values())


def test_contract_fleet_is_a_valid_fleet_file_that_the_emulator_serves_unchanged() -> None:
    """The fleet built from the examples passes the emulator's loader validation, and the
    emulator's state dump gives back every resource as loaded."""
    fleet = contract_fleet()
    validate_fleet(fleet, "contract fleet")
    with Emulator(fleet, config=contract_config()) as emu:
        state = emu.state()
    assert sorted(r["id"] for r in state["resources"]) == sorted(r["id"] for r in
                                                                 fleet["resources"])
    assert state["resourceSkus"] == fleet["resourceSkus"]


# -- each example response body deserialises with the SDK ----------------------------------------
# stem -> (model the SDK deserialises the body, or each item of a list body's "value", into;
#          assertions on documented attributes of the 200 body's model(s)).

def _os_disk(vm: Any) -> Any:
    return vm.properties.storage_profile.os_disk


def _vm_get(vm: Any) -> None:
    assert vm.properties.hardware_profile.vm_size == "Standard_DS3_v2"
    assert vm.properties.storage_profile.data_disks[1].managed_disk.id.endswith("/myDataDisk1")
    assert vm.properties.security_profile.security_type == "Standard"
    assert vm.etag == '"1"'


def _instance_view(view: Any) -> None:
    assert view.assigned_host.endswith("/hostGroups/myHostGroup/hosts/myHost")
    assert [s.code for s in view.statuses] == ["ProvisioningState/succeeded",
                                               "PowerState/running"]
    assert view.vm_agent.vm_agent_version == "2.7.41491.949"


def _maxset(vms: list) -> None:
    vm = vms[0]
    assert _os_disk(vm).diff_disk_settings.option == "Local"
    assert _os_disk(vm).write_accelerator_enabled is True
    assert _os_disk(vm).managed_disk.security_profile.security_encryption_type == (
        "VMGuestStateOnly")
    assert vm.properties.additional_capabilities.ultra_ssd_enabled is True
    assert vm.properties.security_profile.security_type == "TrustedLaunch"
    assert vm.extended_location.type == "EdgeZone"


def _minset(vms: list) -> None:
    assert [vm.location for vm in vms] == ["eastus", "eastus"]
    assert all(vm.id.endswith("/virtualMachines/{virtualMachineName}") for vm in vms)


def _diff_os_disk(vm: Any) -> None:
    assert _os_disk(vm).diff_disk_settings.option == "Local"
    assert _os_disk(vm).caching == "ReadOnly"


def _confidential(vm: Any) -> None:
    assert vm.properties.security_profile.security_type == "ConfidentialVM"
    assert vm.properties.security_profile.uefi_settings.v_tpm_enabled is True
    assert _os_disk(vm).managed_disk.security_profile.security_encryption_type == (
        "NonPersistedTPM")


def _trusted_launch(vm: Any) -> None:
    assert vm.properties.security_profile.security_type == "TrustedLaunch"
    assert vm.properties.security_profile.uefi_settings.secure_boot_enabled is True


def _disk_get(disk: Any) -> None:
    assert disk.sku.name == "Standard_LRS"
    assert disk.properties.security_profile.security_type == "TrustedLaunch"
    assert disk.properties.encryption.type == "EncryptionAtRestWithPlatformKey"
    assert disk.managed_by.endswith("/virtualMachines/TestVM414689371c88843d65ec")


def _disk_list(disks: list) -> None:
    assert [d.properties.creation_data.create_option for d in disks] == ["Copy", "Empty",
                                                                         "FromImage"]
    assert all(d.properties.encryption_settings_collection.enabled for d in disks[:1])


def _data_access_disk(disk: Any) -> None:
    assert disk.properties.data_access_auth_mode == "AzureActiveDirectory"


def _premium_v2_disk(disk: Any) -> None:
    assert (disk.sku.name, disk.sku.tier) == ("PremiumV2_LRS", "Premium")
    assert disk.properties.disk_size_gb == 200


def _trusted_launch_disk(disk: Any) -> None:
    assert disk.properties.security_profile.security_type == "TrustedLaunch"
    assert disk.properties.creation_data.create_option == "FromImage"


def _ultra_disk(disk: Any) -> None:
    assert (disk.sku.name, disk.sku.tier) == ("UltraSSD_LRS", "Ultra")
    assert disk.properties.encryption.type == "EncryptionAtRestWithPlatformKey"


def _skus(skus: list) -> None:
    assert [s.name for s in skus] == ["Standard_A0", "Standard_A1"]
    caps = {c.name: c.value for c in skus[0].capabilities}
    assert caps["PremiumIO"] == "False" and caps["vCPUs"] == "1"
    assert skus[0].location_info[0].zone_details[0].capabilities[0].name == "UltraSSDAvailable"


def _skus_extended(skus: list) -> None:
    _skus(skus)
    edge = [li for s in skus for li in s.location_info if li.type == "EdgeZone"]
    assert edge and edge[0].extended_locations == ["Las Vegas", "Seattle", "Portland"]


def _vault(vault: Any) -> None:
    props = vault.properties
    assert props.redundancy_settings.standard_tier_storage_redundancy == "GeoRedundant"
    assert props.redundancy_settings.cross_region_restore == "Enabled"
    assert props.security_settings.soft_delete_settings.soft_delete_state == "Enabled"
    assert vault.identity.type == "SystemAssigned" and vault.sku.name == "Standard"


def _vault_list(items: list) -> None:
    assert [v.name for v in items] == ["patchtest", "swaggerExample", "today1"]
    assert all(v.properties.provisioning_state == "Succeeded" for v in items)


def _v1_policy(policy: Any) -> None:
    assert isinstance(policy.properties, backup.AzureIaaSVMProtectionPolicy)
    assert isinstance(policy.properties.schedule_policy, backup.SimpleSchedulePolicy)
    assert policy.properties.retention_policy.daily_schedule.retention_duration.count == 1
    assert policy.properties.time_zone == "Pacific Standard Time"


def _weekly_policy(policy: Any) -> None:
    schedule = policy.properties.schedule_policy
    assert schedule.schedule_run_frequency == "Weekly"
    assert schedule.schedule_run_days == ["Monday", "Wednesday", "Thursday"]
    assert policy.properties.retention_policy.yearly_schedule.months_of_year == ["February",
                                                                                  "November"]


def _v2_policy(policy: Any) -> None:
    props = policy.properties
    assert props.policy_type == "V2"
    assert props.snapshot_consistency_type == "OnlyCrashConsistent"
    assert isinstance(props.schedule_policy, backup.SimpleSchedulePolicyV2)
    assert props.instant_rp_retention_range_in_days == 30


def _hourly_policy(policy: Any) -> None:
    _v2_policy(policy)
    hourly = policy.properties.schedule_policy.hourly_schedule
    assert (hourly.interval, hourly.schedule_window_duration) == (4, 16)


def _policy_result(policy: Any) -> None:
    _v1_policy(policy)
    assert policy.properties.protected_items_count == 1


def _policy_list(kinds: list[str]) -> Callable[[list], None]:
    def check(policies: list) -> None:
        assert [type(p.properties.schedule_policy).__name__ for p in policies] == kinds
        assert all(p.properties.backup_management_type == "AzureIaasVM" for p in policies)
    return check


def _item(state: str) -> Callable[[Any], None]:
    """Azure VM items deserialise to the base ``ProtectedItem`` (api-notes 4.2): documented base
    attributes by name, the VM-only ``protectionState`` by key."""

    def check(item: Any) -> None:
        assert item.properties.policy_id.endswith("/backupPolicies/testPolicy1")
        assert item.properties.workload_type == "VM"
        assert item.properties.protected_item_type == "Microsoft.Compute/virtualMachines"
        assert item.properties["protectionState"] == state
        assert item.properties.source_resource_id.rsplit("/", 1)[-1] in (
            "iaasvm-1", "netvmtestv2vm1")
    return check


def _items(items: list) -> None:
    assert [i.properties.workload_type for i in items] == ["VM"]
    assert items[0].properties.backup_management_type == "AzureIaasVM"


def _job(job: Any) -> None:
    assert isinstance(job.properties, backup.AzureIaaSVMJob)
    assert job.properties.operation == "Backup" and job.properties.status == "InProgress"
    assert [t.task_id for t in job.properties.extended_info.tasks_list] == [
        "Take Snapshot", "Transfer data to vault"]
    assert job.properties.extended_info.property_bag == {"VM Name": "testvm"}
    assert job.properties.duration == timedelta(seconds=9.878279)


def _jobs(operations: list[str]) -> Callable[[list], None]:
    def check(jobs: list) -> None:
        assert [j.properties.operation for j in jobs] == operations
        assert all(isinstance(j.properties, backup.AzureIaaSVMJob) for j in jobs)
        ended = [j.properties.end_time is not None for j in jobs]
        assert ended == [j.properties.status == "Completed" for j in jobs]
    return check


def _policy_operation(status: Any) -> None:
    assert status.status == "Succeeded"
    assert isinstance(status.properties, backup.OperationStatusJobsExtendedInfo)
    assert status.properties.job_ids == ["00000000-0000-0000-0000-000000000000"]
    assert status.end_time is not None


def _item_operation(status: Any) -> None:
    assert status.status == "Succeeded"
    assert isinstance(status.properties, backup.OperationStatusJobExtendedInfo)
    assert status.properties.job_id == "00000000-0000-0000-0000-000000000000"


def _query(first_page: bool) -> Callable[[Any], None]:
    def check(result: Any) -> None:
        assert result.count == len(result.data) == 3
        assert result.result_truncated == "false"
        assert all("id" in row for row in result.data)
        assert (result.skip_token is not None) == first_page
    return check


def _backup_request(request: Any) -> None:
    assert isinstance(request.properties, backup.IaasVMBackupRequest)


DESERIALISE: dict[str, tuple[Any, Callable[[Any], None]]] = {
    "VirtualMachine_Get": (compute.VirtualMachine, _vm_get),
    "VirtualMachine_Get_InstanceViewAutoPlacedOnDedicatedHostGroup": (
        compute.VirtualMachineInstanceView, _instance_view),
    "VirtualMachine_ListAll_MaximumSet_Gen": (compute.VirtualMachine, _maxset),
    "VirtualMachine_ListAll_MinimumSet_Gen": (compute.VirtualMachine, _minset),
    "VirtualMachine_List_MinimumSet_Gen": (compute.VirtualMachine, _minset),
    "VirtualMachine_Create_WithADiffOsDisk": (compute.VirtualMachine, _diff_os_disk),
    "VirtualMachine_Create_WithSecurityTypeConfidentialVMWithNonPersistedTPM": (
        compute.VirtualMachine, _confidential),
    "VirtualMachine_Create_WithUefiSettings": (compute.VirtualMachine, _trusted_launch),
    "Disk_Get": (compute.Disk, _disk_get),
    "Disk_ListByResourceGroup": (compute.Disk, _disk_list),
    "Disk_ListBySubscription": (compute.Disk, _disk_list),
    "Disk_Create_WithDataAccessAuthMode": (compute.Disk, _data_access_disk),
    "Disk_Create_WithPremiumV2_LRSAccountType": (compute.Disk, _premium_v2_disk),
    "Disk_Create_WithSecurityProfile": (compute.Disk, _trusted_launch_disk),
    "Disk_Create_WithUltraSSD_ReadOnly": (compute.Disk, _ultra_disk),
    "ListAvailableResourceSkus": (compute.ResourceSku, _skus),
    "ListAvailableResourceSkusForARegion": (compute.ResourceSku, _skus),
    "ListAvailableResourceSkusWithExtendedLocations": (compute.ResourceSku, _skus_extended),
    "GETVault": (vaults.Vault, _vault),
    "ListBySubscriptionIds": (vaults.Vault, _vault_list),
    "BackupPolicies_List": (backup.ProtectionPolicyResource,
                            _policy_list(["SimpleSchedulePolicy", "SimpleSchedulePolicy"])),
    "v2-List-Policies": (backup.ProtectionPolicyResource, _policy_list(
        ["SimpleSchedulePolicy", "SimpleSchedulePolicy", "SimpleSchedulePolicyV2"])),
    "ProtectionPolicies_Get": (backup.ProtectionPolicyResource, _v1_policy),
    "ProtectionPolicies_CreateOrUpdate_Simple": (backup.ProtectionPolicyResource, _v1_policy),
    "ProtectionPolicies_CreateOrUpdate_Complex": (backup.ProtectionPolicyResource,
                                                  _weekly_policy),
    "ProtectionPolicyOperationResults_Get": (backup.ProtectionPolicyResource, _policy_result),
    "v2-Get-Policy": (backup.ProtectionPolicyResource, _v2_policy),
    "IaaS_v2_hourly": (backup.ProtectionPolicyResource, _hourly_policy),
    "ProtectionPolicyOperationStatuses_Get": (backup.OperationStatus, _policy_operation),
    "Compute_ProtectedItem_Get": (backup.ProtectedItemResource, _item("Protected")),
    "BackupProtectedItems_List": (backup.ProtectedItemResource, _items),
    "ConfigureProtection": (backup.ProtectedItemResource, _item("Protected")),
    "StopProtection": (backup.ProtectedItemResource, _item("ProtectionStopped")),
    "ProtectedItemOperationResults": (backup.ProtectedItemResource, _item("Protected")),
    "ProtectedItemOperationStatus": (backup.OperationStatus, _item_operation),
    "TriggerBackup_Post": (backup.BackupRequestResource, _backup_request),
    "GetJobDetails": (backup.JobResource, _job),
    "ListJobs": (backup.JobResource, _jobs(["Backup", "ConfigureBackup"])),
    "ListJobsWithAllSupportedFilters": (backup.JobResource, _jobs(["Backup"])),
    "ResourcesBasicQuery": (graph.QueryResponse, _query(first_page=False)),
    "ResourcesFirstPageQuery": (graph.QueryResponse, _query(first_page=True)),
    "ResourcesMgBasicQuery": (graph.QueryResponse, _query(first_page=False)),
    "ResourcesNextPageQuery": (graph.QueryResponse, _query(first_page=True)),
    "ResourcesTenantBasicQuery": (graph.QueryResponse, _query(first_page=False)),
}


def _deserialise(model: Any, body: Any) -> Any:
    """What the client does with a body: hybrid models (compute 39, recoveryservices 4,
    recoveryservicesbackup 11) are built from the JSON dict; msrest ones (resourcegraph 8) go
    through ``deserialize``. A list body's ``value`` items, as the SDK pagers do."""
    build = model.deserialize if hasattr(model, "deserialize") else model
    if isinstance(body, dict) and isinstance(body.get("value"), list):
        return [build(item) for item in body["value"]]
    return build(body)


@pytest.mark.parametrize("stem", [stem for _, stem in _ALL])
def test_example_response_bodies_deserialise_with_the_sdk_models(stem: str) -> None:
    """If the SDK could not read Azure's documented answer, no emulator fidelity would help."""
    service = next(s for s, name in _ALL if name == stem)
    model, check = DESERIALISE[stem]
    example = load_example(service, stem)
    bodies = response_bodies(example)
    if not bodies:  # 202-only: nothing to read back; the request body is what the SDK builds
        assert stem in NOT_APPLICABLE, f"{stem} has no response body and no reason listed"
        check(_deserialise(model, example["parameters"]["parameters"]))
        return
    for code, body in bodies.items():
        built = _deserialise(model, body)
        if code == "200":
            check(built)
        else:  # 201/202 bodies of creates: the same model, its name read back
            assert built.name == body["name"]
    assert "200" in bodies, f"{stem}: no 200 body to check attributes on"
