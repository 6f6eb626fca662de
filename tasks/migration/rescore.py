"""Re-score one VM right before its backup moves, with the assessment's own rule engine, on what
ARM says *now*: the VM, each of its managed disks, its protected item, the source policy and the
VM sizes of its region. A plan may be days old; since then the VM may have been resized to a size
without Premium storage, a disk made shared or switched to Entra data access, a tag added.

The ARM responses are shaped into the rows Resource Graph would have given (``inventory_rows``),
then go through ``build_inventory`` and ``engine.score`` like any assessment, so a rule has one
definition whether it runs over 100k VMs or one. Whether the VM may still move is the planner's
own test (``rules.eligibility.classify``) with the plan's allowed warnings, plus the warnings
the plan already accepted for this VM.

Two facts are not re-read: the SQL IaaS registration (another resource provider; the VM keeps
what the assessment found, through the rule ids the plan recorded) and scope exclusions by
subscription (the plan chose the subscription). Reads go through ``read`` (the mover's patient
reader); SKU lists and source policies are read once per run and shared by all threads. Scoring
is coalesced across the wave's threads and, on large waves, runs in a process of its own
(BENCHMARKS.md, "Waves with the re-score").
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ..azure import backup, compute
from ..discovery.policies import policy_facts
from ..discovery.skus import list_sizes, sku_frame
from ..errors import AzureError
from ..inventory.build import build_inventory
from ..lifetime import die_with_parent
from ..rules.eligibility import STANDARD_RULE, classify
from ..rules.engine import RuleContext, RulePack, score

SQL_RULE = "WORKLOAD_DATABASE"
Reader = Callable[[Callable[[], Any]], Any]


def _direct(call: Callable[[], Any]) -> Any:
    return call()


def _text(value: Any) -> str:
    """Resource Graph's ``tostring``: "" for missing, "true"/"false" for booleans."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _segment(resource_id: str, name: str) -> str:
    parts = resource_id.strip("/").split("/")
    lower = [p.lower() for p in parts]
    return parts[lower.index(name) + 1] if name in lower[:-1] else ""


def managed_disk_ids(vm: dict) -> list[str]:
    """Lower-cased ids of the VM's managed disks (OS first), as ARM lists them now."""
    profile = (vm.get("properties") or {}).get("storageProfile") or {}
    disks = [profile.get("osDisk") or {}, *(profile.get("dataDisks") or [])]
    ids = [str((d.get("managedDisk") or {}).get("id") or "").lower() for d in disks]
    return list(dict.fromkeys(i for i in ids if i))


