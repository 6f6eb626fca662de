"""The emulator's cross-cutting behaviour: ARM throttling, injected faults, errors, state dump."""

from __future__ import annotations

import pytest
import requests

from emulator.config import EmulatorConfig, Faults
from emulator.server import Emulator
from flows.options import with_emulator_principal
from tasks.azure.clients import AzureAccess
from tasks.azure.errors import azure_call
from tasks.errors import AzureError
from tasks.settings import load_settings
from tests.fleets import SUB_A, small_fleet

API = "api-version=2026-04-01"


def _access(emu: Emulator, **throttles) -> AzureAccess:
    settings = with_emulator_principal(load_settings(environ={}), emu.connection_info())
    settings = settings.model_copy(update={
        "throttles": settings.throttles.model_copy(update={"http_backoff": 0.05, **throttles})})
    return AzureAccess(settings)


def _token(emu: Emulator) -> str:
    return requests.post(f"{emu.endpoint}/{emu.tenant_id}/oauth2/v2.0/token", data={
        "grant_type": "client_credentials", "client_id": emu.client_id,
        "client_secret": emu.client_secret, "scope": "https://management.azure.com/.default"},
        verify=str(emu.ca_bundle), timeout=10).json()["access_token"]


def _get(emu: Emulator, path: str, token: str) -> requests.Response:
    return requests.get(f"{emu.endpoint}{path}", headers={"Authorization": f"Bearer {token}"},
                        verify=str(emu.ca_bundle), timeout=10)


def test_read_bucket_throttles_per_subscription_with_retry_after():
    config = EmulatorConfig(read_capacity=3, read_refill=1.0)
    with Emulator(small_fleet(), config=config) as emu:
        token = _token(emu)
        path = f"/subscriptions/{SUB_A}/providers/Microsoft.Compute/virtualMachines?{API}"
        remaining = [_get(emu, path, token).headers[
            "x-ms-ratelimit-remaining-subscription-reads"] for _ in range(3)]
        assert remaining == ["2", "1", "0"]
        throttled = _get(emu, path, token)
        assert throttled.status_code == 429
        assert throttled.json()["error"]["code"] == "SubscriptionRequestsThrottled"
        assert int(throttled.headers["Retry-After"]) >= 1


def test_sdk_absorbs_throttling_by_honouring_retry_after():
    config = EmulatorConfig(read_capacity=2, read_refill=5.0)
    with Emulator(small_fleet(), config=config) as emu:
        compute = _access(emu).compute(SUB_A)
        names = [[vm.name for vm in compute.virtual_machines.list_all()] for _ in range(5)]
        assert all(n == names[0] for n in names) and len(names[0]) == 3


def test_injected_429s_and_5xx_and_drops_are_retried_by_the_sdk():
    faults = Faults(rate_429=0.3, rate_5xx=0.3, rate_drop=0.1, retry_after_429=0)
    with Emulator(small_fleet(), faults=faults) as emu:
        compute = _access(emu, http_retries=20).compute(SUB_A)
        for _ in range(10):
            assert len(list(compute.disks.list())) == 6


def test_every_429_in_a_row_up_to_http_retries_is_retried():
    # azure-core caps status-code retries at 3 unless told otherwise: http_retries covers them.
    with Emulator(small_fleet(), faults=Faults(retry_after_429=0)) as emu:
        compute = _access(emu, http_retries=6).compute(SUB_A)
        assert len(list(compute.disks.list())) == 6  # the token is fetched and cached
        emu.world.faults.throttle_next = 6
        assert len(list(compute.disks.list())) == 6
        emu.world.faults.throttle_next = 7
        with pytest.raises(AzureError) as err, azure_call("listing disks"):
            list(compute.disks.list())
        assert err.value.status == 429


def test_5xx_beyond_the_retry_budget_is_a_clear_error():
    with Emulator(small_fleet(), faults=Faults(rate_5xx=1.0)) as emu:
        compute = _access(emu, http_retries=1).compute(SUB_A)
        with pytest.raises(AzureError) as err, azure_call("listing VMs"):
            list(compute.virtual_machines.list_all())
        assert "while listing VMs" in str(err.value)
        assert err.value.status in (500, 503)


