"""Read a batch of subscriptions through Resource Graph: the raw rows discovery needs.

Three queries (``queries/*.kql``), each page one unit of the per-user quota:

- ``vaults_and_special_disks``: vaults and the few disks whose settings block crash-consistent
  backup (a request or so);
- ``vms_with_items``: one row per VM with its protected items and SQL registration joined on
  (about one request per 1,000 VMs: the page floor);
- ``disk_check``: the referenced disks whose resource is absent or sized otherwise (one
  request; a summarize kept under one page).

Every other disk is as its VM describes it, so the inventory needs no row per disk. They run in
stages, one query at a time per batch (one query alone already keeps the quota busy); the rows
are handed on in the shapes ``inventory.build`` has always read (``vms``, ``protected_items``,
``vaults_and_sql``, ``special_disks``), plus ``disk_check``.

Every page is its own query in Azure (MD ``concepts/paging-results.md``, "Pagination in dynamic
environments"), so plain queries are read with ``read_all`` (overlapping ``$skip`` pages, each
row key once, repeats counted), and a ``summarize`` is never paged: Resource Graph serves it as
its first page only ("Simplified first page only", MD ``concepts/query-language.md``). A
``disk_check`` that comes back cut is answered by the disks' plain rows instead, grouped per VM
here (``attached_disk_rows``). The older per-disk ``attached_disks`` summarize, asked in hash
slices that each fit a page, is still readable by name (that ARG accepts Kusto's ``hash()`` is
unverified).

``collect_vm_rows`` runs the same queries restricted to a list of VM ids: the last look a wave
takes at a chunk of VMs before moving them.
"""

from __future__ import annotations

import logging
import math
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

import pandas as pd

from ..azure.resource_graph import QuotaGate, query_page, read_all
from ..errors import AzureError
from . import queries

log = logging.getLogger(__name__)

# Stage order matters: the vaults first (their policies can be read from ARM while the VMs
# page), then the VMs with their items and the disk check (read together: should the check
# come back cut, its answer is worked out from the VM rows and the disks' plain rows).
STAGES: tuple[tuple[str, ...], ...] = (
    ("vaults_and_special_disks",),
    ("vms_with_items", "disk_check"),
)
QUERIES = tuple(name for stage in STAGES for name in stage)
SUMMARIZED = {"attached_disks"}  # the older per-VM disk summary, asked in slices
ONE_PAGE = {"disk_check"}  # a summarize whose result stays under a page
ROW_KEYS = {"vms_with_items": "rowKey"}  # the unique sort column, where it is not ``id``
SLICE_AFTER = "| where isnotempty(managedBy)\n"
SLICE_FILL = 0.9  # slices aim at 90 % of a page, so few come back cut
# Halving may make at most this many times the first count of slices; then plain rows.
MAX_SPLIT = 16
SQL_TYPE = "microsoft.sqlvirtualmachine/sqlvirtualmachines"
DISK_TYPE = "microsoft.compute/disks"
VM_FIELDS = ("id", "name", "subscriptionId", "resourceGroup", "location", "tags", "vmSize",
             "osType", "imagePublisher", "imageOffer", "imageSku", "securityType",
             "ultraSSDEnabled", "osDiskName", "osDiskId", "osDiskType", "osDiskCaching",
             "osDiskWriteAccelerator", "osDiskVhd", "osDiskPlacement", "osDiskSizeGB",
             "dataDisks")
ITEM_FIELDS = (("itemId", "id"), ("itemSubscriptionId", "subscriptionId"),
               ("vaultId", "vaultId"), ("itemVmKey", "vmKey"), ("policyId", "policyId"),
               ("currentProtectionState", "currentProtectionState"),
               ("protectionState", "protectionState"), ("lastBackupStatus", "lastBackupStatus"),
               ("lastBackupTime", "lastBackupTime"), ("deferredDelete", "deferredDelete"))
SPECIAL_FIELDS = ("id", "sku", "maxShares", "dataAccessAuthMode", "diskSizeGB")
VAULT_FIELDS = ("id", "type", "name", "location", "subscriptionId", "resourceGroup")
# collect_vm_rows: what restricts each query to the VM ids (inserted after the named line).
RESTRICT_AFTER = {
    "| where type == 'microsoft.compute/virtualmachines'": "| where tolower(id) in ({ids})",
    "| where properties.backupManagementType == 'AzureIaasVM'":
        "| where tolower(tostring(properties.sourceResourceId)) in ({ids})",
    "| where isnotempty(managedBy)": "| where tolower(managedBy) in ({ids})",
}


