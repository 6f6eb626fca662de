"""Target and rollback policy bodies, conversion notes and settings comparison: pure functions,
checked on every policy shape in Microsoft's REST examples and the emulator's generated fleet."""

from __future__ import annotations

import copy
import json

import pytest

from emulator.backup_policies import validate_policy
from emulator.generator import generate_fleet
from tasks.errors import SettingsError
from tasks.policies.bodies import (
    PolicyConversionError,
    app_clone_body,
    app_edit_body,
    conversion_note,
    crash_clone_body,
    crash_edit_body,
    describe_policy,
    policy_type,
)
from tasks.policies.compare import settings_differences
from tasks.policies.naming import rollback_policy_name, target_policy_name
from tests.contract.fleet_from_examples import example_stems, examples_root, load_example
from tests.fleets import SUB_A, make_policy, make_vault

VAULT = make_vault(SUB_A, "rg-backup", "vault-a")
TIERING = {"ArchivedRP": {"tieringMode": "TierAfter", "duration": 3, "durationType": "Months"}}
RG_DETAILS = {"azureBackupRGNamePrefix": "rp-coll-", "azureBackupRGNameSuffix": "-prod"}


def _is_policy(resource: object) -> bool:
    return isinstance(resource, dict) and str(resource.get("type", "")).lower().endswith(
        "/backuppolicies") and isinstance(resource.get("properties"), dict)


def _example_policies() -> list[tuple[str, dict]]:
    """Every backup policy a response body of a REST example carries (Get, List, PUT 200)."""
    if examples_root() is None:
        return []
    out = []
    for stem in example_stems("recoveryservicesbackup"):
        for code, response in load_example("recoveryservicesbackup", stem)["responses"].items():
            body = response.get("body")
            candidates = body.get("value", [body]) if isinstance(body, dict) else []
            out += [(f"{stem}:{code}:{p['name']}", p) for p in candidates if _is_policy(p)]
    return out


def _generated_policies() -> list[tuple[str, dict]]:
    """One policy of each template the emulator's default fleet spec generates."""
    seen: dict[str, dict] = {}
    for resource in generate_fleet(40, 1, 11)["resources"]:
        if _is_policy(resource):
            seen.setdefault(resource["name"], resource)
    return [(f"generated:{name}", policy) for name, policy in sorted(seen.items())]


def _v1_weekly() -> dict:
    policy = make_policy(VAULT, "weekly-std", v1=True)
    props = policy["properties"]
    props["schedulePolicy"] = {"schedulePolicyType": "SimpleSchedulePolicy",
                               "scheduleRunFrequency": "Weekly",
                               "scheduleRunDays": ["Saturday", "Sunday"],
                               "scheduleRunTimes": ["2026-11-01T03:30:00Z"],
                               "scheduleWeeklyFrequency": 0}
    props["retentionPolicy"] = {"retentionPolicyType": "LongTermRetentionPolicy",
                                "weeklySchedule": {
                                    "daysOfTheWeek": ["Saturday", "Sunday"],
                                    "retentionTimes": ["2026-11-01T03:30:00Z"],
                                    "retentionDuration": {"count": 12, "durationType": "Weeks"}}}
    props["instantRpRetentionRangeInDays"] = 5
    props["tieringPolicy"] = copy.deepcopy(TIERING)
    props["instantRPDetails"] = copy.deepcopy(RG_DETAILS)
    props["timeZone"] = "W. Europe Standard Time"
    return policy


def _v2_tiered() -> dict:
    policy = make_policy(VAULT, "tiered")
    policy["properties"].update(tieringPolicy=copy.deepcopy(TIERING),
                                instantRPDetails=copy.deepcopy(RG_DETAILS),
                                instantAccessSnapshotEnabled=True,
                                instantAccessDurationMinutes=120,
                                resourceGuardOperationRequests=None)
    return policy


def _handmade() -> list[tuple[str, dict]]:
    return [("fleets:v2-daily", make_policy(VAULT, "gold")),
            ("fleets:v2-crash", make_policy(VAULT, "gold-crash", crash=True)),
            ("fleets:v1-daily", make_policy(VAULT, "std", v1=True)),
            ("fleets:v1-weekly-tiered", _v1_weekly()),
            ("fleets:v2-tiered-instant-access", _v2_tiered())]


ALL = _example_policies() + _generated_policies() + _handmade()
V1 = [(k, p) for k, p in ALL if policy_type(p) == "V1"]
V2 = [(k, p) for k, p in ALL if policy_type(p) == "V2"]
IDS = [k for k, _ in ALL]


