"""Each rule fires on the facts supported-scenarios.md names, and not on their near misses."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from tasks.rules.engine import RuleContext, evaluate, load_pack
from tasks.settings import Rules
from tests.rules.inventory import disk, frames, unprotected, vm

GA = load_pack(Rules(pack="ga-2025-07"))


def fired(rule_id: str, vms: list[dict[str, Any]], disks: list[dict[str, Any]] | None = None,
          ctx: RuleContext | None = None) -> list[bool]:
    """Whether ``rule_id`` fires for each VM, evaluated alone with the GA pack's params."""
    v, d = frames(vms, disks)
    alone = dataclasses.replace(GA, rules=[GA.rule(rule_id)])
    result = evaluate(v, d, alone, ctx or RuleContext())
    return result[rule_id].tolist()


def test_default_test_vm_fires_no_rule():
    v, d = frames([vm()])
    result = evaluate(v, d, GA, RuleContext())
    assert not result.to_numpy().any(), result.loc[:, result.any()].columns.tolist()


# -- POLICY_STANDARD ------------------------------------------------------------------------

@pytest.mark.parametrize(("policy_type", "schedule_type", "expected"), [
    ("V1", "SimpleSchedulePolicy", True),
    ("V1", "", True),
    ("", "SimpleSchedulePolicy", True),  # ARM list examples omit policyType
    ("v1", "simpleschedulepolicy", True),
    ("V2", "SimpleSchedulePolicyV2", False),
    ("", "SimpleSchedulePolicyV2", False),
])
def test_standard_policy_is_a_warning_for_v1_or_simple_schedule(policy_type, schedule_type,
                                                                 expected):
    assert fired("POLICY_STANDARD", [vm(policy_type=policy_type,
                                        schedule_type=schedule_type)]) == [expected]


def test_standard_policy_needs_a_readable_policy_and_an_active_item():
    rows = [
        vm("unreadable", policy_type="V1", schedule_type="SimpleSchedulePolicy",
           policy_readable=False),
        vm("stopped", policy_type="V1", schedule_type="SimpleSchedulePolicy", protected=False,
           protection_state="ProtectionStopped"),
        unprotected("none"),
    ]
    assert fired("POLICY_STANDARD", rows) == [False, False, False]


# -- REGION_NOT_SUPPORTED -------------------------------------------------------------------

@pytest.mark.parametrize(("location", "expected"), [
    ("eastus", False), ("westeurope", False), ("usgovvirginia", True),
    ("usdodeast", True), ("chinanorth3", True), ("USGovArizona", True),
    ("australiacentral", False),
])
def test_sovereign_region_names_are_not_supported(location, expected):
    assert fired("REGION_NOT_SUPPORTED", [vm(location=location)]) == [expected]


@pytest.mark.parametrize("cloud", ["usgov", "china"])
def test_sovereign_cloud_setting_blocks_every_vm(cloud):
    rows = [vm("a", location="eastus"), vm("b", location="westeurope")]
    assert fired("REGION_NOT_SUPPORTED", rows, ctx=RuleContext(cloud=cloud)) == [True, True]


@pytest.mark.parametrize("cloud", ["public", "https://management.local.azurestack.external"])
def test_public_or_custom_endpoint_cloud_judges_by_location_only(cloud):
    rows = [vm("a", location="eastus"), vm("b", location="usgovtexas")]
    assert fired("REGION_NOT_SUPPORTED", rows, ctx=RuleContext(cloud=cloud)) == [False, True]


# -- sizes ------------------------------------------------------------------------------------

def test_size_without_premium_io_is_a_blocker_and_a_listed_premium_size_is_not():
    rows = [vm("std", vm_size="Standard_D4_v5", sku_premium_io=False),
            vm("prem", vm_size="Standard_D4s_v5", sku_premium_io=True)]
    assert fired("SIZE_NOT_PREMIUM_CAPABLE", rows) == [True, False]
    assert fired("SIZE_UNKNOWN", rows) == [False, False]


