"""Backup policy routes: list, get, create-or-update (202 + async operation), delete.

A PUT changes nothing until its operation succeeds (``policy_operation`` seconds later, see
``emulator/timing.py``); the policy then appears or changes in ``world.state``. Editing a policy
that has protected items starts one ``ConfigureBackup`` job per item (their ids are the
operation's ``jobIds``); those jobs finish ``policy_item_job`` seconds after the edit lands.
As the how-to article describes for in-place edits, the edit itself succeeds and only the
jobs of unsupported VMs fail: the operation status stays ``Succeeded`` and ``failedJobsError``
maps each failed job id to its error code, and the item gets
``extendedInfo.policyInconsistent: true``. The faults ``policy_put_answers_200`` and
``policy_partial_failure`` give the other shapes Azure allows.

Error codes: ``BMSUserErrorInvalidPolicyInput`` (Azure's, with its message), and
``BMSUserErrorPolicyObjectInUse`` for deleting a policy items still use (Azure's); the limits
(200 policies per vault, 50 creates-or-edits per vault per 24 h, Azure Backup FAQ) answer 400
``BMSUserErrorPolicyLimitReached`` / ``BMSUserErrorPolicyWriteLimitReached`` (codes chosen
by the emulator: the service's are unpublished).
"""

from __future__ import annotations

import copy
import math
from typing import Any

from .arm_types import POLICY_TYPE
from .http import ArmError, Request, Response, Router
from .jobs import JobError, job_failure, new_job
from .operations import (
    BackupService,
    Operation,
    V,
    accepted,
    failed_result,
    find_operation,
    paged,
    parse_filter,
    service,
    status_response,
    still_running,
    vault_or_404,
)
from .resource_guard import UPDATE_POLICY, require_guard_request, retention_reduced
from .state import ITEM, POLICY
from .world import World

router = Router()

P = V + "/backupPolicies"
# Items in these states no longer run backups under their policy (StopProtection.json).
STOPPED_STATES = {"ProtectionStopped", "BackupsSuspended", "ProtectionPaused"}
# The ``policy_partial_failure`` fault. What a policy operation reports when part of its
# fan-out fails is documented nowhere (ProtectionPolicyResource.tsp declares the responses
# only), so both codes are the emulator's own (unverified); callers must judge by reading the
# policy and items back, not by the code.
PARTIAL_FAILURE = {"code": "BMSUserErrorPolicyUpdatePartiallyFailed",
                   "message": "The policy was updated but configuring backup failed for some of "
                              "its protected items. Check the ConfigureBackup jobs."}
PARTIAL_JOB_FAILURE = JobError("UserErrorVmNotInDesirableState",
                               "Configuring backup with the updated policy failed for this VM.")
_INVALID = ("Input for create or update policy is not in proper format\r\nPlease check format "
            "of parameters like schedule time, schedule days, retention time and retention days. ")


def policy_type(policy: dict | None) -> str:
    """``V2`` (Enhanced) or ``V1`` (Standard); list examples omit policyType on V2 policies."""
    props = (policy or {}).get("properties") or {}
    if props.get("policyType") in ("V1", "V2"):
        return props["policyType"]
    schedule = props.get("schedulePolicy") or {}
    return "V2" if schedule.get("schedulePolicyType") == "SimpleSchedulePolicyV2" else "V1"


def policy_view(policy: dict, *, single: bool = False) -> dict[str, Any]:
    """The policy as ARM returns it: v2-Get-Policy.json carries resourceGuardOperationRequests,
    V1 schedules carry scheduleWeeklyFrequency (BackupPolicies_List.json)."""
    props = dict(policy.get("properties") or {})
    props.setdefault("protectedItemsCount", 0)
    schedule = props.get("schedulePolicy")
    if isinstance(schedule, dict) and schedule.get("schedulePolicyType") == "SimpleSchedulePolicy":
        props["schedulePolicy"] = {"scheduleWeeklyFrequency": 0, **schedule}
    if single:
        props.setdefault("resourceGuardOperationRequests", None)
    return {**policy, "properties": props}


