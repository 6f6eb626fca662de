"""The VM and protected-item rows of ``vms_with_items``, laid into columns page by page.

Resource Graph answers about a page a third of a second at best (15 requests per 5 s per user),
so discovery spends most of its time waiting on the quota between pages. Each page is laid out
here as it arrives, while its freshly parsed rows are still in the cache: its VM rows, its item
rows and its data-disk rows (the one Python pass over each VM's JSON list) become small frames,
its tag sets are shared, and the row dicts themselves are dropped. ``build_inventory`` then
joins the pages' frames instead of walking a hundred thousand row dicts parsed long before (each
such pass ran 1.5 to 2 times slower than over the same rows in the cache: BENCHMARKS.md,
"Assessment local work, 2026-12-05").

Every page is laid out by the same code the whole row list once was, so the frames hold the
same values: VM rows through ``DataFrame.from_records`` on the same columns, item rows the same
and then ``fillna("")``, data disks by the same loop.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..discovery.collect import split_vm_rows
from .schema import TagSets

# The VM columns of ``vms_with_items`` the inventory reads (their data disks apart).
VM_COLUMNS = ["id", "name", "subscriptionId", "resourceGroup", "location", "tags", "vmSize",
              "osType", "imagePublisher", "imageOffer", "imageSku", "securityType",
              "ultraSSDEnabled", "osDiskName", "osDiskId", "osDiskType", "osDiskCaching",
              "osDiskWriteAccelerator", "osDiskVhd", "osDiskPlacement", "osDiskSizeGB"]
ITEM_COLUMNS = ["id", "vaultId", "vmKey", "policyId", "currentProtectionState",
                "protectionState", "lastBackupStatus", "lastBackupTime", "deferredDelete"]
DISK_COLUMNS = ["vm_key", "lun", "disk_name", "disk_key", "managed", "unmanaged",
                "storage_type", "caching", "write_accelerator", "profile_gb"]
SQL_TYPE = "microsoft.sqlvirtualmachine/sqlvirtualmachines"
# Columns of few distinct values over many VMs (regions, sizes, images, disk settings; vaults,
# policies and item states): each equal value becomes one string object as its page is laid
# out, so every later pass over them (the inventory's factorizing and lower-casing, the rules,
# the reports, the state store) reads a few objects that stay in the cache instead of one per
# row parsed long before.
SHARED_VM = ("subscriptionId", "resourceGroup", "location", "vmSize", "osType",
             "imagePublisher", "imageOffer", "imageSku", "securityType", "ultraSSDEnabled",
             "osDiskType", "osDiskCaching", "osDiskWriteAccelerator", "osDiskPlacement")
SHARED_ITEM = ("vaultId", "policyId", "currentProtectionState", "protectionState",
               "lastBackupStatus", "deferredDelete")


def _data_disk_rows(keys: list, lists: list, share: dict[str, str]) -> list[tuple]:
    """Data disk rows of VMs (key, JSON list of disks each): one tuple per disk, in order;
    storage types and caching through ``share``."""
    rows: list[tuple] = []
    append = rows.append
    shared = share.setdefault
    for key, disks in zip(keys, lists, strict=True):
        if not disks:
            continue
        for disk in disks:
            managed = disk.get("managedDisk") or {}
            disk_id = managed.get("id") or ""
            storage = managed.get("storageAccountType") or ""
            caching = disk.get("caching") or ""
            append((key, disk.get("lun"), disk.get("name") or "", disk_id.lower(),
                    bool(disk_id), bool(disk.get("vhd")) and not disk_id,
                    shared(storage, storage) if type(storage) is str else storage,
                    shared(caching, caching) if type(caching) is str else caching,
                    bool(disk.get("writeAcceleratorEnabled")), disk.get("diskSizeGB")))
    return rows


def _share(rows: list[dict], columns: tuple[str, ...], share: dict[str, str]) -> None:
    """Each text value of ``columns`` in ``rows`` replaced by the equal one in ``share``."""
    shared = share.setdefault
    for row in rows:
        for col in columns:
            value = row.get(col)
            if type(value) is str:
                row[col] = shared(value, value)


def _vm_frame(vms: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(vms, columns=VM_COLUMNS)
    frame["vm_key"] = frame["id"].str.lower()
    return frame


class VmPages:
    """The VM rows, item rows, data-disk rows and SQL registrations of one subscription batch,
    a frame per page. ``add_page`` takes ``vms_with_items`` rows as read (each row once, in
    order); ``add`` takes rows already split (``collect.split_vm_rows``'s shapes). Batches read
    side by side each have their own ``VmPages``; ``share`` gives them one set of tag dicts."""

    def __init__(self, tags: TagSets | None = None, values: dict[str, str] | None = None,
                 ) -> None:
        self.tags = tags if tags is not None else TagSets()
        self.values: dict[str, str] = values if values is not None else {}  # see SHARED_VM
        self.vm_frames: list[pd.DataFrame] = []
        self.item_frames: list[pd.DataFrame] = []
        self.disk_frames: list[pd.DataFrame] = []
        self.disk_counts: list[np.ndarray] = []  # data disks per VM row, page by page
        self.sql_keys: set[str] = set()  # lower VM ids with a SQL registration
        self.vault_ids: set[str] = set()  # vaults holding an item read here
        self.regions: set[tuple[str, str]] = set()  # (subscription, region) of add_page's VMs
        self.vm_count = 0
        self._seen: set[str] = set()  # vmKey of every VM row laid out (split_vm_rows)

    @classmethod
    def share(cls, count: int) -> list[VmPages]:
        """``count`` of them with one set of tag dicts and shared values, for batches read
        side by side (``dict.setdefault`` is one step under the GIL)."""
        tags, values = TagSets(), {}
        return [cls(tags, values) for _ in range(count)]

    def add_page(self, rows: list[dict]) -> None:
        """One page of ``vms_with_items`` rows: VM rows (once per VM however many items its
        rows carry, which may straddle two pages), item rows and SQL registrations."""
        vms, items, sql = split_vm_rows(rows, self._seen)
        self.regions.update((r["subscriptionId"].lower(), r["location"].lower()) for r in vms)
        self.add(vms, items, (r["vmKey"] for r in sql))

    def add(self, vms: list[dict], items: list[dict], sql_keys: Iterable[str] = ()) -> None:
        """VM rows (``VM_COLUMNS`` and ``dataDisks``) and item rows (``ITEM_COLUMNS``)."""
        self.sql_keys.update(sql_keys)
        if items:
            _share(items, SHARED_ITEM, self.values)
            frame = pd.DataFrame.from_records(items, columns=ITEM_COLUMNS).fillna("")
            frame["item_key"] = frame["id"].str.lower()  # ARM's item states are by lower id
            self.item_frames.append(frame)
            self.vault_ids.update(r["vaultId"] for r in items if r.get("vaultId"))
        if not vms:
            return
        _share(vms, SHARED_VM, self.values)
        frame = _vm_frame(vms)
        frame["tags"] = self.tags.share(frame["tags"].tolist())
        keys = frame["vm_key"].tolist()
        lists = [r.get("dataDisks") for r in vms]
        self.disk_counts.append(np.fromiter((len(d) if d else 0 for d in lists),
                                            dtype=np.int64, count=len(lists)))
        disks = _data_disk_rows(keys, lists, self.values)
        if disks:
            self.disk_frames.append(pd.DataFrame(disks, columns=DISK_COLUMNS))
        self.vm_frames.append(frame)
        self.vm_count += len(frame)

    @classmethod
    def from_rows(cls, rows: dict[str, list[dict]]) -> VmPages:
        """The split rows of ``collect`` (``vms``, ``protected_items``, ``vaults_and_sql``) as
        one page: the shapes a chunk's look and the re-score read."""
        out = cls()
        sql = (r.get("vmKey") for r in rows.get("vaults_and_sql", [])
               if r.get("type") == SQL_TYPE)
        out.add(rows.get("vms", []), rows.get("protected_items", []), sql)
        return out

    @staticmethod
    def joined(pages: Sequence[VmPages]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame,
                                                  np.ndarray, set[Any]]:
        """Every page of ``pages`` in order: VM rows (``VM_COLUMNS`` and ``vm_key``), item rows,
        data-disk rows (``DISK_COLUMNS``), data disks per VM row, and the SQL VMs."""
        vm_frames = [f for p in pages for f in p.vm_frames]
        item_frames = [f for p in pages for f in p.item_frames]
        disk_frames = [f for p in pages for f in p.disk_frames]
        counts = [c for p in pages for c in p.disk_counts]
        vms = pd.concat(vm_frames, ignore_index=True) if vm_frames else _vm_frame([])
        items = (pd.concat(item_frames, ignore_index=True) if item_frames
                 else pd.DataFrame(columns=[*ITEM_COLUMNS, "item_key"]))
        disks = (pd.concat(disk_frames, ignore_index=True) if disk_frames
                 else pd.DataFrame([], columns=DISK_COLUMNS))
        per_vm = np.concatenate(counts) if counts else np.zeros(0, dtype=np.int64)
        sql = set().union(*(p.sql_keys for p in pages))
        return vms, items, disks, per_vm, sql

    def clear(self) -> None:
        """Drop the frames (once joined: ``build_inventory`` copies what it keeps)."""
        for frames in (self.vm_frames, self.item_frames, self.disk_frames, self.disk_counts):
            frames.clear()

    def disk_references(self) -> list[tuple[str, object]]:
        """(lower disk id, size the VM lists) of each managed disk a VM references, as
        ``collect.check_from_disks`` reads them off the VM rows."""
        refs: list[tuple[str, object]] = []
        for frame in self.vm_frames:
            ids = frame["osDiskId"].astype(object).where(frame["osDiskId"].notna(), None)
            sizes = frame["osDiskSizeGB"].astype(object).where(frame["osDiskSizeGB"].notna(),
                                                              None)
            refs += [(i or "", s) for i, s in zip(ids.tolist(), sizes.tolist(), strict=True)]
        for frame in self.disk_frames:
            sizes = frame["profile_gb"].astype(object).where(frame["profile_gb"].notna(), None)
            refs += list(zip(frame["disk_key"].tolist(), sizes.tolist(), strict=True))
        return [(disk, size) for disk, size in refs if disk]
