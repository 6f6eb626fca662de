"""Resource Graph as Microsoft documents it, through the real ResourceGraphClient over HTTPS:
every page is its own query (rows repeat or vanish when the estate changes between pages), a
summarize is served as its first page only, tenant and management-group scopes are capped with
``x-ms-tenant-subscription-limit-hit``; and ccmigrate's discovery stays right under all of it."""

from __future__ import annotations

import collections
import time

import pytest
import requests

from emulator.arm_types import ITEM, VM
from emulator.config import EmulatorConfig
from emulator.generator import generate_fleet
from emulator.server import Emulator
from flows.options import with_emulator_principal
from tasks.azure.clients import AzureAccess
from tasks.azure.resource_graph import QuotaGate, query_page, read_all
from tasks.discovery import queries
from tasks.discovery.collect import collect_queries
from tasks.discovery.scope import resolve_scope
from tasks.settings import load_settings

VMS = ("Resources | where type == 'microsoft.compute/virtualmachines' "
       "| project id, name | order by id asc")


def _settings(emu, **scope):
    settings = with_emulator_principal(load_settings(environ={}), emu.connection_info())
    if scope:
        settings = settings.model_copy(update={
            "scope": settings.scope.model_copy(update=scope)})
    return settings


def _client(emu):
    return AzureAccess(_settings(emu)).resource_graph()


def _vm_ids(emu) -> list[str]:
    return sorted((v["id"] for v in emu.world.state.of_type(VM)), key=str.lower)


@pytest.fixture
def fleet_1500():
    return generate_fleet(vms=1500, subscriptions=3, seed=5)


def test_a_vm_deleted_between_pages_makes_a_vm_that_stayed_vanish(fleet_1500):
    with Emulator(fleet_1500) as emu:
        client = _client(emu)
        first = query_page(client, VMS, top=1000)
        before = [r["id"] for r in first.rows]
        stayed = _vm_ids(emu)[1000]  # first row of the next page, as the estate was
        emu.world.state.delete(before[10])
        second = query_page(client, VMS, top=1000, skip_token=first.skip_token)
        ids = before + [r["id"] for r in second.rows]
        assert stayed in _vm_ids(emu)  # it never went away ...
        assert stayed not in ids  # ... yet no page showed it
        assert second.total_records == 1499


def test_a_vm_created_between_pages_makes_a_row_repeat(fleet_1500):
    with Emulator(fleet_1500) as emu:
        client = _client(emu)
        first = query_page(client, VMS, top=1000)
        template = emu.world.state.get(first.rows[0]["id"])
        early = dict(template, id=template["id"][:-1] + "0-new", name="aaa-new")
        emu.world.state.put(early)
        second = query_page(client, VMS, top=1000, skip_token=first.skip_token)
        assert second.rows[0]["id"] == first.rows[-1]["id"]  # shifted by the new row


def test_read_all_keeps_every_vm_that_stayed_exactly_once_under_churn(fleet_1500):
    config = EmulatorConfig(arg_churn=0.01, seed=3)
    with Emulator(fleet_1500, config=config) as emu:
        start = set(_vm_ids(emu))
        got = read_all(_client(emu), VMS, top=200)
        end = set(_vm_ids(emu))
        stats = emu.world.services["arg_churn"].stats
        counts = collections.Counter(r["id"] for r in got.rows)
        assert stats["create"] and stats["delete"] and stats["edit"]
        assert all(n == 1 for n in counts.values())
        assert start & end <= set(counts)  # every VM present throughout, once
        # Changes are real: ARM's view (the state dump) has them too.
        state = requests.get(f"{emu.endpoint}/_emulator/state", verify=emu.ca_bundle,
                             timeout=30).json()
        dumped = {r["id"] for r in state["resources"] if r["type"].lower() == VM}
        assert dumped == end and dumped != start