def test_every_shape_is_covered():
    shapes = set()
    for _, policy in ALL:
        props = policy["properties"]
        schedule = props["schedulePolicy"]
        shapes.add((policy_type(policy), schedule["scheduleRunFrequency"]))
        shapes |= {key for key in ("tieringPolicy", "instantRPDetails", "timeZone")
                   if props.get(key)}
    assert {("V2", "Daily"), ("V2", "Hourly"), ("V1", "Daily"), ("V1", "Weekly"),
            "tieringPolicy", "instantRPDetails", "timeZone"} <= shapes
    assert examples_root() is None or any(k.startswith("IaaS_v2_hourly") for k in IDS)


@pytest.mark.parametrize(("key", "source"), ALL, ids=IDS)
def test_crash_clone_is_enhanced_crash_consistent_with_the_same_retention_and_settings(key,
                                                                                       source):
    before = copy.deepcopy(source)
    body = crash_clone_body(source)
    assert set(body) == {"properties"}
    props, src = body["properties"], source["properties"]
    assert props["policyType"] == "V2"
    assert props["schedulePolicy"]["schedulePolicyType"] == "SimpleSchedulePolicyV2"
    assert props["snapshotConsistencyType"] == "OnlyCrashConsistent"
    assert props["backupManagementType"] == "AzureIaasVM"
    assert props["retentionPolicy"] == src["retentionPolicy"]
    for field in ("timeZone", "tieringPolicy", "instantRPDetails",
                  "instantAccessSnapshotEnabled", "instantAccessDurationMinutes"):
        assert props.get(field) == src.get(field), field
    assert "protectedItemsCount" not in props
    assert "resourceGuardOperationRequests" not in props
    assert source == before, "the source policy must not change"


@pytest.mark.parametrize(("key", "source"), ALL, ids=IDS)
def test_app_clone_is_the_same_enhanced_policy_without_a_consistency_type(key, source):
    crash, app = crash_clone_body(source)["properties"], app_clone_body(source)["properties"]
    assert "snapshotConsistencyType" not in app
    assert {k: v for k, v in crash.items() if k != "snapshotConsistencyType"} == app


@pytest.mark.parametrize(("key", "source"), ALL, ids=IDS)
def test_the_emulator_accepts_both_bodies_as_a_new_policy(key, source):
    for body in (crash_clone_body(source), app_clone_body(source)):
        stored = validate_policy(json.loads(json.dumps(body)), None)
        assert stored["policyType"] == "V2"


@pytest.mark.parametrize(("key", "source"), V2, ids=[k for k, _ in V2])
def test_an_enhanced_source_keeps_its_schedule_and_instant_restore_days(key, source):
    props, src = crash_clone_body(source)["properties"], source["properties"]
    assert props["schedulePolicy"] == src["schedulePolicy"]
    assert props.get("instantRpRetentionRangeInDays") == src.get("instantRpRetentionRangeInDays")
    assert conversion_note(source) == ""


@pytest.mark.parametrize(("key", "source"), V1, ids=[k for k, _ in V1])
def test_a_standard_schedule_becomes_the_enhanced_schedule_at_the_same_times(key, source):
    old = source["properties"]["schedulePolicy"]
    new = crash_clone_body(source)["properties"]["schedulePolicy"]
    assert new["scheduleRunFrequency"] == old["scheduleRunFrequency"]
    if old["scheduleRunFrequency"] == "Daily":
        assert new["dailySchedule"] == {"scheduleRunTimes": old["scheduleRunTimes"]}
    else:
        assert new["weeklySchedule"] == {"scheduleRunDays": old["scheduleRunDays"],
                                         "scheduleRunTimes": old["scheduleRunTimes"]}
    assert set(new) == {"schedulePolicyType", "scheduleRunFrequency",
                        "dailySchedule" if old["scheduleRunFrequency"] == "Daily"
                        else "weeklySchedule"}
    assert conversion_note(source).startswith("Standard ")


def test_a_standard_daily_policy_keeps_its_instant_restore_days_and_says_so():
    source = make_policy(VAULT, "std", v1=True)
    assert crash_clone_body(source)["properties"]["instantRpRetentionRangeInDays"] == 2
    assert conversion_note(source) == ("Standard daily 02:00 UTC, IR 2 days -> "
                                       "Enhanced daily 02:00 UTC, IR 2 days")


def test_a_standard_weekly_policy_maps_to_an_enhanced_weekly_schedule():
    source = _v1_weekly()
    props = crash_clone_body(source)["properties"]
    assert props["schedulePolicy"] == {
        "schedulePolicyType": "SimpleSchedulePolicyV2", "scheduleRunFrequency": "Weekly",
        "weeklySchedule": {"scheduleRunDays": ["Saturday", "Sunday"],
                           "scheduleRunTimes": ["2026-11-01T03:30:00Z"]}}
    assert props["instantRpRetentionRangeInDays"] == 5
    assert conversion_note(source) == (
        "Standard weekly Sat, Sun 03:30 W. Europe Standard Time, IR 5 days -> "
        "Enhanced weekly Sat, Sun 03:30 W. Europe Standard Time, IR 5 days")


