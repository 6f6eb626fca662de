"""`ccmigrate assess` as a user runs it: files, the printed summary, exit codes, and honest
partial results when part of the scope cannot be read."""

from __future__ import annotations

import csv
import json
import re
import signal
import subprocess

import pytest
import requests

from tests.assess.cases import build
from tests.cli.helpers import REPO, ccmigrate_argv, no_traceback, run_cli
from tests.fleets import SUB_A, SUB_B, small_fleet


def _rows(folder) -> list[dict]:
    with (folder / "readiness.csv").open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def test_assess_fleet_file_writes_reports_and_prints_a_summary(prefect_api, tmp_path):
    fleet, cases = build()
    path = tmp_path / "fleet.json"
    path.write_text(json.dumps(fleet))
    out = tmp_path / "out"
    proc = run_cli("assess", "--fleet", str(path), "--out", str(out),
                   "--state-store", f"sqlite:///{tmp_path}/state.db")
    assert proc.returncode == 0, proc.stderr
    assert len(_rows(out)) == len(cases)
    summary = json.loads((out / "summary.json").read_text())
    assert f"Assessment {summary['assessment_id']}: {len(cases)} VMs" in proc.stdout
    assert re.search(rf"Not ready\s+{summary['by_readiness']['not_ready']}\s", proc.stdout)
    assert "Top blockers:" in proc.stdout and "SHARED_DISK (2)" in proc.stdout
    assert "At risk: 1 crash-consistent VM(s) have blockers" in proc.stdout
    assert str(out / "readiness.csv") in proc.stdout


def test_demo_flag_without_a_number_uses_the_default_size():
    from flows.cli import _demo_default

    assert _demo_default(["assess", "--demo", "--out", "x"]) == [
        "assess", "--demo", "2000", "--out", "x"]
    assert _demo_default(["assess", "--out", "x", "--demo"])[-1] == "2000"
    assert _demo_default(["assess", "--demo", "50"]) == ["assess", "--demo", "50"]


@pytest.fixture
def served(tmp_path):
    path = tmp_path / "fleet.json"
    path.write_text(json.dumps(small_fleet(vms_per_sub=4)))
    proc = subprocess.Popen([*ccmigrate_argv(), "emulator", "serve", "--fleet", str(path),
                             "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=REPO)
    try:
        info = json.loads(proc.stdout.readline())
        yield info
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)


def _assess(info: dict, tmp_path, *extra: str, env: dict | None = None):
    return run_cli("assess", "--endpoint", info["endpoint"], "--ca-bundle", info["ca_bundle"],
                   "--credential", "emulator", "--out", str(tmp_path / "out"),
                   "--state-store", f"sqlite:///{tmp_path}/state.db", *extra, env=env)


def _faults(info: dict, **faults) -> None:
    requests.post(f"{info['endpoint']}/_emulator/faults", json=faults,
                  verify=info["ca_bundle"], timeout=10).raise_for_status()


def test_assess_against_a_separately_started_emulator(served, prefect_api, tmp_path):
    proc = _assess(served, tmp_path, "--subscription", SUB_A)
    assert proc.returncode == 0, proc.stderr
    rows = _rows(tmp_path / "out")
    assert len(rows) == 4 and {r["subscription_id"] for r in rows} == {SUB_A}


def test_unknown_subscription_is_bad_input(served, prefect_api, tmp_path):
    proc = _assess(served, tmp_path, "--subscription", "99999999-9999-4999-8999-999999999999")
    assert proc.returncode == 2
    assert no_traceback(proc)
    assert "99999999-9999-4999-8999-999999999999" in proc.stderr
    assert not (tmp_path / "out" / "readiness.csv").exists()


def test_empty_scope_is_bad_input(served, prefect_api, tmp_path):
    proc = _assess(served, tmp_path, "--subscription", SUB_A,
                   env={"CCMIGRATE_SCOPE__EXCLUDE_SUBSCRIPTIONS": SUB_A})
    assert proc.returncode == 2
    assert no_traceback(proc)
    assert "the scope is empty" in proc.stderr


def test_resource_graph_failing_everywhere_is_a_clear_failure(served, prefect_api, tmp_path):
    _faults(served, rate_5xx=1.0)
    proc = _assess(served, tmp_path, env={"CCMIGRATE_THROTTLES__HTTP_RETRIES": "1"})
    assert proc.returncode == 1
    assert no_traceback(proc)
    assert "Azure answered 50" in proc.stderr


def test_a_subscription_without_access_is_bad_input(served, prefect_api, tmp_path):
    _faults(served, forbidden_scopes=[f"/subscriptions/{SUB_B}"])
    proc = _assess(served, tmp_path, "--subscription", SUB_A, "--subscription", SUB_B)
    assert proc.returncode == 2
    assert no_traceback(proc)
    assert "AuthorizationFailed" in proc.stderr and SUB_B in proc.stderr


def test_an_unreadable_batch_is_reported_not_hidden(served, prefect_api, tmp_path):
    _faults(served, arg_unavailable_subscriptions=[SUB_B])
    proc = _assess(served, tmp_path, env={"CCMIGRATE_THROTTLES__ARG_BATCH_SIZE": "1",
                                          "CCMIGRATE_THROTTLES__HTTP_RETRIES": "1"})
    assert proc.returncode == 1, proc.stderr
    assert no_traceback(proc)
    assert "the assessment is partial" in proc.stderr
    assert "Not assessed: 1 scope(s)" in proc.stdout
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["complete"] is False
    [error] = summary["partial_errors"]
    assert SUB_B in error["scope"] and "ServiceUnavailable" in error["error"]
    assert f"--subscription {SUB_B}" in error["retry"]
    assert {r["subscription_id"] for r in _rows(tmp_path / "out")} == {SUB_A}


def test_an_unreadable_vault_makes_its_vms_unknown(served, prefect_api, tmp_path):
    vault = (f"/subscriptions/{SUB_A}/resourceGroups/rg-backup/providers/"
             "Microsoft.RecoveryServices/vaults/vault-1111")
    _faults(served, forbidden_scopes=[vault])
    proc = _assess(served, tmp_path, "--subscription", SUB_A)
    assert proc.returncode == 1
    rows = _rows(tmp_path / "out")
    assert {r["readiness"] for r in rows} == {"unknown"}
    assert all(r["unknowns"] == "PROTECTION_DATA_UNREADABLE" for r in rows)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["partial_errors"][0]["scope"].lower() == vault.lower()


def test_output_folder_that_is_a_file_is_bad_input(tmp_path):
    target = tmp_path / "taken"
    target.write_text("x")
    proc = run_cli("assess", "--fleet", "whatever.json", "--out", str(target / "sub"))
    assert proc.returncode == 2
    assert no_traceback(proc)
    assert "--out" in proc.stderr


def test_unknown_rule_pack_is_bad_input(tmp_path):
    proc = run_cli("assess", "--demo", "10", "--rules", "ga-2099-01", "--out", str(tmp_path))
    assert proc.returncode == 2
    assert no_traceback(proc)
    assert "ga-2099-01" in proc.stderr and "ga-2025-07" in proc.stderr
