"""Small inventory frames for rule tests, with every declared column and ARM-shaped values.

``vm(**overrides)`` is, by default, a VM that is ready to move: protected by an active item on
an Enhanced app-consistent policy, Premium-capable v5 size in a public region, Windows, one
128 GB Premium SSD OS disk with ReadOnly caching. ``disk(**overrides)`` is that OS disk. A test
changes only the facts it is about.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from tasks.inventory import schema

SUB = "00000000-0000-0000-0000-000000000001"
VAULT_ID = f"/subscriptions/{SUB}/resourceGroups/rg-backup/providers/" \
           "Microsoft.RecoveryServices/vaults/vault-eastus"


def vm_id(name: str, rg: str = "rg-app") -> str:
    return f"/subscriptions/{SUB}/resourceGroups/{rg}/providers/Microsoft.Compute/" \
           f"virtualMachines/{name}"


def vm(name: str = "vm-1", **overrides: Any) -> dict[str, Any]:
    vid = overrides.pop("vm_id", vm_id(name))
    policy = overrides.get("policy_name", "DailyEnhanced")
    row: dict[str, Any] = {
        "vm_id": vid,
        "vm_key": vid.lower(),
        "vm_name": name,
        "subscription_id": SUB,
        "resource_group": "rg-app",
        "location": "eastus",
        "vm_size": "Standard_D4s_v5",
        "os_type": "Windows",
        "image_publisher": "MicrosoftWindowsServer",
        "image_offer": "WindowsServer",
        "image_sku": "2022-datacenter-azure-edition",
        "security_type": "TrustedLaunch",
        "ultra_ssd_enabled": False,
        "tags": {"env": "prod"},
        "is_sql_vm": False,
        "sku_known": True,
        "sku_premium_io": True,
        "protected": True,
        "item_id": f"{VAULT_ID}/backupFabrics/Azure/protectionContainers/"
                   f"IaasVMContainer;iaasvmcontainerv2;rg-app;{name}/protectedItems/"
                   f"VM;iaasvmcontainerv2;rg-app;{name}",
        "item_count": 1,
        "other_items": "",
        "vault_id": VAULT_ID,
        "vault": "vault-eastus",
        "protection_state": "Protected",
        "arg_protection_state": "ProtectionConfigured",
        "last_backup_status": "Completed",
        "last_backup_time": "2026-11-24T22:31:07.1234567Z",
        "policy_id": f"{VAULT_ID}/backupPolicies/{policy}",
        "policy_name": policy,
        "policy_readable": True,
        "policy_type": "V2",
        "schedule_type": "SimpleSchedulePolicyV2",
        "consistency_type": "",
        "vault_location": "eastus",
        "os_disk_ephemeral": False,
        "provisioned_gb": 128,
    }
    unknown = set(overrides) - set(row)
    assert not unknown, f"not VM columns: {unknown}"
    row.update(overrides)
    return row


def unprotected(name: str = "vm-1", **overrides: Any) -> dict[str, Any]:
    """A VM with no protected item at all."""
    values = {"protected": False, "item_id": "", "item_count": 0, "vault_id": "", "vault": "",
              "protection_state": "", "arg_protection_state": "", "last_backup_status": "",
              "last_backup_time": "", "policy_id": "", "policy_name": "",
              "policy_readable": False, "policy_type": "", "schedule_type": "",
              "consistency_type": "", "vault_location": ""}
    values.update(overrides)
    return vm(name, **values)


def disk(vm_name: str = "vm-1", role: str = "os", lun: int | None = None,
         **overrides: Any) -> dict[str, Any]:
    name = overrides.pop("disk_name", f"{vm_name}-{'osdisk' if role == 'os' else f'data{lun}'}")
    key = f"/subscriptions/{SUB}/resourcegroups/rg-app/providers/microsoft.compute/disks/" \
          f"{name.lower()}"
    row: dict[str, Any] = {
        "vm_key": vm_id(vm_name).lower(),
        "role": role,
        "lun": lun,
        "disk_name": name,
        "disk_key": key,
        "managed": True,
        "unmanaged": False,
        "ephemeral": False,
        "storage_type": "Premium_LRS",
        "caching": "ReadOnly" if role == "os" else "None",
        "write_accelerator": False,
        "found": True,
        "sku_name": "Premium_LRS",
        "max_shares": None,
        "data_access_auth_mode": "",
        "size_gb": 128,
    }
    unknown = set(overrides) - set(row)
    assert not unknown, f"not disk columns: {unknown}"
    row.update(overrides)
    return row


def frames(vms: list[dict[str, Any]],
           disks: list[dict[str, Any]] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Conformed (vms, disks) frames; ``disks=None`` gives each VM the default OS disk."""
    if disks is None:
        disks = [disk(v["vm_name"]) for v in vms]
    vm_frame = pd.DataFrame(vms, columns=list(schema.VM_COLUMNS))
    disk_frame = pd.DataFrame(disks, columns=list(schema.DISK_COLUMNS))
    return (schema.conform(vm_frame, schema.VM_COLUMNS),
            schema.conform(disk_frame, schema.DISK_COLUMNS))