class VmRowSink(Protocol):
    """Takes the ``vms_with_items`` rows page by page as they are read (``inventory.pages``),
    instead of the batch's ``rows`` holding them."""

    def add_page(self, rows: list[dict]) -> None: ...

    def disk_references(self) -> list[tuple[str, object]]: ...


@dataclass
class BatchRows:
    """Rows of some queries for one subscription batch; ``error`` set means they could not
    all be read (the batch is then reported as not assessed)."""

    subscriptions: list[str]
    rows: dict[str, list[dict]] = field(default_factory=dict)
    requests: int = 0
    error: str | None = None
    repeated: dict[str, int] = field(default_factory=dict)  # rows read twice, kept once


def collect_queries(client, subscriptions: list[str], names: tuple[str, ...],
                    gate: QuotaGate, page_size: int = 1000,
                    vm_ids: list[str] | None = None, sink: VmRowSink | None = None) -> BatchRows:
    """Run ``names`` one after another over ``subscriptions``, reading every row once;
    with ``vm_ids``, each query is restricted to those VMs (see ``collect_vm_rows``). With
    ``sink``, the rows of ``vms_with_items`` go to it page by page as they are read (the
    batch's ``rows`` then hold no ``vms``, ``protected_items`` or SQL registrations)."""
    out = BatchRows(list(subscriptions))

    def query(name: str) -> tuple[str, str]:
        if vm_ids is not None:
            return (restricted(queries.load(name), vm_ids),
                    f"reading {name.replace('_', ' ')} of {len(vm_ids)} VM(s)")
        return (queries.load(name),
                f"reading {name.replace('_', ' ')} of {len(subscriptions)} subscription(s)")

    # A one-page query is asked at once, beside the others' pages: Resource Graph works out a
    # summarize over the whole estate before answering (seconds at 100k VMs in the emulator),
    # and that time then overlaps the paging instead of adding to it.
    ahead = [name for name in names if name in ONE_PAGE and len(names) > 1]
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="one-page") if ahead else None
    pages = {name: pool.submit(query_page, client, query(name)[0],
                               subscriptions=subscriptions, top=page_size, gate=gate,
                               what=query(name)[1]) for name in ahead}
    try:
        return _collect(client, subscriptions, names, gate, page_size, vm_ids, out, query,
                        pages, sink)
    finally:
        if pool is not None:
            pool.shutdown(wait=True)


def _collect(client, subscriptions: list[str], names: tuple[str, ...], gate: QuotaGate,
             page_size: int, vm_ids: list[str] | None, out: BatchRows, query,
             pages: dict[str, Future], sink: VmRowSink | None) -> BatchRows:
    for name in names:
        text, what = query(name)
        try:
            if name in SUMMARIZED:
                rows = _read_summarized(client, name, subscriptions, gate, page_size, what, out)
            elif name in ONE_PAGE:
                page = pages[name].result() if name in pages else query_page(
                    client, text, subscriptions=subscriptions, top=page_size, gate=gate,
                    what=what)
                rows = _one_page_rows(client, name, page, subscriptions, gate, page_size,
                                      what, out, vm_ids, sink)
            else:
                on_page = sink.add_page if sink is not None and name == "vms_with_items" \
                    else None
                got = read_all(client, text, subscriptions=subscriptions, top=page_size,
                               gate=gate, what=what, key=ROW_KEYS.get(name, "id"),
                               on_page=on_page)
                out.requests += got.requests
                rows = got.rows
                if got.repeated or got.step_backs:
                    out.repeated[name] = got.repeated
                    log.info("%s: %d row(s) read twice and kept once, %d page(s) asked again "
                             "(the estate changed between pages)", name, got.repeated,
                             got.step_backs)
        except AzureError as err:
            out.error = str(err)
            return out
        if not (sink is not None and name == "vms_with_items"):
            _keep(out.rows, name, rows)
    return out


def collect_vm_rows(client, subscriptions: list[str], vm_ids: list[str], *, gate: QuotaGate,
                    page_size: int = 1000) -> BatchRows:
    """The assessment's own queries restricted to ``vm_ids`` (up to about 1,000 VMs: one page
    of VM rows), for a look at a chunk of VMs right before they move.

    ``subscriptions`` must hold the VMs' subscriptions and their vaults' (an item in a vault of
    another subscription is found only if that subscription is named). The rows come in the
    shapes ``build_inventory`` reads (``vms``, ``protected_items``, ``vaults_and_sql``,
    ``special_disks``, ``disk_check``); an item whose VM is gone comes with no VM row. Each id
    goes into the query text (``where ... in (...)``: about 150 characters per VM; Resource
    Graph's limit on a query's length is unverified). ``error`` is set when a query could not
    be read."""
    ids = sorted({str(v).lower() for v in vm_ids})
    if not ids:
        return BatchRows(list(subscriptions), {name: [] for name in
                                              ("vms", "protected_items", "vaults_and_sql",
                                               "special_disks", "disk_check")})
    return collect_queries(client, subscriptions, QUERIES, gate, page_size, vm_ids=ids)