def active_items(world: World, vault_id: str, policy_id: str) -> list[dict]:
    """Protected items of the vault whose backups run under ``policy_id``."""
    key = policy_id.lower()
    out = []
    for item in world.state.children(vault_id, ITEM):
        props = item.get("properties") or {}
        if ((props.get("policyId") or "").lower() == key
                and props.get("protectionState") not in STOPPED_STATES
                and not props.get("isScheduledForDeferredDelete")):
            out.append(item)
    return out


def refresh_count(world: World, vault_id: str, policy_id: str | None) -> None:
    """Store the policy's ``protectedItemsCount`` (copy + put, so ARG sees it)."""
    policy = world.state.get(policy_id) if policy_id else None
    if policy is None:
        return
    count = len(active_items(world, vault_id, policy["id"]))
    if (policy.get("properties") or {}).get("protectedItemsCount") != count:
        world.state.put({**policy, "properties": {**policy["properties"],
                                                  "protectedItemsCount": count}})


def _invalid(detail: str) -> ArmError:
    return ArmError(400, "BMSUserErrorInvalidPolicyInput", _INVALID + detail)


def _validate_schedule(schedule: dict, v2: bool) -> None:
    freq = schedule.get("scheduleRunFrequency")
    if v2:
        if freq == "Hourly":
            hourly = schedule.get("hourlySchedule") or {}
            if hourly.get("interval") not in (4, 6, 8, 12):
                raise _invalid("hourlySchedule.interval must be 4, 6, 8 or 12 hours.")
            if not hourly.get("scheduleWindowStartTime"):
                raise _invalid("hourlySchedule.scheduleWindowStartTime is required.")
        elif freq == "Daily":
            if not (schedule.get("dailySchedule") or {}).get("scheduleRunTimes"):
                raise _invalid("dailySchedule.scheduleRunTimes is required for a daily schedule.")
        elif freq == "Weekly":
            weekly = schedule.get("weeklySchedule") or {}
            if not weekly.get("scheduleRunDays") or not weekly.get("scheduleRunTimes"):
                raise _invalid("weeklySchedule needs scheduleRunDays and scheduleRunTimes.")
        else:
            raise _invalid(f"scheduleRunFrequency '{freq}' is not Hourly, Daily or Weekly.")
        return
    if freq not in ("Daily", "Weekly"):
        raise _invalid(f"scheduleRunFrequency '{freq}' is not valid for SimpleSchedulePolicy "
                       "(Daily or Weekly; hourly backups need an Enhanced policy).")
    if not schedule.get("scheduleRunTimes"):
        raise _invalid("schedulePolicy.scheduleRunTimes is required.")
    if freq == "Weekly" and not schedule.get("scheduleRunDays"):
        raise _invalid("schedulePolicy.scheduleRunDays is required for a weekly schedule.")


