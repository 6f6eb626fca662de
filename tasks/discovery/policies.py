"""Backup policies, read through ARM for each vault that protects VMs in scope.

Resource Graph may not expose ``snapshotConsistencyType`` (api-notes 2.5), so the consistency
type, policy type and schedule type come from ``backup_policies.list``. A vault that cannot be
read is reported, and its VMs' policies count as unreadable (rule PROTECTION_DATA_UNREADABLE),
never as app-consistent or ready.

Each vault's protected items are listed through ARM too (``backupProtectedItems``, one paged
list per vault), for their ``protectionState``: Resource Graph reports its own
``currentProtectionState``, and how the two map is documented nowhere (tasks/azure/error_codes.py,
``ARG_TO_ARM_STATE_VERIFIED``), so verdicts use ARM's state wherever a vault can be read.

Each vault's link to a Resource Guard (multi-user authorization) is read beside its policies
(``backupResourceGuardProxies``, ``tasks/azure/guards.py``): the assessment names the guarded
vaults, where a change that reduces retention needs the guard's approval.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ..azure import backup, guards
from ..errors import AzureError


@dataclass
class PolicyFacts:
    policies: dict[str, dict] = field(default_factory=dict)  # lower policy id -> facts
    errors: list[dict] = field(default_factory=list)  # {"scope": vault id, "error": text}
    requests: int = 0
    # lower vault id -> {"vault_id", "vault", "guard_id", "guard"} for vaults under MUA
    guards: dict[str, dict] = field(default_factory=dict)
    # lower protected item id -> ARM protectionState, for every vault whose items ARM listed
    item_states: dict[str, str] = field(default_factory=dict)
    # vaults whose items ARM could not list: their VMs are still assessed, on Resource Graph's
    # state (through the unverified mapping), so this is a warning, not an unread scope
    warnings: list[dict] = field(default_factory=list)


def policy_facts(policy: dict) -> dict:
    """The facts the rules read from a policy (also used to re-score one VM before a move)."""
    props = policy.get("properties") or {}
    schedule = props.get("schedulePolicy") or {}
    return {
        "policy_name": policy.get("name", ""),
        "policy_type": props.get("policyType") or (
            "V2" if schedule.get("schedulePolicyType") == "SimpleSchedulePolicyV2" else "V1"),
        "schedule_type": schedule.get("schedulePolicyType", ""),
        "consistency_type": props.get("snapshotConsistencyType") or "",
    }


def read_policies(access, vault_ids: list[str], workers: int = 8) -> PolicyFacts:
    """Policies of every vault in ``vault_ids`` (ARM list per vault, in parallel)."""
    out = PolicyFacts()

    def one(vault_id: str) -> tuple[str, list[dict] | None, str | None, Any, Any]:
        ref = backup.vault_ref(vault_id)
        client = access.backup(ref.subscription_id)
        try:
            policies = backup.list_policies(client, ref)
        except AzureError as err:
            return vault_id, None, str(err), None, None
        try:
            items: Any = backup.item_states(client, ref)
        except AzureError as err:
            items = err
        try:
            link: Any = guards.read_link(access, vault_id)
        except AzureError as err:
            link = err
        return vault_id, policies, None, link, items

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="policies") as pool:
        for vault_id, policies, error, link, items in pool.map(one, sorted(set(vault_ids))):
            out.requests += 1
            if error is not None:
                out.errors.append({"scope": vault_id, "error": error})
                continue
            for policy in policies or []:
                out.policies[policy["id"].lower()] = policy_facts(policy)
            out.requests += 1
            if isinstance(items, AzureError):
                # Its VMs keep Resource Graph's state, through the unverified mapping.
                out.warnings.append({"scope": f"{vault_id} (protected items)",
                                     "error": str(items)})
            else:
                out.requests += 1
                out.item_states.update(items)
            if isinstance(link, AzureError):
                out.errors.append({"scope": f"{vault_id} (Resource Guard links)",
                                   "error": str(link)})
            elif link is not None:
                out.guards[vault_id.lower()] = guard_facts(link)
    return out


def guard_facts(link: guards.GuardLink) -> dict:
    """What the reports say about a vault under multi-user authorization."""
    return {"vault_id": link.vault_id, "vault": link.vault_id.rstrip("/").rsplit("/", 1)[-1],
            "guard_id": link.guard_id, "guard": link.guard_name,
            "critical_item_change": bool(link.request_for(guards.UPDATE_PROTECTION)),
            "operator_request": link.operator_request()}
