"""Recovery Services' own write throttling as a rate (the emulator's ``provider_write_rate``):
item PUTs beyond the rate per subscription and action answer 429 ResourceRequestsThrottled with
a Retry-After while ARM's write budget is nearly untouched; below the rate nothing is refused;
``/_emulator/stats`` counts the 429s by code. Real SDK clients against the emulator."""

from __future__ import annotations

import json
import signal
import subprocess
from typing import Any

import pytest
import requests
from azure.core.exceptions import HttpResponseError
from azure.identity import ClientSecretCredential
from azure.mgmt.recoveryservicesbackup import RecoveryServicesBackupClient

from emulator.config import EmulatorConfig, Faults
from emulator.server import Emulator
from tests.cli.helpers import ccmigrate_argv, no_traceback, run_cli
from tests.fleets import SUB_A, SUB_B, small_fleet

FAST = {"operation_seconds": 0.05, "job_seconds": 0.05, "backup_job_seconds": 0.05}
VMS = 6
# Next to no refill: the bucket's burst is all a test gets, whatever the machine's speed.
TRICKLE = 0.0001


def _client(emu: Emulator, subscription: str = SUB_A) -> RecoveryServicesBackupClient:
    """The SDK client with its retries off, so each 429 reaches the test as it was sent."""
    cred = ClientSecretCredential(emu.tenant_id, emu.client_id, emu.client_secret,
                                  authority=emu.endpoint, disable_instance_discovery=True,
                                  connection_verify=str(emu.ca_bundle))
    return RecoveryServicesBackupClient(cred, subscription, base_url=emu.endpoint,
                                        connection_verify=str(emu.ca_bundle),
                                        credential_scopes=["https://management.azure.com/.default"],
                                        polling_interval=0, retry_total=0)


def _put_item(client: RecoveryServicesBackupClient, sub: str, i: int,
              policy: str = "enhanced-daily-crash") -> Any:
    """Move VM ``i`` of ``sub``'s vault to ``policy``: the protected-item PUT (the initial
    answer only; the operation is not waited for)."""
    vm = f"vm-{sub[:4]}-{i}"
    vault_id = (f"/subscriptions/{sub}/resourceGroups/rg-backup/providers/"
                f"Microsoft.RecoveryServices/vaults/vault-{sub[:4]}")
    body = {"properties": {
        "protectedItemType": "Microsoft.Compute/virtualMachines",
        "sourceResourceId": f"/subscriptions/{sub}/resourceGroups/rg-app/providers/"
                            f"Microsoft.Compute/virtualMachines/{vm}",
        "policyId": f"{vault_id}/backupPolicies/{policy}"}}
    return client.protected_items.begin_create_or_update(
        f"vault-{sub[:4]}", "rg-backup", "Azure", f"IaasVMContainer;iaasvmcontainerv2;rg-app;{vm}",
        f"VM;iaasvmcontainerv2;rg-app;{vm}", body)


def _emulator(faults: Faults, **config: Any) -> Emulator:
    return Emulator(small_fleet(VMS), config=EmulatorConfig(**{**FAST, **config}), faults=faults)


def test_item_puts_beyond_the_provider_rate_get_resource_requests_throttled_with_retry_after():
    faults = Faults(provider_write_rate=TRICKLE, provider_write_burst=3,
                    provider_throttle_retry_after=60)
    with _emulator(faults) as emu:
        client = _client(emu)
        for i in range(3):
            _put_item(client, SUB_A, i)
        refused = []
        for i in range(3, VMS):
            with pytest.raises(HttpResponseError) as err:
                _put_item(client, SUB_A, i)
            refused.append(err.value)
        assert {e.status_code for e in refused} == {429}
        assert {e.error.code for e in refused} == {"ResourceRequestsThrottled"}
        assert "protectedItems/write" in refused[0].message
        headers = refused[-1].response.headers
        assert headers["Retry-After"] == "60"
        # ARM's budget is not what ran out: 200 writes, six spent.
        assert int(headers["x-ms-ratelimit-remaining-subscription-writes"]) >= 190
        stats = requests.get(f"{emu.endpoint}/_emulator/stats", verify=str(emu.ca_bundle),
                             timeout=10).json()
        assert stats["throttled"] == {"ResourceRequestsThrottled": 3}
        assert stats["throttled_by_kind"] == {"write": 3}
        assert stats["received"]["write"] == VMS and stats["requests"]["write"] == 3


