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


def resolve_scope(settings: Settings, client, gate=None) -> Scope:
    """List the subscriptions in scope, as Resource Graph sees them for this credential."""
    from ..azure.resource_graph import iter_pages

    wanted = settings.scope.subscriptions
    rows: list[dict] = []
    requests = 0
    pages = iter_pages(client, queries.load("subscriptions"), subscriptions=wanted or None,
                       management_groups=settings.scope.management_groups or None,
                       top=settings.throttles.arg_page_size, gate=gate,
                       what="listing the subscriptions in scope")
    try:
        for page in pages:
            requests += 1
            rows.extend(page.rows)
    except AuthorizationError as err:
        if wanted or settings.scope.management_groups:
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
            f"{settings.scope.management_groups or 'none'}, excluded="
            f"{settings.scope.exclude_subscriptions or 'none'}); check the scope flags")
    return Scope(sorted(kept, key=lambda r: r["subscriptionId"]),
                 [r["subscriptionId"] for r in rows if r["subscriptionId"].lower() in excluded],
                 requests)


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
