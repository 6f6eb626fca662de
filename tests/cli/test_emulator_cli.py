"""`ccmigrate emulator generate|serve` and commands pointed at a separately started emulator."""

from __future__ import annotations

import json
import signal
import subprocess

import pytest
import requests

from tests.cli.helpers import REPO, ccmigrate_argv, no_traceback, run_cli


def test_generate_is_deterministic(tmp_path):
    a, b, c = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "c.json"
    for path, seed in ((a, "3"), (b, "3"), (c, "4")):
        proc = run_cli("emulator", "generate", "--vms", "300", "--subscriptions", "2",
                       "--seed", seed, "--out", str(path))
        assert proc.returncode == 0, proc.stderr
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    fleet = json.loads(a.read_text())
    assert len(fleet["subscriptions"]) == 2
    assert sum(r["type"] == "Microsoft.Compute/virtualMachines" for r in fleet["resources"]) == 300


@pytest.fixture
def served(tmp_path):
    """`ccmigrate emulator serve --demo 120 --port 0` as a user starts it; yields its JSON line."""
    proc = subprocess.Popen([*ccmigrate_argv(), "emulator", "serve", "--demo", "120",
                             "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=REPO)
    try:
        line = proc.stdout.readline()
        assert line, proc.stderr.read()
        yield json.loads(line), proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=10)


def test_serve_prints_connection_line_and_stops_on_sigterm(served):
    info, proc = served
    assert set(info) == {"endpoint", "ca_bundle", "tenant_id", "client_id", "client_secret"}
    assert info["endpoint"].startswith("https://127.0.0.1:")
    state = requests.get(f"{info['endpoint']}/_emulator/state", verify=info["ca_bundle"],
                         timeout=10).json()
    assert sum(r["type"] == "Microsoft.Compute/virtualMachines" for r in state["resources"]) == 120
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0


def test_discover_against_a_separately_started_emulator(served, prefect_api):
    info, _ = served
    proc = run_cli("discover", "--endpoint", info["endpoint"], "--ca-bundle", info["ca_bundle"],
                   "--credential", "emulator")
    assert proc.returncode == 0, proc.stderr
    assert "120 VMs in" in proc.stdout


def test_discover_with_an_unknown_subscription_is_bad_input(served, prefect_api):
    info, _ = served
    proc = run_cli("discover", "--endpoint", info["endpoint"], "--ca-bundle", info["ca_bundle"],
                   "--credential", "emulator",
                   "--subscription", "99999999-9999-4999-8999-999999999999")
    assert proc.returncode == 2
    assert no_traceback(proc)
    assert "99999999-9999-4999-8999-999999999999" in proc.stderr


def test_wrong_secret_ends_with_a_clear_message(served, prefect_api):
    info, _ = served
    proc = run_cli("discover", "--endpoint", info["endpoint"], "--ca-bundle", info["ca_bundle"],
                   "--credential", "emulator", env={"CCMIGRATE_CLIENT_SECRET": "wrong"})
    assert proc.returncode == 2
    assert no_traceback(proc)
    assert "check the client secret" in proc.stderr


def test_expired_token_ends_with_a_clear_message(served, prefect_api):
    info, _ = served
    requests.post(f"{info['endpoint']}/_emulator/faults", json={"expire_tokens": True},
                  verify=info["ca_bundle"], timeout=10).raise_for_status()
    proc = run_cli("discover", "--endpoint", info["endpoint"], "--ca-bundle", info["ca_bundle"],
                   "--credential", "emulator")
    assert proc.returncode == 2
    assert no_traceback(proc)
    assert "ExpiredAuthenticationToken" in proc.stderr


def test_wrong_ca_bundle_is_a_clear_connection_error(served, prefect_api, tmp_path):
    info, _ = served
    import trustme

    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    proc = run_cli("discover", "--endpoint", info["endpoint"], "--ca-bundle", str(other),
                   "--credential", "emulator", env={"CCMIGRATE_THROTTLES__HTTP_RETRIES": "0"})
    assert proc.returncode in (1, 2)
    assert no_traceback(proc)
    assert "--ca-bundle" in proc.stderr


def test_discover_demo_runs_in_process(prefect_api):
    proc = run_cli("discover", "--demo", "300")
    assert proc.returncode == 0, proc.stderr
    assert "300 VMs in" in proc.stdout
