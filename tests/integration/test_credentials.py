"""Real azure-identity credentials against the emulator's Entra endpoint."""

from __future__ import annotations

import pytest

from tasks.azure.clients import AzureAccess
from tasks.azure.errors import azure_call
from tasks.errors import AuthenticationError
from tasks.settings import load_settings
from tests.fleets import SUB_A


def test_default_azure_credential_from_environment_lists_vms(emulator, monkeypatch):
    monkeypatch.setenv("AZURE_TENANT_ID", emulator.tenant_id)
    monkeypatch.setenv("AZURE_CLIENT_ID", emulator.client_id)
    monkeypatch.setenv("AZURE_CLIENT_SECRET", emulator.client_secret)
    monkeypatch.setenv("AZURE_AUTHORITY_HOST", emulator.endpoint)
    settings = load_settings(environ={}, flags={
        "credential": "default", "endpoint": emulator.endpoint,
        "ca_bundle": str(emulator.ca_bundle)})
    access = AzureAccess(settings)
    names = [vm.name for vm in access.compute(SUB_A).virtual_machines.list_all()]
    assert names == ["vm-1111-0", "vm-1111-1", "vm-1111-2"]


def _emulator_settings(emulator, secret: str):
    return load_settings(environ={}, flags={
        "credential": "emulator", "endpoint": emulator.endpoint,
        "ca_bundle": str(emulator.ca_bundle), "tenant_id": emulator.tenant_id,
        "client_id": emulator.client_id, "client_secret": secret})


def test_wrong_secret_is_a_clear_authentication_error(emulator):
    access = AzureAccess(_emulator_settings(emulator, "not-the-secret"))
    with pytest.raises(AuthenticationError) as err, azure_call("listing VMs"):
        list(access.compute(SUB_A).virtual_machines.list_all())
    message = str(err.value)
    assert "AADSTS7000215" in message and "check the client secret" in message
    assert "\n" not in message


def test_expired_token_is_a_clear_authentication_error(fresh_emulator):
    access = AzureAccess(_emulator_settings(fresh_emulator, fresh_emulator.client_secret))
    fresh_emulator.world.faults.expire_tokens = True
    with pytest.raises(AuthenticationError) as err, azure_call("listing VMs"):
        list(access.compute(SUB_A).virtual_machines.list_all())
    assert "ExpiredAuthenticationToken" in str(err.value)
    assert "the token expired" in str(err.value)


def test_arm_calls_without_a_token_get_arms_401(emulator):
    import requests

    resp = requests.get(f"{emulator.endpoint}/subscriptions/{SUB_A}/providers/"
                        "Microsoft.Compute/virtualMachines?api-version=2026-04-01",
                        verify=str(emulator.ca_bundle), timeout=10)
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "AuthenticationFailed"
    assert resp.headers["WWW-Authenticate"].startswith("Bearer authorization_uri=")


def test_token_lifetime_is_enforced(small_lifetime_emulator):
    import requests

    emu = small_lifetime_emulator
    token = requests.post(f"{emu.endpoint}/{emu.tenant_id}/oauth2/v2.0/token", data={
        "grant_type": "client_credentials", "client_id": emu.client_id,
        "client_secret": emu.client_secret,
        "scope": "https://management.azure.com/.default"},
        verify=str(emu.ca_bundle), timeout=10).json()
    assert token["expires_in"] == 1
    import time

    time.sleep(1.2)
    resp = requests.get(f"{emu.endpoint}/subscriptions/{SUB_A}/providers/"
                        "Microsoft.Compute/virtualMachines?api-version=2026-04-01",
                        headers={"Authorization": f"Bearer {token['access_token']}"},
                        verify=str(emu.ca_bundle), timeout=10)
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "ExpiredAuthenticationToken"


@pytest.fixture
def small_lifetime_emulator():
    from emulator.config import EmulatorConfig
    from emulator.server import Emulator
    from tests.fleets import small_fleet

    with Emulator(small_fleet(), config=EmulatorConfig(token_lifetime=1)) as emu:
        yield emu
