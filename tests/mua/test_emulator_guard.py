"""Multi-user authorization in the emulator, driven by the real SDK over HTTPS: a vault linked
to a Resource Guard refuses only critical operations (a change that reduces retention, stop and
delete) that carry no request of its guard; everything else on the vault goes through."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from emulator.config import Faults
from emulator.fleet import FleetError, validate_fleet
from emulator.resource_guard import REFUSAL_MESSAGE
from tests.emulator.test_backup_routes import (
    client_for,
    get_item,
    item_names,
    policy_id,
    protect_body,
    running,
    state_of,
    wait_policy_op,
)
from tests.fleets import SUB_B
from tests.mua.guarded import (
    GUARD_ID,
    RG,
    UPDATE_POLICY_REQUEST,
    UPDATE_PROTECTION_REQUEST,
    VAULT,
    VAULT_ID,
    guard,
    guarded_fleet,
    proxy,
)

UPDATE_PROTECTION = ("Microsoft.RecoveryServices/vaults/backupFabrics/protectionContainers/"
                     "protectedItems/write")


def repoint(client: Any, vm: str, policy: str, requests: list[str] | None = None) -> Any:
    body = protect_body(vm, policy)
    if requests is not None:
        body["properties"]["resourceGuardOperationRequests"] = requests
    container, item = item_names(vm)
    return client.protected_items.begin_create_or_update(VAULT, RG, "Azure", container, item,
                                                         body).result()


def edit_policy(client: Any, name: str, requests: list[str] | None = None,
                **changes: Any) -> None:
    raw = copy.deepcopy(dict(client.protection_policies.get(VAULT, RG, name).properties))
    raw.pop("protectedItemsCount", None)
    for key, value in changes.items():
        raw[key] = value
    if requests is not None:
        raw["resourceGuardOperationRequests"] = requests
    captured: dict[str, str] = {}

    def keep(resp: Any, deserialized: Any, _h: Any) -> Any:
        captured.update(resp.http_response.headers)
        return deserialized

    client.protection_policies.create_or_update(VAULT, RG, name, {"properties": raw}, cls=keep)
    if "Azure-AsyncOperation" in captured:
        op = captured["Azure-AsyncOperation"].split("?")[0].rsplit("/", 1)[-1]
        assert wait_policy_op(client, name, op).status == "Succeeded"


def daily_days(retention: dict) -> dict:
    return {**retention, "dailySchedule": {**retention["dailySchedule"], "retentionDuration": {
        "count": 10, "durationType": "Days"}}}


# -- the link --------------------------------------------------------------------------------

def test_a_guarded_vault_lists_its_proxy_and_an_unguarded_one_lists_none() -> None:
    with running(guarded_fleet()) as emu:
        client = client_for(emu)
        listed = list(client.resource_guard_proxies.get(VAULT, RG))
        assert [p.name for p in listed] == ["VaultProxy"]
        vault_proxy = client.resource_guard_proxy.get(VAULT, RG, "VaultProxy")
        assert vault_proxy.id == f"{VAULT_ID}/backupResourceGuardProxies/VaultProxy"
        assert vault_proxy.type == "Microsoft.RecoveryServices/vaults/backupResourceGuardProxies"
        assert vault_proxy.properties.resource_guard_resource_id == GUARD_ID
        details = {d.vault_critical_operation: d.default_resource_request
                   for d in vault_proxy.properties.resource_guard_operation_details}
        assert details[UPDATE_PROTECTION] == UPDATE_PROTECTION_REQUEST
        other = client_for(emu, SUB_B)
        assert list(other.resource_guard_proxies.get("vault-2222", RG)) == []
        with pytest.raises(ResourceNotFoundError):
            other.resource_guard_proxy.get("vault-2222", RG, "VaultProxy")


def test_the_state_dump_returns_the_proxy_and_the_guard_as_the_fleet_gave_them() -> None:
    fleet = guarded_fleet()
    with running(fleet) as emu:
        state = state_of(emu)
    assert state[proxy()["id"].lower()] == proxy()
    assert state[GUARD_ID.lower()] == guard()


def test_the_old_resource_guard_vaults_fault_links_a_default_guard() -> None:
    with running(guarded_fleet(linked=False), faults=Faults(resource_guard_vaults=[VAULT])) as emu:
        client = client_for(emu)
        (linked,) = list(client.resource_guard_proxies.get(VAULT, RG))
        assert linked.properties.resource_guard_resource_id.endswith(
            "/resourceGuards/vault-1111-guard")
        with pytest.raises(HttpResponseError) as info:
            repoint(client, "vm-1111-0", policy_id("enhanced-daily-7d"))
        assert REFUSAL_MESSAGE in info.value.error.message


# -- critical and non-critical writes ---------------------------------------------------------

def test_repointing_to_a_clone_with_the_same_retention_needs_no_guard_request() -> None:
    with running(guarded_fleet()) as emu:
        client = client_for(emu)
        repoint(client, "vm-1111-0", policy_id("enhanced-daily-crash"))
        assert get_item(client, "vm-1111-0")["policyId"] == policy_id("enhanced-daily-crash")


def test_repointing_to_shorter_retention_is_refused_and_changes_nothing() -> None:
    with running(guarded_fleet()) as emu:
        client = client_for(emu)
        before = state_of(emu)
        with pytest.raises(HttpResponseError) as info:
            repoint(client, "vm-1111-0", policy_id("enhanced-daily-7d"))
        assert REFUSAL_MESSAGE in info.value.error.message
        assert GUARD_ID in info.value.error.message
        assert state_of(emu) == before


def test_repointing_to_shorter_retention_passes_with_the_guards_request() -> None:
    with running(guarded_fleet()) as emu:
        client = client_for(emu)
        repoint(client, "vm-1111-0", policy_id("enhanced-daily-7d"), [UPDATE_PROTECTION_REQUEST])
        assert get_item(client, "vm-1111-0")["policyId"] == policy_id("enhanced-daily-7d")


def test_a_request_of_another_guard_does_not_count() -> None:
    with running(guarded_fleet()) as emu:
        client = client_for(emu)
        foreign = UPDATE_PROTECTION_REQUEST.replace("contoso-guard", "other-guard")
        with pytest.raises(HttpResponseError) as info:
            repoint(client, "vm-1111-0", policy_id("enhanced-daily-7d"), [foreign])
        assert REFUSAL_MESSAGE in info.value.error.message


def test_editing_a_policy_to_shorter_retention_is_refused_without_the_request() -> None:
    with running(guarded_fleet()) as emu:
        client = client_for(emu)
        retention = client.protection_policies.get(VAULT, RG, "enhanced-daily").properties[
            "retentionPolicy"]
        with pytest.raises(HttpResponseError) as info:
            edit_policy(client, "enhanced-daily", retentionPolicy=daily_days(retention))
        assert REFUSAL_MESSAGE in info.value.error.message
        edit_policy(client, "enhanced-daily", [UPDATE_POLICY_REQUEST],
                    retentionPolicy=daily_days(retention))
        kept = client.protection_policies.get(VAULT, RG, "enhanced-daily").properties
        assert kept["retentionPolicy"]["dailySchedule"]["retentionDuration"]["count"] == 10


def test_fewer_instant_restore_days_is_a_reduction_too() -> None:
    with running(guarded_fleet()) as emu:
        client = client_for(emu)
        with pytest.raises(HttpResponseError) as info:
            edit_policy(client, "enhanced-daily", instantRpRetentionRangeInDays=3)
        assert REFUSAL_MESSAGE in info.value.error.message


def test_a_policy_edit_that_keeps_retention_passes() -> None:
    with running(guarded_fleet()) as emu:
        client = client_for(emu)
        edit_policy(client, "enhanced-daily", snapshotConsistencyType="OnlyCrashConsistent",
                    instantRpRetentionRangeInDays=9)
        kept = client.protection_policies.get(VAULT, RG, "enhanced-daily").properties
        assert kept["snapshotConsistencyType"] == "OnlyCrashConsistent"


def test_stop_and_delete_need_the_guard() -> None:
    with running(guarded_fleet()) as emu:
        client = client_for(emu)
        container, item = item_names("vm-1111-1")
        with pytest.raises(HttpResponseError) as info:
            client.protected_items.delete(VAULT, RG, "Azure", container, item)
        assert REFUSAL_MESSAGE in info.value.error.message
        stop = {"properties": {"protectedItemType": "Microsoft.Compute/virtualMachines",
                               "protectionState": "ProtectionStopped"}}
        with pytest.raises(HttpResponseError) as info:
            client.protected_items.begin_create_or_update(VAULT, RG, "Azure", container, item,
                                                          stop).result()
        assert REFUSAL_MESSAGE in info.value.error.message
        assert get_item(client, "vm-1111-1")["protectionState"] == "Protected"


def test_an_excluded_operation_is_no_longer_guarded() -> None:
    with running(guarded_fleet(exclusions=[UPDATE_PROTECTION])) as emu:
        client = client_for(emu)
        repoint(client, "vm-1111-0", policy_id("enhanced-daily-7d"))
        assert get_item(client, "vm-1111-0")["policyId"] == policy_id("enhanced-daily-7d")
        retention = client.protection_policies.get(VAULT, RG, "enhanced-daily").properties[
            "retentionPolicy"]
        with pytest.raises(HttpResponseError):  # the guard still protects policy edits
            edit_policy(client, "enhanced-daily", retentionPolicy=daily_days(retention))


def test_without_the_mua_operator_role_the_request_is_refused_by_arm() -> None:
    faults = Faults(mua_operator_missing=["contoso-guard"])
    with running(guarded_fleet(), faults=faults) as emu:
        client = client_for(emu)
        with pytest.raises(HttpResponseError) as info:
            repoint(client, "vm-1111-0", policy_id("enhanced-daily-7d"),
                    [UPDATE_PROTECTION_REQUEST])
        assert info.value.status_code == 403
        assert info.value.error.code == "LinkedAuthorizationFailed"
        assert GUARD_ID in info.value.error.message
        assert get_item(client, "vm-1111-0")["policyId"] == policy_id("enhanced-daily")


# -- the fleet file ---------------------------------------------------------------------------

def test_a_proxy_naming_something_that_is_not_a_guard_is_a_bad_fleet() -> None:
    fleet = guarded_fleet()
    bad = next(r for r in fleet["resources"] if r["name"] == "VaultProxy")
    bad["properties"]["resourceGuardResourceId"] = VAULT_ID
    with pytest.raises(FleetError, match="resourceGuardResourceId"):
        validate_fleet(fleet)


def test_a_guard_cannot_exclude_a_mandatory_operation() -> None:
    fleet = guarded_fleet(exclusions=["Microsoft.RecoveryServices/vaults/backupconfig/write"])
    with pytest.raises(FleetError, match="mandatory"):
        validate_fleet(fleet)


def test_a_proxy_without_its_vault_is_a_bad_fleet() -> None:
    fleet = guarded_fleet()
    fleet["resources"] = [r for r in fleet["resources"]
                          if (r["id"] != VAULT_ID and not r["id"].startswith(VAULT_ID + "/backup"))
                          or r["name"] == "VaultProxy"]
    with pytest.raises(FleetError, match="vault"):
        validate_fleet(fleet)


# -- ccmigrate's reading of the refusal -------------------------------------------------------

def test_ccmigrate_recognises_the_refusal_whatever_code_azure_sends() -> None:
    """The refusal's code is unconfirmed: ccmigrate matches its message too, and a missing
    role (LinkedAuthorizationFailed naming the guard) counts as the guard's refusal as well."""
    from tasks.azure import backup
    from tasks.errors import AzureError
    from tasks.migration.mua import is_guard_refusal

    with running(guarded_fleet(), faults=Faults(mua_operator_missing=["contoso-guard"])) as emu:
        client = client_for(emu)
        vm = protect_body("vm-1111-0", "")["properties"]["sourceResourceId"]
        ref = backup.item_ref_for_vm(backup.vault_ref(VAULT_ID), vm)
        refusals = []
        for requests in ([], [UPDATE_PROTECTION_REQUEST]):
            with pytest.raises(AzureError) as info:
                backup.set_item_policy(client, ref, vm, policy_id("enhanced-daily-7d"),
                                       guard_requests=requests).wait(30)
            refusals.append(info.value)
    assert all(is_guard_refusal(err) for err in refusals)
    assert REFUSAL_MESSAGE in str(refusals[0])
    assert refusals[1].code == "LinkedAuthorizationFailed"
    renamed = AzureError(str(refusals[0]), status=400, code="SomeOtherCodeAzureMightSend")
    assert is_guard_refusal(renamed)