def validate_policy(body: Any, existing: dict | None) -> dict:
    """The properties to store, or 400 ``BMSUserErrorInvalidPolicyInput`` naming the problem."""
    if not isinstance(body, dict) or not isinstance(body.get("properties"), dict):
        raise _invalid("The request body needs a 'properties' object.")
    props = copy.deepcopy(body["properties"])
    if str(props.get("backupManagementType", "")).lower() != "azureiaasvm":
        raise _invalid(f"backupManagementType '{props.get('backupManagementType')}' is not "
                       "supported by the emulator; only 'AzureIaasVM' policies are.")
    props["backupManagementType"] = "AzureIaasVM"
    schedule = props.get("schedulePolicy")
    kinds = ("SimpleSchedulePolicy", "SimpleSchedulePolicyV2")
    if not isinstance(schedule, dict) or schedule.get("schedulePolicyType") not in kinds:
        raise _invalid("schedulePolicy.schedulePolicyType must be SimpleSchedulePolicy (Standard)"
                       " or SimpleSchedulePolicyV2 (Enhanced).")
    retention = props.get("retentionPolicy")
    if not isinstance(retention, dict) or (
            retention.get("retentionPolicyType") != "LongTermRetentionPolicy"):
        raise _invalid("retentionPolicy.retentionPolicyType must be LongTermRetentionPolicy.")
    v2 = schedule["schedulePolicyType"] == "SimpleSchedulePolicyV2"
    declared = props.get("policyType")
    if declared not in (None, "V1", "V2"):
        raise _invalid(f"policyType '{declared}' is not V1 or V2.")
    if declared == "V2" and not v2:
        raise _invalid("policyType V2 (Enhanced) needs schedulePolicyType "
                       "SimpleSchedulePolicyV2, not SimpleSchedulePolicy.")
    if declared == "V1" and v2:
        raise _invalid("schedulePolicyType SimpleSchedulePolicyV2 is only valid on policyType V2.")
    consistency = props.get("snapshotConsistencyType")
    if consistency is not None:
        if consistency != "OnlyCrashConsistent":
            raise _invalid(f"snapshotConsistencyType '{consistency}' is not valid: the only value"
                           " is 'OnlyCrashConsistent' (omit it for application-consistent).")
        if not v2:
            raise _invalid("snapshotConsistencyType OnlyCrashConsistent is only supported on an "
                           "Enhanced (V2) policy.")
    _validate_schedule(schedule, v2)
    instant = props.get("instantRpRetentionRangeInDays")
    if instant is not None:
        top = 30 if v2 else 5
        if not isinstance(instant, int) or not 1 <= instant <= top:
            raise _invalid(f"instantRpRetentionRangeInDays must be 1 to {top} for a "
                           f"{'V2' if v2 else 'V1'} policy.")
    kind = "V2" if v2 else "V1"
    if existing is not None and policy_type(existing) != kind:
        raise _invalid(f"The policy type of an existing policy can't change "
                       f"({policy_type(existing)} to {kind}); create a new policy instead.")
    props["policyType"] = kind
    if not v2:  # the service stores it (ProtectionPolicies_CreateOrUpdate_Simple.json)
        props["schedulePolicy"] = {"scheduleWeeklyFrequency": 0, **schedule}
    props.pop("protectedItemsCount", None)
    props.pop("resourceGuardOperationRequests", None)
    return props


def _policy_or_404(world: World, vault: dict, name: str) -> dict:
    policy = world.state.get(f"{vault['id']}/backupPolicies/{name}")
    if policy is None:
        raise ArmError(404, "ResourceNotFound",
                       f"The backup policy '{name}' was not found in vault '{vault['name']}'.")
    return policy


@router.route("GET", P, "read")
def list_policies(world: World, req: Request, sub: str, rg: str, vault: str) -> Response:
    res = vault_or_404(world, req, sub, rg, vault)
    flt = parse_filter(req.query.get("$filter", ""), ("backupManagementType",))
    policies = sorted(world.state.children(res["id"], POLICY), key=lambda p: p["name"].lower())
    if "backupmanagementtype" in flt:
        want = flt["backupmanagementtype"].lower()
        policies = [p for p in policies
                    if str((p.get("properties") or {}).get("backupManagementType", "")).lower()
                    == want]
    return paged(world, req, [policy_view(p) for p in policies])


@router.route("GET", P + "/{policy}", "read")
def get_policy(world: World, req: Request, sub: str, rg: str, vault: str,
               policy: str) -> Response:
    res = vault_or_404(world, req, sub, rg, vault)
    return Response(200, policy_view(_policy_or_404(world, res, policy), single=True))