def restricted(query: str, vm_ids: list[str]) -> str:
    """``query`` with a ``where ... in (ids)`` after each line ``RESTRICT_AFTER`` names."""
    listed = ", ".join("'" + v.lower().replace("\\", "\\\\").replace("'", "\\'") + "'"
                       for v in vm_ids)
    lines = []
    for line in query.splitlines():
        lines.append(line)
        clause = RESTRICT_AFTER.get(line.strip())
        if clause:
            indent = line[:len(line) - len(line.lstrip())]
            lines.append(indent + clause.format(ids=listed))
    return "\n".join(lines) + "\n"


def _keep(rows: dict[str, list[dict]], name: str, got: list[dict]) -> None:
    """Store a query's rows under the names ``inventory.build`` reads."""
    if name == "vms_with_items":
        vms, items, sql = split_vm_rows(got)
        rows.setdefault("vms", []).extend(vms)
        rows.setdefault("protected_items", []).extend(items)
        rows.setdefault("vaults_and_sql", []).extend(sql)
    elif name == "vaults_and_special_disks":
        for row in got:
            if row.get("type") == DISK_TYPE:
                rows.setdefault("special_disks", []).append(
                    {k: row.get(k) for k in SPECIAL_FIELDS})
            else:
                rows.setdefault("vaults_and_sql", []).append(
                    {k: row.get(k) for k in VAULT_FIELDS})
        rows.setdefault("special_disks", [])
    else:
        rows.setdefault(name, []).extend(got)


def split_vm_rows(rows: list[dict], seen: set[str] | None = None,
                  ) -> tuple[list[dict], list[dict], list[dict]]:
    """``vms_with_items`` rows -> VM rows (one per VM), item rows and SQL registrations, each
    shaped like the rows of the separate queries they replace. The VM rows are the joined rows
    themselves, their other columns removed (at 100k VMs a copy cost about a hundred MB).
    ``seen`` (the VM keys already split, added to here) carries the split across pages: a VM's
    rows, one per item, may straddle two."""
    vms: list[dict] = []
    items: list[dict] = []
    sql: list[dict] = []
    seen = set() if seen is None else seen
    extra = [col for col, _ in ITEM_FIELDS] + ["vmKey", "sqlVmKey", "rowKey"]
    for row in rows:
        if row.get("itemId"):
            items.append({out: row.get(col) for col, out in ITEM_FIELDS})
        key = row.get("vmKey")
        if key and key not in seen:
            seen.add(key)
            if row.get("sqlVmKey"):
                sql.append({"type": SQL_TYPE, "vmKey": key})
            for col in extra:
                row.pop(col, None)
            vms.append(row)
    return vms, items, sql


def _one_page_rows(client, name: str, page, subscriptions: list[str], gate: QuotaGate,
                   top: int, what: str, out: BatchRows, vm_ids: list[str] | None,
                   sink: VmRowSink | None = None) -> list[dict]:
    """A summarize that fits a page; cut, its answer comes from the disks' plain rows."""
    out.requests += 1
    if not _cut(page):
        return page.rows
    if "vms" not in out.rows and sink is None:
        raise ValueError(f"{name} is read after vms_with_items, in the same call")
    log.warning("%s: %d row(s), more than a page; reading the disks' plain rows instead",
                name, page.total_records)
    grouped = _disk_rows_per_vm(client, subscriptions, gate, top, what, out, vm_ids)
    references = (sink.disk_references() if sink is not None
                  else [ref for vm in out.rows["vms"] for ref in _references(vm)])
    return check_from_references(references, grouped)


def _references(vm: dict) -> list[tuple[str, object]]:
    """(lower disk id, size the VM lists) of each managed disk ``vm`` references."""
    refs = [(vm.get("osDiskId") or "", vm.get("osDiskSizeGB"))]
    for disk in vm.get("dataDisks") or []:
        refs.append((((disk.get("managedDisk") or {}).get("id") or "").lower(),
                     disk.get("diskSizeGB")))
    return [(disk, size) for disk, size in refs if disk]


