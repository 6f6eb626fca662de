"""A wave with a thousand VMs in flight: the runner is SIGKILLed while they are, resumed, and
every VM ends protected by its original or its target policy with the journal saying which;
a wave whose changes Recovery Services throttles holds fewer VMs in flight, then more again
once the throttling stops; and a vault whose target policy is slow to make does not hold back
the other vaults of its subscription."""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import sqlite3
import subprocess
import threading
import time

import pandas as pd
import requests

from emulator.config import EmulatorConfig, Faults
from emulator.server import Emulator
from flows.assess import run_assessment
from flows.migrate import run_wave
from flows.options import with_emulator_principal
from tasks.settings import load_settings
from tasks.state.db import open_store
from tasks.state.journal import Journal
from tasks.state.plans import PlanRecord, save_plan
from tests.cli.helpers import REPO, ccmigrate_argv, no_traceback, run_cli
from tests.fleets import SUB_A, make_item, make_policy, make_vault, make_vm, small_fleet

FAILING = ["vm-1111-7", "vm-2222-11"]  # their ConfigureBackup jobs fail: rollbacks happen too


def _fleet(vms_per_sub: int) -> dict:
    fleet = small_fleet(vms_per_sub=vms_per_sub)
    fleet["resources"] = [r for r in fleet["resources"] if r["name"] != "enhanced-daily-crash"]
    return fleet


def _plan(engine, scored: pd.DataFrame, assessment_id: str) -> str:
    ready = scored[scored["readiness"] == "ready"].sort_values("vm_name").reset_index(drop=True)
    frame = pd.DataFrame({
        "wave": 1, "vm_id": ready["vm_id"], "vm_name": ready["vm_name"],
        "subscription_id": ready["subscription_id"], "vault_id": ready["vault_id"],
        "vault": ready["vault"], "item_id": ready["item_id"],
        "source_policy_id": ready["policy_id"], "source_policy": ready["policy_name"],
        "target_policy": ready["target_policy"], "irreversible": False,
        "rollback_policy": ready["policy_name"], "readiness": "ready", "warnings": ""})
    record = PlanRecord.new(assessment_id)
    save_plan(engine, record, frame, pd.DataFrame(columns=["vault_id", "policy_name", "kind"]))
    return record.id


@contextlib.contextmanager
def _world(tmp_path, vms_per_sub: int, config: EmulatorConfig, faults: Faults, **flags):
    with Emulator(_fleet(vms_per_sub), config=config, faults=faults) as emu:
        settings = with_emulator_principal(load_settings(environ={}, flags={
            "state_store": f"sqlite:///{tmp_path}/state.db",
            "throttles.polling_interval": 0.2, **flags}), emu.connection_info())
        outcome = run_assessment(settings, tmp_path / "assess")
        engine = open_store(settings.state_store_url(), synchronous="FULL")
        yield emu, settings, engine, _plan(engine, outcome.scored, outcome.assessment_id)


def _items(emu) -> dict[str, str]:
    return {r["properties"]["friendlyName"]: r["properties"].get("policyId", "").lower()
            for r in emu.state()["resources"] if r["type"].lower().endswith("/protecteditems")}


def _check_invariant(emu, engine, plan_id: str, *, final: bool) -> None:
    """Every VM protected by its original or its target policy, and the journal says which."""
    items = _items(emu)
    entries = Journal(engine, plan_id).entries().astype(object)
    entries = entries.where(entries.notna(), None)
    for row in entries.itertuples(index=False):
        on = items[row.vm_name]
        original = (row.original_policy_id or "").lower()
        target = (row.target_policy_id or "").lower()
        if row.status in ("pending", "skipped"):
            assert on.endswith("/enhanced-daily"), (row.vm_name, on)
            continue
        assert on in (original, target), (row.vm_name, row.status, on)
        if row.status == "done":
            assert on == target, row.vm_name
        if row.status == "rolled_back":
            assert on == original and row.error_code, row.vm_name
        if final:
            assert row.status in ("done", "rolled_back"), (row.vm_name, row.status, row.step)


def _in_progress(db: str) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute("select count(*) from journal where status = 'in_progress'"
                            ).fetchone()[0]


