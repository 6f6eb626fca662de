"""Discovery near Resource Graph's page floor: one row per VM with its protected items joined
on, the rare disk facts in a one-page check, and the same verdicts the per-disk queries gave;
a chunk of VMs read through the same queries gives the same rows as the whole estate."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from emulator.generator import generate_fleet
from emulator.server import Emulator
from flows.options import with_emulator_principal
from tasks.azure.clients import AzureAccess
from tasks.azure.resource_graph import QuotaGate
from tasks.discovery.collect import QUERIES, collect_queries, collect_vm_rows
from tasks.discovery.policies import read_policies
from tasks.discovery.skus import read_skus
from tasks.inventory.build import build_inventory, sku_pairs, vaults_to_read
from tasks.rules.engine import RuleContext, load_pack, score
from tasks.settings import load_settings

PER_DISK = ("vaults_and_sql", "special_disks", "protected_items", "vms", "attached_disks")
VERDICT = ["vm_key", "readiness", "blockers", "warnings", "unknowns", "infos", "target_policy",
           "provisioned_gb", "vault", "policy_name"]


@pytest.fixture(scope="module")
def estate():
    """A generated estate served by the emulator (every rule's case appears in it)."""
    fleet = generate_fleet(vms=2500, subscriptions=3, seed=11)
    with Emulator(fleet) as emu:
        settings = with_emulator_principal(load_settings(environ={}), emu.connection_info())
        access = AzureAccess(settings)
        subs = sorted(emu.world.state.subscriptions)
        yield emu, settings, access, subs


def _verdicts(estate, rows) -> pd.DataFrame:
    _emu, settings, access, _subs = estate
    facts = read_policies(access, vaults_to_read(rows["protected_items"]))
    skus = read_skus(access, sku_pairs(rows["vms"])).frame
    inventory = build_inventory(rows, facts.policies, skus, settings, facts.item_states)
    scored = score(inventory.vms, inventory.disks, load_pack(settings.rules),
                   RuleContext.from_settings(settings), settings.rules.target_policy_template)
    return scored[VERDICT].sort_values("vm_key").reset_index(drop=True)


def test_an_estate_costs_about_one_request_per_thousand_vms(estate):
    _emu, _settings, access, subs = estate
    got = collect_queries(access.resource_graph(), subs, QUERIES, QuotaGate())
    vms = len(got.rows["vms"])
    assert got.error is None and vms == 2500
    assert got.requests <= 1.5 * math.ceil(vms / 1000) + 2


def test_verdicts_and_sizes_are_those_the_per_disk_queries_gave(estate):
    _emu, _settings, access, subs = estate
    client = access.resource_graph()
    per_disk = collect_queries(client, subs, PER_DISK, QuotaGate())
    floor = collect_queries(client, subs, QUERIES, QuotaGate())
    assert floor.requests < per_disk.requests
    before, after = _verdicts(estate, per_disk.rows), _verdicts(estate, floor.rows)
    fired = ";".join(before[["blockers", "warnings", "unknowns"]].to_numpy().ravel())
    assert "DISK_NOT_FOUND" in fired and "SHARED_DISK" in fired
    pd.testing.assert_frame_equal(before, after)


def test_a_disk_check_longer_than_a_page_is_answered_from_the_disks_rows(estate):
    emu, _settings, access, subs = estate
    client = access.resource_graph()
    vms = collect_queries(client, subs, ("vms_with_items",), QuotaGate()).rows["vms"]
    chosen = [vm for vm in vms if vm["osDiskId"]][:40]
    disks = [emu.world.state.get(vm["osDiskId"]) for vm in chosen]
    for disk in disks[:30]:  # resized: 30 rows in the check, more than a page of 25
        emu.world.state.put({**disk, "properties": {**disk["properties"], "diskSizeGB": 999}})
    try:
        ids = [vm["id"] for vm in chosen]
        whole = collect_vm_rows(client, subs, ids, gate=QuotaGate())
        cut = collect_vm_rows(client, subs, ids, gate=QuotaGate(), page_size=25)
    finally:
        for disk in disks:
            emu.world.state.put(disk)
    assert cut.error is None and len(whole.rows["disk_check"]) >= 30
    assert cut.rows["disk_check"] == whole.rows["disk_check"]


def test_a_resized_disk_counts_at_its_resource_size(estate):
    emu, _settings, access, subs = estate
    vm = next(r for r in collect_queries(access.resource_graph(), subs, ("vms_with_items",),
                                         QuotaGate()).rows["vms"] if r["osDiskId"])
    disk = emu.world.state.get(vm["osDiskId"])
    grown = disk["properties"]["diskSizeGB"] + 100
    emu.world.state.put({**disk, "properties": {**disk["properties"], "diskSizeGB": grown}})
    try:
        rows = collect_vm_rows(access.resource_graph(), subs, [vm["id"]], gate=QuotaGate()).rows
        assert rows["disk_check"] == [{"disk": vm["osDiskId"], "found": True,
                                       "resourceGB": grown}]
        data = sum(d.get("diskSizeGB") or 0 for d in vm["dataDisks"] or []
                   if (d.get("managedDisk") or {}).get("id"))
        assert _verdicts(estate, rows)["provisioned_gb"].iloc[0] == grown + data
    finally:
        emu.world.state.put(disk)


def test_a_chunk_of_vms_reads_the_rows_the_estate_gave_for_them(estate):
    _emu, _settings, access, subs = estate
    client = access.resource_graph()
    whole = collect_queries(client, subs, QUERIES, QuotaGate())
    chunk_ids = [r["id"] for r in whole.rows["vms"][::3]]  # 834 VMs over every subscription
    chunk = collect_vm_rows(client, subs, chunk_ids, gate=QuotaGate())
    keys = {i.lower() for i in chunk_ids}
    assert chunk.error is None and chunk.requests <= 4
    assert chunk.rows["vms"] == [r for r in whole.rows["vms"] if r["id"].lower() in keys]
    assert chunk.rows["protected_items"] == [r for r in whole.rows["protected_items"]
                                             if r["vmKey"] in keys]
    chosen = _verdicts(estate, whole.rows)
    chosen = chosen[chosen["vm_key"].isin(keys)].reset_index(drop=True)
    pd.testing.assert_frame_equal(_verdicts(estate, chunk.rows), chosen)
