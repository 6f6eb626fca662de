"""ensure_policy against the emulator over HTTPS, through the real SDK: create the target (and
the Standard source's rollback) policy, reuse it, stop on a same-name policy with other
settings, surface the vault's policy write limit, and never touch the source policy."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import requests

from emulator.config import EmulatorConfig
from emulator.server import Emulator
from flows.options import with_emulator_principal
from tasks.azure import backup
from tasks.azure.clients import AzureAccess
from tasks.errors import InputError
from tasks.policies.bodies import app_clone_body, crash_clone_body
from tasks.policies.ensure import PolicyConflictError, PolicyLimitError, ensure_policy
from tasks.policies.naming import rollback_policy_name, target_policy_name
from tasks.settings import load_settings
from tests.fleets import SUB_A, make_policy, small_fleet

TEMPLATE = "{source}-crash"


def _fleet() -> dict:
    """``small_fleet`` (its SUB_A vault has ``enhanced-daily`` and a hand-made, identical
    ``enhanced-daily-crash``) plus a Standard (V1) policy, an Enhanced policy in another time
    zone, and ``silver`` whose target name is taken by a policy with another retention."""
    fleet = small_fleet(vms_per_sub=1)
    vault = next(r for r in fleet["resources"]
                 if r["type"] == "Microsoft.RecoveryServices/vaults" and SUB_A in r["id"])
    gold = make_policy(vault, "gold")
    gold["properties"]["timeZone"] = "W. Europe Standard Time"
    squatter = make_policy(vault, "silver-crash", crash=True)
    squatter["properties"]["retentionPolicy"]["dailySchedule"]["retentionDuration"]["count"] = 7
    fleet["resources"] += [make_policy(vault, "standard-daily", v1=True), gold,
                           make_policy(vault, "silver"), squatter]
    return fleet


def _access(emu: Emulator) -> AzureAccess:
    settings = with_emulator_principal(load_settings(environ={}), emu.connection_info())
    return AzureAccess(settings.model_copy(update={"throttles": settings.throttles.model_copy(
        update={"polling_interval": 0.05})}))


@contextmanager
def _running(config: EmulatorConfig | None = None) -> Iterator[tuple[Emulator, AzureAccess]]:
    with Emulator(_fleet(), config=config or EmulatorConfig(operation_seconds=0.1)) as emu:
        access = _access(emu)
        try:
            yield emu, access
        finally:
            access.close()


@pytest.fixture
def world() -> Iterator[tuple[Emulator, AzureAccess]]:
    with _running() as running:
        yield running


def _vault_id(emu: Emulator) -> str:
    return next(r["id"] for r in emu.state()["resources"]
                if r["type"] == "Microsoft.RecoveryServices/vaults" and SUB_A in r["id"])


def _get(emu: Emulator, path: str) -> dict:
    resp = requests.get(f"{emu.endpoint}{path}", verify=str(emu.ca_bundle), timeout=10)
    resp.raise_for_status()
    return resp.json()


def _state(emu: Emulator) -> dict[str, str]:
    """``GET /_emulator/state``: each resource's JSON text by lower-case id."""
    return {r["id"].lower(): json.dumps(r) for r in _get(emu, "/_emulator/state")["resources"]}


def _policy_state(emu: Emulator, vault_id: str, name: str) -> str | None:
    return _state(emu).get(f"{vault_id}/backupPolicies/{name}".lower())


def _writes(emu: Emulator) -> int:
    """ARM write requests the emulator has served (``GET /_emulator/stats``)."""
    return _get(emu, "/_emulator/stats")["requests"].get("write", 0)


def _read(access: AzureAccess, vault_id: str, name: str) -> dict:
    ref = backup.vault_ref(vault_id)
    return backup.get_policy(access.backup(ref.subscription_id), ref, name)


def test_the_crash_clone_of_an_enhanced_policy_is_created_with_its_settings(world):
    emu, access = world
    vault_id = _vault_id(emu)
    source = _read(access, vault_id, "gold")
    before = _policy_state(emu, vault_id, "gold")

    result = ensure_policy(access, vault_id, target_policy_name("gold", TEMPLATE),
                           crash_clone_body(source))

    assert (result.outcome, result.name) == ("created", "gold-crash")
    read = _read(access, vault_id, "gold-crash")
    assert read == result.policy
    props, src = read["properties"], source["properties"]
    assert props["snapshotConsistencyType"] == "OnlyCrashConsistent"
    assert props["policyType"] == "V2"
    assert props["schedulePolicy"] == src["schedulePolicy"]
    assert props["retentionPolicy"] == src["retentionPolicy"]
    assert props["timeZone"] == "W. Europe Standard Time"
    assert props["instantRpRetentionRangeInDays"] == src["instantRpRetentionRangeInDays"] == 7
    assert _policy_state(emu, vault_id, "gold") == before, "the source policy changed"


def test_a_second_ensure_reuses_the_policy_without_writing(world):
    emu, access = world
    vault_id = _vault_id(emu)
    body = crash_clone_body(_read(access, vault_id, "gold"))
    first = ensure_policy(access, vault_id, "gold-crash", body)
    writes, stored = _writes(emu), _policy_state(emu, vault_id, "gold-crash")

    again = ensure_policy(access, vault_id, "gold-crash", body)

    assert (first.outcome, again.outcome) == ("created", "reused")
    assert again.policy == first.policy
    assert _writes(emu) == writes
    assert _policy_state(emu, vault_id, "gold-crash") == stored


