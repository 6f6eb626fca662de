"""The ARM resource types a fleet holds, spelled as ARM returns them, and lower-cased (as
Resource Graph and our indexes use them)."""

from __future__ import annotations

VM_TYPE = "Microsoft.Compute/virtualMachines"
DISK_TYPE = "Microsoft.Compute/disks"
VAULT_TYPE = "Microsoft.RecoveryServices/vaults"
POLICY_TYPE = "Microsoft.RecoveryServices/vaults/backupPolicies"
ITEM_TYPE = "Microsoft.RecoveryServices/vaults/backupFabrics/protectionContainers/protectedItems"
SQLVM_TYPE = "Microsoft.SqlVirtualMachine/sqlVirtualMachines"
# Multi-user authorization: a vault's link to a Resource Guard, and the guard
# (emulator/resource_guard.py).
PROXY_TYPE = "Microsoft.RecoveryServices/vaults/backupResourceGuardProxies"
GUARD_TYPE = "Microsoft.DataProtection/resourceGuards"

VM = VM_TYPE.lower()
DISK = DISK_TYPE.lower()
VAULT = VAULT_TYPE.lower()
POLICY = POLICY_TYPE.lower()
ITEM = ITEM_TYPE.lower()
SQL_VM = SQLVM_TYPE.lower()
PROXY = PROXY_TYPE.lower()
GUARD = GUARD_TYPE.lower()
