"""The real ResourceGraphClient against the emulator: paging, totals, the per-user quota."""

from __future__ import annotations

import time

import pytest

from emulator.generator import generate_fleet
from emulator.server import Emulator
from flows.options import with_emulator_principal
from tasks.azure.clients import AzureAccess
from tasks.azure.resource_graph import QuotaGate, iter_pages, query_page
from tasks.errors import AzureError
from tasks.settings import load_settings

VM_QUERY = ("Resources | where type == 'microsoft.compute/virtualmachines' "
            "| project id, name, location | order by id asc")


@pytest.fixture(scope="module")
def big_emulator():
    fleet = generate_fleet(vms=5000, subscriptions=4, seed=11)
    with Emulator(fleet) as emu:
        yield emu, fleet


def _access(emu, **throttles) -> AzureAccess:
    settings = with_emulator_principal(load_settings(environ={}), emu.connection_info())
    if throttles:
        settings = settings.model_copy(update={
            "throttles": settings.throttles.model_copy(update=throttles)})
    return AzureAccess(settings)


def test_five_thousand_vms_come_in_pages_of_1000_with_skip_tokens(big_emulator):
    emu, fleet = big_emulator
    expected = sorted(r["id"] for r in fleet["resources"]
                      if r["type"] == "Microsoft.Compute/virtualMachines")
    client = _access(emu).resource_graph()
    pages = list(iter_pages(client, VM_QUERY, top=1000, gate=QuotaGate()))
    assert [len(p.rows) for p in pages] == [1000] * 5
    assert all(p.total_records == 5000 for p in pages)
    assert [bool(p.skip_token) for p in pages] == [True] * 4 + [False]
    ids = [row["id"] for p in pages for row in p.rows]
    assert len(ids) == 5000 and set(ids) == set(expected)


def test_query_without_id_is_truncated_instead_of_paged(big_emulator):
    emu, _ = big_emulator
    client = _access(emu).resource_graph()
    page = query_page(client, "Resources | where type == 'microsoft.compute/virtualmachines' "
                              "| project name", top=1000)
    assert page.truncated and page.skip_token is None and len(page.rows) == 1000


def test_quota_exceeded_gives_429_and_recovers_after_resets_after(big_emulator):
    emu, _ = big_emulator
    # No HTTP retries, so the 429 reaches us instead of being absorbed by the RetryPolicy.
    client = _access(emu, http_retries=0).resource_graph()
    time.sleep(emu.config.arg_window)  # start from a fresh quota window
    last = None
    for _ in range(emu.config.arg_quota):
        last = query_page(client, VM_QUERY, top=1)
    assert last is not None and last.quota_remaining == 0
    with pytest.raises(AzureError) as err:
        query_page(client, VM_QUERY, top=1)
    assert err.value.status == 429
    assert "RateLimiting" in str(err.value)
    time.sleep(last.quota_resets_after)
    again = query_page(client, VM_QUERY, top=1)
    assert again.rows and again.quota_remaining == emu.config.arg_quota - 1


def test_quota_gate_paces_concurrent_queries_so_no_429_happens(big_emulator):
    from concurrent.futures import ThreadPoolExecutor

    emu, _ = big_emulator
    client = _access(emu, http_retries=0).resource_graph()  # a 429 would raise
    gate = QuotaGate()
    time.sleep(emu.config.arg_window)
    with ThreadPoolExecutor(4) as pool:  # more than one window's worth, four at a time
        pages = list(pool.map(lambda _: query_page(client, VM_QUERY, top=1, gate=gate),
                              range(emu.config.arg_quota + 8)))
    assert len(pages) == emu.config.arg_quota + 8
    assert gate.throttled == 0 and gate.waited > 0


def test_unsupported_kql_is_rejected_with_args_error(big_emulator):
    emu, _ = big_emulator
    client = _access(emu).resource_graph()
    with pytest.raises(AzureError) as err:
        query_page(client, "Resources | frobnicate id")
    assert err.value.status == 400
    assert "frobnicate" in str(err.value) or "BadRequest" in str(err.value)


def test_subscription_and_management_group_scopes(big_emulator):
    emu, fleet = big_emulator
    client = _access(emu).resource_graph()
    sub = fleet["subscriptions"][0]["subscriptionId"]
    page = query_page(client, VM_QUERY, subscriptions=[sub], top=1000)
    assert {r["id"].split("/")[2] for r in page.rows} == {sub}
    mg = fleet["managementGroups"][0]
    page = query_page(client, "ResourceContainers | where type == "
                      "'microsoft.resources/subscriptions' | project id, subscriptionId",
                      management_groups=[mg["name"]])
    assert {r["subscriptionId"] for r in page.rows} == {s.lower() for s in mg["subscriptions"]}


def test_more_than_1000_subscriptions_in_one_request_is_refused(big_emulator):
    emu, _ = big_emulator
    client = _access(emu).resource_graph()
    subs = [f"00000000-0000-4000-8000-{i:012d}" for i in range(1001)]
    with pytest.raises(AzureError) as err:
        query_page(client, VM_QUERY, subscriptions=subs)
    assert err.value.status == 400