def test_read_all_asks_the_next_page_while_the_caller_takes_in_this_one(fleet_1500):
    # The next page's request is out before ``on_page`` returns (the answer's trip overlaps
    # the caller's work), yet no request is spent that paging one by one would not make.
    with Emulator(fleet_1500) as emu:
        counted_during: list[int] = []  # requests Azure had seen while page k was taken in

        def take(rows: list[dict]) -> None:
            page = len(counted_during) + 1
            deadline = time.monotonic() + 30
            while emu.stats().get("arg", 0) <= page and time.monotonic() < deadline:
                if len(rows) < 400 - 8:
                    break  # the last page (pages overlap by 8 rows): nothing follows it
                time.sleep(0.01)
            counted_during.append(emu.stats().get("arg", 0))

        got = read_all(_client(emu), VMS, top=400, on_page=take)
        pages = -(-1500 // (400 - 8))
        assert got.requests == pages == emu.stats()["arg"]
        assert counted_during == [2, 3, 4, 4]  # page k + 1 asked before page k was taken in


def test_a_deleted_vms_protected_item_stays_and_a_created_vm_brings_its_disks(fleet_1500):
    config = EmulatorConfig(arg_churn=0.02, seed=4)
    with Emulator(fleet_1500, config=config) as emu:
        state = emu.world.state
        items_of = {i["properties"]["sourceResourceId"].lower(): i["id"]
                    for i in state.of_type(ITEM)}
        start = set(_vm_ids(emu))
        read_all(_client(emu), VMS, top=100)
        end = set(_vm_ids(emu))
        gone = [v for v in start - end if v.lower() in items_of]
        assert gone and all(state.get(items_of[v.lower()]) for v in gone)
        created = [state.get(v) for v in end - start]
        assert created
        disks = 0
        for vm in created:
            profile = vm["properties"]["storageProfile"]
            for entry in [profile["osDisk"], *profile.get("dataDisks", [])]:
                disk_id = (entry.get("managedDisk") or {}).get("id")
                disk = state.get(disk_id) if disk_id else None
                if disk is not None:  # (a copy of a VM whose disk is missing lacks it too)
                    assert disk["managedBy"] == vm["id"]
                    disks += 1
        assert disks >= len(created)


def test_summarize_is_served_as_its_first_page_only(fleet_1500):
    per_vm = ("Resources | where type == 'microsoft.compute/disks' "
              "| where isnotempty(managedBy) | summarize n = count() by id = tolower(managedBy)"
              " | order by id asc")
    with Emulator(fleet_1500) as emu:
        client = _client(emu)
        first = query_page(client, per_vm, top=1000)
        again = query_page(client, per_vm, top=1000, skip=1000)
        assert first.truncated and first.skip_token is None and len(first.rows) == 1000
        assert first.total_records > 1000
        assert [r["id"] for r in again.rows] == [r["id"] for r in first.rows]


def test_attached_disks_are_read_in_slices_that_each_fit_one_page(fleet_1500):
    with Emulator(fleet_1500) as emu:
        subs = sorted(emu.world.state.subscriptions)
        got = collect_queries(_client(emu), subs, ("attached_disks",), QuotaGate(),
                              page_size=500)
        expected: dict[str, set[str]] = collections.defaultdict(set)
        for disk in emu.world.state.of_type("microsoft.compute/disks"):
            if disk.get("managedBy"):
                expected[disk["managedBy"].lower()].add(disk["id"].lower())
        rows = got.rows["attached_disks"]
        assert got.error is None
        assert len(rows) == len({r["id"] for r in rows}) == len(expected)
        assert {r["id"]: {d[0] for d in r["disks"]} for r in rows} == expected
        assert got.requests <= 1 + 2 * -(-len(expected) // 450)  # first look + slices


def _many_subscriptions(subs: int, vms: int) -> dict:
    fleet = generate_fleet(vms=vms, subscriptions=subs, seed=9)
    ids = [s["subscriptionId"] for s in fleet["subscriptions"]]
    fleet["managementGroups"] = [{"name": "mg-all", "subscriptions": ids}]
    return fleet


def test_tenant_scope_sees_the_first_subscriptions_up_to_the_cap_with_the_header():
    fleet = _many_subscriptions(5, 50)
    config = EmulatorConfig(arg_tenant_subscription_limit=3)
    with Emulator(fleet, config=config) as emu:
        client = _client(emu)
        tenant = query_page(client, queries.load("subscriptions"))
        named = query_page(client, queries.load("subscriptions"),
                           subscriptions=[s["subscriptionId"] for s in fleet["subscriptions"]])
        assert len(tenant.rows) == 3 and tenant.limit_hit
        assert len(named.rows) == 5 and not named.limit_hit


def test_management_group_scope_is_capped_with_the_header():
    fleet = _many_subscriptions(5, 50)
    config = EmulatorConfig(arg_management_group_subscription_limit=2)
    with Emulator(fleet, config=config) as emu:
        page = query_page(_client(emu), queries.load("subscriptions"),
                          management_groups=["mg-all"])
        assert len(page.rows) == 2 and page.limit_hit


@pytest.mark.parametrize("scope", [{}, {"management_groups": ["mg-all"]}])
def test_scope_past_the_cap_still_lists_every_subscription(scope):
    fleet = _many_subscriptions(5, 50)
    config = EmulatorConfig(arg_tenant_subscription_limit=2,
                            arg_management_group_subscription_limit=2)
    with Emulator(fleet, config=config) as emu:
        settings = _settings(emu, **scope)
        got = resolve_scope(settings, AzureAccess(settings).resource_graph(), QuotaGate())
        assert sorted(got.ids) == sorted(s["subscriptionId"] for s in fleet["subscriptions"])


def _assess(tmp_path, fleet: dict, config: EmulatorConfig, page_size: int = 1000):
    import csv

    from flows.assess import run_assessment
    from flows.emulated import emulated

    settings = load_settings(environ={}, flags={"state_store": f"sqlite:///{tmp_path}/s.db"})
    settings = settings.model_copy(update={"throttles": settings.throttles.model_copy(
        update={"arg_page_size": page_size})})
    with emulated(settings, fleet, config) as (emu, emu_settings):
        start = set(_vm_ids(emu))
        outcome = run_assessment(emu_settings, tmp_path / "out")
        end = set(_vm_ids(emu))
    with (tmp_path / "out" / "readiness.csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return outcome, rows, start, end


def test_an_assessment_under_churn_scores_every_vm_that_stayed_exactly_once(
        prefect_api, tmp_path, fleet_1500):
    outcome, rows, start, end = _assess(tmp_path, fleet_1500,
                                        EmulatorConfig(arg_churn=0.005, seed=8), page_size=250)
    counts = collections.Counter(r["vm_id"] for r in rows)
    assert start != end
    assert all(n == 1 for n in counts.values())
    assert start & end <= set(counts)
    assert outcome.summary["vms"] == len(rows)


def test_an_assessment_at_tenant_scope_past_the_cap_sees_every_subscription(
        prefect_api, tmp_path):
    fleet = _many_subscriptions(5, 60)
    _, rows, start, _ = _assess(tmp_path, fleet, EmulatorConfig(arg_tenant_subscription_limit=2))
    assert {r["subscription_id"] for r in rows} == {
        s["subscriptionId"].lower() for s in fleet["subscriptions"]}
    assert {r["vm_id"] for r in rows} == start


def test_hash_slices_split_the_rows_and_halve_consistently(fleet_1500):
    def ids(parts: int, part: int) -> set[str]:
        query = ("Resources | where type == 'microsoft.compute/virtualmachines' "
                 f"| where hash(tolower(id), {parts}) == {part} | project id | order by id asc")
        return {r["id"] for r in query_page(client, query, top=1000).rows}

    with Emulator(fleet_1500) as emu:
        client = _client(emu)
        thirds = [ids(3, k) for k in range(3)]
        assert sum(len(t) for t in thirds) == 1500 and set().union(*thirds) == set(_vm_ids(emu))
        assert ids(6, 1) | ids(6, 4) == thirds[1] and not ids(6, 1) & ids(6, 4)


def test_the_plain_disk_rows_fallback_gives_the_same_disks_per_vm(fleet_1500):
    from tasks.discovery.collect import BatchRows, _disk_rows_per_vm

    with Emulator(fleet_1500) as emu:
        subs = sorted(emu.world.state.subscriptions)
        client = _client(emu)
        sliced = collect_queries(client, subs, ("attached_disks",), QuotaGate(), page_size=500)
        plain = _disk_rows_per_vm(client, subs, QuotaGate(), 500, "reading disks",
                                  BatchRows(subs))

        def disks(rows):
            return {r["id"]: sorted(tuple(d) for d in r["disks"]) for r in rows}

        assert disks(plain) == disks(sliced.rows["attached_disks"])
