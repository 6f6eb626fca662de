"""One VM's backup, the blocking way: the types a wave shares (``VmPlan``, ``VmOutcome``,
``LastLook``), and the ``Mover``'s paths for what is rare: Azure refusing a change, the
rollback, and reconciling a VM a stopped runner left in progress. The forward move of a wave's
many VMs is the wave engine's (``engine.py``), which hands these cases here.

The invariant: at every moment the VM is protected by its original policy or by its target
policy, and the journal says which. Hence:

- A refused PUT changed nothing: the item is read to be sure, and the VM is finished
  ``rolled_back`` with Azure's error (a refusal for want of write access stops the wave).
- *Roll back* after any failure or timeout once the PUT went out: the item is read first; when
  Azure kept the original policy (a failed ConfigureBackup changes nothing) nothing is written;
  otherwise the original policy is PUT back and verified. A VM that came from a Standard (V1)
  policy cannot return to Standard, so its rollback target is an Enhanced app-consistent clone
  with the same schedule and retention, created on demand.
- ``reconcile`` finishes a VM a crashed runner left ``in_progress`` by reading Azure, never by
  trusting what the journal hoped.

Throttling (429 after the SDK's retries) is waited out (``throttling.py``), never a failure.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ..azure import backup, error_codes, guards
from ..errors import AzureError
from ..policies.bodies import app_clone_body, crash_clone_body
from ..policies.ensure import ensure_policy
from ..state.journal import STEPS
from . import live_checks, mua, throttling

DONE_JOB_STATES = ("Completed", "CompletedWithWarnings")
STEP_RANK = {step: rank for rank, step in enumerate(STEPS)}
# Clock skew allowed between us and Azure when matching a job to a journal intent.
UNJOURNALED_MARGIN = timedelta(minutes=2)
# Journal codes a later run may retry: nothing is wrong with the VM itself (throttling, a
# stopped runner, a job or lock on the item, a Resource Guard approval still missing:
# ``mua.JOURNAL_CODE``, and the emulator's old code that journals of earlier runs may hold).
RETRYABLE_CODES = ("THROTTLED", "INTERRUPTED", "JOB_RUNNING", "UNREADABLE",
                   "BMSUserErrorObjectLocked", mua.JOURNAL_CODE,
                   "ResourceGuardOperationRequestsMissing", "POLICY_UNAVAILABLE")


class WaveStop(AzureError):
    """A refusal that will hit every VM alike (the identity may not write): stop the wave."""


@dataclass(frozen=True)
class MoveConfig:
    """How a VM is moved and verified (from settings and the migrate flags)."""

    poll_interval: float = 5.0
    timeout: float = 1800.0
    irreversible_timeout: float = 14400.0  # the move to Enhanced can take hours (docs)
    # A Backup job "can take up to eight hours" at peak and ends within 24 h
    # (backup-azure-vms-introduction.md): the wait for --verify backup's jobs.
    backup_timeout: float = 86400.0
    verify: str = "job"  # "job": the ConfigureBackup job; "backup": also an on-demand backup


@dataclass(frozen=True)
class VmPlan:
    """One VM of a wave, with its policies as full ARM ids."""

    vm_key: str
    vm_id: str
    vm_name: str
    subscription_id: str
    vault_id: str
    item_id: str
    source_policy_id: str
    target_policy_id: str
    rollback_policy_id: str  # the source for reversible VMs; an Enhanced clone for V1 ones
    irreversible: bool = False
    planned_warnings: str = ""  # the warnings the plan accepted for it (rule ids, ";"-joined)

    @classmethod
    def from_row(cls, row: Any) -> VmPlan:
        """From a ``load_plan_vms`` row (policy names become ids in the VM's vault)."""
        base = f"{row.vault_id}/backupPolicies/"
        return cls(vm_key=row.vm_key, vm_id=row.vm_id, vm_name=row.vm_name,
                   subscription_id=row.subscription_id, vault_id=row.vault_id,
                   item_id=row.item_id, source_policy_id=row.source_policy_id,
                   target_policy_id=base + row.target_policy,
                   rollback_policy_id=(row.source_policy_id if not bool(row.irreversible)
                                       else base + row.rollback_policy),
                   irreversible=bool(row.irreversible),
                   planned_warnings=str(getattr(row, "warnings", "") or ""))


@dataclass
class VmOutcome:
    """What happened to one VM in this run (the journal has the full story)."""

    vm_key: str
    vm_name: str
    status: str  # done, rolled_back, skipped, rollback_failed
    started_at: datetime
    finished_at: datetime
    job_ids: list[str] = field(default_factory=list)
    error_code: str | None = None
    error_message: str | None = None
    rollback_outcome: str | None = None
    throttled: bool = False

    @property
    def failed(self) -> bool:
        """Counts against the failure thresholds: a real failure, never throttling or a skip."""
        return self.status in ("rolled_back", "rollback_failed") and not self.throttled \
            and self.error_code not in RETRYABLE_CODES


def _now() -> datetime:
    return datetime.now(UTC)


def _same(a: str | None, b: str | None) -> bool:
    return (a or "").lower() == (b or "").lower()


def _name(policy_id: str) -> str:
    return policy_id.rstrip("/").rsplit("/", 1)[-1]


@dataclass(frozen=True)
class LastLook:
    """What the last look before a move found: ``skip`` is ``(code, reason)`` when the VM must
    stay where it is; ``on_target`` when its item already names the target policy."""

    skip: tuple[str, str] | None
    on_target: bool = False
    throttled: bool = False
    error: str | None = None
    # Multi-user authorization: the guard's request the PUT must carry (the move shortens
    # retention on a vault linked to a Resource Guard; tasks/migration/mua.py), else empty.
    guard_requests: tuple[str, ...] = ()


class _Failure(Exception):
    """A step after the PUT failed: roll back with this code and message."""

    def __init__(self, code: str, message: str, job_ids: list[str] | None = None):
        super().__init__(message)
        self.code, self.message, self.job_ids = code, message, job_ids or []


class Mover:
    """Moves, rolls back and reconciles VMs of one plan; thread-safe per VM (one VM is only
    ever handled by one thread)."""

    def __init__(self, access: Any, journal: Any, config: MoveConfig,
                 log: Callable[[str], None] | None = None) -> None:
        self.access, self.journal, self.cfg = access, journal, config
        self._mua = _GuardView(access)  # each vault's Resource Guard link, read once a run
        self.log = log or (lambda _line: None)
        self._last: dict[str, str] = {}  # vm_key -> the last step journaled

    def _step(self, vm_key: str, step: str, **fields: Any) -> None:
        """Journal ``step``, never behind the step the VM already reached: a resumed VM may be
        further along than the code path that finishes it (say, killed after
        ``rollback_verified``); the details are still recorded, under the step it is at."""
        last = self._last.get(vm_key)
        if last is not None and STEP_RANK[step] < STEP_RANK[last]:
            step = last
        self.journal.step(vm_key, step, **fields)
        self._last[vm_key] = step

    # -- the forward move ------------------------------------------------------------------

    def _wait_running_jobs(self, vm: VmPlan, client: Any, vault: Any,
                           operation: str | None = None) -> None:
        """Wait for the VM's jobs still running in its vault (of ``operation``, or any): a
        Backup job within ``backup_timeout``, any other within the operation timeout."""
        odata = "status eq 'InProgress'"
        if operation:
            odata = f"operation eq '{operation}' and {odata}"
        for job in self._read(lambda: backup.list_jobs(client, vault, odata)):
            props = job.get("properties") or {}
            if str(props.get("entityFriendlyName", "")).lower() == vm.vm_name.lower():
                self._wait_job(client, vault, job["name"], self.cfg.backup_timeout
                               if props.get("operation") == "Backup" else self.cfg.timeout)

    def _put_when_unlocked(self, vm: VmPlan, client: Any, vault: Any,
                           put: Callable[[], Any]) -> Any:
        """A rollback PUT that finds the item locked by a job still running on it (Azure's
        answer is BMSUserErrorObjectLocked: "Wait for the other in-progress operation to
        complete and retry"; e.g. the backup a Standard to Enhanced move starts) waits for the
        VM's running jobs and tries again, rather than leave the VM where it is."""
        attempt = 1
        while True:
            try:
                return put()
            except AzureError as err:
                if attempt >= 3 or not error_codes.matches(err, "BMSUserErrorObjectLocked"):
                    raise
                self.log(f"{vm.vm_name}: the item is busy ({err.code}); waiting for its "
                         "running jobs before rolling back")
                self._wait_running_jobs(vm, client, vault)
                attempt += 1

    def _refused(self, vm: VmPlan, client: Any, ref: Any, err: AzureError,
                 started: datetime) -> VmOutcome:
        """Azure refused the PUT. Check that nothing changed, then close the VM honestly; a
        refusal for want of write access stops the whole wave (every VM would meet it)."""
        throttled = err.status == 429
        code = "THROTTLED" if throttled else (err.code or "REFUSED")
        if not throttled and mua.is_guard_refusal(err):  # named, retryable, never a failure
            code = mua.JOURNAL_CODE
            err = AzureError(mua.refusal_message(err, self._mua.known(vm.vault_id)),
                             status=err.status, code=code)
        try:
            item = self._item_or_none(client, ref)
        except AzureError:
            item = None
        if item is not None and _same(item["properties"].get("policyId"),
                                      vm.source_policy_id):
            self.journal.finish(vm.vm_key, "rolled_back", error_code=code,
                                error_message=str(err),
                                rollback_outcome="nothing to undo: Azure refused the change "
                                                 "and kept the original policy")
            if err.status == 403 and error_codes.matches(err, "AuthorizationFailed"):
                raise WaveStop(str(err), status=403, code=err.code) from err
            return self._outcome(vm, "rolled_back", started, code=code, message=str(err),
                                 rollback="nothing to undo", throttled=throttled)
        return self.roll_back(vm, started=started, code=code, message=str(err))

    # -- rollback ---------------------------------------------------------------------------

    def roll_back(self, vm: VmPlan, *, started: datetime | None = None, code: str | None = None,
                  message: str | None = None, job_ids: list[str] | None = None,
                  requested: bool = False) -> VmOutcome:
        """Put the VM back on its original (or rollback) policy and verify. ``requested``: a
        user's ``ccmigrate rollback`` of a VM that is done (a fresh journal attempt)."""
        started = started or _now()
        job_ids = list(job_ids or [])
        if requested:
            self.journal.begin_rollback(vm.vm_key, reason="requested by ccmigrate rollback")
        else:
            self._step(vm.vm_key, "rollback_intent", error_code=code,
                              error_message=message)
        client = self.access.backup(vm.subscription_id)
        vault = backup.vault_ref(vm.vault_id)
        ref = backup.item_ref(vm.item_id)
        back_to = vm.rollback_policy_id
        try:
            item = self._item_or_none(client, ref)
            if item is None:
                raise AzureError("the protected item can no longer be read")
            now_on = item["properties"].get("policyId")
            if _same(now_on, vm.source_policy_id) or _same(now_on, back_to):
                outcome = f"not needed: Azure kept {_name(now_on)}"
            else:
                if vm.irreversible:
                    self._ensure_rollback_policy(vm, client, vault, back_to)
                guard = self._mua.requests_or_none(client, vault, vm.vault_id, now_on,
                                                   back_to, read=self._read)
                operation = self._put_when_unlocked(vm, client, vault, lambda: (
                    backup.set_item_policy(client, ref, vm.vm_id, back_to,
                                           guard_requests=guard)))
                self._step(vm.vm_key, "rollback_put_sent",
                                  operation_id=operation.operation_id)
                status, _ = self._wait_started(client, ref, operation, self.cfg.timeout)
                job_id = (status.get("properties") or {}).get("jobId")
                if job_id:
                    job_ids.append(job_id)
                self._step(vm.vm_key, "rollback_operation_done", job_id=job_id)
                if status.get("status") != "Succeeded":
                    error = status.get("error") or {}
                    raise AzureError(f"the rollback ended {status.get('status')}: "
                                     f"{error.get('code', '')} {error.get('message', '')}",
                                     code=error.get("code"))
                item = self._item_or_none(client, ref)
                if item is None or not _same(item["properties"].get("policyId"), back_to):
                    raise AzureError("the rollback finished but the item does not name "
                                     f"{_name(back_to)}")
                outcome = f"restored to {_name(back_to)}"
            self._step(vm.vm_key, "rollback_verified")
        except AzureError as err:
            now_on = self._policy_now(client, ref)
            outcome = (f"rollback failed: {err}; the VM is protected by {now_on}"
                       if now_on else f"rollback failed: {err}")
            self.journal.finish(vm.vm_key, "rollback_failed", error_code=code or err.code,
                                error_message=message or str(err), rollback_outcome=outcome)
            self.log(f"{vm.vm_name}: ROLLBACK FAILED ({outcome})")
            return self._outcome(vm, "rollback_failed", started, job_ids=job_ids,
                                 code=code or err.code, message=message or str(err),
                                 rollback=outcome)
        self.journal.finish(vm.vm_key, "rolled_back", error_code=code, error_message=message,
                            rollback_outcome=outcome)
        return self._outcome(vm, "rolled_back", started, job_ids=job_ids, code=code,
                             message=message, rollback=outcome)

    def _ensure_rollback_policy(self, vm: VmPlan, client: Any, vault: Any,
                                back_to: str) -> None:
        """The Enhanced app-consistent clone of a Standard source, created when first needed."""
        source = self._read(lambda: backup.get_policy(client, vault,
                                                      _name(vm.source_policy_id)))
        result = ensure_policy(self.access, vm.vault_id, _name(back_to), app_clone_body(source))
        self._step(vm.vm_key, "rollback_intent",
                          detail={"rollback_policy": _name(back_to),
                                  "rollback_policy_outcome": result.outcome})

    # -- after a crash ----------------------------------------------------------------------

    def reconcile(self, vm: VmPlan, entry: Any) -> VmOutcome:
        """Finish a VM a stopped runner left ``in_progress``, from what Azure shows now."""
        started = entry.started_at or _now()
        client = self.access.backup(vm.subscription_id)
        vault = backup.vault_ref(vm.vault_id)
        ref = backup.item_ref(vm.item_id)
        self._last[vm.vm_key] = entry.step
        status: dict = {}
        if entry.operation_id:  # let a change Azure is still applying finish first
            try:
                status = self._wait_operation(client, ref, entry.operation_id,
                                              self.cfg.timeout)
            except (_Failure, AzureError) as failure:
                return self.roll_back(vm, started=started, code="INTERRUPTED",
                                      message=f"after the runner stopped: {failure}",
                                      job_ids=list(entry.job_ids))
        found_jobs: list[str] = []
        if entry.step == "intent":  # the PUT may have reached Azure before it was journaled
            try:
                found_jobs = self._settle_unjournaled(vm, client, vault, entry.started_at)
            except (_Failure, AzureError) as failure:
                return self.roll_back(vm, started=started, code="INTERRUPTED",
                                      message=f"after the runner stopped: {failure}")
        now_on = self._policy_now(client, ref)
        if entry.step.startswith("rollback"):
            return self.roll_back(vm, started=started, code=entry.error_code or "INTERRUPTED",
                                  message=entry.error_message or "the runner stopped during "
                                  "the rollback", job_ids=list(entry.job_ids))
        if _same(now_on, vm.target_policy_id) and entry.step in ("verified", "backup_verified"):
            self.journal.finish(vm.vm_key, "done")  # killed between verifying and finishing
            return self._outcome(vm, "done", started, job_ids=list(entry.job_ids))
        if _same(now_on, vm.target_policy_id):
            try:
                job_ids = list(entry.job_ids) or found_jobs
                job_id = (status.get("properties") or {}).get("jobId") or (
                    found_jobs[-1] if found_jobs and entry.step == "intent" else None)
                if job_id and (job_id not in job_ids or entry.step == "intent"):
                    self._step(vm.vm_key, "operation_done", job_id=job_id)
                    job_ids = list(dict.fromkeys([*job_ids, job_id]))
                for jid in job_ids[-1:]:
                    job = self._wait_job(client, vault, jid, self.cfg.timeout)
                    if job["properties"].get("status") not in DONE_JOB_STATES:
                        raise _Failure(*_job_error(job), job_ids)
                self._step(vm.vm_key, "verified", detail={"reconciled": True})
            except (_Failure, AzureError) as failure:
                code = getattr(failure, "code", None) or "VERIFY_FAILED"
                return self.roll_back(vm, started=started, code=code, message=str(failure),
                                      job_ids=list(entry.job_ids))
            self.journal.finish(vm.vm_key, "done")
            return self._outcome(vm, "done", started, job_ids=list(entry.job_ids))
        if entry.step == "intent" and _same(now_on, vm.source_policy_id):
            self.journal.finish(vm.vm_key, "rolled_back", error_code="INTERRUPTED",
                                error_message="the runner stopped before the change was "
                                "journaled as sent", rollback_outcome="nothing to undo: Azure "
                                "kept the original policy")
            return self._outcome(vm, "rolled_back", started, code="INTERRUPTED",
                                 rollback="nothing to undo")
        return self.roll_back(vm, started=started, code="INTERRUPTED",
                              message="the runner stopped before the change was verified",
                              job_ids=list(entry.job_ids))

    def _settle_unjournaled(self, vm: VmPlan, client: Any, vault: Any,
                            since: datetime | None) -> list[str]:
        """A runner killed between its PUT and journaling ``put_sent`` leaves a change Azure
        may still be applying (the item names the old policy until it is done). Wait for the
        VM's ConfigureBackup jobs started since the intent, so the policy read next is final;
        their ids, oldest first."""
        since = (since or _now()) - UNJOURNALED_MARGIN
        jobs = [j for j in self._read(lambda: backup.list_jobs(
                    client, vault, "operation eq 'ConfigureBackup'"))
                if live_checks.acts_on(j, vm.vm_name, vm.item_id)
                and (_parse_time((j.get("properties") or {}).get("startTime")) or since) >= since]
        jobs.sort(key=lambda j: str((j.get("properties") or {}).get("startTime") or ""))
        for job in jobs:
            if (job.get("properties") or {}).get("status") in ("InProgress", "Cancelling"):
                self._wait_job(client, vault, job["name"], self.cfg.timeout)
        return [j["name"] for j in jobs]

    # -- helpers ----------------------------------------------------------------------------

    def _read(self, call: Callable[[], Any]) -> Any:
        """A read once a VM's change is under way: throttling (a 429 the SDK's retries could not
        absorb at this scale) is waited out up to the operation timeout, never a failure
        (``throttling.py`` decides how long)."""
        return throttling.patiently(call, timeout=self.cfg.timeout)

    def _item_or_none(self, client: Any, ref: Any) -> dict | None:
        try:
            return self._read(lambda: backup.get_item(client, ref))
        except AzureError as err:
            if err.status == 404:
                return None
            raise

    def _policy_now(self, client: Any, ref: Any) -> str | None:
        try:
            item = self._item_or_none(client, ref)
        except AzureError:
            return None
        return (item or {}).get("properties", {}).get("policyId")

    def _wait_started(self, client: Any, ref: Any, operation: Any,
                      timeout: float) -> tuple[dict, dict | None]:
        """Final status of an operation we started, and the item as the poller last read it
        (None when unknown). The SDK poller (already polling in the background, honouring
        Retry-After) waits; one read then gives the job id and error. If the poller gave up
        early (throttled beyond its retries), our own patient polling takes over."""
        started = time.monotonic()
        item: dict | None = None
        try:
            item = operation.wait(timeout)
        except AzureError as err:
            if not operation.operation_id:
                return {"status": "Failed", "error": {"code": err.code,
                                                      "message": str(err)}}, None
        if not operation.operation_id:
            return {"status": "Succeeded"}, item
        status = self._read(lambda: backup.item_operation_status(client, ref,
                                                                 operation.operation_id))
        if status.get("status") in ("InProgress", None):
            left = timeout - (time.monotonic() - started)
            if left <= 0:
                raise _Failure("TIMEOUT", f"the change did not finish within {timeout:.0f} s "
                               f"(operation {operation.operation_id})")
            status, item = self._wait_operation(client, ref, operation.operation_id, left), None
        return status, item

    def _wait_operation(self, client: Any, ref: Any, op_id: str, timeout: float) -> dict:
        """The final status of an operation found in the journal (after a crash: no poller)."""
        deadline = time.monotonic() + timeout
        while True:
            status = self._read(lambda: backup.item_operation_status(client, ref, op_id))
            if status.get("status") not in ("InProgress", None):
                return status
            if time.monotonic() >= deadline:
                raise _Failure("TIMEOUT", f"the change did not finish within {timeout:.0f} s "
                               f"(operation {op_id})")
            time.sleep(self.cfg.poll_interval)

    def _wait_job(self, client: Any, vault: Any, job_id: str, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            job = self._read(lambda: backup.get_job(client, vault, job_id))
            if job["properties"].get("status") not in ("InProgress", "Cancelling", None):
                return job
            if time.monotonic() >= deadline:
                raise _Failure("TIMEOUT", f"job {job_id} did not finish within {timeout:.0f} s",
                               [job_id])
            time.sleep(self.cfg.poll_interval)

    def _outcome(self, vm: VmPlan, status: str, started: datetime, *,
                 job_ids: list[str] | None = None, code: str | None = None,
                 message: str | None = None, rollback: str | None = None,
                 throttled: bool = False) -> VmOutcome:
        outcome = VmOutcome(vm.vm_key, vm.vm_name, status, started, _now(), list(job_ids or []),
                            code, message, rollback, throttled)
        detail = f" ({code}: {message})" if code or message else ""
        self.log(f"{vm.vm_name}: {status}{detail}"
                 + (f"; rollback: {rollback}" if rollback else ""))
        return outcome


class _GuardView:
    """Multi-user authorization for one run: each vault's guard link (read once) and the
    policies compared, so a critical move carries the guard's request the way ``az backup item
    set-policy`` sends it. Unguarded vaults cost one ARM list each and no policy read."""

    def __init__(self, access: Any) -> None:
        self.access = access
        self._links: dict[str, guards.GuardLink | None] = {}
        self._policies: dict[str, dict] = {}
        self._lock = threading.Lock()

    def known(self, vault_id: str) -> guards.GuardLink | None:
        with self._lock:
            return self._links.get(vault_id.lower())

    def link(self, vault_id: str, read: Callable[[Callable[[], Any]], Any]) -> Any:
        key = vault_id.lower()
        with self._lock:
            if key in self._links:
                return self._links[key]
        found = read(lambda: guards.read_link(self.access, vault_id))
        with self._lock:
            self._links[key] = found
        return found

    def _policy(self, client: Any, vault: Any, policy_id: str,
                read: Callable[[Callable[[], Any]], Any]) -> dict | None:
        key = policy_id.lower()
        with self._lock:
            if key in self._policies:
                return self._policies[key]
        try:
            found = read(lambda: backup.get_policy(client, vault, _name(policy_id)))
        except AzureError as err:
            if err.status != 404:
                raise
            return None
        with self._lock:
            self._policies[key] = found
        return found

    def requests(self, client: Any, vault: Any, vault_id: str, from_id: str, to_id: str, *,
                 read: Callable[[Callable[[], Any]], Any]) -> list[str]:
        """The guard requests a change from ``from_id`` to ``to_id`` must carry (raises
        ``AzureError`` when the link or a policy can't be read)."""
        link = self.link(vault_id, read)
        if link is None or not link.request_for(mua.UPDATE_PROTECTION):
            return []
        old = self._policy(client, vault, from_id, read)
        new = self._policy(client, vault, to_id, read)
        if new is None and old is not None:  # not created yet (a dry run): what will be
            new = crash_clone_body(old)
        return mua.guard_requests_for(link, old, new)

    def requests_or_none(self, client: Any, vault: Any, vault_id: str, from_id: str | None,
                         to_id: str, *, read: Callable[[Callable[[], Any]], Any]) -> list[str]:
        """``requests`` for a rollback: what can't be read sends none (Azure then says)."""
        try:
            return self.requests(client, vault, vault_id, from_id or "", to_id, read=read)
        except AzureError:
            return []


def _job_error(job: dict) -> tuple[str, str]:
    props = job.get("properties") or {}
    errors = props.get("errorDetails") or [{}]
    first = errors[0] or {}
    return (first.get("errorCode") or f"JOB_{str(props.get('status', '')).upper()}",
            first.get("errorString") or f"{props.get('operation', 'the')} job "
            f"{job.get('name', '')} ended {props.get('status')}")


def _parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