def _check_limits(world: World, svc: BackupService, vault: dict, policy_id: str,
                  existing: dict | None) -> None:
    cfg = world.config
    if existing is None and policy_id.lower() not in svc.pending_policies:
        pending = {p for p in svc.pending_policies
                   if p.startswith(vault["id"].lower() + "/")}
        count = len(world.state.children(vault["id"], POLICY)) + len(pending)
        if count >= cfg.policies_per_vault:
            raise ArmError(400, "BMSUserErrorPolicyLimitReached",
                           f"Vault '{vault['name']}' already has {count} backup policies; a "
                           f"Recovery Services vault can hold at most {cfg.policies_per_vault}. "
                           "Delete unused policies or reuse an existing one.")
    used, wait = svc.policy_writes_used(vault["id"])
    if used >= cfg.policy_writes_per_vault_per_day:
        raise ArmError(400, "BMSUserErrorPolicyWriteLimitReached",
                       f"Creating or editing backup policies is limited to "
                       f"{cfg.policy_writes_per_vault_per_day} per vault in 24 hours and vault "
                       f"'{vault['name']}' has used {used}. The next create or edit is allowed in"
                       f" about {max(1, math.ceil(wait / 60))} minutes.")


@router.route("PUT", P + "/{policy}", "write")
def put_policy(world: World, req: Request, sub: str, rg: str, vault: str,
               policy: str) -> Response:
    """Create or update: 202, and the policy changes when the operation succeeds."""
    res = vault_or_404(world, req, sub, rg, vault)
    policy_id = f"{res['id']}/backupPolicies/{policy}"
    svc = service(world)
    with svc.lock:
        existing = world.state.get(policy_id)
        props = validate_policy(req.body, existing)
        if (world.faults.refuse_consistency_revert and existing is not None
                and (existing.get("properties") or {}).get("snapshotConsistencyType")
                and not props.get("snapshotConsistencyType")):
            raise ArmError(400, "BMSUserErrorInvalidPolicyInput",
                           "snapshotConsistencyType can't be removed from an existing policy.")
        if existing is not None and retention_reduced(existing, {"properties": props}):
            require_guard_request(world, res, req, UPDATE_POLICY,
                                  "Modify backup policy (reduced retention)")
        _check_limits(world, svc, res, policy_id, existing)
        svc.record_policy_write(res["id"])
        # 200 with the policy (ArmResourceUpdatedResponse in ProtectionPolicyResource.tsp):
        # the change is in place when the answer comes; its fan-out jobs still run after it.
        at_once = world.faults.policy_put_answers_200
        op = svc.new_operation(res["id"], "policy", policy_id,
                               0.0 if at_once else svc.timing.seconds("policy_operation"))
        if existing is None:
            svc.pending_policies[policy_id.lower()] = (
                svc.pending_policies.get(policy_id.lower(), 0) + 1)
        else:
            policy_id = existing["id"]
        partial = existing is not None and world.faults.take_partial_failure(policy_id)
        if existing is not None:
            _fan_out(world, svc, op, res, policy_id, props, partial)
        if at_once:
            _apply(world, svc, op, res, policy_id, policy, props, partial)
            return Response(200, policy_view(world.state.get(policy_id), single=True))
        svc.at(op.due, lambda: _apply(world, svc, op, res, policy_id, policy, props, partial))
    return accepted(world, req, req.raw_path, op, status_segment="operations",
                    result_segment="operationResults")


def _apply(world: World, svc: BackupService, op: Operation, vault: dict, policy_id: str,
           name: str, props: dict, partial: bool = False) -> None:
    key = policy_id.lower()
    if key in svc.pending_policies:
        svc.pending_policies[key] -= 1
        if svc.pending_policies[key] <= 0:
            del svc.pending_policies[key]
    existing = world.state.get(policy_id)
    stored_id = existing["id"] if existing else policy_id
    count = len(active_items(world, vault["id"], stored_id))
    world.state.put({"id": stored_id, "name": existing["name"] if existing else name,
                     "type": POLICY_TYPE,
                     "properties": {**copy.deepcopy(props), "protectedItemsCount": count}})
    op.finish(PARTIAL_FAILURE if partial else None)


