"""The last look before a chunk of VMs moves: Resource Graph for the facts, the rule engine for
the verdict, ARM only where Resource Graph has nothing (running jobs) or may lag (the item,
read by the engine just before each PUT).

A plan may be days old. Right before its VMs move, a chunk of them (up to 1,000: one Resource
Graph page per query) is read again through the assessment's own queries, restricted to the
chunk's VM ids (``discovery.collect.collect_vm_rows``): the VMs, their disks, their protected
items, vaults and SQL registrations. The rows go through ``build_inventory`` and
``engine.score`` exactly as an assessment's do, and the planner's own test decides (with the
warnings the plan accepted), so a rule has one definition whether it runs over 100k VMs or a
chunk. Source policies and the regions' VM sizes are read from ARM once per run
(``rescore.Rescorer``'s caches); each vault's running jobs once per look.

How old may a look be? ``engine.LOOK_MAX_AGE_S`` (5 minutes) from the look to the VM's PUT;
an older look is taken again. Resource Graph lags ARM: "95% of all changes to be present in
resource graph under 30s. There is no upper bound on delay" (an Azure engineer in
Azure/azure-dev#540). So what a PUT acts on, the item's policy and protection state, is read
from ARM right before it (the engine), and Resource Graph is trusted only for what the rules
judge (sizes, disks, security type, tags, SQL registration): facts that change only by
someone's deliberate edit. An edit made in the minutes before the move may be missed (the
look's age plus Resource Graph's lag); the VM is then still protected by the move's own checks:
its ConfigureBackup job and the verification after it, whose failure rolls it back. A wave's
look is in any case hours or days younger than the assessment its plan came from.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..azure import backup
from ..azure.resource_graph import QuotaGate
from ..discovery import collect
from ..errors import AzureError
from .live_checks import running_jobs
from .move import LastLook, VmPlan, _same
from .rescore import SQL_RULE, Moving, Rescorer, ids
from .throttling import patiently

Reader = Callable[[Callable[[], Any]], Any]


class ChunkLook:
    """Looks at chunks of a wave's VMs; callable as the wave engine's ``looker``."""

    def __init__(self, access: Any, rescorer: Rescorer, guards: Any, *, timeout: float = 600,
                 gate: QuotaGate | None = None) -> None:
        self.access, self.rescorer, self.guards = access, rescorer, guards
        self.timeout = timeout
        self.gate = gate or QuotaGate()
        self.requests = 0

    def _read(self, call: Callable[[], Any]) -> Any:
        return patiently(call, timeout=self.timeout)

    def __call__(self, vms: list[VmPlan]) -> tuple[dict[str, LastLook], int]:
        """A ``LastLook`` per ``vm_key``, and the Resource Graph requests it took."""
        if not vms:
            return {}, 0
        subscriptions = sorted({vm.subscription_id.lower() for vm in vms})
        subscriptions = sorted({*subscriptions,
                                *(backup.vault_ref(vm.vault_id).subscription_id.lower()
                                  for vm in vms)})
        batch = collect.collect_vm_rows(self.access.resource_graph(), subscriptions,
                                        [vm.vm_id for vm in vms], gate=self.gate)
        self.requests += batch.requests
        if batch.error:
            raise AzureError(f"could not read {len(vms)} VM(s) from Resource Graph before "
                             f"moving them: {batch.error}")
        rows = batch.rows
        present = {str(r.get("id", "")).lower() for r in rows.get("vms", [])}
        items = {str(r.get("vmKey", "")).lower(): r for r in rows.get("protected_items", [])}
        busy = self._running_jobs(vms)
        looks: dict[str, LastLook] = {}
        to_score: list[VmPlan] = []
        for vm in vms:
            found = self._facts_say(vm, present, items.get(vm.vm_key), busy)
            if found is not None:
                looks[vm.vm_key] = found
            else:
                to_score.append(vm)
        if to_score:
            try:
                verdicts = self._score(to_score, rows, items)
            except AzureError as err:
                reason = ("THROTTLED" if err.status == 429 else "UNREADABLE",
                          f"could not re-score it before moving: {err}")
                return {**looks, **{vm.vm_key: LastLook(reason, throttled=err.status == 429,
                                                        error=str(err))
                                    for vm in to_score}}, batch.requests
            for vm in to_score:
                verdict = verdicts[vm.vm_key]
                looks[vm.vm_key] = (LastLook(verdict) if verdict is not None
                                    else self._guarded(vm))
        return looks, batch.requests

    def _running_jobs(self, vms: list[VmPlan]) -> dict[str, list[dict]]:
        """Each vault's jobs in progress (one list per vault): Azure refuses a change while a
        job runs on the item (``BMSUserErrorObjectLocked``), and a running backup must not be
        disturbed."""
        out: dict[str, list[dict]] = {}
        for vault_id in sorted({vm.vault_id.lower() for vm in vms}):
            ref = backup.vault_ref(vault_id)
            client = self.access.backup(ref.subscription_id)
            try:
                out[vault_id] = self._read(lambda c=client, r=ref: backup.list_jobs(
                    c, r, "status eq 'InProgress'"))
            except AzureError:
                out[vault_id] = []  # the PUT itself is refused on a locked item: retried later
        return out

    def _facts_say(self, vm: VmPlan, present: set[str], item: dict | None,
                   busy: dict[str, list[dict]]) -> LastLook | None:
        """What the rows alone decide: gone, moved elsewhere, already on target, busy."""
        if vm.vm_key not in present:
            return LastLook(("VM_GONE", "the VM no longer exists"))
        if item is None:
            return LastLook(("ITEM_GONE", "the VM's protected item no longer exists"))
        policy = str(item.get("policyId") or "")
        if _same(policy, vm.target_policy_id):
            return LastLook(None, on_target=True)
        if not _same(policy, vm.source_policy_id):
            return LastLook(("POLICY_CHANGED", f"its backup policy changed since the plan: it "
                             f"is now {policy or 'none'}, the plan expected "
                             f"{vm.source_policy_id}"))
        jobs = running_jobs(busy.get(vm.vault_id.lower(), []), vm.vm_name, vm.item_id)
        if jobs:
            job = jobs[0].get("properties") or {}
            return LastLook(("JOB_RUNNING", f"a {job.get('operation', '')} job is running on it "
                             f"({jobs[0].get('name', '')}); it is left for a later run"))
        return None

    def _score(self, vms: list[VmPlan], rows: dict[str, list[dict]],
               items: dict[str, dict]) -> dict[str, tuple[str, str] | None]:
        """The rule engine over the chunk's rows, with the plan's accepted warnings."""
        by_key = {str(r.get("id", "")).lower(): r for r in rows.get("vms", [])}
        policies: dict[str, dict] = {}
        skus: list[tuple] = []
        seen_sizes: set[tuple[str, str, str]] = set()
        for vm in vms:
            policy_id = str(items[vm.vm_key].get("policyId") or "")
            if policy_id and policy_id.lower() not in policies:
                policies.update(self.rescorer.policy(policy_id, vm.vault_id, self._read))
            row = by_key[vm.vm_key]
            size = (vm.subscription_id.lower(), str(row.get("location") or "").lower(),
                    str(row.get("vmSize") or "").lower())
            if size not in seen_sizes:
                seen_sizes.add(size)
                skus.extend(self.rescorer.size_rows(*size, self._read))
        # A SQL registration the plan knew of still counts, should the rows not show it.
        sql = [{"type": "microsoft.sqlvirtualmachine/sqlvirtualmachines", "vmKey": vm.vm_key}
               for vm in vms if SQL_RULE in ids(vm.planned_warnings)]
        merged = {**rows, "vaults_and_sql": [*rows.get("vaults_and_sql", []), *sql]}
        return self.rescorer.judge.verdicts(
            merged, policies, skus,
            [Moving(vm.vm_key, vm.planned_warnings, vm.irreversible) for vm in vms])

    def _guarded(self, vm: VmPlan) -> LastLook:
        """Multi-user authorization: the Resource Guard request the PUT must carry."""
        ref = backup.vault_ref(vm.vault_id)
        client = self.access.backup(ref.subscription_id)
        try:
            requests = self.guards.requests(client, ref, vm.vault_id, vm.source_policy_id,
                                            vm.target_policy_id, read=self._read)
        except AzureError as err:
            return LastLook(("THROTTLED" if err.status == 429 else "UNREADABLE",
                             f"could not read its vault's Resource Guard link before moving: "
                             f"{err}"), throttled=err.status == 429, error=str(err))
        return LastLook(None, guard_requests=tuple(requests))

