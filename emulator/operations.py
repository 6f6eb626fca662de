"""Async operations of the Recovery Services backup routes, and what those routes share.

Every state change the backup service makes is an *operation*: the PUT/POST/DELETE answers 202
with ``Azure-AsyncOperation``/``Location`` headers, and the change lands in ``world.state`` only
when the operation's time is up. A scheduler (a heap of due callbacks) is run by
``world.tickers`` before every ARM request, so the change becomes visible exactly then, on
whichever thread asks first. ``faults.stuck_operations`` makes new operations never come due.

Operation status shape follows ``ProtectionPolicyOperationStatuses_Get.json`` /
``ProtectedItemOperationStatus.json``; ``endTime`` appears once the operation has ended and
``error`` {code, message} when it failed.
"""

from __future__ import annotations

import heapq
import itertools
import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from .http import ArmError, Request, Response, Router, require_api_version
from .timing import Timing
from .world import World, new_id

if TYPE_CHECKING:
    from .jobs import Job

router = Router()

V = "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.RecoveryServices/vaults/{vault}"
DAY = 86400.0


def utcnow() -> datetime:
    return datetime.now(UTC)


def at_mono(started: datetime, start_mono: float, moment: float) -> datetime:
    """The wall-clock time of monotonic ``moment``, anchored on a known start."""
    if math.isinf(moment):
        return utcnow()
    return started + timedelta(seconds=max(0.0, min(moment, time.monotonic()) - start_mono))


