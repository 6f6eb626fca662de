"""The whole Option 1 story as a user types it, against a separately started emulator:
assess, plan (with a Standard-policy VM opted in), migrate dry run (nothing changes), the
canary, the next wave, and a rollback; the Standard VM's rollback goes to an Enhanced
app-consistent policy, created on demand."""

from __future__ import annotations

import csv
import json
import signal
import subprocess

import pytest
import requests
from openpyxl import load_workbook

from tests.cli.helpers import REPO, ccmigrate_argv, no_traceback, run_cli
from tests.fleets import SUB_A, make_item, make_policy, make_vm, small_fleet

STANDARD_VM = "vm-std-0"


@pytest.fixture
def served(tmp_path):
    fleet = small_fleet(vms_per_sub=2)
    fleet["resources"] = [r for r in fleet["resources"] if r["name"] != "enhanced-daily-crash"]
    vault = next(r for r in fleet["resources"] if r["name"] == "vault-1111")
    standard = make_policy(vault, "standard-daily", v1=True)
    vm, disks = make_vm(SUB_A, "rg-app", STANDARD_VM)
    fleet["resources"] += [standard, vm, *disks, make_item(vault, vm, standard)]
    path = tmp_path / "fleet.json"
    path.write_text(json.dumps(fleet))
    # Azure's durations and Retry-After (emulator/timing.py), 600 times faster: the story as
    # a user types it, against the service's pace rather than an instant one.
    proc = subprocess.Popen([*ccmigrate_argv(), "emulator", "serve", "--fleet", str(path),
                             "--port", "0", "--timing", "azure", "--time-scale", "600"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        yield json.loads(proc.stdout.readline())
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)


def _state(info: dict) -> dict:
    return requests.get(f"{info['endpoint']}/_emulator/state", verify=info["ca_bundle"],
                        timeout=30).json()


def _policy_of(info: dict, vm_name: str) -> str:
    return next(r["properties"]["policyId"] for r in _state(info)["resources"]
                if r["type"].lower().endswith("/protecteditems")
                and r["properties"]["friendlyName"] == vm_name).rsplit("/", 1)[-1]


def test_assess_plan_migrate_and_roll_back(served, prefect_api, tmp_path):
    common = ["--endpoint", served["endpoint"], "--ca-bundle", served["ca_bundle"],
              "--credential", "emulator", "--state-store", f"sqlite:///{tmp_path}/state.db"]
    env = {"CCMIGRATE_THROTTLES__POLLING_INTERVAL": "0.05"}
    out = tmp_path / "out"

    proc = run_cli("assess", *common, "--out", str(out), env=env)
    assert proc.returncode == 0, proc.stderr

    proc = run_cli("plan", "--assessment", "latest", "--include-standard", "--canary", "1",
                   "--ramp", "10", *common, "--out", str(out), env=env)
    assert proc.returncode == 0, proc.stderr
    with (out / "plan.csv").open(encoding="utf-8", newline="") as fh:
        plan = list(csv.DictReader(fh))
    assert list(plan[0])[:7] == ["wave", "vm_id", "vm_name", "vault", "source_policy",
                                 "target_policy", "irreversible"]
    std = next(r for r in plan if r["vm_name"] == STANDARD_VM)
    assert std["irreversible"].lower() == "true" and std["source_policy"] == "standard-daily"
    assert {r["wave"] for r in plan} == {"1", "2"}

    # Since the plan, someone resized a wave-2 VM to a size without Premium storage.
    changed = next(r for r in plan if r["wave"] == "2"
                   and r["vm_name"] not in (STANDARD_VM, "vm-2222-1"))
    requests.post(f"{served['endpoint']}/_emulator/resources", verify=served["ca_bundle"],
                  timeout=30, json={"id": changed["vm_id"], "patch": {
                      "properties": {"hardwareProfile": {"vmSize": "Standard_D4_v5"}}}})

    before = _state(served)
    proc = run_cli("migrate", "--plan", "latest", "--wave", "2", *common, "--out", str(out),
                   env=env)
    assert proc.returncode == 0, proc.stderr
    assert "Dry run" in proc.stdout and "nothing was changed" in proc.stdout
    assert "skip 1 (as they are now)" in proc.stdout
    assert f"{changed['vm_name']}: leave it where it is (NO_LONGER_READY)" in proc.stdout
    assert "SIZE_NOT_PREMIUM_CAPABLE" in proc.stdout
    assert _state(served) == before

    for wave in ("1", "2"):
        proc = run_cli("migrate", "--plan", "latest", "--wave", wave, "--execute", "--yes",
                       *common, "--out", str(out), env=env)
        assert proc.returncode == 0, proc.stderr + proc.stdout
        assert no_traceback(proc)
        assert (out / f"wave-{wave}.xlsx").is_file()
    assert f"{changed['vm_name']}: skipped (NO_LONGER_READY: re-scored now" in proc.stdout
    assert _policy_of(served, STANDARD_VM) == "standard-daily-crash"
    assert _policy_of(served, "vm-2222-1") == "enhanced-daily-crash"
    assert _policy_of(served, changed["vm_name"]) == changed["source_policy"]

    # The next assessment's workbook shows each VM's migration state beside its readiness.
    proc = run_cli("assess", *common, "--out", str(tmp_path / "after"), env=env)
    assert proc.returncode == 0, proc.stderr
    assert "Migration (wave journal): done" in proc.stdout
    book = load_workbook(tmp_path / "after" / "readiness.xlsx")
    assert "Migration" in book.sheetnames
    rows = list(book["Migration"].iter_rows(min_row=3, values_only=True))
    header, rows = rows[0], rows[1:]
    status = {r[header.index("vm_name")]: r[header.index("status")] for r in rows}
    assert status[STANDARD_VM] == "done" and status.pop(changed["vm_name"]) == "skipped"
    assert set(status.values()) == {"done"}

    proc = run_cli("rollback", "--plan", "latest", "--wave", "2", "--execute", "--yes",
                   *common, "--out", str(out), env=env)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    # Reversible VMs go back to their source; the Standard one to an Enhanced app-consistent
    # policy with its schedule and retention, made when it was first needed.
    assert _policy_of(served, "vm-2222-1") == "enhanced-daily"
    assert _policy_of(served, STANDARD_VM) == "standard-daily-enh"
    assert _policy_of(served, changed["vm_name"]) == changed["source_policy"]
    enh = next(r for r in _state(served)["resources"] if r["name"] == "standard-daily-enh")
    assert enh["properties"]["policyType"] == "V2"
    assert "snapshotConsistencyType" not in enh["properties"]
