"""An estate that changes while Resource Graph pages through it (``--arg-churn RATE``).

Azure runs every page of a query as its own query, so VMs created, deleted or edited between two
pages make rows repeat or vanish (MD ``concepts/paging-results.md``, "Pagination in dynamic
environments"). With ``EmulatorConfig.arg_churn = RATE``, before each later page of a query
(a ``$skipToken`` or a ``$skip`` > 0) a share RATE of the fleet's VMs changes, drawn from an RNG
seeded with the emulator's seed, each change one of:

- **create**: a copy of a random VM under a new name, with copies of its managed disks
  (``managedBy`` the new VM) and, half the time when the original has one, a protected item;
- **delete**: a random VM goes, with the disks its profile marks ``deleteOption: Delete``
  (the others are detached, as ARM does); its protected item stays, as in Azure (deleting a VM
  does not stop its backup: MD ``backup/backup-azure-manage-vms.md``, "Stop protecting a VM"
  is a separate action);
- **edit**: a random VM gets a changed tag (a new ARM object, so a new etag).

The changes are real state changes (``put``/``delete``): ARM GETs and ``/_emulator/state`` see
them. RATE x VMs is rounded at random (0.3 means one change 30 % of the time).
"""

from __future__ import annotations

import copy
import json
import random
import re
import threading
import uuid
from typing import Any

from .arm_types import ITEM, VM

KINDS = ("create", "delete", "edit")


class Churn:
    """Seeded changes to the fleet's VMs; counts what it did (``stats``)."""

    def __init__(self, rate: float, seed: int) -> None:
        self.rate = rate
        self._rng = random.Random(f"arg-churn:{seed}")
        self._lock = threading.Lock()
        self._serial = 0
        self.stats = {"create": 0, "delete": 0, "edit": 0, "items_created": 0}

    def step(self, state: Any) -> int:
        """Apply one round of changes; returns how many VMs changed."""
        if self.rate <= 0:
            return 0
        with self._lock, state.lock:
            vms = state.of_type(VM)
            if not vms:
                return 0
            share = self.rate * len(vms)
            n = int(share) + (self._rng.random() < share - int(share))
            for _ in range(n):
                kind = self._rng.choice(KINDS)
                if kind != "create" and not vms:
                    kind = "create"
                vm = self._rng.choice(vms) if vms else None
                if vm is None:
                    break
                if kind == "create":
                    self._create(state, vm)
                elif kind == "delete":
                    self._delete(state, vm)
                    vms.remove(vm)
                else:
                    self._edit(state, vm)
                self.stats[kind] += 1
            return n

    # -- the three changes ----------------------------------------------------------------
    def _create(self, state: Any, template: dict) -> None:
        self._serial += 1
        old = template["name"]
        new = f"{old}-churn{self._serial:05d}"
        # The name inside every id and name derived from it (disks "vm_OsDisk_...",
        # "vm-data-00", item "VM;iaasvmcontainerv2;rg;vm"), not inside a longer number.
        pattern = re.compile(re.escape(old) + r"(?![0-9])", re.IGNORECASE)

        def renamed(res: dict) -> dict:
            return json.loads(pattern.sub(new, json.dumps(res)))

        vm = renamed(template)
        props = vm.setdefault("properties", {})
        props["vmId"] = str(uuid.UUID(int=self._rng.getrandbits(128)))
        props.pop("provisioningState", None)
        vm["etag"] = '"1"'
        disk_ids = _disk_ids(template)
        for disk_id in disk_ids:
            disk = state.get(disk_id)
            if disk is not None:
                copy_ = renamed(disk)
                copy_["managedBy"] = vm["id"]
                state.put(copy_)
        state.put(vm)
        if self._rng.random() < 0.5:
            item = _item_of(state, template["id"])
            if item is not None:
                clone = renamed(item)
                clone["properties"]["sourceResourceId"] = vm["id"]
                clone["properties"]["virtualMachineId"] = vm["id"]
                clone["properties"]["friendlyName"] = new
                state.put(clone)
                self.stats["items_created"] += 1

    def _delete(self, state: Any, vm: dict) -> None:
        storage = (vm.get("properties") or {}).get("storageProfile") or {}
        disks = [storage.get("osDisk") or {}, *(storage.get("dataDisks") or [])]
        for entry in disks:
            disk_id = (entry.get("managedDisk") or {}).get("id")
            disk = state.get(disk_id) if disk_id else None
            if disk is None:
                continue
            if entry.get("deleteOption") == "Delete":
                state.delete(disk_id)
            else:
                detached = copy.deepcopy(disk)
                detached.pop("managedBy", None)
                detached.setdefault("properties", {})["diskState"] = "Unattached"
                state.put(detached)
        state.delete(vm["id"])  # its protected item stays (module docstring)

    def _edit(self, state: Any, vm: dict) -> None:
        changed = copy.deepcopy(vm)
        tags = changed.get("tags") or {}
        tags["churn-edit"] = str(int(tags.get("churn-edit", "0") or 0) + 1)
        changed["tags"] = tags
        etag = str(changed.get("etag", '"0"')).strip('"')
        changed["etag"] = f'"{int(etag) + 1 if etag.isdigit() else 1}"'
        state.put(changed)


def _disk_ids(vm: dict) -> list[str]:
    storage = (vm.get("properties") or {}).get("storageProfile") or {}
    entries = [storage.get("osDisk") or {}, *(storage.get("dataDisks") or [])]
    return [i for e in entries if (i := (e.get("managedDisk") or {}).get("id"))]


def _item_of(state: Any, vm_id: str) -> dict | None:
    """The VM's protected item (any vault), by its ``sourceResourceId``."""
    low = vm_id.lower()
    for item in state.of_type(ITEM, subscription=None):
        if (item.get("properties") or {}).get("sourceResourceId", "").lower() == low:
            return item
    return None


def churn_between_pages(world: Any) -> None:
    """Called by the Resource Graph route before it serves a later page of a query."""
    rate = getattr(world.config, "arg_churn", 0.0) or 0.0
    if rate <= 0:
        return
    churn = world.services.get("arg_churn")
    if churn is None:
        churn = world.services.setdefault("arg_churn", Churn(rate, world.config.seed))
    churn.step(world.state)

