"""Option 2 of the how-to article: switch a policy in place to crash-consistent.

One PUT sets ``snapshotConsistencyType: OnlyCrashConsistent`` on the policy; Azure then runs one
``ConfigureBackup`` job per protected item. It is all or nothing for the VMs on the policy, so
it is allowed only when every item on it is ``ready`` (the caller checks), and if any job fails
the policy is reverted, as the article says. The API has no "application-consistent" value:
revert is a PUT without the field. Whether Azure accepts that is not documented (api-notes
1.4), so when it is refused every item is re-pointed to an app-consistent clone of the old
policy instead. Each VM is journaled through all of it (the journal of a one-wave plan made for
the switch), so the invariant holds here too: every VM stays on this policy (whichever
consistency it has at that moment) or moves to the clone, and the journal says which.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ..azure import backup
from ..errors import AzureError
from ..policies.bodies import app_clone_body, app_edit_body, crash_edit_body
from ..policies.ensure import ensure_policy
from .move import DONE_JOB_STATES, MoveConfig, VmPlan, _parse_time

CRASH = "OnlyCrashConsistent"
# Clock skew allowed between us and Azure when finding the jobs of an edit Azure answered 200.
JOB_CLOCK_MARGIN = timedelta(minutes=2)


@dataclass
class SwitchResult:
    policy_id: str
    outcome: str  # switched | reverted | re-pointed | revert_failed | already
    failed_vms: dict[str, str] = field(default_factory=dict)  # vm_key -> job error
    job_ids: dict[str, str] = field(default_factory=dict)  # vm_key -> ConfigureBackup job
    message: str = ""


def items_on_policy(access: Any, policy_id: str) -> list[dict]:
    """The active VM items on ``policy_id`` as ARM lists them now."""
    vault = backup.vault_ref(_vault_id(policy_id))
    client = access.backup(vault.subscription_id)
    return [i for i in backup.list_items(client, vault)
            if (i.get("properties") or {}).get("policyId", "").lower() == policy_id.lower()
            and (i.get("properties") or {}).get("protectionState") in ("Protected",
                                                                        "IRPending")]


def _vault_id(policy_id: str) -> str:
    return policy_id[:policy_id.lower().index("/backuppolicies/")]


def _name(resource_id: str) -> str:
    return resource_id.rstrip("/").rsplit("/", 1)[-1]


class PolicySwitch:
    """Runs the switch for one policy and the VMs on it (``VmPlan`` with source == target)."""

    def __init__(self, access: Any, journal: Any, config: MoveConfig,
                 clone_template: str = "{source}-app", log: Any = None) -> None:
        self.access, self.journal, self.cfg = access, journal, config
        self.clone_template = clone_template
        self.log = log or (lambda _line: None)

    def run(self, policy_id: str, vms: list[VmPlan]) -> SwitchResult:
        vault = backup.vault_ref(_vault_id(policy_id))
        client = self.access.backup(vault.subscription_id)
        name = _name(policy_id)
        before = backup.get_policy(client, vault, name)
        if (before.get("properties") or {}).get("snapshotConsistencyType") == CRASH:
            return SwitchResult(policy_id, "already", message="the policy is crash-consistent "
                                "already; nothing to do")
        for vm in vms:
            self.journal.begin(vm.vm_key, original_policy_id=policy_id,
                               target_policy_id=policy_id)
        wanted = crash_edit_body(before)["properties"]
        sent = _now()
        failure: AzureError | None = None
        try:
            _, status = backup.put_policy_with_status(
                client, vault, name, wanted, timeout=self.cfg.timeout,
                poll_interval=self.cfg.poll_interval)
        except backup.PolicyOperationFailed as err:
            status, failure = err.operation, err
        except AzureError as err:
            status, failure = {}, err
        if failure is not None and not _is_crash(backup.get_policy(client, vault, name)):
            # Read back: the policy is as it was, so nothing changed. Every VM is finished
            # where it was.
            for vm in vms:
                self.journal.finish(vm.vm_key, "rolled_back",
                                    error_code=failure.code or "REFUSED",
                                    error_message=str(failure), rollback_outcome="nothing to "
                                    "undo: Azure refused the edit and kept the policy")
            return SwitchResult(policy_id, "refused", message=str(failure))
        if failure is not None:
            self.log(f"policy {name}: the edit reported failure but applied ({failure}); "
                     "checking every VM on it")
        result = SwitchResult(policy_id, "switched")
        self._follow_jobs(client, vault, status, vms, result, rollback=False, since=sent)
        self._read_back(client, vault, policy_id, vms, result, crash=True)
        if not result.failed_vms:
            # Read back, every VM and the policy are as wanted, whatever the operation said.
            if failure is not None:
                self.log(f"policy {name}: the operation reported failure, yet the policy and "
                         "every item read back crash-consistent; kept")
            for vm in vms:
                self.journal.step(vm.vm_key, "verified")
                self.journal.finish(vm.vm_key, "done")
            return result
        names = {vm.vm_key: vm.vm_name for vm in vms}
        failed = ", ".join(sorted(names.get(k, k) for k in result.failed_vms))
        self.log(f"policy {name}: ConfigureBackup failed for {len(result.failed_vms)} VM(s) "
                 f"({failed}); reverting")
        return self._revert(client, vault, before, vms, result)

    def _job_ids(self, client: Any, vault: Any, status: dict, vms: list[VmPlan],
                 since: Any) -> list[str]:
        """The ConfigureBackup jobs of the edit: the operation's ``jobIds``, or, when Azure
        answered the PUT with 200 and no operation (ProtectionPolicyResource.tsp allows it),
        the VMs' ConfigureBackup jobs started since the PUT, read from the job list. Without an
        operation nothing names them, so each VM's newest since the PUT (less a clock margin)
        is taken; the read-back of every item that follows is what decides."""
        ids = list((status.get("properties") or {}).get("jobIds") or [])
        if ids or not vms:
            return ids
        names = {vm.vm_name.lower() for vm in vms}
        floor = since - JOB_CLOCK_MARGIN
        newest: dict[str, tuple[Any, str]] = {}  # one job per VM: its newest since the PUT
        for job in backup.list_jobs(client, vault, "operation eq 'ConfigureBackup'"):
            props = job.get("properties") or {}
            started = _parse_time(props.get("startTime"))
            entity = str(props.get("entityFriendlyName", "")).lower()
            if entity in names and started is not None and started >= floor and (
                    entity not in newest or started > newest[entity][0]):
                newest[entity] = (started, job["name"])
        return [name for _, name in newest.values()]

    def _read_back(self, client: Any, vault: Any, policy_id: str, vms: list[VmPlan],
                   result: SwitchResult, *, crash: bool) -> None:
        """Nothing is journaled done or unchanged on the operation's word alone: the policy
        and every item are read back. An item off the policy, or marked inconsistent with it
        (``extendedInfo.policyInconsistent``), counts as failed for that VM."""
        name = _name(policy_id)
        if _is_crash(backup.get_policy(client, vault, name)) != crash:
            for vm in vms:
                result.failed_vms.setdefault(
                    vm.vm_key, f"POLICY_NOT_CHANGED: policy {name} does not say "
                    f"{'crash' if crash else 'application'}-consistent when read back")
            return
        items = {i["id"].lower(): i for i in backup.list_items(client, vault)}
        for vm in vms:
            props = (items.get(vm.item_id.lower()) or {}).get("properties") or {}
            if (props.get("policyId") or "").lower() != policy_id.lower():
                result.failed_vms.setdefault(
                    vm.vm_key, f"NOT_ON_POLICY: the item is not on {name} when read back")
            elif (props.get("extendedInfo") or {}).get("policyInconsistent"):
                result.failed_vms.setdefault(
                    vm.vm_key, "POLICY_INCONSISTENT: Azure marks the item inconsistent with "
                    f"{name} (its ConfigureBackup did not apply)")

    def _follow_jobs(self, client: Any, vault: Any, status: dict, vms: list[VmPlan],
                     result: SwitchResult, *, rollback: bool, since: Any) -> None:
        """Map the edit's ConfigureBackup jobs to VMs, wait for each, journal them."""
        props = status.get("properties") or {}
        failed_errors = props.get("failedJobsError") or {}
        by_name = {vm.vm_name.lower(): vm for vm in vms}
        seen: set[str] = set()
        for job_id in self._job_ids(client, vault, status, vms, since):
            job = self._wait_job(client, vault, job_id)
            jprops = job.get("properties") or {}
            vm = by_name.get(str(jprops.get("entityFriendlyName", "")).lower())
            if vm is None:
                continue
            seen.add(vm.vm_key)
            step = "rollback_operation_done" if rollback else "operation_done"
            ok = jprops.get("status") in DONE_JOB_STATES and job_id not in failed_errors
            error = (jprops.get("errorDetails") or [{}])[0] or {}
            code = error.get("errorCode") or failed_errors.get(job_id) or None
            self.journal.step(vm.vm_key, step, job_id=job_id,
                              error_code=None if ok else (code or "JOB_FAILED"),
                              error_message=None if ok else error.get("errorString"))
            result.job_ids[vm.vm_key] = job_id
            if not ok:
                result.failed_vms[vm.vm_key] = f"{code or 'JOB_FAILED'}: " \
                    f"{error.get('errorString') or 'ConfigureBackup failed'}"
        for vm in vms:
            if vm.vm_key not in seen:  # no job for it: record the step without one
                self.journal.step(vm.vm_key, "rollback_operation_done" if rollback
                                  else "operation_done")

    def _revert(self, client: Any, vault: Any, before: dict, vms: list[VmPlan],
                result: SwitchResult) -> SwitchResult:
        name = before["name"]
        for vm in vms:
            own = result.failed_vms.get(vm.vm_key)
            self.journal.step(vm.vm_key, "rollback_intent",
                              error_code=own.split(":", 1)[0] if own
                              else "EDIT_FAILED_FOR_OTHERS",
                              error_message=result.failed_vms.get(vm.vm_key) or
                              "reverted because ConfigureBackup failed for "
                              f"{len(result.failed_vms)} other VM(s) on the policy")
        reverted = app_edit_body(before)["properties"]
        try:
            sent = _now()
            _, status = backup.put_policy_with_status(
                client, vault, name, reverted, timeout=self.cfg.timeout,
                poll_interval=self.cfg.poll_interval)
            for vm in vms:
                self.journal.step(vm.vm_key, "rollback_put_sent")
            self._follow_jobs(client, vault, status, vms, SwitchResult(result.policy_id, ""),
                              rollback=True, since=sent)
            if _is_crash(backup.get_policy(client, vault, name)):
                raise AzureError(f"policy {name} still says crash-consistent after the revert")
            outcome, how = "reverted", f"policy {name} reverted to application-consistent"
        except AzureError as err:
            self.log(f"policy {name}: revert in place refused ({err}); re-pointing its VMs "
                     "to an application-consistent clone")
            return self._repoint_to_clone(client, vault, before, vms, str(err), result)
        for vm in vms:
            self.journal.step(vm.vm_key, "rollback_verified")
            self.journal.finish(vm.vm_key, "rolled_back", rollback_outcome=how)
        result.outcome, result.message = outcome, how
        return result

    def _repoint_to_clone(self, client: Any, vault: Any, before: dict, vms: list[VmPlan],
                          why: str, result: SwitchResult) -> SwitchResult:
        """Fallback: an app-consistent clone of the old policy, and every item moved to it,
        VM by VM (one VM that cannot move stays on the edited policy, journaled so)."""
        from ..policies.naming import target_policy_name

        clone = target_policy_name(before["name"], self.clone_template)
        try:
            made = ensure_policy(self.access, vault.id, clone, app_clone_body(before))
        except AzureError as err:
            for vm in vms:
                self.journal.finish(vm.vm_key, "rollback_failed",
                                    rollback_outcome=f"revert refused ({why}); the clone "
                                    f"{clone} could not be made ({err}); the VM is on "
                                    f"{before['name']}, now crash-consistent")
            result.outcome, result.message = "revert_failed", str(err)
            return result
        how = (f"moved to {clone} (application-consistent clone of {before['name']}) because "
               f"Azure refused to revert the policy in place: {why}")
        stuck = 0
        for vm in vms:
            ref = backup.item_ref(vm.item_id)
            try:
                operation = backup.set_item_policy(client, ref, vm.vm_id, made.policy["id"])
                self.journal.step(vm.vm_key, "rollback_put_sent",
                                  operation_id=operation.operation_id)
                with contextlib.suppress(AzureError):  # the item read below says where it is
                    operation.wait(self.cfg.timeout)
                item = backup.get_item(client, ref)
                on = item["properties"].get("policyId", "")
                if on.lower() != made.policy["id"].lower():
                    raise AzureError(f"{vm.vm_name} is still on {on.rsplit('/', 1)[-1]}")
            except AzureError as err:
                stuck += 1
                self.journal.finish(vm.vm_key, "rollback_failed",
                                    rollback_outcome=f"revert refused ({why}); moving it to "
                                    f"{clone} failed ({err}); the VM is on {before['name']}, "
                                    "now crash-consistent")
                continue
            self.journal.step(vm.vm_key, "rollback_verified")
            self.journal.finish(vm.vm_key, "rolled_back", rollback_outcome=how)
        result.outcome = "re-pointed" if not stuck else "revert_failed"
        result.message = how if not stuck else f"{stuck} VM(s) could not move to {clone}"
        return result

    def _wait_job(self, client: Any, vault: Any, job_id: str) -> dict:
        deadline = time.monotonic() + self.cfg.timeout
        while True:
            job = backup.get_job(client, vault, job_id)
            if (job.get("properties") or {}).get("status") not in ("InProgress", "Cancelling",
                                                                   None):
                return job
            if time.monotonic() >= deadline:
                raise AzureError(f"job {job_id} did not finish within {self.cfg.timeout:.0f} s")
            time.sleep(self.cfg.poll_interval)


def _is_crash(policy: dict) -> bool:
    return (policy.get("properties") or {}).get("snapshotConsistencyType") == CRASH


def _now() -> datetime:
    return datetime.now(UTC)