def test_a_proxy_spelled_as_the_spec_examples_spell_it_guards_the_same() -> None:
    """GetResourceGuardProxy.json names each operation by the guard's request type; azure-cli
    compares with the vault operation. Both spellings guard the vault, and ccmigrate reads both."""
    from tasks.azure import backup
    from tasks.azure.guards import UPDATE_PROTECTION as OP
    from tasks.azure.guards import guard_link

    fleet = guarded_fleet()
    spec_style = next(r for r in fleet["resources"] if r["name"] == "VaultProxy")
    for detail in spec_style["properties"]["resourceGuardOperationDetails"]:
        kind = detail["defaultResourceRequest"].rsplit("/", 2)[-2]
        detail["vaultCriticalOperation"] = f"Microsoft.DataProtection/resourceGuards/{kind}"
    with running(fleet) as emu:
        client = client_for(emu)
        with pytest.raises(HttpResponseError) as info:
            repoint(client, "vm-1111-0", policy_id("enhanced-daily-7d"))
        assert REFUSAL_MESSAGE in info.value.error.message
        listed = backup.list_guard_proxies(client, backup.vault_ref(VAULT_ID))
    link = guard_link(VAULT_ID, listed)
    assert link is not None and link.request_for(OP) == UPDATE_PROTECTION_REQUEST
    assert guard_link(VAULT_ID, [proxy()]).request_for(OP) == UPDATE_PROTECTION_REQUEST


def test_linking_a_vault_to_a_guard_makes_its_critical_operations_need_the_guard() -> None:
    fleet = guarded_fleet(linked=False)
    fleet["resources"].append(guard())
    with running(fleet) as emu:
        client = client_for(emu)
        assert list(client.resource_guard_proxies.get(VAULT, RG)) == []
        linked = client.resource_guard_proxy.put(
            VAULT, RG, "VaultProxy", {"properties": {"resourceGuardResourceId": GUARD_ID}})
        assert linked.properties.resource_guard_resource_id == GUARD_ID
        assert [p.name for p in client.resource_guard_proxies.get(VAULT, RG)] == ["VaultProxy"]
        with pytest.raises(HttpResponseError) as info:
            repoint(client, "vm-1111-0", policy_id("enhanced-daily-7d"))
        assert REFUSAL_MESSAGE in info.value.error.message
        assert state_of(emu)[proxy()["id"].lower()]["properties"]["resourceGuardResourceId"] \
            == GUARD_ID