def test_size_missing_from_the_sku_list_is_unknown_never_a_verdict_from_its_name():
    # The name says "no s" (a hint of no Premium), but only the SKU list decides.
    rows = [vm("gone", vm_size="Standard_A4_v1", sku_known=False, sku_premium_io=None),
            vm("s-name", vm_size="Standard_D4s_v5", sku_known=False, sku_premium_io=None)]
    assert fired("SIZE_UNKNOWN", rows) == [True, True]
    assert fired("SIZE_NOT_PREMIUM_CAPABLE", rows) == [False, False]


def test_size_listed_without_premium_io_capability_is_unknown():
    assert fired("SIZE_UNKNOWN", [vm(sku_known=True, sku_premium_io=None)]) == [True]


@pytest.mark.parametrize("size", [
    "Standard_D4s_v6", "Standard_E8ds_v6", "Standard_D4as_v7", "Standard_E16-4ds_v6",
    "Standard_D2ads_v7", "Standard_F4als_v7", "Standard_E2s_v6", "Standard_DC2es_v6",
    "standard_d4s_v6", "STANDARD_E8DS_V6", "Standard_D4s_v10",
])
def test_azure_boost_sizes_fire(size):
    assert fired("SIZE_AZURE_BOOST", [vm(vm_size=size)]) == [True]


@pytest.mark.parametrize("size", [
    "Standard_D4as_v6",  # AMD v6: not named by the table
    "Standard_D4s_v5", "Standard_E8ds_v5", "Standard_D4as_v5", "Standard_E2bds_v5",
    "Standard_DS2_v2", "Standard_D2_v3",
    "Standard_M32ms",  # no _vN: version 1
    "Standard_M64-16ms",
    "Standard_D4ps_v6", "Standard_E4pds_v6", "Standard_D2plds_v6",  # Arm: never
    "Standard_DC2es_v5",  # confidential Intel v5
    "Standard_NV4ads_V710_v5",  # "V710" is a GPU, the version is v5
    "Standard_NC24ads_A100_v4",
    "Basic_A1", "", "not a size",
])
def test_sizes_the_boost_row_does_not_name_do_not_fire(size):
    assert fired("SIZE_AZURE_BOOST", [vm(vm_size=size)]) == [False]


# -- disks ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("rule_id", "kind"), [("ULTRA_DISK", "UltraSSD_LRS"),
                                                ("PREMIUM_SSD_V2_DISK", "PremiumV2_LRS")])
def test_disk_type_fires_from_the_vm_storage_type_or_the_disk_sku(rule_id, kind):
    rows = [vm("by-vm"), vm("by-sku"), vm("data-only"), vm("premium")]
    disks = [
        disk("by-vm"), disk("by-vm", "data", 0, storage_type=kind, sku_name=""),
        disk("by-sku"), disk("by-sku", "data", 0, storage_type="", sku_name=kind),
        disk("data-only", "data", 3, storage_type=kind.lower(), sku_name=kind),
        disk("premium"), disk("premium", "data", 0),
    ]
    assert fired(rule_id, rows, disks) == [True, True, True, False]


def test_ultra_ssd_enabled_capability_alone_does_not_fire():
    assert fired("ULTRA_DISK", [vm(ultra_ssd_enabled=True)]) == [False]


def test_ultra_os_disk_fires():
    assert fired("ULTRA_DISK", [vm()], [disk(storage_type="UltraSSD_LRS")]) == [True]


def test_ephemeral_os_disk_is_a_blocker_and_never_a_missing_disk():
    rows = [vm("eph", os_disk_ephemeral=True), vm("plain")]
    disks = [disk("eph", ephemeral=True, managed=False, disk_key="", found=True, sku_name="",
                  storage_type="Standard_LRS"), disk("plain")]
    assert fired("EPHEMERAL_OS_DISK", rows, disks) == [True, False]
    assert fired("DISK_NOT_FOUND", rows, disks) == [False, False]


def test_ephemeral_flag_on_the_disk_row_alone_fires():
    assert fired("EPHEMERAL_OS_DISK", [vm()], [disk(ephemeral=True, managed=False)]) == [True]


@pytest.mark.parametrize(("max_shares", "expected"), [(2, True), (5, True), (1, False),
                                                      (None, False)])
def test_shared_disk_is_max_shares_above_one(max_shares, expected):
    disks = [disk(), disk("vm-1", "data", 0, max_shares=max_shares)]
    assert fired("SHARED_DISK", [vm()], disks) == [expected]


