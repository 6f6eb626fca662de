"""The last look before a VM's backup moves: what ARM says *now* about the VM, its protected
item and its running jobs, against the plan (made from an assessment that may be days old).

A VM fails the look (and is skipped, with the reason) when its item no longer points at the
plan's source policy, is not in a healthy protected state, has a job in progress (Azure would
refuse the change with ``BMSUserErrorObjectLocked``, and a running backup must not be disturbed),
when the VM is gone, or when a rule that reads the VM itself fires now: confidential VM,
ephemeral OS disk, unmanaged disk, Ultra or Premium SSD v2 disk, Write Accelerator, the opt-out
tag. Rules that need other resources (shared disks and disk access settings on the disk
resources, SKU capabilities) are as the assessment found them; re-assess to refresh them.
"""

from __future__ import annotations

from typing import Any

HEALTHY_STATES = ("Protected", "IRPending")
BLOCKING_DISK_TYPES = {"ultrassd_lrs": "ULTRA_DISK", "premiumv2_lrs": "PREMIUM_SSD_V2_DISK"}


def _disks(vm: dict) -> list[dict]:
    profile = (vm.get("properties") or {}).get("storageProfile") or {}
    return [profile.get("osDisk") or {}, *(profile.get("dataDisks") or [])]


def vm_blockers(vm: dict, opt_out: tuple[str, str] | None) -> list[str]:
    """Rule ids (the pack's) that fire on the VM resource as it is now."""
    props = vm.get("properties") or {}
    found: list[str] = []
    if ((props.get("securityProfile") or {}).get("securityType") or "") == "ConfidentialVM":
        found.append("CONFIDENTIAL_VM")
    os_disk = (props.get("storageProfile") or {}).get("osDisk") or {}
    if ((os_disk.get("diffDiskSettings") or {}).get("option") or "") == "Local":
        found.append("EPHEMERAL_OS_DISK")
    for disk in _disks(vm):
        managed = disk.get("managedDisk") or {}
        if disk.get("vhd") and not managed.get("id") and "UNMANAGED_DISK" not in found:
            found.append("UNMANAGED_DISK")
        rule = BLOCKING_DISK_TYPES.get(str(managed.get("storageAccountType") or "").lower())
        if rule and rule not in found:
            found.append(rule)
        if disk.get("writeAcceleratorEnabled") and "WRITE_ACCELERATOR" not in found:
            found.append("WRITE_ACCELERATOR")
    if opt_out:
        name, value = opt_out
        tags = {k.lower(): str(v) for k, v in (vm.get("tags") or {}).items()}
        if name.lower() in tags and (not value or tags[name.lower()].lower() == value.lower()):
            found.append("OPTED_OUT")
    return found


def running_jobs(jobs: list[dict], vm_name: str, item_id: str) -> list[dict]:
    """The in-progress jobs (from a vault's job list) that act on this VM."""
    name = vm_name.lower()
    out = []
    for job in jobs:
        props = job.get("properties") or {}
        if props.get("status") not in ("InProgress", "Cancelling"):
            continue
        entity = str(props.get("entityFriendlyName") or "").lower()
        bag = (props.get("extendedInfo") or {}).get("propertyBag") or {}
        if entity == name or str(bag.get("itemId", "")).lower() == item_id.lower():
            out.append(job)
    return out


def skip_reason(vm: dict | None, item: dict | None, jobs: list[dict], *, vm_name: str,
                item_id: str, source_policy_id: str, target_policy_id: str,
                opt_out: tuple[str, str] | None) -> tuple[str, str] | None:
    """``(code, reason)`` when the VM must not move now; None when it may. A VM already on the
    target policy is not a skip: the caller finishes it as done."""
    if vm is None:
        return "VM_GONE", "the VM no longer exists"
    if item is None:
        return "ITEM_GONE", "the VM's protected item no longer exists"
    props: dict[str, Any] = item.get("properties") or {}
    current = str(props.get("policyId") or "").lower()
    if current not in (source_policy_id.lower(), target_policy_id.lower()):
        return ("POLICY_CHANGED", f"its backup policy changed since the plan: it is now "
                f"{props.get('policyId') or 'none'}, the plan expected {source_policy_id}")
    state = props.get("protectionState")
    if state not in HEALTHY_STATES:
        return "NOT_PROTECTED", f"its protection state is {state}, not Protected"
    busy = running_jobs(jobs, vm_name, item_id)
    if busy:
        job = busy[0]["properties"]
        return ("JOB_RUNNING", f"a {job.get('operation', '')} job is running on it "
                f"({busy[0].get('name', '')}); it is left for a later run")
    blockers = vm_blockers(vm, opt_out)
    if blockers:
        return ("NO_LONGER_READY", "it is no longer ready: " + ", ".join(blockers)
                + " fired on the VM as it is now")
    return None