def inventory_rows(vm: dict, disks: dict[str, dict | None], item: dict, *, vault_id: str,
                   sql_vm: bool) -> dict[str, list[dict]]:
    """ARM's VM, disks (lower id -> resource, None when gone) and protected item, as the rows
    of the discovery queries (``tasks/discovery/queries/*.kql``) for a one-VM inventory."""
    vm_id = vm["id"]
    props = vm.get("properties") or {}
    storage = props.get("storageProfile") or {}
    os_disk = storage.get("osDisk") or {}
    image = storage.get("imageReference") or {}
    os_managed = os_disk.get("managedDisk") or {}
    vm_row = {
        "id": vm_id, "name": vm.get("name") or _segment(vm_id, "virtualmachines"),
        "subscriptionId": _segment(vm_id, "subscriptions"),
        "resourceGroup": _segment(vm_id, "resourcegroups"), "location": vm.get("location", ""),
        "tags": vm.get("tags") or {},
        "vmSize": _text((props.get("hardwareProfile") or {}).get("vmSize")),
        "osType": _text(os_disk.get("osType")), "imagePublisher": _text(image.get("publisher")),
        "imageOffer": _text(image.get("offer")), "imageSku": _text(image.get("sku")),
        "securityType": _text((props.get("securityProfile") or {}).get("securityType")),
        "ultraSSDEnabled": _text((props.get("additionalCapabilities") or {})
                                 .get("ultraSSDEnabled")),
        "osDiskName": _text(os_disk.get("name")), "osDiskId": _text(os_managed.get("id")).lower(),
        "osDiskType": _text(os_managed.get("storageAccountType")),
        "osDiskCaching": _text(os_disk.get("caching")),
        "osDiskWriteAccelerator": _text(os_disk.get("writeAcceleratorEnabled")),
        "osDiskVhd": _text((os_disk.get("vhd") or {}).get("uri")),
        "osDiskPlacement": _text((os_disk.get("diffDiskSettings") or {}).get("option")),
        "osDiskSizeGB": os_disk.get("diskSizeGB"),
        "dataDisks": storage.get("dataDisks") or [],
    }
    found = [[disk_id, _text((disk.get("sku") or {}).get("name")),
              (disk.get("properties") or {}).get("maxShares"),
              _text((disk.get("properties") or {}).get("dataAccessAuthMode")),
              (disk.get("properties") or {}).get("diskSizeGB")]
             for disk_id, disk in disks.items() if disk is not None]
    item_props = item.get("properties") or {}
    vm_key = vm_id.lower()
    rows: dict[str, list[dict]] = {
        "vms": [vm_row],
        "attached_disks": [{"id": vm_key, "disks": found}] if found else [],
        "protected_items": [{
            "id": item.get("id", ""), "vaultId": vault_id.lower(), "vmKey": vm_key,
            "policyId": _text(item_props.get("policyId")), "currentProtectionState": "",
            "protectionState": _text(item_props.get("protectionState")),
            "lastBackupStatus": _text(item_props.get("lastBackupStatus")),
            "lastBackupTime": _text(item_props.get("lastBackupTime")),
            "deferredDelete": _text(item_props.get("isScheduledForDeferredDelete")),
        }],
        "vaults_and_sql": [{"type": "microsoft.recoveryservices/vaults", "id": vault_id.lower(),
                            "name": _segment(vault_id, "vaults"), "location": ""}],
    }
    if sql_vm:
        rows["vaults_and_sql"].append({"type": "microsoft.sqlvirtualmachine/sqlvirtualmachines",
                                       "vmKey": vm_key})
    return rows


def _ids(text: Any) -> list[str]:
    return [r for r in str(text or "").split(";") if r]


@dataclass
class LiveFacts:
    """Everything ARM said about one VM, ready to score (read in the VM's own thread; plain
    data, so it can cross to the scoring process)."""

    vm_key: str
    rows: dict[str, list[dict]]
    policies: dict[str, dict]
    skus: list[tuple]  # SKU_COLUMNS rows of the VM's size in its region (none: unlisted)
    planned_warnings: str = ""
    irreversible: bool = False


class Coalescer:
    """Runs ``work`` over the requests of many threads at once: the first caller scores
    everything pending, and whatever arrives meanwhile waits for the next round. One VM costs
    about the same pandas time as ten (the frame operations are fixed cost), so when scoring
    becomes the bottleneck the rounds simply grow."""

    def __init__(self, work: Callable[[list[Any]], list[Any]]) -> None:
        self.work = work
        self._lock = threading.Lock()
        self._pending: list[tuple[Any, Future]] = []
        self._leading = False
        self.rounds = 0

    def submit(self, request: Any) -> Any:
        future: Future = Future()
        with self._lock:
            self._pending.append((request, future))
            lead, self._leading = not self._leading, True
        while lead:
            with self._lock:
                batch, self._pending = self._pending, []
                if not batch:
                    self._leading = False
                    break
            self.rounds += 1
            try:
                for (_, waiting), result in zip(batch, self.work([r for r, _ in batch]),
                                                strict=True):
                    waiting.set_result(result)
            except BaseException as err:  # a bug, not the VM's data: every waiter sees it
                for _, waiting in batch:
                    if not waiting.done():
                        waiting.set_exception(err)
        return future.result()


