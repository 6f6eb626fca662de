"""Right before a chunk of VMs moves it is re-scored by the rule engine on what Azure says now.
The verdict must be the assessment's own: the same readiness and rule ids for every case of the
hand-written fleet, read through the chunk look (the assessment's queries restricted to the
chunk's VM ids). And a VM changed since the plan (resized to a size without Premium storage, a
disk made shared, a warning the plan did not accept) is left where it is, with the reason,
while the others move."""

from __future__ import annotations

import pandas as pd
import requests

from emulator.config import EmulatorConfig
from emulator.server import Emulator
from flows.emulated import emulated
from flows.migrate import run_wave
from tasks.azure.clients import AzureAccess
from tasks.azure.resource_graph import QuotaGate
from tasks.discovery import collect
from tasks.migration.rescore import Rescorer
from tasks.rules.engine import load_pack
from tasks.settings import load_settings
from tasks.state.journal import Journal
from tests.assess.cases import build
from tests.fleets import small_fleet
from tests.migration.test_wave_runner import planned


def _ids(text: str) -> set[str]:
    return set(filter(None, str(text).split(";")))


def test_the_chunk_look_gives_the_assessments_verdict_for_every_case(tmp_path):
    fleet, cases = build()
    settings = load_settings(environ={}, flags={"state_store": f"sqlite:///{tmp_path}/s.db"})
    vms = [r for r in fleet["resources"] if r["type"] == "Microsoft.Compute/virtualMachines"]
    items = {r["properties"]["sourceResourceId"].lower(): r for r in fleet["resources"]
             if r["type"].lower().endswith("/protecteditems")}
    wrong, checked = [], 0
    with emulated(settings, fleet) as (_emu, emu_settings):
        access = AzureAccess(emu_settings)
        rescorer = Rescorer(access, emu_settings, load_pack(emu_settings.rules))
        read = collect.collect_vm_rows
        subscriptions = sorted({vm["id"].split("/")[2].lower() for vm in vms})
        batch = read(access.resource_graph(), subscriptions, [vm["id"] for vm in vms],
                     gate=QuotaGate())
        assert batch.error is None
        policies: dict[str, dict] = {}
        skus: list[tuple] = []
        for vm in vms:
            item = items.get(vm["id"].lower())
            if item is not None and item["properties"].get("policyId"):
                vault = item["id"][: item["id"].lower().index("/backupfabrics")]
                policies.update(rescorer.policy(item["properties"]["policyId"], vault))
            skus += rescorer.size_rows(vm["id"].split("/")[2], vm["location"],
                                       vm["properties"]["hardwareProfile"]["vmSize"])
        scored = rescorer.judge.scored(batch.rows, policies, skus)
        by_name = scored.set_index("vm_name")
        for case in cases:
            if case.name not in by_name.index:
                continue
            row = by_name.loc[case.name]
            got = (row["readiness"], _ids(row["blockers"]), _ids(row["warnings"]),
                   _ids(row["unknowns"]), _ids(row["infos"]))
            expected = (case.readiness, set(case.blockers), set(case.warnings),
                        set(case.unknowns), set(case.infos))
            checked += 1
            if got != expected:
                wrong.append(f"{case.name}: got {got}, want {expected}")
    assert checked >= 30
    assert not wrong, "\n".join(wrong)


# -- a wave meets VMs changed since the plan ---------------------------------------------------

def _change(emu: Emulator, resource_id: str, patch: dict) -> None:
    r = requests.post(f"{emu.endpoint}/_emulator/resources", verify=str(emu.ca_bundle),
                      json={"id": resource_id, "patch": patch}, timeout=10)
    r.raise_for_status()


def _policies_now(emu: Emulator) -> dict[str, str]:
    return {r["properties"]["friendlyName"]: r["properties"].get("policyId", "")
            for r in emu.state()["resources"] if r["type"].lower().endswith("/protecteditems")}


def test_vms_changed_since_the_plan_are_left_where_they_are_and_the_rest_move(prefect_api,
                                                                            tmp_path,
                                                                            monkeypatch):
    fleet = small_fleet(vms_per_sub=3)
    with planned(tmp_path, fleet, EmulatorConfig(operation_seconds=0.1), waves=(1,),
                 options={"allow_warnings": ["HOST_CACHING_READWRITE"]}) as (
            emu, settings, engine, plan_id):
        vms = {r["name"]: r for r in fleet["resources"]
               if r["type"] == "Microsoft.Compute/virtualMachines"}
        resized, shared, cached, accepted = "vm-1111-0", "vm-1111-1", "vm-2222-0", "vm-2222-1"
        _change(emu, vms[resized]["id"],
                {"properties": {"hardwareProfile": {"vmSize": "Standard_D4_v5"}}})
        data_disk = vms[shared]["properties"]["storageProfile"]["dataDisks"][0]
        _change(emu, data_disk["managedDisk"]["id"], {"properties": {"maxShares": 2}})
        # Host caching ReadWrite is a warning; the plan accepted it, so the VM still moves.
        os_disk = dict(vms[accepted]["properties"]["storageProfile"]["osDisk"],
                       caching="ReadWrite")
        _change(emu, vms[accepted]["id"],
                {"properties": {"storageProfile": {"osDisk": os_disk}}})
        # An opt-out tag added since the plan.
        _change(emu, vms[cached]["id"], {"tags": {"backup-consistency": "application"}})
        before = _policies_now(emu)

        # The dry run gives the same verdicts, and changes nothing.
        state = emu.state()
        dry = run_wave(settings, plan_id, 1, execute=False, out_dir=tmp_path / "dry")
        assert emu.state() == state
        vm_rows = dry.actions[dry.actions["what"] == "vm"].set_index("vm_name")
        assert set(vm_rows.index[vm_rows["would"] == "skip"]) == {resized, shared, cached}
        assert "SIZE_NOT_PREMIUM_CAPABLE" in vm_rows.loc[resized, "action"]
        assert vm_rows.loc[accepted, "would"] == "move"

        result = run_wave(settings, plan_id, 1, execute=True, out_dir=tmp_path / "out")

        entries = Journal(engine, plan_id).entries(1).set_index("vm_name")
        skipped = entries[entries["status"] == "skipped"]
        assert set(skipped.index) == {resized, shared, cached}
        assert set(skipped["error_code"]) == {"NO_LONGER_READY"}
        assert "SIZE_NOT_PREMIUM_CAPABLE" in skipped.loc[resized, "error_message"]
        assert "SHARED_DISK" in skipped.loc[shared, "error_message"]
        assert "OPTED_OUT" in skipped.loc[cached, "error_message"]
        assert result.counts == {"done": len(entries) - 3, "skipped": 3}
        assert entries.loc[accepted, "status"] == "done"
        after = _policies_now(emu)
        for name in (resized, shared, cached):
            assert after[name] == before[name]  # untouched in Azure
        assert after[accepted].endswith("/enhanced-daily-crash")
        report = pd.read_csv(tmp_path / "out" / "wave-1.csv").set_index("vm_name")
        assert "SIZE_NOT_PREMIUM_CAPABLE" in report.loc[resized, "error_message"]


