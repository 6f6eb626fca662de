"""Small hand-written fleets in the fleet-file format, for tests that need exact contents."""

from __future__ import annotations

import copy

SUB_A = "11111111-1111-4111-8111-111111111111"
SUB_B = "22222222-2222-4222-8222-222222222222"
TENANT = "72f988bf-0000-4000-8000-00000000e7e1"


def vm_id(sub: str, rg: str, name: str) -> str:
    return (f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/"
            f"virtualMachines/{name}")


def disk_id(sub: str, rg: str, name: str) -> str:
    return f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/disks/{name}"


def vault_id(sub: str, rg: str, name: str) -> str:
    return (f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.RecoveryServices/"
            f"vaults/{name}")


def make_vm(sub: str, rg: str, name: str, *, location: str = "eastus",
            size: str = "Standard_D4s_v5", caching: str = "ReadOnly", data_disks: int = 1,
            tags: dict | None = None) -> tuple[dict, list[dict]]:
    """An ARM VM with managed OS and data disks, plus the disk resources it references."""
    os_disk = f"{name}-os"
    vm = {
        "id": vm_id(sub, rg, name), "name": name, "type": "Microsoft.Compute/virtualMachines",
        "location": location, "tags": tags or {},
        "properties": {
            "vmId": f"0000{name}",
            "hardwareProfile": {"vmSize": size},
            "storageProfile": {
                "imageReference": {"publisher": "Canonical", "offer": "ubuntu-24_04-lts",
                                   "sku": "server", "version": "latest"},
                "osDisk": {"osType": "Linux", "name": os_disk, "createOption": "FromImage",
                           "caching": caching,
                           "managedDisk": {"storageAccountType": "Premium_LRS",
                                           "id": disk_id(sub, rg, os_disk)},
                           "diskSizeGB": 30},
                "dataDisks": [
                    {"lun": i, "name": f"{name}-data{i}", "createOption": "Attach",
                     "caching": "None",
                     "managedDisk": {"storageAccountType": "Premium_LRS",
                                     "id": disk_id(sub, rg, f"{name}-data{i}")},
                     "diskSizeGB": 128}
                    for i in range(data_disks)],
            },
            "securityProfile": {"securityType": "TrustedLaunch"},
            "provisioningState": "Succeeded",
        },
    }
    disks = [{
        "id": disk_id(sub, rg, d), "name": d, "type": "Microsoft.Compute/disks",
        "location": location, "managedBy": vm["id"],
        "sku": {"name": "Premium_LRS", "tier": "Premium"},
        # Sizes as the VM's storage profile lists them: 30 GB OS disk, 128 GB data disks.
        "properties": {"diskSizeGB": 30 if d == os_disk else 128, "diskState": "Attached",
                       "provisioningState": "Succeeded",
                       "creationData": {"createOption": "Empty"}},
    } for d in [os_disk] + [f"{name}-data{i}" for i in range(data_disks)]]
    return vm, disks


def make_vault(sub: str, rg: str, name: str, location: str = "eastus") -> dict:
    return {"id": vault_id(sub, rg, name), "name": name,
            "type": "Microsoft.RecoveryServices/vaults", "location": location, "tags": {},
            "etag": "W/\"datetime'2026-11-01T00%3A00%3A00.0000000Z'\"",
            "sku": {"name": "RS0", "tier": "Standard"},
            "properties": {"provisioningState": "Succeeded"}}


def make_policy(vault: dict, name: str, *, crash: bool = False, v1: bool = False) -> dict:
    props: dict = {
        "backupManagementType": "AzureIaasVM",
        "policyType": "V1" if v1 else "V2",
        "instantRpRetentionRangeInDays": 2 if v1 else 7,
        "timeZone": "UTC",
        "protectedItemsCount": 0,
        "schedulePolicy": (
            {"schedulePolicyType": "SimpleSchedulePolicy", "scheduleRunFrequency": "Daily",
             "scheduleRunTimes": ["2026-11-01T02:00:00Z"]} if v1 else
            {"schedulePolicyType": "SimpleSchedulePolicyV2", "scheduleRunFrequency": "Daily",
             "dailySchedule": {"scheduleRunTimes": ["2026-11-01T02:00:00Z"]}}),
        "retentionPolicy": {"retentionPolicyType": "LongTermRetentionPolicy",
                            "dailySchedule": {"retentionTimes": ["2026-11-01T02:00:00Z"],
                                              "retentionDuration": {"count": 30,
                                                                    "durationType": "Days"}}},
    }
    if crash:
        props["snapshotConsistencyType"] = "OnlyCrashConsistent"
    return {"id": f"{vault['id']}/backupPolicies/{name}", "name": name,
            "type": "Microsoft.RecoveryServices/vaults/backupPolicies", "properties": props}


def make_item(vault: dict, vm: dict, policy: dict | None, state: str = "Protected") -> dict:
    rg = vm["id"].split("/")[4]
    container = f"IaasVMContainer;iaasvmcontainerv2;{rg};{vm['name']}"
    item = f"VM;iaasvmcontainerv2;{rg};{vm['name']}"
    props = {
        "protectedItemType": "Microsoft.Compute/virtualMachines", "workloadType": "VM",
        "backupManagementType": "AzureIaasVM", "friendlyName": vm["name"],
        "virtualMachineId": vm["id"], "sourceResourceId": vm["id"],
        "protectionState": state, "protectionStatus": "Healthy", "healthStatus": "Passed",
        "lastBackupStatus": "Completed", "lastBackupTime": "2026-11-24T02:10:00Z",
        "containerName": f"iaasvmcontainerv2;{rg};{vm['name']}",
    }
    if policy is not None:
        props["policyId"] = policy["id"]
        props["policyType"] = policy["properties"]["policyType"]
    return {"id": f"{vault['id']}/backupFabrics/Azure/protectionContainers/{container}"
                  f"/protectedItems/{item}",
            "name": item,
            "type": "Microsoft.RecoveryServices/vaults/backupFabrics/protectionContainers/"
                    "protectedItems",
            "properties": props}


def small_fleet(vms_per_sub: int = 3) -> dict:
    """Two subscriptions, one vault each with an app-consistent Enhanced policy and a
    crash-consistent one; every VM protected by the app-consistent policy."""
    resources: list[dict] = []
    for sub in (SUB_A, SUB_B):
        vault = make_vault(sub, "rg-backup", f"vault-{sub[:4]}")
        app = make_policy(vault, "enhanced-daily")
        crash = make_policy(vault, "enhanced-daily-crash", crash=True)
        resources += [vault, app, crash]
        for i in range(vms_per_sub):
            vm, disks = make_vm(sub, "rg-app", f"vm-{sub[:4]}-{i}")
            resources += [vm, *disks, make_item(vault, vm, app)]
    return {
        "subscriptions": [
            {"subscriptionId": SUB_A, "displayName": "contoso-prod", "tenantId": TENANT,
             "state": "Enabled"},
            {"subscriptionId": SUB_B, "displayName": "contoso-dev", "tenantId": TENANT,
             "state": "Enabled"},
        ],
        "managementGroups": [{"name": "mg-prod", "subscriptions": [SUB_A]}],
        "resources": copy.deepcopy(resources),
    }