@pytest.mark.parametrize("role", ["os", "data"])
def test_write_accelerator_on_any_disk_fires(role):
    disks = [disk(write_accelerator=role == "os"),
             disk("vm-1", "data", 0, write_accelerator=role == "data")]
    assert fired("WRITE_ACCELERATOR", [vm(vm_size="Standard_M32ms")], disks) == [True]
    assert fired("WRITE_ACCELERATOR", [vm()]) == [False]


def test_unmanaged_vhd_disk_fires_and_is_not_a_missing_disk():
    disks = [disk(managed=False, unmanaged=True, disk_key="", storage_type="", sku_name="",
                  found=True)]
    assert fired("UNMANAGED_DISK", [vm()], disks) == [True]
    assert fired("DISK_NOT_FOUND", [vm()], disks) == [False]
    assert fired("UNMANAGED_DISK", [vm()]) == [False]


@pytest.mark.parametrize(("mode", "expected"), [("AzureActiveDirectory", True),
                                                ("azureactivedirectory", True),
                                                ("None", False), ("", False)])
def test_disk_data_access_authentication_fires_for_entra_mode(mode, expected):
    disks = [disk(), disk("vm-1", "data", 0, data_access_auth_mode=mode)]
    assert fired("DISK_DATA_ACCESS_AUTH", [vm()], disks) == [expected]


def test_missing_managed_disk_is_unknown():
    disks = [disk(), disk("vm-1", "data", 1, found=False, sku_name="", max_shares=None)]
    assert fired("DISK_NOT_FOUND", [vm()], disks) == [True]
    assert fired("SHARED_DISK", [vm()], disks) == [False]


@pytest.mark.parametrize(("caching", "expected"), [("ReadWrite", True), ("readwrite", True),
                                                   ("ReadOnly", False), ("None", False),
                                                   ("", False)])
def test_read_write_host_caching_is_a_warning(caching, expected):
    assert fired("HOST_CACHING_READWRITE", [vm()], [disk(caching=caching)]) == [expected]


def test_data_disk_read_write_caching_fires_too():
    disks = [disk(caching="ReadOnly"), disk("vm-1", "data", 0, caching="ReadWrite")]
    assert fired("HOST_CACHING_READWRITE", [vm()], disks) == [True]


def test_disk_rules_roll_up_to_their_own_vm_only():
    rows = [vm("a"), vm("b"), vm("no-disks")]
    disks = [disk("a", max_shares=3), disk("b")]
    assert fired("SHARED_DISK", rows, disks) == [True, False, False]


def test_vm_frame_with_a_non_range_index_keeps_its_index():
    v, d = frames([vm("a"), vm("b")], [disk("a"), disk("b", write_accelerator=True)])
    v.index = [10, 7]
    result = evaluate(v, d, GA, RuleContext())
    assert result.index.tolist() == [10, 7]
    assert result["WRITE_ACCELERATOR"].tolist() == [False, True]


# -- security -------------------------------------------------------------------------------

@pytest.mark.parametrize(("security_type", "expected"), [
    ("ConfidentialVM", True), ("confidentialvm", True), ("TrustedLaunch", False),
    ("Standard", False), ("", False)])
def test_confidential_vm_blocks_and_trusted_launch_does_not(security_type, expected):
    assert fired("CONFIDENTIAL_VM", [vm(security_type=security_type)]) == [expected]


# -- workload -------------------------------------------------------------------------------

@pytest.mark.parametrize(("publisher", "offer", "expected"), [
    ("MicrosoftSQLServer", "sql2022-ws2022", True),
    ("microsoftsqlserver", "SQL2019-WS2019", True),
    ("Oracle", "oracle-database-19-3", True),
    ("oracle", "Oracle-Linux", True),
    ("SUSE", "sles-sap-15-sp5", True),
    ("suse", "SLES-SAP-BYOS", True),
    ("RedHat", "RHEL-SAP-HA", True),
    ("redhat", "rhel-sap-apps", True),
    ("SUSE", "sles-15-sp5", False),
    ("RedHat", "RHEL", False),
    ("Canonical", "sles-sap-lookalike", False),  # the offer pattern belongs to its publisher
    ("MicrosoftWindowsServer", "WindowsServer", False),
    ("", "", False),
])
def test_database_images_are_a_warning(publisher, offer, expected):
    row = vm(image_publisher=publisher, image_offer=offer)
    assert fired("WORKLOAD_DATABASE", [row]) == [expected]