@dataclass
class Judge:
    """The CPU half: looks in, verdicts out, with the rules, settings and the plan's accepted
    warnings. Picklable, so a wave can run it in a process of its own."""

    settings: Any
    pack: RulePack
    allow_warnings: tuple[str, ...] = ()
    include_standard: bool = False

    def scored(self, looks: list[LiveFacts]) -> pd.DataFrame:
        """The VMs scored now, one row each by ``vm_key`` (a VM the settings now exclude is
        missing)."""
        rows: dict[str, list[dict]] = {}
        policies: dict[str, dict] = {}
        for one in looks:
            for name, part in one.rows.items():
                rows.setdefault(name, []).extend(part)
            policies.update(one.policies)
        skus = sku_frame([row for one in looks for row in one.skus])
        inventory = build_inventory(rows, policies, skus, self.settings)
        scored = score(inventory.vms, inventory.disks, self.pack,
                       RuleContext.from_settings(self.settings),
                       self.settings.rules.target_policy_template)
        return scored.set_index("vm_key", drop=False)

    def __call__(self, looks: list[LiveFacts]) -> list[tuple[str, str] | None]:
        """Per look: ``(code, reason)`` when the VM may no longer move, else None."""
        seen: set[str] = set()
        first = [not (one.vm_key in seen or seen.add(one.vm_key)) for one in looks]
        if not all(first):  # one VM twice in a round (never in a wave): score them apart
            again = iter(self([one for one, f in zip(looks, first, strict=True) if not f]))
            once = iter(self([one for one, f in zip(looks, first, strict=True) if f]))
            return [next(once) if f else next(again) for f in first]
        now = self.scored(looks)
        verdicts: dict[str, tuple[str, str] | None] = {}
        groups: dict[tuple[frozenset, bool], list[str]] = {}
        for one in looks:
            allowed = frozenset({*self.allow_warnings, *_ids(one.planned_warnings)})
            groups.setdefault((allowed, one.irreversible), []).append(one.vm_key)
        for (allowed, irreversible), keys in groups.items():
            present = [k for k in keys if k in now.index]
            verdicts.update({k: ("EXCLUDED", "the settings' exclusions (resource group or "
                                 "tag) now cover it") for k in keys if k not in now.index})
            part = now.loc[present]
            judged = classify(part, allowed, self.include_standard or irreversible)
            for key, row, verdict in zip(present, part.itertuples(), judged.itertuples(),
                                         strict=True):
                verdicts[key] = None if verdict.candidate else _why(row, verdict.reason,
                                                                    irreversible)
        return [verdicts[one.vm_key] for one in looks]


# The scoring process's judge, set once by its initializer.
_WORKER_JUDGE: Judge | None = None


def _start_worker(judge: Judge, parent: int) -> None:
    global _WORKER_JUDGE
    # Started from whichever wave thread scored first, which may end long before the wave:
    # only the pid watchdog, not Linux's parent-death signal (sent when that thread ends).
    die_with_parent(parent, kernel_signal=False)
    _WORKER_JUDGE = judge


def _judge_in_worker(looks: list[LiveFacts]) -> list[tuple[str, str] | None]:
    assert _WORKER_JUDGE is not None
    return _WORKER_JUDGE(looks)


