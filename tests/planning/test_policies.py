"""The policies a plan needs per vault, decided from the vault's policy list as ARM gives it:
an identical target is reused, a different one is a conflict that keeps its VMs out, a missing
one is created; Standard sources also need their Enhanced app-consistent rollback copy."""

from __future__ import annotations

from tasks.planning import PlanOptions, build_plan
from tasks.policies.bodies import crash_clone_body
from tests.planning.frames import frame, policy, vault_policies, vm


def _std(name: str, source: str = "standard-daily", **kwargs) -> dict:
    return vm(name, policy=source, readiness="ready_with_conditions",
              warnings="POLICY_STANDARD", **kwargs)


def test_missing_targets_are_created_and_identical_ones_reused():
    rows = [vm("a1"), vm("b1", vault="vault-b")]
    spec = vault_policies({
        "vault-a": [policy("vault-a", "enhanced-daily")],
        "vault-b": [policy("vault-b", "enhanced-daily"),
                    policy("vault-b", "enhanced-daily-crash", crash=True)]})
    plan = build_plan(frame(rows), PlanOptions(), spec)
    actions = dict(zip(plan.policies["vault"], plan.policies["action"], strict=True))
    assert actions == {"vault-a": "create", "vault-b": "reuse"}
    assert plan.summary["policies"] == {"create": 1, "reuse": 1, "conflict": 0, "skipped": 0}
    created = plan.policies[plan.policies["action"] == "create"].iloc[0]
    assert created["body"] == crash_clone_body(policy("vault-a", "enhanced-daily"))
    assert created["description"] == "Enhanced daily 02:00 UTC, IR 7 days, crash-consistent"
    assert plan.vms["target_policy"].tolist() == ["enhanced-daily-crash"] * 2
    assert plan.vms["rollback_policy"].tolist() == ["enhanced-daily"] * 2
    assert not plan.vms["irreversible"].any()


def test_a_target_with_other_settings_is_a_conflict_and_keeps_its_vms_out():
    rows = [vm("a1"), vm("a2"), vm("ok", policy="weekly")]
    app_named_like_target = policy("vault-a", "enhanced-daily-crash")  # not crash-consistent
    spec = vault_policies({"vault-a": [policy("vault-a", "enhanced-daily"),
                                       policy("vault-a", "weekly"), app_named_like_target]})
    plan = build_plan(frame(rows), PlanOptions(), spec)
    assert plan.vms["vm_name"].tolist() == ["ok"]
    conflict = plan.policies[plan.policies["action"] == "conflict"].iloc[0]
    assert conflict["policy_name"] == "enhanced-daily-crash"
    assert "snapshotConsistencyType" in conflict["detail"]
    reasons = set(plan.excluded["reason"])
    assert len(reasons) == 1
    (reason,) = reasons
    assert "policy 'enhanced-daily-crash' already exists in vault 'vault-a' with other " \
           "settings" in reason and "rules.target_policy_template" in reason
    assert sorted(plan.excluded["vm_name"]) == ["a1", "a2"]
    assert plan.limits.loc[0, "verdict"] == "policy conflict: see Policies"
    assert plan.summary["conflicts"] == [{
        "vault": "vault-a", "policy": "enhanced-daily-crash", "kind": "crash_clone",
        "detail": conflict["detail"], "vms": 2}]


def test_the_target_template_setting_names_the_clones():
    rows = [vm("a1")]
    spec = vault_policies({"vault-a": [policy("vault-a", "enhanced-daily"),
                                       policy("vault-a", "enhanced-daily-crash")]})
    plan = build_plan(frame(rows), PlanOptions(target_template="cc-{source}"), spec)
    assert plan.vms["target_policy"].tolist() == ["cc-enhanced-daily"]
    assert plan.policies["action"].tolist() == ["create"]


def test_standard_sources_are_irreversible_and_get_a_rollback_copy():
    rows = [_std("s1"), _std("s2"), vm("e1")]
    spec = vault_policies({"vault-a": [policy("vault-a", "standard-daily", v1=True),
                                       policy("vault-a", "enhanced-daily")]})
    plan = build_plan(frame(rows), PlanOptions(include_standard=True), spec)
    by_name = plan.vms.set_index("vm_name")
    assert by_name.loc["s1", "irreversible"] and not by_name.loc["e1", "irreversible"]
    assert by_name.loc["s1", "rollback_policy"] == "standard-daily-enh"
    assert by_name.loc["s1", "target_policy"] == "standard-daily-crash"
    assert plan.summary["irreversible"] == 2
    assert plan.summary["irreversible_vms"] == ["s1", "s2"]
    kinds = dict(zip(plan.policies["policy_name"], plan.policies["kind"], strict=True))
    assert kinds == {"standard-daily-crash": "crash_clone",
                     "standard-daily-enh": "app_clone_for_rollback",
                     "enhanced-daily-crash": "crash_clone"}
    rollback = plan.policies.set_index("policy_name").loc["standard-daily-enh"]
    assert "snapshotConsistencyType" not in rollback["body"]["properties"]
    assert rollback["body"]["properties"]["policyType"] == "V2"
    assert "Standard daily 02:00 UTC, IR 2 days -> Enhanced daily" in rollback["description"]
    assert rollback["first_wave"] == by_name.loc["s1", "wave"]
    # The canary is the reversible VM; the irreversible ones come after it.
    assert by_name.loc["e1", "wave"] == 1


