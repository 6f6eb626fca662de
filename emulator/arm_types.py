"""The ARM resource types a fleet holds, spelled as ARM returns them, and lower-cased (as
Resource Graph and our indexes use them)."""

from __future__ import annotations

VM_TYPE = "Microsoft.Compute/virtualMachines"
DISK_TYPE = "Microsoft.Compute/disks"
VAULT_TYPE = "Microsoft.RecoveryServices/vaults"
POLICY_TYPE = "Microsoft.RecoveryServices/vaults/backupPolicies"
ITEM_TYPE = "Microsoft.RecoveryServices/vaults/backupFabrics/protectionContainers/protectedItems"
SQLVM_TYPE = "Microsoft.SqlVirtualMachine/sqlVirtualMachines"

VM = VM_TYPE.lower()
DISK = DISK_TYPE.lower()
VAULT = VAULT_TYPE.lower()
POLICY = POLICY_TYPE.lower()
ITEM = ITEM_TYPE.lower()
SQL_VM = SQLVM_TYPE.lower()