def _fan_out(world: World, svc: BackupService, op: Operation, vault: dict, policy_id: str,
             props: dict, partial: bool = False) -> None:
    """One ConfigureBackup job per item on the edited policy, done ``job_seconds`` after it."""
    name = policy_id.rsplit("/", 1)[-1]
    items = active_items(world, vault["id"], policy_id)
    for index, item in enumerate(items):
        vm_id = (item.get("properties") or {}).get("sourceResourceId") or ""
        job = new_job(svc, vault["id"], "ConfigureBackup", vm_id, item["id"],
                      property_bag={"Policy Name": name})
        op.job_ids.append(job.id)
        due = op.due + svc.duration(svc.timing.seconds("policy_item_job"))
        forced = PARTIAL_JOB_FAILURE if partial and index >= len(items) // 2 else None
        svc.at(due, lambda job=job, item_id=item["id"], due=due, forced=forced: _reconfigure(
            world, svc, job, item_id, policy_id, props, due, forced))


def _reconfigure(world: World, svc: BackupService, job: Any, item_id: str, policy_id: str,
                 props: dict, due: float, forced: JobError | None = None) -> None:
    error = forced or job_failure(world, svc, job.vm_id, {"properties": props})
    job.finish(error, at=due)
    item = world.state.get(item_id)
    if item is None or (item.get("properties") or {}).get("policyId", "").lower() != (
            policy_id.lower()):
        return
    iprops = item.get("properties") or {}
    extended = dict(iprops.get("extendedInfo") or {})
    if extended.get("policyInconsistent", False) == (error is not None):
        return
    extended["policyInconsistent"] = error is not None
    world.state.put({**item, "properties": {**iprops, "extendedInfo": extended}})


@router.route("DELETE", P + "/{policy}", "delete")
def delete_policy(world: World, req: Request, sub: str, rg: str, vault: str,
                  policy: str) -> Response:
    """``begin_delete``: 202 + Location; refused while protected items still use the policy."""
    res = vault_or_404(world, req, sub, rg, vault)
    existing = world.state.get(f"{res['id']}/backupPolicies/{policy}")
    if existing is None:
        return Response(204)
    svc = service(world)
    with svc.lock:
        users = active_items(world, res["id"], existing["id"])
        if users:
            raise _in_use(existing, len(users))
        op = svc.new_operation(res["id"], "policy-delete", existing["id"],
                               svc.timing.seconds("policy_operation"))

        def done() -> None:
            still = active_items(world, res["id"], existing["id"])
            if still:
                op.finish({"code": "BMSUserErrorPolicyObjectInUse",
                           "message": _in_use(existing, len(still)).message})
                return
            world.state.delete(existing["id"])
            op.finish()

        svc.at(op.due, done)
    return accepted(world, req, req.raw_path, op, status_segment="operations",
                    result_segment="operationResults")


def _in_use(policy: dict, count: int) -> ArmError:
    return ArmError(400, "BMSUserErrorPolicyObjectInUse",
                    f"The backup policy '{policy['name']}' can't be deleted: {count} protected "
                    "item(s) still use it. Move them to another policy or stop their protection "
                    "first.")


@router.route("GET", P + "/{policy}/operations/{op_id}", "read")
def get_policy_operation(world: World, req: Request, sub: str, rg: str, vault: str,
                         policy: str, op_id: str) -> Response:
    res = vault_or_404(world, req, sub, rg, vault)
    op = find_operation(world, res, op_id, f"{res['id']}/backupPolicies/{policy}")
    return status_response(world, op)


@router.route("GET", P + "/{policy}/operationResults/{op_id}", "read")
def get_policy_operation_result(world: World, req: Request, sub: str, rg: str, vault: str,
                                policy: str, op_id: str) -> Response:
    """202 while running (the SDK's ``get`` accepts only 200: poll the status instead), then
    200 with the policy, or 204 after a delete."""
    res = vault_or_404(world, req, sub, rg, vault)
    policy_id = f"{res['id']}/backupPolicies/{policy}"
    op = find_operation(world, res, op_id, policy_id)
    if not op.done:
        return still_running(world, req, op, "operations")
    if op.status == "Failed":
        raise failed_result(op)
    stored = world.state.get(policy_id)
    if op.kind == "policy-delete" or stored is None:
        return Response(204)
    return Response(200, policy_view(stored, single=True))
