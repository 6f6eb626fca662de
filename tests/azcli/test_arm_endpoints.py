"""The ARM endpoints a client calls before any resource (cloud metadata, subscriptions, tenants),
read with the real SDK client and plain HTTPS: these run without the Azure CLI installed."""

from __future__ import annotations

import pytest
import requests
from azure.core.exceptions import ResourceNotFoundError
from azure.identity import ClientSecretCredential
from azure.mgmt.resource.subscriptions import SubscriptionClient

from emulator.config import EmulatorConfig, Faults
from emulator.server import Emulator
from tests.fleets import SUB_A, SUB_B, TENANT, small_fleet


def _client(emu: Emulator) -> SubscriptionClient:
    ca = str(emu.ca_bundle)
    cred = ClientSecretCredential(emu.tenant_id, emu.client_id, emu.client_secret,
                                  authority=emu.endpoint, disable_instance_discovery=True,
                                  connection_verify=ca)
    return SubscriptionClient(cred, base_url=emu.endpoint, connection_verify=ca,
                              credential_scopes=[f"{emu.endpoint}/.default"])


@pytest.fixture(scope="module")
def paged_emulator():
    """Subscriptions listed one a page, so ``nextLink`` paging is exercised."""
    with Emulator(small_fleet(vms_per_sub=1), config=EmulatorConfig(list_page_size=1)) as emu:
        yield emu


def test_cloud_metadata_names_the_emulator_as_resource_manager_and_authority(paged_emulator):
    emu = paged_emulator
    # No token: `az cloud register` reads it before any login.
    answer = requests.get(f"{emu.endpoint}/metadata/endpoints?api-version=2022-09-01",
                          verify=str(emu.ca_bundle), timeout=10)
    assert answer.status_code == 200
    cloud = answer.json()
    assert cloud["resourceManager"].rstrip("/") == emu.endpoint
    assert cloud["authentication"]["loginEndpoint"].rstrip("/") == emu.endpoint
    assert cloud["authentication"]["audiences"][0].rstrip("/") == emu.endpoint
    assert isinstance(cloud["suffixes"], dict) and cloud["suffixes"]["storage"]
    # The tenant's OpenID configuration is where the login endpoint says it is.
    openid = requests.get(f"{cloud['authentication']['loginEndpoint']}/{TENANT}/v2.0/"
                          ".well-known/openid-configuration", verify=str(emu.ca_bundle),
                          timeout=10)
    assert openid.status_code == 200


def test_every_subscription_is_listed_across_pages_and_each_can_be_read(paged_emulator):
    with _client(paged_emulator) as client:
        listed = list(client.subscriptions.list())
        assert [s.subscription_id for s in listed] == [SUB_A, SUB_B]
        assert {s.display_name for s in listed} == {"contoso-prod", "contoso-dev"}
        assert {(s.tenant_id, s.state) for s in listed} == {(TENANT, "Enabled")}
        one = client.subscriptions.get(SUB_B)
        assert (one.id, one.display_name) == (f"/subscriptions/{SUB_B}", "contoso-dev")
        assert one.subscription_policies.spending_limit == "Off"
        assert [t.tenant_id for t in client.tenants.list()] == [TENANT]


def test_an_unknown_subscription_is_not_found():
    with Emulator(small_fleet(vms_per_sub=1)) as emu, _client(emu) as client:
        with pytest.raises(ResourceNotFoundError) as err:
            client.subscriptions.get("99999999-9999-4999-8999-999999999999")
        assert err.value.error.code == "SubscriptionNotFound"


def test_a_subscription_the_principal_cannot_read_is_left_out_of_the_list():
    faults = Faults()
    faults.update({"forbidden_scopes": [f"/subscriptions/{SUB_B}"]})
    with Emulator(small_fleet(vms_per_sub=1), faults=faults) as emu, _client(emu) as client:
        assert [s.subscription_id for s in client.subscriptions.list()] == [SUB_A]