def test_rollback_template_setting_and_its_conflicts():
    rows = [_std("s1")]
    spec = vault_policies({"vault-a": [policy("vault-a", "standard-daily", v1=True),
                                       policy("vault-a", "standard-daily-back", crash=True)]})
    options = PlanOptions(include_standard=True, rollback_template="{source}-back")
    plan = build_plan(frame(rows), options, spec)
    assert plan.vms.empty
    assert "policy 'standard-daily-back' already exists" in plan.excluded["reason"][0]
    assert "waves.rollback_policy_template" in plan.excluded["reason"][0]
    actions = dict(zip(plan.policies["policy_name"], plan.policies["action"], strict=True))
    assert actions == {"standard-daily-crash": "skipped", "standard-daily-back": "conflict"}


def test_a_standard_source_the_assessment_missed_still_needs_the_opt_in():
    rows = [vm("s1", policy="standard-daily")]  # scored ready, but ARM says V1 now
    spec = vault_policies({"vault-a": [policy("vault-a", "standard-daily", v1=True)]})
    plan = build_plan(frame(rows), PlanOptions(), spec)
    assert plan.vms.empty and "--include-standard" in plan.excluded["reason"][0]


def test_vaults_that_cannot_be_read_or_lost_their_policy_keep_their_vms_out():
    rows = [vm("a1"), vm("b1", vault="vault-b"), vm("c1", vault="vault-c", policy="gone"),
            vm("ok", vault="vault-d")]
    spec = vault_policies({"vault-c": [policy("vault-c", "enhanced-daily")],
                           "vault-d": [policy("vault-d", "enhanced-daily")]},
                          errors={"vault-a": "403 AuthorizationFailed", "vault-b": "timeout"})
    plan = build_plan(frame(rows), PlanOptions(), spec)
    assert plan.vms["vm_name"].tolist() == ["ok"]
    reasons = dict(zip(plan.excluded["vm_name"], plan.excluded["reason"], strict=True))
    assert "could not be read (403 AuthorizationFailed)" in reasons["a1"]
    assert reasons["c1"] == "source policy 'gone' is no longer in vault 'vault-c'; assess again"
    assert [u["error"] for u in plan.summary["unreadable_vaults"]] == [
        "403 AuthorizationFailed", "timeout"]
    verdicts = dict(zip(plan.limits["vault"], plan.limits["verdict"], strict=True))
    assert verdicts["vault-a"] == "policies unreadable: its VMs are left out"


def test_a_source_that_cannot_be_converted_keeps_its_vms_out():
    every_two_weeks = policy("vault-a", "standard-biweekly", v1=True)
    every_two_weeks["properties"]["schedulePolicy"].update(
        scheduleRunFrequency="Weekly", scheduleRunDays=["Sunday"], scheduleWeeklyFrequency=2)
    plan = build_plan(frame([_std("s1", source="standard-biweekly")]),
                      PlanOptions(include_standard=True),
                      vault_policies({"vault-a": [every_two_weeks]}))
    assert plan.vms.empty
    assert "can't be cloned" in plan.excluded["reason"][0]
    assert "scheduleWeeklyFrequency 2" in plan.excluded["reason"][0]


def test_only_policies_the_planned_waves_use_are_stored():
    rows = [vm("a1"), vm("b1", vault="vault-b")]
    spec = vault_policies({"vault-a": [policy("vault-a", "enhanced-daily")],
                           "vault-b": [policy("vault-b", "enhanced-daily"),
                                       policy("vault-b", "enhanced-daily-crash")]})
    plan = build_plan(frame(rows), PlanOptions(), spec)
    stored = plan.stored_policies()
    assert stored["vault"].tolist() == ["vault-a"]
    assert list(stored.columns) == ["vault_id", "policy_name", "vault", "kind",
                                    "source_policy_id", "source_policy", "first_wave", "body"]
