"""Read one batch of subscriptions through Resource Graph: the raw rows discovery needs.

Five queries a batch (``queries/*.kql``); the three per-VM ones cost about one page per 1,000
VMs each, the other two a page or so. Queries of a batch run side by side; the shared
``QuotaGate`` keeps all of them, across batches, inside the user's quota.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ..azure.resource_graph import QuotaGate, iter_pages
from ..errors import AzureError
from . import queries

QUERIES = ("vms", "protected_items", "attached_disks", "special_disks", "vaults_and_sql")


@dataclass
class BatchRows:
    """Rows of one subscription batch; ``error`` set means the batch could not be read whole."""

    subscriptions: list[str]
    rows: dict[str, list[dict]] = field(default_factory=dict)
    requests: int = 0
    error: str | None = None


def collect_batch(client, subscriptions: list[str], gate: QuotaGate,
                  page_size: int = 1000, workers: int = 3) -> BatchRows:
    out = BatchRows(list(subscriptions))

    def run(name: str) -> tuple[str, list[dict], int]:
        rows: list[dict] = []
        pages = 0
        for page in iter_pages(client, queries.load(name), subscriptions=subscriptions,
                               top=page_size, gate=gate,
                               what=f"reading {name.replace('_', ' ')} of "
                                    f"{len(subscriptions)} subscription(s)"):
            pages += 1
            rows.extend(page.rows)
        return name, rows, pages

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="arg") as pool:
        futures = [pool.submit(run, name) for name in QUERIES]
        for fut in futures:
            try:
                name, rows, pages = fut.result()
            except AzureError as err:
                # Partial results are honest: the whole batch is reported as not assessed.
                out.error = out.error or str(err)
                continue
            out.rows[name] = rows
            out.requests += pages
    return out