def test_a_standard_policy_without_instant_restore_days_gets_standards_own_value():
    daily = make_policy(VAULT, "std", v1=True)
    del daily["properties"]["instantRpRetentionRangeInDays"]
    weekly = _v1_weekly()
    del weekly["properties"]["instantRpRetentionRangeInDays"]
    assert crash_clone_body(daily)["properties"]["instantRpRetentionRangeInDays"] == 2
    assert crash_clone_body(weekly)["properties"]["instantRpRetentionRangeInDays"] == 5
    assert "IR 2 days (Standard default) -> " in conversion_note(daily)


def test_instant_restore_days_never_exceed_the_retention_of_the_converted_policy():
    # ProtectionPolicies_Get.json: a Standard daily policy keeping points 1 day, IR unset (2).
    source = make_policy(VAULT, "short", v1=True)
    source["properties"]["retentionPolicy"]["dailySchedule"]["retentionDuration"]["count"] = 1
    assert crash_clone_body(source)["properties"]["instantRpRetentionRangeInDays"] == 1
    assert conversion_note(source).endswith(
        "-> Enhanced daily 02:00 UTC, IR 1 day (Enhanced IR can't exceed the 1-day retention)")


@pytest.mark.parametrize("change", [
    {"scheduleRunFrequency": "Hourly"},
    {"scheduleWeeklyFrequency": 2},
    {"scheduleRunTimes": []},
    {"scheduleRunFrequency": "Weekly"},  # without scheduleRunDays
], ids=["hourly", "every-2-weeks", "no-times", "weekly-without-days"])
def test_a_standard_schedule_without_an_enhanced_equivalent_is_refused(change):
    source = make_policy(VAULT, "odd", v1=True)
    source["properties"]["schedulePolicy"].update(change)
    with pytest.raises(PolicyConversionError, match="odd"):
        crash_clone_body(source)


def test_a_policy_of_another_workload_is_refused():
    source = make_policy(VAULT, "sql")
    source["properties"]["backupManagementType"] = "AzureWorkload"
    with pytest.raises(PolicyConversionError, match="AzureWorkload"):
        app_clone_body(source)


def test_the_body_shares_no_objects_with_the_source():
    source = _v2_tiered()
    before = copy.deepcopy(source)
    body = crash_clone_body(source)
    body["properties"]["retentionPolicy"]["dailySchedule"]["retentionDuration"]["count"] = 1
    body["properties"]["tieringPolicy"]["ArchivedRP"]["duration"] = 9
    assert source == before


def test_descriptions_name_schedule_zone_instant_restore_and_consistency():
    hourly = next(p for k, p in ALL if k == "generated:enhanced-crash-hourly-6h")
    assert describe_policy(hourly).startswith("Enhanced every 6 h from 06:00 for ")
    assert describe_policy(hourly).endswith(", IR 5 days, crash-consistent")
    assert describe_policy(make_policy(VAULT, "g")) == "Enhanced daily 02:00 UTC, IR 7 days"


# -- settings_differences ----------------------------------------------------------------------

def _stored(body: dict, **envelope) -> dict:
    """``body`` as ARM would return it: envelope and read-only fields added."""
    out = {"id": f"{VAULT['id']}/backupPolicies/x", "name": "x",
           "type": "Microsoft.RecoveryServices/vaults/backupPolicies", "etag": "W/\"1\"",
           "location": "eastus", **envelope, "properties": copy.deepcopy(body["properties"])}
    out["properties"].update(protectedItemsCount=12, resourceGuardOperationRequests=None)
    return out


@pytest.mark.parametrize(("key", "source"), ALL, ids=IDS)
def test_a_policy_stored_from_the_body_has_no_differences(key, source):
    for body in (crash_clone_body(source), app_clone_body(source)):
        assert settings_differences(_stored(body), body) == []


def test_ignored_are_read_only_fields_and_the_resource_envelope():
    body = crash_clone_body(make_policy(VAULT, "gold"))
    stored = _stored(body, id="/other", name="Other", etag="W/\"99\"", location="westeurope")
    stored["properties"]["protectedItemsCount"] = 500
    stored["properties"]["resourceGuardOperationRequests"] = ["/some/guard/op"]
    assert settings_differences(stored, body) == []