def test_faults_can_be_changed_at_run_time(fresh_emulator):
    url = f"{fresh_emulator.endpoint}/_emulator/faults"
    verify = str(fresh_emulator.ca_bundle)
    got = requests.post(url, json={"latency_ms": 5, "fail_jobs_for": ["vm-1111-0"]},
                        verify=verify, timeout=10).json()
    assert got["latency_ms"] == 5 and got["fail_jobs_for"] == ["vm-1111-0"]
    bad = requests.post(url, json={"earthquake": True}, verify=verify, timeout=10)
    assert bad.status_code == 400 and "earthquake" in bad.json()["error"]["message"]


def test_unknown_routes_and_missing_api_version_get_arm_errors(emulator):
    token = _token(emulator)
    missing = _get(emulator, f"/subscriptions/{SUB_A}/providers/Microsoft.Compute/"
                             "virtualMachines", token)
    assert missing.status_code == 400
    assert missing.json()["error"]["code"] == "MissingApiVersionParameter"
    unknown = _get(emulator, f"/subscriptions/{SUB_A}/providers/Microsoft.Web/sites?{API}",
                   token)
    assert unknown.status_code == 404 and "error" in unknown.json()


def test_unknown_subscription_and_resource_are_404s(emulator):
    token = _token(emulator)
    sub = _get(emulator, "/subscriptions/99999999-9999-4999-8999-999999999999/providers/"
                         f"Microsoft.Compute/virtualMachines?{API}", token)
    assert sub.json()["error"]["code"] == "SubscriptionNotFound"
    vm = _get(emulator, f"/subscriptions/{SUB_A}/resourceGroups/rg-app/providers/"
                        f"Microsoft.Compute/virtualMachines/ghost?{API}", token)
    assert vm.status_code == 404 and vm.json()["error"]["code"] == "ResourceNotFound"


def test_paths_are_case_insensitive_and_percent_decoded(emulator):
    token = _token(emulator)
    resp = _get(emulator, f"/SUBSCRIPTIONS/{SUB_A}/resourcegroups/RG-APP/providers/"
                          f"microsoft.compute/VIRTUALMACHINES/vm%2D1111%2D0?{API}", token)
    assert resp.status_code == 200 and resp.json()["name"] == "vm-1111-0"


def test_list_paging_follows_next_links():
    with Emulator(small_fleet(vms_per_sub=7), config=EmulatorConfig(list_page_size=3)) as emu:
        compute = _access(emu).compute(SUB_A)
        assert len(list(compute.virtual_machines.list_all())) == 7
        assert len(list(compute.disks.list())) == 14


def test_state_dump_is_a_fleet_file(emulator):
    from emulator.fleet import validate_fleet

    dump = requests.get(f"{emulator.endpoint}/_emulator/state", verify=str(emulator.ca_bundle),
                        timeout=10).json()
    validate_fleet(dump)
    assert {s["subscriptionId"] for s in dump["subscriptions"]} == {
        s["subscriptionId"] for s in small_fleet()["subscriptions"]}
    assert len(dump["resources"]) == len(small_fleet()["resources"])


def test_vm_instance_view_and_resource_skus(emulator):
    compute = _access(emulator).compute(SUB_A)
    view = compute.virtual_machines.instance_view("rg-app", "vm-1111-0")
    assert any(s.code == "PowerState/running" for s in view.statuses)
    skus = list(compute.resource_skus.list(filter="location eq 'eastus'"))
    sizes = {s.name: s for s in skus if s.resource_type == "virtualMachines"}
    premium = {c.name: c.value for c in sizes["Standard_D4s_v5"].capabilities}
    assert premium["PremiumIO"] == "True"
    assert all("eastus" in [loc.lower() for loc in s.locations] for s in skus)
