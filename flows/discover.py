"""``ccmigrate discover``: which subscriptions and VMs are in scope, read through Resource Graph.

A quick census before an assessment: it proves the credential, the endpoint and the scope work,
and shows how many VMs each subscription and region holds. One Prefect task per subscription
batch (never per VM), paging 1,000 rows at a time under the Resource Graph quota.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import typer

from tasks.settings import Settings

from . import options as opt


def census_batch(settings: Settings, subscriptions: list[str], gate) -> dict[str, Any]:
    """Count VMs by subscription and region for one batch of subscriptions."""
    import pandas as pd

    from tasks.azure.clients import AzureAccess
    from tasks.azure.resource_graph import read_all
    from tasks.discovery import queries
    from tasks.discovery.scope import excluded_mask

    access = AzureAccess(settings)
    # Pages are separate queries (paging-results.md): read_all keeps each VM once even when
    # the estate changes while it is counted.
    got = read_all(access.resource_graph(), queries.load("vm_census"),
                   subscriptions=subscriptions, top=settings.throttles.arg_page_size,
                   gate=gate, what="listing VMs")
    rows = pd.DataFrame.from_records(got.rows, columns=["subscriptionId", "resourceGroup",
                                                        "location", "tags"])
    drop = excluded_mask(rows, settings)
    return {"by_subscription": dict(Counter(rows.loc[~drop, "subscriptionId"].tolist())),
            "by_region": dict(Counter(rows.loc[~drop, "location"].tolist())),
            "requests": got.requests, "excluded": int(drop.sum())}


def run_discovery(settings: Settings) -> dict[str, Any]:
    """The discovery flow: scope, then one task per subscription batch."""
    from prefect import flow, task
    from prefect.cache_policies import NO_CACHE

    from tasks.azure.clients import AzureAccess
    from tasks.azure.resource_graph import QuotaGate
    from tasks.discovery.scope import batches, resolve_scope

    gate = QuotaGate()
    batch_task = task(census_batch, name="census-batch", cache_policy=NO_CACHE)

    @flow(name="discover", log_prints=False)
    def discover(settings: Settings) -> dict[str, Any]:
        started = time.monotonic()
        scope = resolve_scope(settings, AzureAccess(settings).resource_graph(), gate)
        futures = [batch_task.submit(settings, b, gate)
                   for b in batches(scope.ids, settings.throttles.arg_batch_size)]
        by_sub: Counter[str] = Counter()
        by_region: Counter[str] = Counter()
        requests, excluded = scope.requests, 0
        for fut in futures:
            part = fut.result()
            by_sub.update(part["by_subscription"])
            by_region.update(part["by_region"])
            requests += part["requests"]
            excluded += part["excluded"]
        names = {s["subscriptionId"]: s.get("name", "") for s in scope.subscriptions}
        return {
            "subscriptions": [{"subscriptionId": s, "name": names.get(s, ""),
                               "vms": by_sub.get(s, 0)} for s in scope.ids],
            "excluded_subscriptions": scope.excluded,
            "vms": sum(by_sub.values()),
            "vms_excluded": excluded,
            "by_region": dict(sorted(by_region.items())),
            "resource_graph_requests": requests,
            "seconds": round(time.monotonic() - started, 2),
        }

    return discover(settings)


def print_census(result: dict[str, Any]) -> None:
    typer.echo(f"{result['vms']} VMs in {len(result['subscriptions'])} subscriptions "
               f"({result['resource_graph_requests']} Resource Graph requests, "
               f"{result['seconds']} s)")
    for sub in result["subscriptions"]:
        typer.echo(f"  {sub['subscriptionId']}  {sub['name']:<28} {sub['vms']:>7} VMs")
    if result["by_region"]:
        typer.echo("  by region: " + ", ".join(f"{k} {v}" for k, v in result["by_region"].items()))
    if result["vms_excluded"] or result["excluded_subscriptions"]:
        typer.echo(f"  excluded: {result['vms_excluded']} VMs, "
                   f"{len(result['excluded_subscriptions'])} subscriptions")


def discover_command(
    demo: opt.Demo = None,
    fleet: opt.Fleet = None,
    timing: opt.Timing = "fast",
    time_scale: opt.TimeScale = 1.0,
    config: opt.Config = None,
    endpoint: opt.Endpoint = None,
    ca_bundle: opt.CaBundle = None,
    credential: opt.Credential = None,
    state_store: opt.StateStore = None,
    subscription: opt.Subscriptions = None,
    management_group: opt.ManagementGroups = None,
) -> None:
    """Count the subscriptions and VMs in scope through Resource Graph."""
    from .emulated import azure_target, emulator_config
    from .prefect_runtime import prefect_runtime

    settings = opt.build_settings(config=config, endpoint=endpoint, ca_bundle=ca_bundle,
                                  credential=credential, state_store=state_store,
                                  subscriptions=subscription, management_groups=management_group)
    emu_config = emulator_config(timing, time_scale)
    with azure_target(settings, demo, fleet, emu_config) as target, prefect_runtime():
        print_census(run_discovery(target))
