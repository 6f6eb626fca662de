"""Right before a VM moves it is re-scored by the rule engine on what ARM says now. The verdict
must be the assessment's own: the same readiness and rule ids for every case of the
hand-written fleet, read VM by VM through ARM instead of through Resource Graph. And a VM
changed since the plan (resized to a size without Premium storage, a disk made shared, a
warning the plan did not accept) is left where it is, with the reason, while the others move."""

from __future__ import annotations

import pandas as pd
import pytest
import requests

from emulator.config import EmulatorConfig
from emulator.server import Emulator
from flows.emulated import emulated
from flows.migrate import run_wave
from tasks.azure import backup, compute
from tasks.azure.clients import AzureAccess
from tasks.migration.rescore import Coalescer, Rescorer
from tasks.rules.engine import load_pack
from tasks.settings import load_settings
from tasks.state.journal import Journal
from tests.assess.cases import build
from tests.fleets import small_fleet
from tests.migration.test_wave_runner import planned


def _ids(text: str) -> set[str]:
    return set(filter(None, str(text).split(";")))


def _vault_of(item_id: str) -> str:
    return item_id[: item_id.lower().index("/backupfabrics")]


def test_rescoring_through_arm_gives_the_assessments_verdict_for_every_case(tmp_path):
    fleet, cases = build()
    items = {r["properties"]["friendlyName"]: r for r in fleet["resources"]
             if r["type"].lower().endswith("/protecteditems")
             and r["properties"]["protectionState"] not in ("ProtectionStopped",)}
    settings = load_settings(environ={}, flags={"state_store": f"sqlite:///{tmp_path}/s.db"})
    wrong, checked = [], 0
    with emulated(settings, fleet) as (_emu, emu_settings):
        access = AzureAccess(emu_settings)
        rescorer = Rescorer(access, emu_settings, load_pack(emu_settings.rules))
        looks, want = [], []
        for case in cases:
            item_row = items.get(case.name)
            if item_row is None:
                continue
            vm_id = item_row["properties"]["sourceResourceId"]
            sub = vm_id.split("/")[2]
            vm = compute.get_vm(access.compute(sub), vm_id)
            item = backup.get_item(access.backup(sub), backup.item_ref(item_row["id"]))
            # The plan carries the rule ids the assessment found (the SQL registration, a
            # resource of another provider, is known through them).
            looks.append(rescorer.facts(vm, item, vault_id=_vault_of(item_row["id"]),
                                       planned_warnings=";".join(case.warnings)))
            want.append(case)
        scored = rescorer.scored(looks)
        for look, case in zip(looks, want, strict=True):
            row = scored.loc[look.vm_key]
            got = (row["readiness"], _ids(row["blockers"]), _ids(row["warnings"]),
                   _ids(row["unknowns"]), _ids(row["infos"]))
            expected = (case.readiness, set(case.blockers), set(case.warnings),
                        set(case.unknowns), set(case.infos))
            checked += 1
            if got != expected:
                wrong.append(f"{case.name}: got {got}, want {expected}")
    assert checked >= 30
    assert not wrong, "\n".join(wrong)