def test_a_thousand_vms_in_flight_survive_a_killed_runner_and_resume(prefect_api, tmp_path):
    # Buckets large enough that a thousand changes go out within seconds (the benchmark runs
    # Azure's own); each change takes 15 s, so they are all in flight together.
    config = EmulatorConfig(operation_seconds=15, job_seconds=15, write_capacity=3000,
                            read_capacity=10_000, read_refill=500, write_refill=200)
    limits = {"CCMIGRATE_THROTTLES__ARM_WRITE_BURST": "3000",
              "CCMIGRATE_THROTTLES__ARM_READ_BURST": "10000",
              "CCMIGRATE_THROTTLES__ARM_READS_PER_S": "500",
              "CCMIGRATE_THROTTLES__ARM_WRITES_PER_S": "200",
              "CCMIGRATE_THROTTLES__POLLING_INTERVAL": "0.5"}
    with _world(tmp_path, 560, config, Faults(fail_jobs_for=FAILING)) as (emu, _s, engine,
                                                                         plan_id):
        db = str(tmp_path / "state.db")
        common = ["--endpoint", emu.endpoint, "--ca-bundle", str(emu.ca_bundle),
                  "--credential", "emulator", "--state-store", f"sqlite:///{db}",
                  "--out", str(tmp_path / "out"), "--max-failures", "100%",
                  "--cumulative-max-failures", "100%", "--max-parallel", "2000",
                  "--per-vault", "2000"]
        runner = subprocess.Popen(
            [*ccmigrate_argv(), "migrate", "--plan", plan_id, "--wave", "1", "--execute",
             "--yes", *common], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env={**os.environ, **limits})
        deadline = time.monotonic() + 240
        while _in_progress(db) < 1000 and runner.poll() is None:
            assert time.monotonic() < deadline, "the wave never held 1,000 VMs in flight"
            time.sleep(0.05)
        assert runner.poll() is None, runner.stderr.read() if runner.stderr else ""
        runner.send_signal(signal.SIGKILL)
        runner.wait(timeout=30)
        at_kill = Journal(engine, plan_id).counts(1)["in_progress"]
        assert at_kill >= 1000
        _check_invariant(emu, engine, plan_id, final=False)

        again = run_cli("migrate", "--plan", plan_id, "--wave", "1", "--execute", "--yes",
                        "--resume", *common, env=limits)
        assert no_traceback(again), again.stderr
        assert again.returncode in (0, 1), again.stderr  # 1 when a VM was rolled back
        _check_invariant(emu, engine, plan_id, final=True)
        entries = Journal(engine, plan_id).entries()
        assert set(FAILING) <= set(entries.loc[entries["status"] == "rolled_back", "vm_name"])
        assert (entries["status"] == "done").sum() == len(entries) - len(FAILING)


def test_in_flight_shrinks_under_provider_throttling_and_grows_back(prefect_api, tmp_path):
    # Recovery Services takes 3 changes a second per subscription (ARM would take 10): the
    # wave must find that, hold fewer VMs in flight, and hold more again once it is lifted.
    config = EmulatorConfig(operation_seconds=6, job_seconds=6)
    throttled = Faults(provider_write_rate=3.0, provider_write_burst=3,
                       provider_throttle_retry_after=2)
    with _world(tmp_path, 300, config, throttled, **{"throttles.max_parallel": 600,
                                                     "throttles.per_vault": 600}) as (
            emu, settings, engine, plan_id):
        journal = Journal(engine, plan_id)
        stop = threading.Event()
        lifted = []

        def lift_once_half_is_done() -> None:
            while not stop.is_set() and journal.counts(1)["done"] < 200:
                time.sleep(0.1)
            requests.post(f"{emu.endpoint}/_emulator/faults", verify=str(emu.ca_bundle),
                          json={"provider_write_rate": None}, timeout=10).raise_for_status()
            lifted.append(time.time())

        watcher = threading.Thread(target=lift_once_half_is_done, daemon=True)
        started = time.time()
        watcher.start()
        try:
            outcome = run_wave(settings, plan_id, 1, execute=True, out_dir=tmp_path / "out")
        finally:
            stop.set()
            watcher.join(timeout=10)
        assert outcome.counts == {"done": 600}, outcome.counts  # throttling never fails a VM
        assert outcome.stats["throttled"] > 0 and lifted
        curve = outcome.stats["in_flight_curve"]
        # The curve counts from the engine's start, which lies between this call and the
        # wave's first journal event: points surely before, and surely after, the lift.
        first_event = journal.events()["at"].min().timestamp()
        before = [a for t, _n, a in curve if t < lifted[0] - first_event]
        after = [a for t, _n, a in curve if t >= lifted[0] - started]
        # A shrink is any point below the highest limit before it. (The limit may later climb
        # above that height while throttled: it follows the learned rate times the changes'
        # mean duration, which grows as VMs wait out throttles.)
        highest = list(itertools.accumulate(before, max))
        shrunk = [a for a, top in zip(before, highest, strict=True) if a < top]
        assert shrunk, "the limit never shrank under throttling"
        low = min(shrunk)
        assert max(after) > 1.5 * low, "the limit never grew back once throttling stopped"
        shown = pd.read_csv(tmp_path / "out" / "wave-1-in-flight.csv")
        assert list(shown.columns) == ["seconds", "in_flight", "allowed"] and len(shown) > 3


