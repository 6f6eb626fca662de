"""What Azure refuses for agentless crash-consistent backup: the emulator's own small table.

The emulator fails ConfigureBackup and Backup jobs of VMs on an ``OnlyCrashConsistent`` policy
when this table says the VM is unsupported. It deliberately imports nothing from the project's
rule engine: an independent reading of the same support table (azure-docs include
``backup-azure-agentless-multi-disk-crash-consistent-vm-backup-support-scenarios.md``, GA text,
plus the restore-point matrix rows) is what lets end-to-end tests catch a rule engine that
under-reports blockers. Only what ARM shows is checked; guest-side facts are out of reach.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

SOVEREIGN_PREFIXES = ("usgov", "usdod", "ussec", "usnat", "china", "germany")

_SIZE = re.compile(r"^(?:standard|basic)_([a-z]+)(\d+)(?:-\d+)?([a-z]*)(?:_(.*))?$")


@dataclass(frozen=True)
class Unsupported:
    """One reason the VM can't take an agentless crash-consistent backup."""

    reason: str
    message: str


def size_facts(size: str) -> tuple[str, str, int] | None:
    """``(family, feature letters, version)`` of an Azure size name; None when unparseable."""
    m = _SIZE.match(size.strip().lower())
    if not m:
        return None
    family, _cpus, features, rest = m.groups()
    version = 1
    for part in (rest or "").split("_"):
        if re.fullmatch(r"v\d+", part):
            version = int(part[1:])
    return family, features, version


def premium_by_name(size: str) -> bool | None:
    """Name heuristic for Premium storage support: an ``s`` feature letter or an S-family."""
    facts = size_facts(size)
    if facts is None:
        return None
    family, features, _ = facts
    return "s" in features or (len(family) > 1 and family.endswith("s"))


def is_boost_size(size: str) -> bool:
    """Azure Boost sizes as the table names them: Intel v6+ and AMD (``a``) v7+; not Arm."""
    facts = size_facts(size)
    if facts is None:
        return False
    _, features, version = facts
    if "p" in features:
        return False
    return version >= 7 if "a" in features else version >= 6


def _disks(vm: dict) -> list[tuple[str, dict]]:
    storage = (vm.get("properties") or {}).get("storageProfile") or {}
    out = [("OS disk", storage.get("osDisk") or {})]
    out += [(f"data disk LUN {d.get('lun', '?')}", d) for d in storage.get("dataDisks") or []]
    return out


def crash_consistent_blockers(vm: dict, get: Callable[[str], dict | None], *,
                              premium_capable: bool | None = None) -> list[Unsupported]:
    """Every documented reason ``vm`` can't be backed up crash-consistently (empty: supported).

    ``get`` resolves a disk id to its ARM resource (None when unknown); ``premium_capable`` is the
    Resource SKU's ``PremiumIO`` when the caller knows it, else the size name decides.
    """
    props: dict[str, Any] = vm.get("properties") or {}
    out: list[Unsupported] = []
    location = (vm.get("location") or "").lower()
    if location.startswith(SOVEREIGN_PREFIXES):
        out.append(Unsupported("region", f"Region '{location}' is not an Azure public region."))
    if (props.get("securityProfile") or {}).get("securityType") == "ConfidentialVM":
        out.append(Unsupported("confidential_vm", "Confidential VMs are not supported."))
    size = (props.get("hardwareProfile") or {}).get("vmSize") or ""
    premium = premium_capable if premium_capable is not None else premium_by_name(size)
    if premium is False:
        out.append(Unsupported("size_not_premium",
                               f"VM size '{size}' does not support Premium storage."))
    if size and is_boost_size(size):
        out.append(Unsupported("azure_boost", f"VM size '{size}' uses Azure Boost "
                               "(Intel v6 and later, AMD v7 and later)."))
    os_disk = ((props.get("storageProfile") or {}).get("osDisk") or {})
    if (os_disk.get("diffDiskSettings") or {}).get("option") == "Local":
        out.append(Unsupported("ephemeral_os_disk", "Ephemeral OS disks are not supported."))
    for label, ref in _disks(vm):
        if ref.get("vhd"):
            out.append(Unsupported("unmanaged_disk", f"The {label} is an unmanaged disk."))
            continue
        managed = ref.get("managedDisk") or {}
        disk = get(managed["id"]) if managed.get("id") else None
        sku = (disk or {}).get("sku", {}).get("name") or managed.get("storageAccountType")
        if sku == "UltraSSD_LRS":
            out.append(Unsupported("ultra_disk", f"The {label} is an Ultra Disk."))
        elif sku == "PremiumV2_LRS":
            out.append(Unsupported("premium_ssd_v2", f"The {label} is a Premium SSD v2 disk."))
        if ref.get("writeAcceleratorEnabled"):
            out.append(Unsupported("write_accelerator",
                                   f"The {label} has Write Accelerator enabled."))
        disk_props = (disk or {}).get("properties") or {}
        if (disk_props.get("maxShares") or 1) > 1:
            out.append(Unsupported("shared_disk", f"The {label} is a shared disk."))
        if disk_props.get("dataAccessAuthMode") == "AzureActiveDirectory":
            out.append(Unsupported("data_access_auth", f"The {label} has data access "
                                   "authentication (AzureActiveDirectory) enabled."))
    return out