def _wait_until(condition, timeout: float = 10.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def test_threads_scoring_at_once_share_rounds_and_each_gets_its_own_answer():
    import threading

    rounds: list[int] = []
    gate = threading.Event()

    def work(batch: list[int]) -> list[int]:
        rounds.append(len(batch))
        gate.wait(5)  # hold the first round so the other threads pile up behind it
        return [n * 10 for n in batch]

    coalescer = Coalescer(work)
    results: dict[int, int] = {}

    def ask(n: int) -> None:
        results[n] = coalescer.submit(n)

    first = threading.Thread(target=ask, args=(0,))
    first.start()
    _wait_until(lambda: rounds)
    others = [threading.Thread(target=ask, args=(n,)) for n in range(1, 9)]
    for t in others:
        t.start()
    _wait_until(lambda: len(coalescer._pending) == 8)
    gate.set()
    for t in [first, *others]:
        t.join(10)
    assert results == {n: n * 10 for n in range(9)}
    assert rounds == [1, 8]


def test_a_failing_round_fails_every_request_in_it():
    def work(batch: list[int]) -> list[int]:
        raise ValueError("bug")

    with pytest.raises(ValueError, match="bug"):
        Coalescer(work).submit(1)


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


def _facts_of(access: AzureAccess, rescorer: Rescorer, items: list[dict]) -> list:
    """What the last look reads for each item's VM, through ARM."""
    facts = []
    for row in items:
        vm_id = row["properties"]["sourceResourceId"]
        sub = vm_id.split("/")[2]
        vm = compute.get_vm(access.compute(sub), vm_id)
        item = backup.get_item(access.backup(sub), backup.item_ref(row["id"]))
        facts.append(rescorer.facts(vm, item, vault_id=_vault_of(row["id"])))
    return facts


def test_scoring_in_its_own_process_gives_the_same_verdicts(tmp_path):
    fleet, _cases = build()
    settings = load_settings(environ={}, flags={"state_store": f"sqlite:///{tmp_path}/s.db"})
    items = [r for r in fleet["resources"] if r["type"].lower().endswith("/protecteditems")]
    with emulated(settings, fleet) as (_emu, emu_settings):
        access = AzureAccess(emu_settings)
        here = Rescorer(access, emu_settings, load_pack(emu_settings.rules))
        there = Rescorer(access, emu_settings, load_pack(emu_settings.rules), process=True)
        try:
            looks = _facts_of(access, here, items)
            local = here._work(looks)
            remote = there._work(looks)
            assert there._pool is not None  # it really ran in the other process
        finally:
            there.close()
    assert remote == local
    assert sum(v is None for v in local) >= 5 and sum(v is not None for v in local) >= 20


DIES_WITH_PARENT = """
import os, sys, time
from tasks.migration.rescore import Rescorer
from tasks.rules.engine import load_pack
from tasks.settings import load_settings
settings = load_settings(environ={}, flags={})
rescorer = Rescorer(None, settings, load_pack(settings.rules), process=True)
print(rescorer._pool.submit(os.getpid).result(), flush=True)
time.sleep(120)
"""


def test_the_scoring_process_does_not_outlive_a_killed_runner():
    import os
    import signal
    import subprocess
    import sys
    import time

    runner = subprocess.Popen([sys.executable, "-c", DIES_WITH_PARENT], stdout=subprocess.PIPE,
                              text=True, cwd=os.getcwd())
    try:
        child = int(runner.stdout.readline())
        os.kill(child, 0)  # alive while the runner is
        runner.send_signal(signal.SIGKILL)
        runner.wait(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(child, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            os.kill(child, signal.SIGKILL)
            raise AssertionError("the scoring process outlived its runner")
    finally:
        runner.kill()


def test_a_scoring_process_that_dies_mid_wave_is_replaced_by_scoring_here(tmp_path):
    import os
    import signal

    fleet = small_fleet(vms_per_sub=2)
    settings = load_settings(environ={}, flags={"state_store": f"sqlite:///{tmp_path}/s.db"})
    items = [r for r in fleet["resources"] if r["type"].lower().endswith("/protecteditems")]
    with emulated(settings, fleet) as (_emu, emu_settings):
        access = AzureAccess(emu_settings)
        rescorer = Rescorer(access, emu_settings, load_pack(emu_settings.rules), process=True)
        try:
            looks = _facts_of(access, rescorer, items)
            first = rescorer._work(looks)
            os.kill(rescorer._pool.submit(os.getpid).result(), signal.SIGKILL)
            again = rescorer._work(looks)
            assert rescorer._pool is None  # scored here from now on
        finally:
            rescorer.close()
    assert again == first == [None] * len(items)
