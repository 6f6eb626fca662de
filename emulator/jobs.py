"""Backup jobs: what every change and on-demand backup leaves behind, and the job routes.

Jobs are not fleet resources (the fleet file holds six resource types), so they live in the
backup service (``world.services["jobs"]``: job id -> ``Job``), not in ``world.state``. Shapes
follow ``GetJobDetails.json`` (``extendedInfo`` only on the single GET) and ``ListJobs.json``.

Failure: a job fails when the fault ``fail_jobs_for`` names its VM, or when the policy it
applies is ``OnlyCrashConsistent`` and ``support.crash_consistent_blockers`` finds a reason.
``errorDetails[].errorCode`` is numeric (the SDK types it ``int``); the symbolic code goes in
``errorTitle`` and in the operation's ``error.code``. Codes are listed in ``ERRORS``.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .http import ArmError, Request, Response, Router
from .operations import (
    BackupService,
    V,
    at_mono,
    iso,
    paged,
    parse_filter,
    service,
    utcnow,
    vault_or_404,
)
from .support import Unsupported, crash_consistent_blockers
from .world import World, new_id

router = Router()

JOB_TYPE = "Microsoft.RecoveryServices/vaults/backupJobs"
TASKS = {
    "Backup": ("Take Snapshot", "Transfer data to vault"),
    "ConfigureBackup": ("Configure backup",),
    "DisableBackup": ("Disable backup",),
    "DeleteBackupData": ("Delete backup data",),
}

# Symbolic code -> (numeric errorCode, title). UserErrorVmNotInDesirableState is Azure's
# (backup-azure-vms-troubleshoot.md); the other codes and all numbers are the emulator's choice.
ERRORS = {
    "UserErrorCrashConsistentSnapshotNotSupported": 400672,
    "UserErrorVmNotInDesirableState": 400124,
    "UserErrorSourceVmNotFound": 400042,
}


@dataclass(frozen=True)
class JobError:
    code: str
    message: str
    recommendations: tuple[str, ...] = ()

    def detail(self) -> dict[str, Any]:
        return {"errorCode": ERRORS.get(self.code, 400000), "errorTitle": self.code,
                "errorString": self.message, "recommendations": list(self.recommendations)}

    def arm(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


def crash_unsupported(vm_name: str, reasons: list[Unsupported]) -> JobError:
    return JobError(
        "UserErrorCrashConsistentSnapshotNotSupported",
        f"Agentless crash-consistent backup is not supported for VM '{vm_name}': "
        + " ".join(r.message for r in reasons),
        ("Move the VM to a backup policy without snapshotConsistencyType OnlyCrashConsistent, "
         "or remove the unsupported configuration, then retry.",
         "See https://learn.microsoft.com/azure/backup/"
         "backup-azure-vms-agentless-multi-disk-crash-consistent-overview"))


def vm_not_in_desirable_state(vm_name: str) -> JobError:
    return JobError("UserErrorVmNotInDesirableState",
                    f"VM '{vm_name}' is not in a state that allows backups.",
                    ("Make sure the VM is Running, Stopped or Stopped (deallocated) and retry.",))


def late_job_failure(vm_id: str) -> JobError:
    """The ``jobs_fail_after_operation`` fault: the job fails after its operation succeeded."""
    return vm_not_in_desirable_state(vm_id.rstrip("/").rsplit("/", 1)[-1])


def job_failure(world: World, svc: BackupService, vm_id: str,
                policy: dict | None) -> JobError | None:
    """Why a job applying ``policy`` to ``vm_id`` fails now, or None when it succeeds."""
    name = vm_id.rstrip("/").rsplit("/", 1)[-1]
    if world.faults.job_fails_for(vm_id):
        return vm_not_in_desirable_state(name)
    vm = world.state.get(vm_id)
    if vm is None:
        return JobError("UserErrorSourceVmNotFound",
                        f"The virtual machine '{vm_id}' no longer exists.")
    props = (policy or {}).get("properties") or {}
    if props.get("snapshotConsistencyType") == "OnlyCrashConsistent":
        size = ((vm.get("properties") or {}).get("hardwareProfile") or {}).get("vmSize") or ""
        premium = svc.premium_capable(size, vm.get("location") or "") if size else None
        reasons = crash_consistent_blockers(vm, world.state.get, premium_capable=premium)
        if reasons:
            return crash_unsupported(vm.get("name", name), reasons)
    return None


def iso_duration(seconds: float) -> str:
    """ISO 8601 duration the way .NET writes a TimeSpan: ``PT1H2M3.4567S``."""
    seconds = max(0.0, seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = "PT"
    if hours:
        text += f"{int(hours)}H"
    if minutes:
        text += f"{int(minutes)}M"
    return text + (f"{secs:.7f}".rstrip("0").rstrip(".") or "0") + "S"


@dataclass
class Job:
    id: str
    vault_id: str
    operation: str
    entity: str  # the VM's friendly name
    vm_id: str
    item_id: str | None
    started: datetime
    start_mono: float
    user_triggered: bool = True
    property_bag: dict[str, str] = field(default_factory=dict)
    activity_id: str = field(default_factory=new_id)
    status: str = "InProgress"
    ended: datetime | None = None
    end_mono: float | None = None
    error: JobError | None = None

    @property
    def done(self) -> bool:
        return self.status != "InProgress"

    def finish(self, error: JobError | None, at: float | None = None) -> None:
        """End the job; ``at`` (monotonic) is when it was due, so durations don't depend on
        when the next request happened to run the scheduler."""
        self.status = "Failed" if error else "Completed"
        self.error = error
        self.end_mono = min(at, time.monotonic()) if at is not None else time.monotonic()
        self.ended = at_mono(self.started, self.start_mono, self.end_mono)

    def seconds(self) -> float:
        return (self.end_mono or time.monotonic()) - self.start_mono

    def view(self, *, detailed: bool = False) -> dict[str, Any]:
        props: dict[str, Any] = {
            "jobType": "AzureIaaSVMJob",
            "activityId": self.activity_id,
            "backupManagementType": "AzureIaasVM",
            "duration": iso_duration(self.seconds()),
            "entityFriendlyName": self.entity,
            "operation": self.operation,
            "startTime": iso(self.started),
            "status": self.status,
            "isUserTriggered": self.user_triggered,
            "virtualMachineVersion": "Compute",
        }
        if self.item_id:
            props["containerName"] = self.item_id.split("/protectionContainers/", 1)[-1].split(
                "/", 1)[0]
        if self.ended:
            props["endTime"] = iso(self.ended)
        if self.error:
            props["errorDetails"] = [self.error.detail()]
        if detailed:
            extended: dict[str, Any] = {"tasksList": self._tasks(),
                                        "propertyBag": dict(self.property_bag)}
            if self.error:
                extended["dynamicErrorMessage"] = self.error.message
            props["extendedInfo"] = extended
        return {"id": f"{self.vault_id}/backupJobs/{self.id}", "name": self.id,
                "type": JOB_TYPE, "properties": props}

    def _tasks(self) -> list[dict[str, Any]]:
        out = []
        for i, task in enumerate(TASKS.get(self.operation, (self.operation,))):
            if self.status == "Completed":
                status = "Completed"
            elif i:
                status = "NotStarted"
            else:
                status = "Failed" if self.status == "Failed" else "InProgress"
            entry: dict[str, Any] = {"taskId": task, "status": status,
                                     "duration": iso_duration(self.seconds() if i == 0 else 0)}
            if status != "NotStarted":
                entry["startTime"] = iso(self.started)
            if self.ended and status in ("Completed", "Failed"):
                entry["endTime"] = iso(self.ended)
            out.append(entry)
        return out


def new_job(svc: BackupService, vault_id: str, operation: str, vm_id: str,
            item_id: str | None, *, property_bag: dict[str, str] | None = None,
            user_triggered: bool = True) -> Job:
    vm = svc.world.state.get(vm_id)
    entity = (vm or {}).get("name") or vm_id.rstrip("/").rsplit("/", 1)[-1]
    job = Job(new_id(), vault_id, operation, entity, vm_id, item_id, utcnow(), time.monotonic(),
              user_triggered=user_triggered,
              property_bag={"VM Name": entity, **(property_bag or {})})
    with svc.lock:
        svc.jobs[job.id] = job
        svc.track(item_id, job)
    return job


# -- routes ----------------------------------------------------------------------------------

def _filter_time(text: str) -> datetime:
    """Job filter times: ``'2016-01-01 00:00:00 AM'`` (ListJobsWithAllSupportedFilters), UTC;
    ISO 8601 is accepted too."""
    m = re.fullmatch(r"\s*(\d{4})-(\d{1,2})-(\d{1,2})[ T](\d{1,2}):(\d{2}):(\d{2})(?:\.\d+)?"
                     r"\s*(AM|PM)?\s*(Z)?\s*", text, re.IGNORECASE)
    if m:
        year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
        meridiem = (m.group(7) or "").upper()
        if meridiem == "PM" and hour < 12:
            hour += 12
        elif meridiem == "AM" and hour == 12:
            hour = 0
        try:
            return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
        except ValueError:
            pass
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise ArmError(400, "InvalidFilter",
                       f"The time '{text}' in $filter is not valid; use "
                       "'YYYY-MM-DD hh:mm:ss AM' (UTC).") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@router.route("GET", V + "/backupJobs", "read")
def list_jobs(world: World, req: Request, sub: str, rg: str, vault: str) -> Response:
    """Newest first; ``$filter`` keys operation, status, backupManagementType, startTime,
    endTime (jobs started within [startTime, endTime]) and jobId."""
    res = vault_or_404(world, req, sub, rg, vault)
    flt = parse_filter(req.query.get("$filter", ""), ("operation", "status",
                                                      "backupManagementType", "startTime",
                                                      "endTime", "jobId"))
    start = _filter_time(flt["starttime"]) if "starttime" in flt else None
    end = _filter_time(flt["endtime"]) if "endtime" in flt else None
    svc = service(world)
    with svc.lock:
        jobs = [j for j in svc.jobs.values() if j.vault_id.lower() == res["id"].lower()]
    picked = []
    for job in jobs:
        if "operation" in flt and job.operation.lower() != flt["operation"].lower():
            continue
        if "status" in flt and job.status.lower() != flt["status"].lower():
            continue
        if ("backupmanagementtype" in flt
                and flt["backupmanagementtype"].lower() != "azureiaasvm"):
            continue
        if "jobid" in flt and job.id.lower() != flt["jobid"].lower():
            continue
        if (start and job.started < start) or (end and job.started > end):
            continue
        picked.append(job)
    picked.sort(key=lambda j: (j.start_mono, j.id), reverse=True)
    return paged(world, req, [j.view() for j in picked])


@router.route("GET", V + "/backupJobs/{job_name}", "read")
def get_job(world: World, req: Request, sub: str, rg: str, vault: str,
            job_name: str) -> Response:
    res = vault_or_404(world, req, sub, rg, vault)
    svc = service(world)
    with svc.lock:
        job = svc.jobs.get(job_name.lower())
        if job is None or job.vault_id.lower() != res["id"].lower():
            raise ArmError(404, "ResourceNotFound",
                           f"The backup job '{job_name}' was not found in vault '{vault}'.")
        return Response(200, job.view(detailed=True))


def vm_of_item(item: dict) -> str:
    props = item.get("properties") or {}
    return props.get("sourceResourceId") or props.get("virtualMachineId") or ""