def test_sql_virtual_machine_resource_marks_a_database():
    assert fired("WORKLOAD_DATABASE", [vm(is_sql_vm=True)]) == [True]


# -- protection -----------------------------------------------------------------------------

@pytest.mark.parametrize(("state", "arg_state", "expected"), [
    ("ProtectionError", "ProtectionError", True),
    ("IRPending", "ConfiguringProtection", True),
    ("irpending", "", True),
    ("Protected", "ProtectionConfigured", False),
    ("Protected", "ProtectionError", False),  # ARM's state wins when it was read
    ("", "ProtectionError", True),  # only Resource Graph's view: map it
    ("", "ConfiguringProtection", True),
    ("", "ConfiguringProtectionFailed", True),
    ("", "ProtectionConfigured", False),
])
def test_unhealthy_protected_item_is_a_warning(state, arg_state, expected):
    row = vm(protection_state=state, arg_protection_state=arg_state)
    assert fired("PROTECTION_UNHEALTHY", [row]) == [expected]


def test_unhealthy_rule_ignores_vms_without_an_active_item():
    rows = [unprotected("none"),
            vm("stopped", protected=False, protection_state="ProtectionStopped",
               arg_protection_state="ProtectionError")]
    assert fired("PROTECTION_UNHEALTHY", rows) == [False, False]


def test_unreadable_policy_of_an_active_item_is_unknown():
    rows = [vm("dangling", policy_readable=False, policy_type="", schedule_type=""),
            vm("readable"),
            unprotected("none"),
            vm("stopped", protected=False, protection_state="BackupsSuspended",
               policy_readable=False)]
    assert fired("PROTECTION_DATA_UNREADABLE", rows) == [True, False, False, False]


# -- governance ----------------------------------------------------------------------------

@pytest.mark.parametrize(("tags", "expected"), [
    ({"backup-consistency": "application"}, True),
    ({"Backup-Consistency": "Application"}, True),
    ({"BACKUP-CONSISTENCY": " application "}, True),
    ({"backup-consistency": "crash"}, False),
    ({"backup": "application"}, False),
    ({}, False),
    (None, False),
])
def test_opt_out_tag_name_and_value_match_ignoring_case(tags, expected):
    assert fired("OPTED_OUT", [vm(tags=tags)]) == [expected]


def test_opt_out_tag_comes_from_the_context():
    ctx = RuleContext(opt_out_tag=("keep-app-consistent", "yes"))
    rows = [vm("a", tags={"Keep-App-Consistent": "YES"}),
            vm("b", tags={"backup-consistency": "application"})]
    assert fired("OPTED_OUT", rows, ctx=ctx) == [True, False]


def test_opt_out_tag_with_empty_value_matches_any_value():
    ctx = RuleContext(opt_out_tag=("no-crash-backup", ""))
    rows = [vm("a", tags={"no-crash-backup": "anything"}), vm("b", tags={"other": "x"})]
    assert fired("OPTED_OUT", rows, ctx=ctx) == [True, False]


@pytest.mark.parametrize(("os_type", "expected"), [("Linux", True), ("linux", True),
                                                   ("Windows", False), ("", False)])
def test_linux_vms_get_the_pre_post_scripts_info(os_type, expected):
    assert fired("LINUX_PREPOST_SCRIPTS", [vm(os_type=os_type)]) == [expected]


def test_findings_are_computed_for_unprotected_vms_too():
    row = unprotected(vm_size="Standard_D4s_v6", os_type="Linux",
                      tags={"backup-consistency": "application"})
    v, d = frames([row], [disk(caching="ReadWrite", storage_type="UltraSSD_LRS")])
    result = evaluate(v, d, GA, RuleContext())
    assert result.columns[result.iloc[0]].tolist() == [
        "SIZE_AZURE_BOOST", "ULTRA_DISK", "HOST_CACHING_READWRITE", "OPTED_OUT",
        "LINUX_PREPOST_SCRIPTS"]