def iso(moment: datetime | None) -> str | None:
    """ARM timestamps as the examples show them: ``2017-08-03T05:31:07.014604Z``."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if moment else None


# -- operations ------------------------------------------------------------------------------

@dataclass
class Operation:
    """One async operation: a policy write/delete, an item change, an on-demand backup."""

    id: str
    vault_id: str
    kind: str  # "policy", "policy-delete", "item", "item-delete", "backup"
    target_id: str  # the policy or protected item the operation works on
    started: datetime
    duration: float  # configured seconds from start to due (also when stuck)
    due: float  # time.monotonic() deadline; math.inf when stuck
    start_mono: float = field(default_factory=time.monotonic)
    job_ids: list[str] = field(default_factory=list)
    status: str = "InProgress"
    ended: datetime | None = None
    error: dict[str, str] | None = None

    @property
    def done(self) -> bool:
        return self.status != "InProgress"

    def remaining(self) -> float:
        """Seconds left; a stuck operation always seems to need its full duration."""
        return self.duration if math.isinf(self.due) else max(0.0, self.due - time.monotonic())

    def finish(self, error: dict[str, str] | None = None) -> None:
        """End now, timestamped at ``due`` (when it was scheduled to end, not when ticked)."""
        self.status = "Failed" if error else "Succeeded"
        self.error = error
        self.ended = at_mono(self.started, self.start_mono, self.due)


class BackupService:
    """Per-emulator registries of the backup routes: operations, jobs, policy write log."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.lock = threading.RLock()
        self.ops: dict[str, Operation] = {}
        self.jobs: dict[str, Job] = {}
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self.policy_writes: dict[str, deque[float]] = {}
        self.pending_policies: dict[str, int] = {}  # policy id (lower) -> creates in flight
        self._by_item: dict[str, list[Operation | Job]] = {}  # item id (lower) -> its work
        self._skus: tuple[int, dict[tuple[str, str], bool]] | None = None
        # Container discovery (``backup_discovery``): vault id (lower) -> lower ids of the VMs
        # its last completed refresh found; and the VMs with an item anywhere, by state version.
        self.discovered: dict[str, set[str]] = {}
        self.registered_vms: tuple[int, set[str]] | None = None
        self.timing = Timing(world.config)

    # -- scheduling ------------------------------------------------------------------------
    def duration(self, seconds: float) -> float:
        return math.inf if self.world.faults.stuck_operations else max(0.0, seconds)

    def at(self, due: float, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the first tick at or after ``due`` (never when ``due`` is inf)."""
        if math.isinf(due):
            return
        with self.lock:
            heapq.heappush(self._heap, (due, next(self._seq), callback))

    def tick(self) -> None:
        """Complete everything that is due, oldest first (a world ticker)."""
        now = time.monotonic()
        with self.lock:
            while self._heap and self._heap[0][0] <= now:
                _, _, callback = heapq.heappop(self._heap)
                callback()

    def new_operation(self, vault_id: str, kind: str, target_id: str,
                      seconds: float) -> Operation:
        now = time.monotonic()
        op = Operation(new_id(), vault_id, kind, target_id, utcnow(), max(0.0, seconds),
                       now + self.duration(seconds), start_mono=now)
        with self.lock:
            self.ops[op.id] = op
            self.track(target_id, op)
        return op

    def track(self, item_id: str | None, work: Operation | Job) -> None:
        """Remember an operation or job that works on a protected item (for ``busy``)."""
        if item_id:
            with self.lock:
                self._by_item.setdefault(item_id.lower(), []).append(work)

    def busy(self, item_id: str) -> bool:
        """An operation or job still runs on the item (what ``BMSUserErrorObjectLocked`` means)."""
        key = item_id.lower()
        with self.lock:
            live = [w for w in self._by_item.get(key, ()) if not w.done]
            if live:
                self._by_item[key] = live
            else:
                self._by_item.pop(key, None)
            return bool(live)

    # -- policy write quota (50 per vault per 24 h) ----------------------------------------
    def policy_writes_used(self, vault_id: str) -> tuple[int, float]:
        """Writes in the last 24 h and seconds until the oldest of them ages out."""
        now = time.monotonic()
        with self.lock:
            log = self.policy_writes.setdefault(vault_id.lower(), deque())
            while log and now - log[0] >= DAY:
                log.popleft()
            return len(log), (DAY - (now - log[0])) if log else 0.0

    def record_policy_write(self, vault_id: str) -> None:
        with self.lock:
            self.policy_writes.setdefault(vault_id.lower(), deque()).append(time.monotonic())

    # -- Resource SKU premium capability (the same data the compute route serves) ----------
    def premium_capable(self, size: str, location: str) -> bool | None:
        skus = self.world.services.get("skus")
        if skus is None:
            skus = self.world.state.resource_skus
        if skus is None:
            from .skus import builtin_catalogue
            from .state import VM

            locations = sorted({(v.get("location") or "").lower()
                                for v in self.world.state.of_type(VM)} - {""})
            skus = builtin_catalogue(locations)
            self.world.services["skus"] = skus
        with self.lock:
            if self._skus is None or self._skus[0] != id(skus):
                index: dict[tuple[str, str], bool] = {}
                for sku in skus:
                    if sku.get("resourceType") != "virtualMachines":
                        continue
                    caps = {c.get("name"): c.get("value") for c in sku.get("capabilities", [])}
                    for loc in sku.get("locations", []):
                        index[(sku["name"].lower(), loc.lower())] = (
                            str(caps.get("PremiumIO", "False")).lower() == "true")
                self._skus = (id(skus), index)
            return self._skus[1].get((size.lower(), location.lower()))


def service(world: World) -> BackupService:
    """The world's backup service, created (and its ticker registered) on first use."""
    with world.lock:
        svc = world.services.get("backup")
        if svc is None:
            svc = BackupService(world)
            world.services["backup"] = svc
            world.services["jobs"] = svc.jobs
            world.tickers.append(svc.tick)
        return svc


# -- shared request helpers ------------------------------------------------------------------

def vault_or_404(world: World, req: Request, sub: str, rg: str, vault: str) -> dict:
    """The vault resource (api-version required, subscription and vault must exist)."""
    require_api_version(req)
    world.require_subscription(sub)
    vid = (f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.RecoveryServices"
           f"/vaults/{vault}")
    res = world.state.get(vid)
    if res is None:
        raise ArmError(404, "ResourceNotFound",
                       f"The Resource 'Microsoft.RecoveryServices/vaults/{vault}' under resource "
                       f"group '{rg}' was not found. For more details please go to "
                       "https://aka.ms/ARMResourceNotFoundFix")
    return res


def paged(world: World, req: Request, items: list[dict], *, size: int | None = None,
          key: str = "$skiptoken") -> Response:
    """``{"value", "nextLink"}`` paging with an offset token and a properly encoded nextLink."""
    size = size or world.config.list_page_size
    raw = req.query.get(key.lower(), "0") or "0"
    try:
        start = int(raw)
    except ValueError as exc:
        raise ArmError(400, "InvalidSkipToken",
                       f"The skip token '{raw}' is not valid for this list.") from exc
    body: dict[str, Any] = {"value": items[start:start + size]}
    if start + size < len(items):
        params = {k: v for k, v in req.query.items() if k != key.lower()}
        params[key] = str(start + size)
        body["nextLink"] = f"{world.base_url}{req.raw_path}?{urlencode(params)}"
    return Response(200, body)


_CLAUSE = re.compile(r"^\s*(\w+)\s+eq\s+'([^']*)'\s*$", re.IGNORECASE)


def parse_filter(text: str, allowed: tuple[str, ...]) -> dict[str, str]:
    """OData ``key eq 'value' and ...`` as the backup service accepts it (lower-case keys)."""
    out: dict[str, str] = {}
    if not text.strip():
        return out
    known = {k.lower(): k for k in allowed}
    for clause in re.split(r"\s+and\s+", text.strip(), flags=re.IGNORECASE):
        m = _CLAUSE.match(clause)
        if not m or m.group(1).lower() not in known:
            raise ArmError(400, "InvalidFilter",
                           f"The $filter clause '{clause.strip()}' is not supported here; "
                           f"supported: {', '.join(f'{k} eq ...' for k in allowed)}.")
        out[m.group(1).lower()] = m.group(2)
    return out


def retry_after(world: World, op: Operation) -> str:
    """Seconds a client should wait before asking again (``emulator/timing.py``)."""
    return service(world).timing.retry_after(op.remaining(), op.duration)


def accepted(world: World, req: Request, base_path: str, op: Operation, *,
             status_segment: str, result_segment: str) -> Response:
    """The 202 every backup write answers: absolute status/result URLs on the emulator."""
    version = require_api_version(req)
    root = f"{world.base_url}{base_path.rstrip('/')}"
    return Response(202, None, {
        "Azure-AsyncOperation": f"{root}/{status_segment}/{op.id}?api-version={version}",
        "Location": f"{root}/{result_segment}/{op.id}?api-version={version}",
        "Retry-After": retry_after(world, op),
    })


def status_body(svc: BackupService, op: Operation) -> dict[str, Any]:
    """OperationStatus JSON; policy operations carry ``jobIds`` and ``failedJobsError`` (job id
    -> error code of each job that failed so far), the others one ``jobId``."""
    body: dict[str, Any] = {"id": op.id, "name": op.id, "status": op.status,
                            "startTime": iso(op.started)}
    if op.ended:
        body["endTime"] = iso(op.ended)
    if op.error:
        body["error"] = dict(op.error)
    if op.kind in ("policy", "policy-delete"):
        with svc.lock:
            failed = {jid: svc.jobs[jid].error.code for jid in op.job_ids
                      if jid in svc.jobs and svc.jobs[jid].error is not None}
        body["properties"] = {"objectType": "OperationStatusJobsExtendedInfo",
                              "jobIds": list(op.job_ids), "failedJobsError": failed}
    else:
        body["properties"] = {"objectType": "OperationStatusJobExtendedInfo",
                              "jobId": op.job_ids[0] if op.job_ids else None}
    return body


def status_response(world: World, op: Operation) -> Response:
    headers = {} if op.done else {"Retry-After": retry_after(world, op)}
    return Response(200, status_body(service(world), op), headers)


def find_operation(world: World, vault: dict, op_id: str, target_id: str | None = None,
                   ) -> Operation:
    """The operation ``op_id`` of this vault (and of ``target_id`` when given), else 404."""
    svc = service(world)
    with svc.lock:
        op = svc.ops.get(op_id.lower())
    if (op is None or op.vault_id.lower() != vault["id"].lower()
            or (target_id is not None and op.target_id.lower() != target_id.lower())):
        raise ArmError(404, "ResourceNotFound",
                       f"The operation '{op_id}' was not found in vault '{vault['name']}'.")
    return op


def still_running(world: World, req: Request, op: Operation, status_segment: str) -> Response:
    """What an ``operationResults`` URL answers while the operation runs: 202 with the same
    three headers as the original 202 (ProtectedItemOperationResults.json)."""
    base = req.raw_path.rstrip("/").rsplit("/", 2)[0]
    version = req.api_version
    return Response(202, None, {
        "Azure-AsyncOperation": f"{world.base_url}{base}/{status_segment}/{op.id}"
                                f"?api-version={version}",
        "Location": f"{world.base_url}{req.raw_path}?api-version={version}",
        "Retry-After": retry_after(world, op),
    })


def failed_result(op: Operation) -> ArmError:
    """What an ``operationResults`` URL answers for a failed operation: its error, as ARM's."""
    error = op.error or {"code": "InternalError", "message": "The operation failed."}
    return ArmError(400, error["code"], error["message"])


# -- generic vault-level operation routes (backups.trigger and friends) ----------------------

@router.route("GET", V + "/backupOperations/{op_id}", "read")
def get_backup_operation(world: World, req: Request, sub: str, rg: str, vault: str,
                         op_id: str) -> Response:
    res = vault_or_404(world, req, sub, rg, vault)
    return status_response(world, find_operation(world, res, op_id))


@router.route("GET", V + "/backupOperationResults/{op_id}", "read")
def get_backup_operation_result(world: World, req: Request, sub: str, rg: str, vault: str,
                                op_id: str) -> Response:
    """202 while running, 204 when done (these results carry no body), the error if failed."""
    res = vault_or_404(world, req, sub, rg, vault)
    op = find_operation(world, res, op_id)
    if not op.done:
        return still_running(world, req, op, "backupOperations")
    if op.status == "Failed":
        raise failed_result(op)
    return Response(204)
