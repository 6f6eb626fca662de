"""Read a batch of subscriptions through Resource Graph: the raw rows discovery needs.

Five queries (``queries/*.kql``); the three per-VM ones cost about one page per 1,000 VMs each,
the other two a page or so. They run in stages, one query at a time per batch (one query alone
already keeps the quota busy), so that the ARM work a stage unlocks (policies once protected
items are known, VM sizes once VMs are) overlaps with the next stage instead of waiting for all.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..azure.resource_graph import QuotaGate, iter_pages
from ..errors import AzureError
from . import queries

# Stage order matters: see the module docstring.
STAGES: tuple[tuple[str, ...], ...] = (
    ("vaults_and_sql", "special_disks"),
    ("protected_items",),
    ("vms",),
    ("attached_disks",),
)
QUERIES = tuple(name for stage in STAGES for name in stage)


@dataclass
class BatchRows:
    """Rows of some queries for one subscription batch; ``error`` set means they could not
    all be read (the batch is then reported as not assessed)."""

    subscriptions: list[str]
    rows: dict[str, list[dict]] = field(default_factory=dict)
    requests: int = 0
    error: str | None = None


def collect_queries(client, subscriptions: list[str], names: tuple[str, ...],
                    gate: QuotaGate, page_size: int = 1000) -> BatchRows:
    """Run ``names`` one after another over ``subscriptions``, following every page."""
    out = BatchRows(list(subscriptions))
    for name in names:
        rows: list[dict] = []
        try:
            for page in iter_pages(client, queries.load(name), subscriptions=subscriptions,
                                   top=page_size, gate=gate,
                                   what=f"reading {name.replace('_', ' ')} of "
                                        f"{len(subscriptions)} subscription(s)"):
                out.requests += 1
                rows.extend(page.rows)
        except AzureError as err:
            out.error = str(err)
            return out
        out.rows[name] = rows
    return out
