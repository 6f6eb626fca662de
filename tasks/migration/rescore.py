"""Re-score one VM right before its backup moves, with the assessment's own rule engine, on what
ARM says *now*: the VM, each of its managed disks, its protected item, the source policy and the
VM sizes of its region. A plan may be days old; since then the VM may have been resized to a size
without Premium storage, a disk made shared or switched to Entra data access, a tag added.

The ARM responses are shaped into the rows Resource Graph would have given (``inventory_rows``),
then go through ``build_inventory`` and ``engine.score`` like any assessment, so a rule has one
definition whether it runs over 100k VMs or one. Whether the VM may still move is the planner's
own test (``planning.candidates.classify``) with the plan's allowed warnings, plus the warnings
the plan already accepted for this VM.

Two facts are not re-read: the SQL IaaS registration (another resource provider; the VM keeps
what the assessment found, through the rule ids the plan recorded) and scope exclusions by
subscription (the plan chose the subscription). Reads go through ``read`` (the mover's patient
reader); SKU lists and source policies are read once per run and shared by all threads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ..azure import backup, compute
from ..discovery.policies import policy_facts
from ..discovery.skus import list_sizes, sku_frame
from ..errors import AzureError
from ..inventory.build import build_inventory
from ..planning.candidates import STANDARD_RULE, classify
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
class Look:
    """Everything ARM said about one VM, ready to score (read in the VM's own thread)."""

    vm_key: str
    rows: dict[str, list[dict]]
    policies: dict[str, dict]
    skus: pd.DataFrame
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


class Rescorer:
    """Scores VMs for the wave's threads; the run-wide caches are locked."""

    def __init__(self, access: Any, settings: Any, pack: RulePack, *,
                 allow_warnings: tuple[str, ...] = (), include_standard: bool = False) -> None:
        self.access, self.settings, self.pack = access, settings, pack
        self.ctx = RuleContext.from_settings(settings)
        self.template = settings.rules.target_policy_template
        self.allow_warnings = tuple(allow_warnings)
        self.include_standard = include_standard
        self._skus: dict[tuple[str, str], pd.DataFrame] = {}
        self._policies: dict[str, dict | None] = {}
        self._locks: dict[Any, threading.Lock] = {}
        self._guard = threading.Lock()
        self._coalescer = Coalescer(self._judge)

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

    def _sku_frame(self, subscription_id: str, location: str, read: Reader) -> pd.DataFrame:
        pair = (subscription_id.lower(), location.lower())
        return self._once(self._skus, pair,
                          lambda: sku_frame(read(lambda: list_sizes(self.access, *pair))))

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

    def look(self, vm: dict, item: dict, *, vault_id: str, planned_warnings: str = "",
             irreversible: bool = False, read: Reader = _direct) -> Look:
        """Read what the VM's score needs beyond the VM and item: its disks (one GET each),
        the source policy and the region's sizes (both once per run)."""
        subscription = _segment(vm["id"], "subscriptions")
        client = self.access.compute(subscription)
        disks = {disk_id: read(lambda d=disk_id: compute.get_disk(client, d))
                 for disk_id in managed_disk_ids(vm)}
        rows = inventory_rows(vm, disks, item, vault_id=vault_id,
                              sql_vm=SQL_RULE in _ids(planned_warnings))
        policy_id = str((item.get("properties") or {}).get("policyId") or "")
        return Look(vm["id"].lower(), rows,
                    self._policy(policy_id, vault_id, read) if policy_id else {},
                    self._sku_frame(subscription, vm.get("location", ""), read),
                    planned_warnings, irreversible)

    # -- scoring (batched across threads) -----------------------------------------------------

    def scored(self, looks: list[Look]) -> pd.DataFrame:
        """The VMs scored now, one row each by ``vm_key`` (a VM the settings now exclude is
        missing)."""
        rows: dict[str, list[dict]] = {}
        policies: dict[str, dict] = {}
        for one in looks:
            for name, part in one.rows.items():
                rows.setdefault(name, []).extend(part)
            policies.update(one.policies)
        skus = sku_frame([row for one in looks
                          for row in one.skus.itertuples(index=False, name=None)])
        inventory = build_inventory(rows, policies, skus, self.settings)
        scored = score(inventory.vms, inventory.disks, self.pack, self.ctx, self.template)
        return scored.set_index("vm_key", drop=False)

    def _judge(self, looks: list[Look]) -> list[tuple[str, str] | None]:
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

    def verdict(self, vm: dict, item: dict, *, vault_id: str, planned_warnings: str = "",
                irreversible: bool = False, read: Reader = _direct) -> tuple[str, str] | None:
        """``(code, reason)`` when the VM, scored now, may no longer move; None when it may.
        The warnings the plan accepted for this VM stay accepted."""
        look = self.look(vm, item, vault_id=vault_id, planned_warnings=planned_warnings,
                         irreversible=irreversible, read=read)
        return self._coalescer.submit(look)


def _why(row: Any, reason: str, irreversible: bool) -> tuple[str, str]:
    fired = [r for col in (row.blockers, row.unknowns, row.warnings) for r in _ids(col)
             if r != STANDARD_RULE or not irreversible]
    found = f" ({', '.join(fired)})" if fired else ""
    return "NO_LONGER_READY", f"re-scored now, it is {row.readiness}{found}: {reason}"
