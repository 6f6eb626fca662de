"""Read a batch of subscriptions through Resource Graph: the raw rows discovery needs.

Five queries (``queries/*.kql``); the three per-VM ones cost about one request per 1,000 VMs
each, the other two a request or so. They run in stages, one query at a time per batch (one
query alone already keeps the quota busy), so that the ARM work a stage unlocks (policies once
protected items are known, VM sizes once VMs are) overlaps with the next stage instead of
waiting for all.

Every page is its own query in Azure (MD ``concepts/paging-results.md``, "Pagination in dynamic
environments"), so plain queries are read with ``read_all`` (overlapping ``$skip`` pages, each
``id`` once, repeats counted), and the one ``summarize`` (``attached_disks``) is never paged:
Resource Graph serves a summarize as its first page only ("Simplified first page only", MD
``concepts/query-language.md``). Past one page it is asked in hash slices of the VM id that each
fit a page; a slice that still comes back cut is split in two. If Resource Graph refuses the
slices (that ARG accepts Kusto's ``hash()`` is unverified), the disks are read as plain rows and
grouped per VM here.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import pandas as pd

from ..azure.resource_graph import QuotaGate, query_page, read_all
from ..errors import AzureError
from . import queries

log = logging.getLogger(__name__)

# Stage order matters: see the module docstring.
STAGES: tuple[tuple[str, ...], ...] = (
    ("vaults_and_sql", "special_disks"),
    ("protected_items",),
    ("vms",),
    ("attached_disks",),
)
QUERIES = tuple(name for stage in STAGES for name in stage)
SUMMARIZED = {"attached_disks"}
SLICE_AFTER = "| where isnotempty(managedBy)\n"
SLICE_FILL = 0.9  # slices aim at 90 % of a page, so few come back cut
# Halving may make at most this many times the first count of slices; then plain rows.
MAX_SPLIT = 16


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
                    gate: QuotaGate, page_size: int = 1000) -> BatchRows:
    """Run ``names`` one after another over ``subscriptions``, reading every row once."""
    out = BatchRows(list(subscriptions))
    for name in names:
        what = f"reading {name.replace('_', ' ')} of {len(subscriptions)} subscription(s)"
        try:
            if name in SUMMARIZED:
                rows = _read_summarized(client, name, subscriptions, gate, page_size, what, out)
            else:
                got = read_all(client, queries.load(name), subscriptions=subscriptions,
                               top=page_size, gate=gate, what=what)
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
        out.rows[name] = rows
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
                      out: BatchRows) -> list[dict]:
    """The plain-row form of ``attached_disks``, grouped per VM into the same shape."""
    got = read_all(client, queries.load("attached_disk_rows"), subscriptions=subscriptions,
                   top=top, gate=gate, what=what)
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