class Rescorer:
    """Re-scores VMs for the wave's threads: reads in the calling thread (run-wide caches,
    locked), scoring coalesced across threads. With ``process=True`` the scoring runs in one
    process of its own, so its pandas work does not compete with the wave's threads for the
    runner's interpreter lock (worth its start-up, about a second, on large waves only)."""

    def __init__(self, access: Any, settings: Any, pack: RulePack, *,
                 allow_warnings: tuple[str, ...] = (), include_standard: bool = False,
                 process: bool = False) -> None:
        self.access = access
        self.judge = Judge(settings, pack, tuple(allow_warnings), include_standard)
        self._sizes: dict[tuple[str, str], dict[str, list[tuple]]] = {}
        self._policies: dict[str, dict | None] = {}
        self._locks: dict[Any, threading.Lock] = {}
        self._guard = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None
        if process:
            self._pool = ProcessPoolExecutor(
                max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker, initargs=(self.judge, os.getpid()))
        self._coalescer = Coalescer(self._work)

    def _work(self, looks: list[LiveFacts]) -> list[tuple[str, str] | None]:
        if self._pool is None:
            return self.judge(looks)
        try:
            return self._pool.submit(_judge_in_worker, looks).result()
        except Exception:
            # The process died or could not start: score here. (A fault of the judge itself
            # fails again here, where the caller sees it.)
            self.close()
            return self.judge(looks)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    # -- reading (in the VM's thread) ---------------------------------------------------------

    def _once(self, cache: dict, key: Any, load: Callable[[], Any]) -> Any:
        """``cache[key]``, loaded by the first thread that needs it while the others wait."""
        if key in cache:
            return cache[key]
        with self._guard:
            lock = self._locks.setdefault((id(cache), key), threading.Lock())
        with lock:
            if key not in cache:
                cache[key] = load()
            return cache[key]

    def _size_rows(self, subscription_id: str, location: str, size: str,
                   read: Reader) -> list[tuple]:
        """The region's SKU row for ``size`` (read once per region and run)."""
        def load() -> dict[str, list[tuple]]:
            by_size: dict[str, list[tuple]] = {}
            for row in read(lambda: list_sizes(self.access, *pair)):
                by_size.setdefault(row[2], []).append(row)
            return by_size

        pair = (subscription_id.lower(), location.lower())
        return self._once(self._sizes, pair, load).get(size.lower(), [])

    def _policy(self, policy_id: str, vault_id: str, read: Reader) -> dict[str, dict]:
        """The source policy's facts; none when it is gone (the rules then say the VM's
        protection data is unreadable, as the assessment would)."""
        def load() -> dict | None:
            ref = backup.vault_ref(vault_id)
            name = policy_id.rstrip("/").rsplit("/", 1)[-1]
            client = self.access.backup(ref.subscription_id)
            try:
                return policy_facts(read(lambda: backup.get_policy(client, ref, name)))
            except AzureError as err:
                if err.status == 404:
                    return None
                raise

        facts = self._once(self._policies, policy_id.lower(), load)
        return {policy_id.lower(): facts} if facts is not None else {}

    def facts(self, vm: dict, item: dict, *, vault_id: str, planned_warnings: str = "",
              irreversible: bool = False, read: Reader = _direct) -> LiveFacts:
        """Read what the VM's score needs beyond the VM and item: its disks (one GET each),
        the source policy and the region's sizes (both once per run)."""
        subscription = _segment(vm["id"], "subscriptions")
        client = self.access.compute(subscription)
        disks = {disk_id: read(lambda d=disk_id: compute.get_disk(client, d))
                 for disk_id in managed_disk_ids(vm)}
        rows = inventory_rows(vm, disks, item, vault_id=vault_id,
                              sql_vm=SQL_RULE in _ids(planned_warnings))
        policy_id = str((item.get("properties") or {}).get("policyId") or "")
        size = rows["vms"][0]["vmSize"]
        return LiveFacts(vm["id"].lower(), rows,
                    self._policy(policy_id, vault_id, read) if policy_id else {},
                    self._size_rows(subscription, vm.get("location", ""), size, read),
                    planned_warnings, irreversible)

    # -- scoring (batched across threads) -----------------------------------------------------

    def scored(self, looks: list[LiveFacts]) -> pd.DataFrame:
        return self.judge.scored(looks)

    def verdict(self, vm: dict, item: dict, *, vault_id: str, planned_warnings: str = "",
                irreversible: bool = False, read: Reader = _direct) -> tuple[str, str] | None:
        """``(code, reason)`` when the VM, scored now, may no longer move; None when it may.
        The warnings the plan accepted for this VM stay accepted."""
        return self._coalescer.submit(self.facts(
            vm, item, vault_id=vault_id, planned_warnings=planned_warnings,
            irreversible=irreversible, read=read))


def _why(row: Any, reason: str, irreversible: bool) -> tuple[str, str]:
    fired = [r for col in (row.blockers, row.unknowns, row.warnings) for r in _ids(col)
             if r != STANDARD_RULE or not irreversible]
    found = f" ({', '.join(fired)})" if fired else ""
    return "NO_LONGER_READY", f"re-scored now, it is {row.readiness}{found}: {reason}"
