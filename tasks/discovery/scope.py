"""Which subscriptions a run covers: resolved through Resource Graph, checked, batched.

An unknown or inaccessible subscription is an input error (exit 2) named with the fix; an
empty scope is too. Exclusions by subscription apply here; by resource group and tag they apply
to the VMs found.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import pandas as pd

from ..errors import AuthorizationError, InputError
from ..settings import Settings
from . import queries


@dataclass
class Scope:
    subscriptions: list[dict] = field(default_factory=list)  # {subscriptionId, name, state}
    excluded: list[str] = field(default_factory=list)
    requests: int = 0

    @property
    def ids(self) -> list[str]:
        return [s["subscriptionId"] for s in self.subscriptions]


# Past this many subscriptions from a tenant or management-group scope, the list is checked
# against ARM even without the limit header: the docs disagree on the cap (10,000 in
# guidance-for-throttled-requests.md, 5,000 for management groups in query-language.md) and
# whether a management-group cut sends the header is unverified, so the lower number counts.
SUSPICIOUS_COUNT = 5_000


def resolve_scope(settings: Settings, client, gate=None) -> Scope:
    """List the subscriptions in scope, as Resource Graph sees them for this credential.

    A tenant or management-group scope may come back cut to its first 10,000 / 5,000
    subscriptions (``x-ms-tenant-subscription-limit-hit``): then, or when the count looks like
    such a cut, the subscriptions come from ARM's ``GET /subscriptions`` instead, and a
    management group's are picked from those through Resource Graph in explicit batches of at
    most 1,000 (which no cap applies to). Every later query names its subscriptions anyway.
    """
    from ..azure.resource_graph import read_all

    wanted = settings.scope.subscriptions
    mgs = settings.scope.management_groups
    rows: list[dict] = []
    requests = 0
    limit_hit = False
    what = "listing the subscriptions in scope"
    try:
        for group in (batches(wanted, 1000) if wanted else [None]):
            got = read_all(client, queries.load("subscriptions"), subscriptions=group,
                           management_groups=(mgs or None) if not wanted else None,
                           top=settings.throttles.arg_page_size, gate=gate, what=what)
            requests += got.requests
            limit_hit |= got.limit_hit
            rows.extend(got.rows)
        if not wanted and (limit_hit or len(rows) >= SUSPICIOUS_COUNT):
            rows, more = _beyond_the_cap(client, mgs, settings, gate)
            requests += more
    except AuthorizationError as err:
        if wanted or mgs:
            raise InputError(f"the scope is not readable: {err}. Check --subscription / "
                             "--management-group") from err
        raise
    seen = {r["subscriptionId"].lower() for r in rows}
    missing = [s for s in wanted if s.lower() not in seen]
    if missing:
        raise InputError(
            f"subscription {missing[0]} is not visible to this credential (unknown id or no "
            "Reader access); check --subscription, or grant the identity Reader on it")
    excluded = {s.lower() for s in settings.scope.exclude_subscriptions}
    kept = [r for r in rows if r["subscriptionId"].lower() not in excluded]
    if not kept:
        raise InputError(
            "the scope is empty: no subscription is visible with these settings "
            f"(subscriptions={wanted or 'all'}, management groups="
            f"{mgs or 'none'}, excluded="
            f"{settings.scope.exclude_subscriptions or 'none'}); check the scope flags")
    return Scope(sorted(kept, key=lambda r: r["subscriptionId"]),
                 [r["subscriptionId"] for r in rows if r["subscriptionId"].lower() in excluded],
                 requests)


def _beyond_the_cap(client, mgs: list[str], settings: Settings, gate) -> tuple[list[dict], int]:
    """All subscriptions of a tenant (ARM's list), or of management groups (ARM's list, then
    Resource Graph over explicit batches, keeping those under one of ``mgs``)."""
    from ..azure.resource_graph import read_all
    from ..azure.subscriptions import list_subscriptions

    listed = list_subscriptions(client)
    if not mgs:
        return listed, 0
    names = ", ".join("'" + m.replace("'", "") + "'" for m in mgs)
    # The subscriptions resourcecontainers row lists its management-group ancestors
    # (properties.managementGroupAncestorsChain, MD governance/management-groups/
    # resource-graph-samples.md); a subscription under any of ``mgs`` is in scope.
    query = ("ResourceContainers\n| where type == 'microsoft.resources/subscriptions'\n"
             "| mv-expand mg = properties.managementGroupAncestorsChain\n"
             f"| where tostring(mg.name) in~ ({names})\n"
             "| project id, subscriptionId, name, state = tostring(properties.state)\n"
             "| order by id asc")
    found: dict[str, dict] = {}
    requests = 0
    for group in batches([s["subscriptionId"] for s in listed], 1000):
        got = read_all(client, query, subscriptions=group, top=settings.throttles.arg_page_size,
                       gate=gate, what="finding the management groups' subscriptions")
        requests += got.requests
        for row in got.rows:
            found.setdefault(row["subscriptionId"].lower(), row)
    return list(found.values()), requests


def batches(ids: Iterable[str], size: int) -> list[list[str]]:
    """Subscription batches for Resource Graph (<= 1000 per request; default 300)."""
    items = list(ids)
    return [items[i:i + size] for i in range(0, len(items), size)]


def excluded_mask(rows: pd.DataFrame, settings: Settings) -> pd.Series:
    """True for resource rows (``subscriptionId``, ``resourceGroup``, ``tags`` columns) that a
    resource-group or tag exclusion of the scope drops."""
    scope = settings.scope
    mask = pd.Series(False, index=rows.index)
    if not len(rows):
        return mask
    if scope.exclude_resource_groups:
        rg = rows["resourceGroup"].str.lower()
        sub_rg = rows["subscriptionId"].str.lower() + "/" + rg
        wanted = {s.lower() for s in scope.exclude_resource_groups}
        mask |= rg.isin(wanted) | sub_rg.isin(wanted)
    for spec in scope.exclude_tags:
        name, _, value = spec.partition("=")
        name = name.strip().lower()
        got = pd.Series([next((str(v) for k, v in (t or {}).items() if k.lower() == name), None)
                         for t in rows["tags"]], index=rows.index)
        mask |= got.notna() & ((got == value) if value else True)
    return mask