def test_a_matching_policy_made_by_hand_is_reused(world):
    emu, access = world
    vault_id = _vault_id(emu)
    source = _read(access, vault_id, "enhanced-daily")
    writes = _writes(emu)

    result = ensure_policy(access, vault_id, "enhanced-daily-crash", crash_clone_body(source))

    assert result.outcome == "reused"
    assert result.id.lower() == f"{vault_id}/backupPolicies/enhanced-daily-crash".lower()
    assert _writes(emu) == writes


def test_a_standard_policy_is_converted_for_the_target_and_for_the_rollback(world):
    emu, access = world
    vault_id = _vault_id(emu)
    source = _read(access, vault_id, "standard-daily")
    before = _policy_state(emu, vault_id, "standard-daily")
    assert source["properties"]["policyType"] == "V1"

    target = ensure_policy(access, vault_id, target_policy_name("standard-daily", TEMPLATE),
                           crash_clone_body(source))
    rollback = ensure_policy(access, vault_id, rollback_policy_name("standard-daily"),
                             app_clone_body(source))

    assert (target.name, rollback.name) == ("standard-daily-crash", "standard-daily-enh")
    for result in (target, rollback):
        props = _read(access, vault_id, result.name)["properties"]
        assert props["policyType"] == "V2"
        assert props["schedulePolicy"] == {
            "schedulePolicyType": "SimpleSchedulePolicyV2", "scheduleRunFrequency": "Daily",
            "dailySchedule": {"scheduleRunTimes": ["2026-11-01T02:00:00Z"]}}
        assert props["retentionPolicy"] == source["properties"]["retentionPolicy"]
        assert props["instantRpRetentionRangeInDays"] == 2
        assert props["timeZone"] == "UTC"
    assert _read(access, vault_id, target.name)["properties"]["snapshotConsistencyType"] == (
        "OnlyCrashConsistent")
    assert "snapshotConsistencyType" not in _read(access, vault_id, rollback.name)["properties"]
    assert _policy_state(emu, vault_id, "standard-daily") == before, "the source policy changed"


def test_a_same_name_policy_with_other_settings_stops_with_the_fields_named(world):
    emu, access = world
    vault_id = _vault_id(emu)
    source = _read(access, vault_id, "silver")
    writes, squatter = _writes(emu), _policy_state(emu, vault_id, "silver-crash")

    with pytest.raises(PolicyConflictError) as err:
        ensure_policy(access, vault_id, "silver-crash", crash_clone_body(source))

    assert err.value.differences == [
        "retentionPolicy.dailySchedule.retentionDuration.count: 7 in Azure, 30 wanted"]
    message = str(err.value)
    assert "'silver-crash' already exists in vault 'vault-1111'" in message
    assert "retentionDuration.count: 7 in Azure, 30 wanted" in message
    assert "change the policy name template" in message and "delete 'silver-crash'" in message
    assert err.value.exit_code == 1
    assert _writes(emu) == writes
    assert _policy_state(emu, vault_id, "silver-crash") == squatter


def test_the_vault_policy_write_limit_says_which_vault_and_when_to_retry():
    config = EmulatorConfig(operation_seconds=0.1, policy_writes_per_vault_per_day=1)
    with _running(config) as (emu, access):
        vault_id = _vault_id(emu)
        source = _read(access, vault_id, "gold")
        assert ensure_policy(access, vault_id, "gold-crash",
                             crash_clone_body(source)).outcome == "created"

        with pytest.raises(PolicyLimitError) as err:
            ensure_policy(access, vault_id, "gold-enh", app_clone_body(source))

        message = str(err.value)
        assert "vault 'vault-1111'" in message and "policy 'gold-enh' was not created" in message
        assert "Azure Backup allows 50 per vault in 24 hours" in message
        assert "Retry in about 24 hours" in message  # the emulator's window is 24 h, too
        assert err.value.code == "BMSUserErrorPolicyWriteLimitReached"
        assert err.value.retry_after_s is not None and err.value.retry_after_s > 0
        assert _policy_state(emu, vault_id, "gold-enh") is None


def test_concurrent_ensures_of_one_rollback_policy_write_it_once(world):
    emu, access = world
    vault_id = _vault_id(emu)
    body = app_clone_body(_read(access, vault_id, "standard-daily"))
    writes = _writes(emu)
    outcomes: list[str] = []
    start = threading.Barrier(4)

    def one() -> None:
        start.wait()
        outcomes.append(ensure_policy(access, vault_id, "standard-daily-enh", body).outcome)

    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert sorted(outcomes) == ["created", "reused", "reused", "reused"]
    assert _writes(emu) == writes + 1


def test_an_invalid_name_is_refused_before_any_request(world):
    emu, access = world
    vault_id = _vault_id(emu)
    requests_before = _get(emu, "/_emulator/stats")["requests"]
    with pytest.raises(InputError, match="'gold_crash' is not a valid backup policy name"):
        ensure_policy(access, vault_id, "gold_crash", crash_clone_body(make_policy(
            {"id": vault_id}, "gold")))
    assert _get(emu, "/_emulator/stats")["requests"] == requests_before
