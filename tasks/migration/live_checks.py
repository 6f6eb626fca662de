"""The first look before a VM's backup moves: what ARM says *now* about the VM, its protected
item and its running jobs, against the plan (made from an assessment that may be days old).

A VM fails the look (and is skipped, with the reason) when it or its item is gone, when its item
no longer points at the plan's source policy, is not in a healthy protected state, or has a job
in progress (Azure would refuse the change with ``BMSUserErrorObjectLocked``, and a running
backup must not be disturbed). A VM that passes is then re-scored by the rule engine
(``rescore.py``) on its disks, policy and size as they are now.
"""

from __future__ import annotations

from typing import Any

HEALTHY_STATES = ("Protected", "IRPending")


def acts_on(job: dict, vm_name: str, item_id: str) -> bool:
    """Whether a job (from a vault's job list) acts on this VM."""
    props = job.get("properties") or {}
    entity = str(props.get("entityFriendlyName") or "").lower()
    bag = (props.get("extendedInfo") or {}).get("propertyBag") or {}
    return entity == vm_name.lower() or str(bag.get("itemId", "")).lower() == item_id.lower()


def running_jobs(jobs: list[dict], vm_name: str, item_id: str) -> list[dict]:
    """The in-progress jobs (from a vault's job list) that act on this VM."""
    return [j for j in jobs if (j.get("properties") or {}).get("status")
            in ("InProgress", "Cancelling") and acts_on(j, vm_name, item_id)]


def skip_reason(vm: dict | None, item: dict | None, jobs: list[dict], *, vm_name: str,
                item_id: str, source_policy_id: str,
                target_policy_id: str) -> tuple[str, str] | None:
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
    return None
