"""The crash test: ``ccmigrate migrate --execute`` is SIGKILLed at several points of a wave, then
run again. At the moment of the kill and after the re-run, every VM is protected by its original
or its target policy; after the re-run every VM is ``done`` or ``rolled_back`` with a reason,
and the journal names the policy Azure shows."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time

import pandas as pd
import pytest
import requests

from tasks.state.assessments import load_vms, resolve_assessment
from tasks.state.db import open_store
from tasks.state.journal import Journal
from tasks.state.plans import PlanRecord, save_plan
from tests.cli.helpers import REPO, ccmigrate_argv, no_traceback, run_cli
from tests.fleets import small_fleet

FAILING = ["vm-1111-3", "vm-2222-5"]  # their ConfigureBackup jobs fail: rollbacks happen too
KILL_AFTER_EVENTS = {1: 1, 2: 9, 3: 18}  # wave -> journal events written before the kill


@pytest.fixture
def served(tmp_path):
    fleet = small_fleet(vms_per_sub=9)
    fleet["resources"] = [r for r in fleet["resources"] if r["name"] != "enhanced-daily-crash"]
    path = tmp_path / "fleet.json"
    path.write_text(json.dumps(fleet))
    proc = subprocess.Popen([*ccmigrate_argv(), "emulator", "serve", "--fleet", str(path),
                             "--port", "0", "--latency-ms", "20", "--timing", "fast"],
                            stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        info = json.loads(proc.stdout.readline())
        requests.post(f"{info['endpoint']}/_emulator/faults", json={"fail_jobs_for": FAILING},
                      verify=info["ca_bundle"], timeout=10).raise_for_status()
        yield info
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)


def _common(info: dict, db: str) -> list[str]:
    return ["--endpoint", info["endpoint"], "--ca-bundle", info["ca_bundle"], "--credential",
            "emulator", "--state-store", f"sqlite:///{db}"]


NO_HALT = ["--max-failures", "100%", "--cumulative-max-failures", "100%"]
ENV = {"CCMIGRATE_THROTTLES__POLLING_INTERVAL": "0.05", "CCMIGRATE_THROTTLES__PER_VAULT": "2"}


def _items(info: dict) -> dict[str, str]:
    state = requests.get(f"{info['endpoint']}/_emulator/state", verify=info["ca_bundle"],
                         timeout=30).json()
    return {r["properties"]["friendlyName"]: r["properties"].get("policyId", "").lower()
            for r in state["resources"] if r["type"].lower().endswith("/protecteditems")}


def _events(db: str) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute("select count(*) from journal_events").fetchone()[0]


def _check_invariant(info: dict, engine, plan_id: str, *, final: bool) -> None:
    items = _items(info)
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


def test_killed_waves_resume_and_every_vm_ends_done_or_rolled_back(served, prefect_api,
                                                                     tmp_path):
    db = str(tmp_path / "state.db")
    proc = run_cli("assess", *_common(served, db), "--out", str(tmp_path / "assess"))
    assert proc.returncode == 0, proc.stderr
    engine = open_store(f"sqlite:///{db}", synchronous="FULL")
    assessment = resolve_assessment(engine, "latest")
    vms = load_vms(engine, assessment.id)
    ready = vms[vms["readiness"] == "ready"].sort_values("vm_name").reset_index(drop=True)
    assert len(ready) == 18
    waves = [1] * 4 + [2] * 7 + [3] * 7
    frame = pd.DataFrame({
        "wave": waves, "vm_id": ready["vm_id"], "vm_name": ready["vm_name"],
        "subscription_id": ready["subscription_id"], "vault_id": ready["vault_id"],
        "vault": ready["vault"], "item_id": ready["item_id"],
        "source_policy_id": ready["policy_id"], "source_policy": ready["policy_name"],
        "target_policy": ready["target_policy"], "irreversible": False,
        "rollback_policy": ready["policy_name"], "readiness": "ready", "warnings": ""})
    record = PlanRecord.new(assessment.id)
    save_plan(engine, record, frame, pd.DataFrame(
        columns=["vault_id", "policy_name", "kind"]))

    in_flight_at_kill = {}
    for wave, after in KILL_AFTER_EVENTS.items():
        cmd = [*ccmigrate_argv(), "migrate", "--plan", record.id, "--wave", str(wave),
               "--execute", "--yes", *_common(served, db), "--out", str(tmp_path / "out"),
               *NO_HALT]
        runner = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True,
                                  env={**os.environ, **ENV})
        start = _events(db)
        deadline = time.monotonic() + 120
        while _events(db) < start + after and runner.poll() is None:
            assert time.monotonic() < deadline, "the wave never started"
            time.sleep(0.01)
        assert runner.poll() is None, runner.stderr.read() if runner.stderr else ""
        runner.send_signal(signal.SIGKILL)
        runner.wait(timeout=30)
        in_flight_at_kill[wave] = Journal(engine, record.id).counts(wave)["in_progress"]
        _check_invariant(served, engine, record.id, final=False)

        again = run_cli("migrate", "--plan", record.id, "--wave", str(wave), "--execute",
                        "--yes", "--resume", *_common(served, db), "--out",
                        str(tmp_path / "out"), *NO_HALT, env=ENV)
        assert no_traceback(again), again.stderr
        assert again.returncode in (0, 1), again.stderr  # 1 when a VM was rolled back
        assert "Resuming" in again.stdout
        _check_invariant(served, engine, record.id, final=False)
        counts = Journal(engine, record.id).counts(wave)
        assert counts["in_progress"] == counts["pending"] == 0, (counts, again.stdout, again.stderr)

    # The kills landed with VMs in flight, so the re-runs really reconciled something.
    assert sum(in_flight_at_kill.values()) > 0, in_flight_at_kill
    _check_invariant(served, engine, record.id, final=True)
    entries = Journal(engine, record.id).entries()
    rolled = entries[entries["status"] == "rolled_back"]
    assert set(FAILING) <= set(rolled["vm_name"])
    assert rolled["rollback_outcome"].str.len().gt(0).all()
