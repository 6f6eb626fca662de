"""A hand-written fleet (fleet-file format) where each VM is built to show one verdict of
supported-scenarios.md, with the readiness and rule ids a correct assessment must report."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from tests.fleets import (
    SUB_A,
    TENANT,
    disk_id,
    make_item,
    make_policy,
    make_vault,
    make_vm,
)

RG = "rg-app"


@dataclass
class Case:
    name: str
    readiness: str
    blockers: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    unknowns: list[str] = field(default_factory=list)
    infos: list[str] = field(default_factory=list)


def _windows(vm: dict) -> dict:
    sp = vm["properties"]["storageProfile"]
    sp["imageReference"] = {"publisher": "MicrosoftWindowsServer", "offer": "WindowsServer",
                            "sku": "2022-datacenter-azure-edition", "version": "latest"}
    sp["osDisk"]["osType"] = "Windows"
    return vm


def build() -> tuple[dict, list[Case]]:
    vault = make_vault(SUB_A, "rg-backup", "vault-east")
    vault_west = make_vault(SUB_A, "rg-backup", "vault-west", location="westus")
    vault_gov = make_vault(SUB_A, "rg-backup", "vault-gov", location="usgovvirginia")
    vault_old = make_vault(SUB_A, "rg-backup", "vault-old")
    enhanced = make_policy(vault, "enhanced-daily")
    standard = make_policy(vault, "standard-daily", v1=True)
    crash = make_policy(vault, "enhanced-crash", crash=True)
    old_policy = make_policy(vault_old, "old-daily")
    gov_policy = make_policy(vault_gov, "gov-daily")
    resources: list[dict] = [vault, vault_west, vault_gov, vault_old, enhanced, standard, crash,
                             old_policy, gov_policy]
    cases: list[Case] = []

    def add(name: str, case: Case | None = None, *, policy: dict | None = enhanced,
            item_vault: dict | None = None, state: str = "Protected", windows: bool = True,
            **vm_kwargs) -> tuple[dict, list[dict]]:
        vm, disks = make_vm(SUB_A, RG, name, **vm_kwargs)
        if windows:
            _windows(vm)
        resources.append(vm)
        resources.extend(disks)
        if policy is not None:
            resources.append(make_item(item_vault or vault, vm, policy, state))
        cases.append(case or Case(name, "ready"))
        return vm, disks

    add("ready-win")
    add("ready-linux", Case("ready-linux", "ready", infos=["LINUX_PREPOST_SCRIPTS"]),
        windows=False)
    add("amd-v6", size="Standard_D4as_v6")
    add("arm-v6", size="Standard_D4ps_v6")
    add("std-policy", Case("std-policy", "ready_with_conditions", warnings=["POLICY_STANDARD"]),
        policy=standard)
    add("sovereign", Case("sovereign", "not_ready", blockers=["REGION_NOT_SUPPORTED"]),
        location="usgovvirginia", policy=gov_policy, item_vault=vault_gov)
    add("not-premium", Case("not-premium", "not_ready", blockers=["SIZE_NOT_PREMIUM_CAPABLE"]),
        size="Standard_D4_v5")
    add("unknown-size", Case("unknown-size", "unknown", unknowns=["SIZE_UNKNOWN"]),
        size="Standard_X9zz_v5")
    add("boost-intel", Case("boost-intel", "not_ready", blockers=["SIZE_AZURE_BOOST"]),
        size="Standard_D4s_v6")
    add("boost-amd", Case("boost-amd", "not_ready", blockers=["SIZE_AZURE_BOOST"]),
        size="Standard_D4as_v7")

    vm, disks = add("ultra", Case("ultra", "not_ready", blockers=["ULTRA_DISK"]))
    vm["properties"]["storageProfile"]["dataDisks"][0]["managedDisk"]["storageAccountType"] = \
        "UltraSSD_LRS"
    disks[1]["sku"] = {"name": "UltraSSD_LRS", "tier": "Ultra"}
    vm, _ = add("ultra-capable-only")
    vm["properties"]["additionalCapabilities"] = {"ultraSSDEnabled": True}
    vm, disks = add("premium-v2", Case("premium-v2", "not_ready",
                                       blockers=["PREMIUM_SSD_V2_DISK"]))
    del vm["properties"]["storageProfile"]["dataDisks"][0]["managedDisk"]["storageAccountType"]
    disks[1]["sku"] = {"name": "PremiumV2_LRS", "tier": "Premium"}

    vm, disks = add("ephemeral", Case("ephemeral", "not_ready", blockers=["EPHEMERAL_OS_DISK"]))
    os_disk = vm["properties"]["storageProfile"]["osDisk"]
    os_disk["diffDiskSettings"] = {"option": "Local", "placement": "CacheDisk"}
    os_disk["caching"] = "ReadOnly"
    del os_disk["managedDisk"]["id"]
    resources.remove(disks[0])

    # A shared disk attached to two VMs; Azure's managedBy names only the first.
    vm_a, disks_a = add("shared-a", Case("shared-a", "not_ready", blockers=["SHARED_DISK"]))
    shared = disks_a[1]
    shared["properties"]["maxShares"] = 2
    vm_b, _ = add("shared-b", Case("shared-b", "not_ready", blockers=["SHARED_DISK"]),
                     data_disks=0)
    vm_b["properties"]["storageProfile"]["dataDisks"] = [
        {**vm_a["properties"]["storageProfile"]["dataDisks"][0], "lun": 0}]

    vm, _ = add("write-accel", Case("write-accel", "not_ready", blockers=["WRITE_ACCELERATOR"]),
                size="Standard_M32ms")
    vm["properties"]["storageProfile"]["dataDisks"][0]["writeAcceleratorEnabled"] = True

    vm, disks = add("unmanaged", Case("unmanaged", "not_ready", blockers=["UNMANAGED_DISK"]),
                    data_disks=0)
    os_disk = vm["properties"]["storageProfile"]["osDisk"]
    del os_disk["managedDisk"]
    os_disk["vhd"] = {"uri": "https://contosostorage.blob.core.windows.net/vhds/unmanaged.vhd"}
    resources.remove(disks[0])

    vm, _ = add("confidential", Case("confidential", "not_ready", blockers=["CONFIDENTIAL_VM"]),
                size="Standard_DC2es_v5")
    vm["properties"]["securityProfile"] = {"securityType": "ConfidentialVM"}

    vm, disks = add("aad-disk", Case("aad-disk", "not_ready", blockers=["DISK_DATA_ACCESS_AUTH"]))
    disks[1]["properties"]["dataAccessAuthMode"] = "AzureActiveDirectory"

    vm, disks = add("missing-disk", Case("missing-disk", "unknown", unknowns=["DISK_NOT_FOUND"]))
    resources.remove(disks[1])

    add("readwrite", Case("readwrite", "ready_with_conditions",
                          warnings=["HOST_CACHING_READWRITE"]), caching="ReadWrite")

    vm, _ = add("sql-image", Case("sql-image", "ready_with_conditions",
                                  warnings=["WORKLOAD_DATABASE"]))
    vm["properties"]["storageProfile"]["imageReference"] = {
        "publisher": "MicrosoftSQLServer", "offer": "sql2022-ws2022", "sku": "enterprise-gen2",
        "version": "latest"}
    vm, _ = add("sql-registered", Case("sql-registered", "ready_with_conditions",
                                       warnings=["WORKLOAD_DATABASE"]))
    resources.append({
        "id": f"/subscriptions/{SUB_A}/resourceGroups/{RG}/providers/"
              "Microsoft.SqlVirtualMachine/sqlVirtualMachines/sql-registered",
        "name": "sql-registered", "type": "Microsoft.SqlVirtualMachine/sqlVirtualMachines",
        "location": "eastus",
        "properties": {"virtualMachineResourceId": vm["id"], "sqlServerLicenseType": "PAYG"}})
    vm, _ = add("sap-suse", Case("sap-suse", "ready_with_conditions",
                                 warnings=["WORKLOAD_DATABASE"], infos=["LINUX_PREPOST_SCRIPTS"]),
                windows=False)
    vm["properties"]["storageProfile"]["imageReference"] = {
        "publisher": "SUSE", "offer": "sles-sap-15-sp5", "sku": "gen2", "version": "latest"}

    add("ir-pending", Case("ir-pending", "ready_with_conditions",
                           warnings=["PROTECTION_UNHEALTHY"]), state="IRPending")
    add("protection-error", Case("protection-error", "ready_with_conditions",
                                 warnings=["PROTECTION_UNHEALTHY"]), state="ProtectionError")

    vm, _ = add("dangling-policy", Case("dangling-policy", "unknown",
                                        unknowns=["PROTECTION_DATA_UNREADABLE"]))
    item = next(r for r in resources if r["type"].endswith("protectedItems")
                and r["properties"]["sourceResourceId"] == vm["id"])
    item["properties"]["policyId"] = f"{vault['id']}/backupPolicies/deleted-policy"

    add("opted-out", Case("opted-out", "not_ready", blockers=["OPTED_OUT"]),
        tags={"backup-consistency": "application"})
    add("tag-other-value", tags={"backup-consistency": "crash"})

    add("crash", Case("crash", "already_crash_consistent"), policy=crash)
    vm, disks = add("crash-at-risk", Case("crash-at-risk", "already_crash_consistent",
                                          blockers=["ULTRA_DISK"]), policy=crash)
    disks[1]["sku"] = {"name": "UltraSSD_LRS", "tier": "Ultra"}

    add("unprotected", Case("unprotected", "not_protected"), policy=None)
    add("unprotected-blocked", Case("unprotected-blocked", "not_protected",
                                    blockers=["SIZE_NOT_PREMIUM_CAPABLE"]),
        policy=None, size="Standard_D4_v5")
    add("stopped", Case("stopped", "not_protected"), state="ProtectionStopped")
    add("suspended", Case("suspended", "not_protected"), state="BackupsSuspended")

    # Two items: an old stopped one in another vault, the active one counts.
    vm, _ = add("two-items")
    resources.append(make_item(vault_old, vm, old_policy, "ProtectionStopped"))

    vm, disks = add("unknown-beats-warning", Case("unknown-beats-warning", "unknown",
                                                  warnings=["HOST_CACHING_READWRITE"],
                                                  unknowns=["DISK_NOT_FOUND"]),
                    caching="ReadWrite")
    resources.remove(disks[1])

    # Sizes: the disk resource's size wins over the VM profile's (256, not 128); a disk whose
    # resource does not say is sized from the profile (128). Provisioned: 30 + 256 + 128.
    _, disks = add("sized", data_disks=2)
    disks[1]["properties"]["diskSizeGB"] = 256
    del disks[2]["properties"]["diskSizeGB"]

    fleet = {
        "subscriptions": [{"subscriptionId": SUB_A, "displayName": "contoso-prod",
                           "tenantId": TENANT, "state": "Enabled"}],
        "managementGroups": [],
        "resources": copy.deepcopy(resources),
    }
    return fleet, cases


def disk_ref(name: str) -> str:
    return disk_id(SUB_A, RG, name)
