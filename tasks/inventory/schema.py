"""The inventory's columns, declared once: the contract between discovery (which fills them) and
the rule engine, reports and state store (which read them).

Two frames, both plain pandas DataFrames:

- ``vms``: one row per VM, indexed by nothing special (a RangeIndex); ``vm_key`` is the join key.
- ``disks``: one row per disk a VM has (OS disk first, then data disks), joined by ``vm_key``,
  so disk rules are a vectorized group-by, never a Python loop over lists in cells.

Missing values: strings are ``""``, booleans are ``False`` unless the column says "<NA> when
unknown" (nullable ``boolean`` dtype), numbers use nullable ``Int64``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

# column -> (dtype, meaning)
VM_COLUMNS: Mapping[str, tuple[str, str]] = {
    "vm_id": ("string", "ARM id of the VM, as Azure returns it"),
    "vm_key": ("string", "lower-cased vm_id: the join key everywhere"),
    "vm_name": ("string", "VM name"),
    "subscription_id": ("string", "subscription GUID, lower-case"),
    "resource_group": ("string", "resource group, lower-case as Resource Graph returns it"),
    "location": ("string", "Azure region name, lower-case (e.g. eastus)"),
    "vm_size": ("string", "hardwareProfile.vmSize, e.g. Standard_D4s_v5"),
    "os_type": ("string", "storageProfile.osDisk.osType: Windows or Linux ('' if unknown)"),
    "image_publisher": ("string", "storageProfile.imageReference.publisher"),
    "image_offer": ("string", "storageProfile.imageReference.offer"),
    "image_sku": ("string", "storageProfile.imageReference.sku"),
    "security_type": ("string", "securityProfile.securityType: Standard, TrustedLaunch, "
                                "ConfidentialVM or ''"),
    "ultra_ssd_enabled": ("boolean", "additionalCapabilities.ultraSSDEnabled (a hint only)"),
    "tags": ("object", "dict of the VM's tags (names as Azure returns them)"),
    "is_sql_vm": ("boolean", "a Microsoft.SqlVirtualMachine resource points at this VM"),
    # Resource SKU facts for (vm_size, location), from the compute SKU list.
    "sku_known": ("boolean", "the size is in the Resource SKU list for the VM's location"),
    "sku_premium_io": ("boolean", "the SKU's PremiumIO capability; <NA> when sku_known is "
                                  "False"),
    # The counted protected item (supported-scenarios.md: active, else most recently backed up).
    "protected": ("boolean", "an active (not stopped, not soft-deleted) protected item exists"),
    "item_id": ("string", "ARM id of the counted protected item ('' if none)"),
    "item_count": ("Int64", "number of protected items found for the VM, any state"),
    "other_items": ("string", "ids of the VM's other protected items, joined by ';'"),
    "vault_id": ("string", "ARM id of the counted item's vault"),
    "vault": ("string", "that vault's name"),
    "protection_state": ("string", "ARM protectionState of the counted item: Protected, "
                                   "IRPending, ProtectionError, ProtectionStopped, "
                                   "BackupsSuspended, ProtectionPaused or ''"),
    "arg_protection_state": ("string", "Resource Graph currentProtectionState of the item, "
                             "where ARM's protectionState could not be read"),
    "last_backup_status": ("string", "lastBackupStatus of the counted item"),
    "last_backup_time": ("string", "lastBackupTime of the counted item (ISO 8601) or ''"),
    "policy_id": ("string", "ARM id of the counted item's policy ('' if none)"),
    "policy_name": ("string", "that policy's name"),
    "policy_readable": ("boolean", "the policy was read through ARM; False when the vault "
                                   "could not be read or the policy id is missing or dangling"),
    "policy_type": ("string", "V1 (Standard) or V2 (Enhanced); '' when unreadable"),
    "schedule_type": ("string", "schedulePolicy.schedulePolicyType: SimpleSchedulePolicy or "
                                "SimpleSchedulePolicyV2"),
    "consistency_type": ("string", "snapshotConsistencyType ('OnlyCrashConsistent' or '')"),
    "vault_location": ("string", "region of the counted item's vault"),
    "os_disk_ephemeral": ("boolean", "storageProfile.osDisk.diffDiskSettings.option == Local"),
    # Size, for the cost view (the protected-instance fee is priced on it); no rule reads it.
    "provisioned_gb": ("Int64", "sum of the VM's disk sizes (OS + data); <NA> when no disk size "
                                "is known"),
}

DISK_COLUMNS: Mapping[str, tuple[str, str]] = {
    "vm_key": ("string", "the VM this disk belongs to"),
    "role": ("string", "'os' or 'data'"),
    "lun": ("Int64", "data disk LUN; <NA> for the OS disk"),
    "disk_name": ("string", "disk name as the VM lists it"),
    "disk_key": ("string", "lower-cased managed disk id; '' for unmanaged or ephemeral disks"),
    "managed": ("boolean", "the VM references a managed disk (managedDisk.id)"),
    "unmanaged": ("boolean", "the VM has a page-blob vhd instead of a managed disk"),
    "ephemeral": ("boolean", "ephemeral OS disk (diffDiskSettings.option == Local)"),
    "storage_type": ("string", "managedDisk.storageAccountType on the VM ('' if absent)"),
    "caching": ("string", "None, ReadOnly, ReadWrite or ''"),
    "write_accelerator": ("boolean", "writeAcceleratorEnabled"),
    "found": ("boolean", "the managed disk resource exists in the inventory; True for "
                         "unmanaged and ephemeral disks (nothing to find)"),
    "sku_name": ("string", "the disk resource's sku.name ('' when not found)"),
    "max_shares": ("Int64", "the disk resource's maxShares; <NA> when absent or not found"),
    "data_access_auth_mode": ("string", "the disk resource's dataAccessAuthMode ('' if none)"),
    "size_gb": ("Int64", "the disk resource's diskSizeGB; else the size the VM's storage profile "
                         "lists; <NA> when neither says"),
}

# Columns a frame may lack: conform adds them as <NA> ("not known"). Sizes only feed the cost
# view, so frames built without them (by hand for rule tests, or by older code) still score.
FILLED_WHEN_ABSENT: frozenset[str] = frozenset({"provisioned_gb", "size_gb"})

# What scoring adds to the VM frame.
SCORED_COLUMNS: Mapping[str, tuple[str, str]] = {
    "readiness": ("string", "ready, ready_with_conditions, not_ready, "
                            "already_crash_consistent, not_protected or unknown"),
    "blockers": ("string", "rule ids of severity blocker that fired, joined by ';'"),
    "warnings": ("string", "rule ids of severity warning, joined by ';'"),
    "unknowns": ("string", "rule ids of severity unknown, joined by ';'"),
    "infos": ("string", "rule ids of severity info, joined by ';'"),
    "target_policy": ("string", "name of the crash-consistent policy the VM would move to; '' "
                                "for VMs that would not move"),
}

# pandas 3 always copies on write (its option is kept but ignored); pandas 2 when asked to.
_COPY_ON_WRITE = (int(pd.__version__.split(".")[0]) >= 3
                  or pd.options.mode.copy_on_write is True)

READINESS_VALUES = ("ready", "ready_with_conditions", "not_ready", "already_crash_consistent",
                    "not_protected", "unknown")


def empty_frame(columns: Mapping[str, tuple[str, str]]) -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series(dtype=dtype) for name, (dtype, _) in columns.items()})


def conform(frame: pd.DataFrame, columns: Mapping[str, tuple[str, str]]) -> pd.DataFrame:
    """Return ``frame`` with exactly the declared columns, in order, with the declared dtypes;
    a missing column is an error (a discovery bug), except those of ``FILLED_WHEN_ABSENT``,
    which are added as <NA>; extra columns are kept at the end."""
    missing = [c for c in columns if c not in frame.columns and c not in FILLED_WHEN_ABSENT]
    if missing:
        raise KeyError(f"inventory frame lacks declared columns: {missing}")
    # A shallow copy under pandas' copy-on-write (always on from pandas 3): the columns set or
    # changed below, and by callers on the result, never reach ``frame``, and a deep copy
    # would copy every column of a 100k-row frame again for nothing. Without it, a deep copy.
    out = frame.copy(deep=not _COPY_ON_WRITE)
    for name in FILLED_WHEN_ABSENT:
        if name in columns and name not in out.columns:
            out[name] = pd.Series(pd.NA, index=out.index, dtype=columns[name][0])
    for name, (dtype, _) in columns.items():
        if dtype != "object" and str(out[name].dtype) != dtype:
            out[name] = out[name].astype(dtype)
    extra = [c for c in out.columns if c not in columns]
    return out[list(columns) + extra]


class TagSets:
    """Equal tag sets (same names, values and order) as one dict object, and no tags as one
    empty dict: fleets repeat a few hundred tag sets over many thousands of VMs, so the rules,
    the reports and the state store, which each turn every VM's tags into something (a match, a
    text, JSON), do it once per set (``distinct``). One ``TagSets`` shares them across calls
    (pages of rows, batches read side by side: ``dict.setdefault`` is one step under the GIL)."""

    def __init__(self) -> None:
        self._seen: dict[tuple, dict] = {}
        self._none: dict = {}

    def share(self, cells: Iterable[Any]) -> list[dict]:
        """``cells`` with each tag set the first equal dict seen."""
        setdefault = self._seen.setdefault
        none = self._none
        out: list[dict] = []
        append = out.append
        for tags in cells:
            if not tags:
                append(none)
                continue
            try:
                append(setdefault(tuple(tags.items()), tags))
            except (TypeError, AttributeError):  # not a dict of plain values: kept as it is
                append(tags)
        return out


def distinct(values: Sequence[Any]) -> tuple[np.ndarray, list[Any]]:
    """``(codes, uniques)`` of ``values`` by object identity: ``values[i] is uniques[codes[i]]``.
    One integer hash pass; equal values that are separate objects stay apart (that only costs
    the work per value ``distinct`` saves, e.g. for cells ``TagSets`` did not make)."""
    ids = np.fromiter(map(id, values), dtype=np.int64, count=len(values))
    codes, uniques = pd.factorize(ids)
    first = np.empty(len(uniques), dtype=np.int64)
    first[codes[::-1]] = np.arange(len(values) - 1, -1, -1)
    return codes, [values[i] for i in first.tolist()]
