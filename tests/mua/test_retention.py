"""What makes a policy change critical under multi-user authorization: any recovery point kept
for less time (azure-cli's is_retention_duration_decreased; MD multi-user-authorization-concept:
"Modify protection (reduced retention)"). Same retention, or longer, is not critical."""

from __future__ import annotations

import copy

from emulator.resource_guard import retention_reduced
from tasks.policies.compare import retention_reductions
from tests.fleets import make_policy, make_vault

VAULT = make_vault("11111111-1111-4111-8111-111111111111", "rg", "v")


def _policy(**retention: tuple[int, str]) -> dict:
    policy = make_policy(VAULT, "p")
    tiers = policy["properties"]["retentionPolicy"]
    for key, (count, unit) in retention.items():
        tiers[f"{key}Schedule"] = {"retentionDuration": {"count": count, "durationType": unit}}
    return policy


def _both(old: dict, new: dict) -> list[str]:
    """ccmigrate's reading; the emulator must agree on whether it is a reduction."""
    found = retention_reductions(old, new)
    assert bool(found) == retention_reduced(old, new)
    return found


def test_a_crash_consistent_clone_with_the_same_retention_reduces_nothing():
    old = _policy(weekly=(12, "Weeks"), monthly=(12, "Months"), yearly=(3, "Years"))
    new = copy.deepcopy(old)
    new["properties"]["snapshotConsistencyType"] = "OnlyCrashConsistent"
    assert _both(old, new) == []


def test_each_shorter_tier_and_fewer_instant_restore_days_are_named():
    old = _policy(weekly=(12, "Weeks"), monthly=(12, "Months"), yearly=(3, "Years"))
    new = _policy(weekly=(8, "Weeks"), monthly=(12, "Months"), yearly=(2, "Years"))
    new["properties"]["instantRpRetentionRangeInDays"] = 5
    assert _both(old, new) == ["instant restore 7 -> 5 days", "weekly 12 weeks -> 8 weeks",
                               "yearly 3 years -> 2 years"]


def test_a_dropped_tier_is_a_reduction_and_a_longer_one_is_not():
    old = _policy(monthly=(6, "Months"))
    dropped = _policy()
    assert _both(old, dropped) == ["monthly 6 months -> none"]
    longer = _policy(monthly=(2, "Years"))  # the same tier, counted in longer units
    assert _both(old, longer) == []