def test_times_compare_by_time_of_day_and_enums_and_lists_ignore_case_and_order():
    body = crash_clone_body(_v1_weekly())
    stored = _stored(body)
    props = stored["properties"]
    props["schedulePolicy"]["weeklySchedule"] = {"scheduleRunDays": ["sunday", "Saturday"],
                                                 "scheduleRunTimes": ["1899-12-30T03:30:00+00:00"]}
    props["retentionPolicy"]["weeklySchedule"]["retentionDuration"]["durationType"] = "weeks"
    props["retentionPolicy"]["monthlySchedule"] = None  # Azure echoes unset tiers as null
    del props["policyType"]  # V2 list results omit it
    assert settings_differences(stored, body) == []


def test_a_missing_consistency_type_is_a_difference_both_ways():
    source = make_policy(VAULT, "gold")
    crash, app = crash_clone_body(source), app_clone_body(source)
    assert settings_differences(_stored(app), crash) == [
        'snapshotConsistencyType: (not set) in Azure, "OnlyCrashConsistent" wanted']
    assert settings_differences(_stored(crash), app) == [
        'snapshotConsistencyType: "OnlyCrashConsistent" in Azure, (not set) wanted']


def test_differences_name_the_field_path_and_both_values():
    body = crash_clone_body(make_policy(VAULT, "gold"))
    stored = _stored(body)
    stored["properties"]["retentionPolicy"]["dailySchedule"]["retentionDuration"]["count"] = 90
    stored["properties"]["schedulePolicy"]["dailySchedule"]["scheduleRunTimes"] = [
        "2026-11-01T04:00:00Z"]
    stored["properties"]["timeZone"] = "Tokyo Standard Time"
    assert settings_differences(stored, body) == [
        "retentionPolicy.dailySchedule.retentionDuration.count: 90 in Azure, 30 wanted",
        'schedulePolicy.dailySchedule.scheduleRunTimes: ["2026-11-01T04:00:00Z"] in Azure, '
        '["2026-11-01T02:00:00Z"] wanted',
        'timeZone: "Tokyo Standard Time" in Azure, "UTC" wanted',
    ]


def test_an_extra_retention_tier_in_azure_is_a_difference():
    body = crash_clone_body(make_policy(VAULT, "gold"))
    stored = _stored(body)
    stored["properties"]["retentionPolicy"]["weeklySchedule"] = {
        "daysOfTheWeek": ["Sunday"], "retentionTimes": ["2026-11-01T02:00:00Z"],
        "retentionDuration": {"count": 12, "durationType": "Weeks"}}
    [line] = settings_differences(stored, body)
    assert line.startswith("retentionPolicy.weeklySchedule: {") and line.endswith(
        "in Azure, (not set) wanted")


def test_a_schedule_of_another_kind_is_one_difference():
    source = make_policy(VAULT, "std", v1=True)
    lines = settings_differences(source, crash_clone_body(source))
    assert [line.split(":")[0] for line in lines] == [
        "policyType", "schedulePolicy", "snapshotConsistencyType"]


# -- rollback names ----------------------------------------------------------------------------

def test_rollback_names_follow_the_target_name_rules():
    assert rollback_policy_name("DefaultPolicy") == "DefaultPolicy-enh"
    assert rollback_policy_name("a_b") == target_policy_name("a_b", "{source}-enh")
    long = "p" * 150
    assert len(rollback_policy_name(long)) == 150


@pytest.mark.parametrize("template", ["{source}", "{name}-enh", "{source}_enh", "-{source}"])
def test_a_bad_rollback_template_names_its_own_setting(template):
    with pytest.raises(SettingsError, match="invalid setting rollback policy template") as err:
        rollback_policy_name("Gold", template)
    assert "target_policy_template" not in str(err.value)


def test_a_rollback_name_equal_to_the_target_name_is_refused():
    with pytest.raises(SettingsError, match="crash-consistent target's own name"):
        rollback_policy_name("Gold", "{source}-CRASH", target_template="{source}-crash")


def test_an_in_place_switch_sends_the_policy_as_read_with_only_its_consistency_changed():
    read = make_policy(VAULT, "gold")
    read["properties"].update(protectedItemsCount=3, resourceGuardOperationRequests=["r"])
    before = copy.deepcopy(read)
    switched, reverted = crash_edit_body(read)["properties"], app_edit_body(read)["properties"]
    kept = {k: v for k, v in read["properties"].items()
            if k not in ("protectedItemsCount", "resourceGuardOperationRequests")}
    assert switched == {**kept, "snapshotConsistencyType": "OnlyCrashConsistent"}
    assert "snapshotConsistencyType" not in app_edit_body({"properties": switched})["properties"]
    assert reverted == {k: v for k, v in kept.items() if k != "snapshotConsistencyType"}
    assert read == before