def test_the_provider_bucket_is_per_subscription_and_action():
    faults = Faults(provider_write_rate=TRICKLE, provider_write_burst=1)
    with _emulator(faults) as emu:
        client = _client(emu)
        _put_item(client, SUB_A, 0)
        with pytest.raises(HttpResponseError) as err:
            _put_item(client, SUB_A, 1)
        assert err.value.error.code == "ResourceRequestsThrottled"
        # Another subscription's item PUTs, and a policy PUT (another action), still go through.
        _put_item(_client(emu, SUB_B), SUB_B, 0)
        vault = f"vault-{SUB_A[:4]}"
        props = dict(client.protection_policies.get(vault, "rg-backup",
                                                    "enhanced-daily").properties)
        props.pop("protectedItemsCount", None)  # read-only (api-notes 3)
        client.protection_policies.create_or_update(vault, "rg-backup", "enhanced-daily-copy",
                                                    {"properties": props})


def test_item_puts_below_the_provider_rate_are_never_throttled():
    # One PUT at a time never outruns a thousand tokens a second.
    faults = Faults(provider_write_rate=1000, provider_write_burst=3)
    with _emulator(faults) as emu:
        client = _client(emu)
        for sub in (SUB_A, SUB_B):
            for i in range(VMS):
                _put_item(client if sub == SUB_A else _client(emu, SUB_B), sub, i)
        assert emu.all_stats()["throttled"] == {}


def test_arm_throttles_first_and_its_429s_are_counted_apart():
    faults = Faults(provider_write_rate=TRICKLE, provider_write_burst=VMS)
    with _emulator(faults, write_capacity=2, write_refill=TRICKLE) as emu:
        client = _client(emu)
        _put_item(client, SUB_A, 0)
        _put_item(client, SUB_A, 1)
        with pytest.raises(HttpResponseError) as err:
            _put_item(client, SUB_A, 2)
        assert err.value.error.code == "SubscriptionRequestsThrottled"
        assert emu.all_stats()["throttled"] == {"SubscriptionRequestsThrottled": 1}


def test_provider_throttling_is_turned_on_and_off_at_run_time_and_bad_rates_are_refused():
    with _emulator(Faults()) as emu:
        url, verify = f"{emu.endpoint}/_emulator/faults", str(emu.ca_bundle)
        client = _client(emu)
        on = requests.post(url, json={"provider_write_rate": TRICKLE, "provider_write_burst": 1},
                           verify=verify, timeout=10)
        assert on.status_code == 200
        _put_item(client, SUB_A, 0)
        with pytest.raises(HttpResponseError):
            _put_item(client, SUB_A, 1)
        requests.post(url, json={"provider_write_rate": None}, verify=verify, timeout=10)
        _put_item(client, SUB_A, 1)
        for bad in ({"provider_write_rate": 0}, {"provider_write_rate": "fast"},
                    {"provider_write_rate": 5, "provider_write_burst": 0}):
            refused = requests.post(url, json=bad, verify=verify, timeout=10)
            assert refused.status_code == 400, bad
            assert "provider_write" in refused.json()["error"]["message"]
        assert emu.world.faults.provider_write_rate is None  # a refused change changes nothing


def test_serve_takes_the_provider_rate_flags_and_refuses_a_rate_of_zero():
    proc = run_cli("emulator", "serve", "--demo", "20", "--provider-write-rate", "0")
    assert proc.returncode == 2 and no_traceback(proc)
    assert "--provider-write-rate" in proc.stderr + proc.stdout
    serving = subprocess.Popen([*ccmigrate_argv(), "emulator", "serve", "--demo", "20",
                                "--port", "0", "--provider-write-rate", "5",
                                "--provider-write-burst", "2"], stdout=subprocess.PIPE, text=True)
    try:
        info = json.loads(serving.stdout.readline())
        faults = requests.get(f"{info['endpoint']}/_emulator/faults",
                              verify=info["ca_bundle"], timeout=30).json()
        assert (faults["provider_write_rate"], faults["provider_write_burst"]) == (5.0, 2)
        assert faults["provider_throttle_retry_after"] == 60
    finally:
        serving.send_signal(signal.SIGTERM)
        serving.wait(timeout=30)