def _two_vault_fleet(slow: int, quick: int) -> dict:
    """One subscription, two vaults whose VMs sit on an app-consistent policy and have no
    crash-consistent one yet: the wave makes both vaults' target policies."""
    resources: list[dict] = []
    for vault_name, prefix, count in (("vault-a-slow", "vm-a", slow),
                                      ("vault-b-quick", "vm-b", quick)):
        vault = make_vault(SUB_A, "rg-backup", vault_name)
        app = make_policy(vault, "enhanced-daily")
        resources += [vault, app]
        for i in range(count):
            vm, disks = make_vm(SUB_A, "rg-app", f"{prefix}-{i:03d}")
            resources += [vm, *disks, make_item(vault, vm, app)]
    fleet = small_fleet()
    fleet["subscriptions"] = fleet["subscriptions"][:1]
    fleet["resources"] = resources
    return fleet


def test_a_vault_whose_target_policy_is_slow_does_not_hold_back_its_subscriptions_other_vaults(
        prefect_api, tmp_path, monkeypatch):
    # The plan lists the slow vault's 120 VMs first, more than a look takes at the start; its
    # policy is only made once the quick vault's VMs are all moved, or after a minute.
    from tasks.migration import targets

    real_ensure = targets.ensure_target
    db = str(tmp_path / "state.db")
    seen: dict[str, int] = {}

    def quick_done() -> int:
        with contextlib.closing(sqlite3.connect(db)) as conn:
            return conn.execute("select count(*) from journal where status = 'done' "
                                "and vm_key like '%/virtualMachines/vm-b-%'").fetchone()[0]

    def slow_for_vault_a(access, target, **kwargs):
        if "/vaults/vault-a-slow" in target.vault_id.lower():
            deadline = time.monotonic() + 60
            while quick_done() < 30 and time.monotonic() < deadline:
                time.sleep(0.1)
            seen["quick_done_before_slow_policy"] = quick_done()
        return real_ensure(access, target, **kwargs)

    monkeypatch.setattr(targets, "ensure_target", slow_for_vault_a)
    with Emulator(_two_vault_fleet(120, 30), config=EmulatorConfig(operation_seconds=1,
                                                                   job_seconds=1)) as emu:
        settings = with_emulator_principal(load_settings(environ={}, flags={
            "state_store": f"sqlite:///{db}", "throttles.polling_interval": 0.2}),
            emu.connection_info())
        assessed = run_assessment(settings, tmp_path / "assess")
        engine = open_store(settings.state_store_url(), synchronous="FULL")
        plan_id = _plan(engine, assessed.scored, assessed.assessment_id)
        outcome = run_wave(settings, plan_id, 1, execute=True, out_dir=tmp_path / "out")
        assert outcome.counts == {"done": 150}, outcome.counts
        assert seen["quick_done_before_slow_policy"] == 30
        _check_invariant(emu, engine, plan_id, final=True)