def check_from_disks(vms: list[dict], attached: list[dict]) -> list[dict]:
    """What ``disk_check.kql`` answers, worked out from VM rows and ``attached_disks`` rows
    (one per VM: ``disks`` = [id, sku, maxShares, dataAccessAuthMode, diskSizeGB] each)."""
    return check_from_references([ref for vm in vms for ref in _references(vm)], attached)


def check_from_references(references: list[tuple[str, object]],
                          attached: list[dict]) -> list[dict]:
    """``check_from_disks`` from the VMs' (lower disk id, size listed) references."""
    sizes = {entry[0]: entry[4] for row in attached for entry in (row.get("disks") or [])}
    listed: dict[str, list] = {}
    for disk, size in references:
        listed.setdefault(disk, []).append(size)
    out = []
    for disk in sorted(listed):
        profile = [s for s in listed[disk] if s is not None]
        if disk not in sizes:
            out.append({"disk": disk, "found": False, "resourceGB": None})
        elif sizes[disk] is not None and (not profile or min(profile) != sizes[disk]
                                          or max(profile) != sizes[disk]):
            out.append({"disk": disk, "found": True, "resourceGB": sizes[disk]})
    return out


def _cut(page) -> bool:
    return page.truncated or bool(page.skip_token) or len(page.rows) < page.total_records


def _slice(query: str, part: int, parts: int) -> str:
    if query.count(SLICE_AFTER) != 1:
        raise ValueError(f"the summarize query must hold {SLICE_AFTER.strip()!r} once")
    return query.replace(SLICE_AFTER,
                         f"{SLICE_AFTER}| where hash(tolower(managedBy), {parts}) == {part}\n")


def _read_summarized(client, name: str, subscriptions: list[str], gate: QuotaGate, top: int,
                     what: str, out: BatchRows) -> list[dict]:
    """A summarize read as pages of their own: the whole if it fits one, else hash slices."""
    query = queries.load(name)
    first = query_page(client, query, subscriptions=subscriptions, top=top, gate=gate,
                       what=what)
    out.requests += 1
    if not _cut(first):
        return first.rows
    parts = max(2, math.ceil(first.total_records / (top * SLICE_FILL)))
    todo = [(k, parts) for k in range(parts)]
    rows: dict[str, dict] = {}
    while todo:
        part, of = todo.pop()
        try:
            page = query_page(client, _slice(query, part, of), subscriptions=subscriptions,
                              top=top, gate=gate, what=what)
        except AzureError as err:
            if err.status == 400 and not rows:
                log.warning("%s: Resource Graph refused the sliced summarize (%s); reading "
                            "plain disk rows instead", name, err)
                return _disk_rows_per_vm(client, subscriptions, gate, top, what, out)
            raise
        out.requests += 1
        if _cut(page):  # more VMs than a page in this slice (the estate grew): halve it
            if of >= parts * MAX_SPLIT:
                # Slices that never fit (a summarize Azure answers otherwise than documented,
                # or a hash it spreads unevenly): plain rows cost pages, never a loop.
                log.warning("%s: hash slices still cut after %d halvings; reading plain "
                            "disk rows instead", name, MAX_SPLIT.bit_length() - 1)
                return _disk_rows_per_vm(client, subscriptions, gate, top, what, out)
            todo += [(part, of * 2), (part + of, of * 2)]
            continue
        for row in page.rows:
            if row["id"] in rows:
                out.repeated[name] = out.repeated.get(name, 0) + 1
            rows[row["id"]] = row
    return sorted(rows.values(), key=lambda r: r["id"])


def _disk_rows_per_vm(client, subscriptions: list[str], gate: QuotaGate, top: int, what: str,
                      out: BatchRows, vm_ids: list[str] | None = None) -> list[dict]:
    """The plain-row form of ``attached_disks``, grouped per VM into the same shape."""
    text = queries.load("attached_disk_rows")
    if vm_ids is not None:
        text = restricted(text, vm_ids)
    got = read_all(client, text, subscriptions=subscriptions, top=top, gate=gate, what=what)
    out.requests += got.requests
    if not got.rows:
        return []
    frame = pd.DataFrame.from_records(got.rows, columns=["id", "vm", "sku", "maxShares",
                                                         "dataAccessAuthMode", "diskSizeGB"])
    frame = frame.astype(object).where(frame.notna(), None)
    entries = pd.Series(list(zip(frame["id"], frame["sku"], frame["maxShares"],
                                 frame["dataAccessAuthMode"], frame["diskSizeGB"],
                                 strict=True)), index=frame.index).map(list)
    grouped = entries.groupby(frame["vm"], sort=True).agg(list)
    return [{"id": vm, "disks": disks} for vm, disks in grouped.items()]
