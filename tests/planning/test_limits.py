"""Vault limits: 200 policies per vault (excess VMs stay out, with the reason) and 50 policy
writes per vault per 24 h (the plan splits: later waves wait 24 h after the 50th write)."""

from __future__ import annotations

import pandas as pd

from tasks.planning import PlanOptions, build_plan, over_policy_limit, write_batches
from tests.planning.frames import frame, policy, vault_policies, vm


def _groups(creates: list[int], vault: str = "v") -> pd.DataFrame:
    return pd.DataFrame({"vault_key": vault, "first_pos": range(len(creates)),
                         "creates": creates})


def test_groups_past_200_policies_are_over_and_reusing_groups_never_are():
    groups = _groups([1, 0, 2, 1, 0])
    over = over_policy_limit(groups, pd.Series({"v": 198}))  # room for 2
    assert over.tolist() == [False, False, True, True, False]


def test_writes_are_packed_50_a_batch_and_a_group_never_straddles_two():
    groups = _groups([2] * 24 + [1, 2, 1, 0])  # 48 writes, then 1 (49), 2 (51!), 1, 0
    assert write_batches(groups).tolist() == [0] * 25 + [1, 1, 0]
    assert write_batches(_groups([1] * 50)).tolist() == [0] * 50  # exactly 50 fits


def _fleet(n_policies: int, *, existing: int = 0, vms_per_policy: int = 1,
           other_vault_vms: int = 0):
    """Vault vault-a with ``n_policies`` source policies (one group each) plus ``existing``
    unrelated policies; optionally vault-b with a reused crash clone."""
    rows = [vm(f"vm-{p:03d}-{k}", policy=f"p{p:03d}")
            for p in range(n_policies) for k in range(vms_per_policy)]
    rows += [vm(f"b-{i}", vault="vault-b") for i in range(other_vault_vms)]
    spec = {"vault-a": [policy("vault-a", f"p{p:03d}") for p in range(n_policies)]
            + [policy("vault-a", f"unrelated-{i}") for i in range(existing)],
            "vault-b": [policy("vault-b", "enhanced-daily"),
                        policy("vault-b", "enhanced-daily-crash", crash=True)]}
    return frame(rows), vault_policies(spec)


def test_vms_past_a_vaults_200_policies_are_left_out_with_the_reason():
    vms, spec = _fleet(5, existing=193, other_vault_vms=2)  # 198 today: room for 2 new
    plan = build_plan(vms, PlanOptions(), spec)
    assert sorted(plan.vms["source_policy"].unique()) == ["enhanced-daily", "p000", "p001"]
    left = plan.excluded[plan.excluded["reason"].str.contains("200")]
    assert sorted(left["vm_name"]) == ["vm-002-0", "vm-003-0", "vm-004-0"]
    assert "vault 'vault-a' would pass Azure's 200 backup policies (198 existing + 5 new)" in \
        left["reason"].iloc[0]
    assert plan.summary["over_limit"] == [{"vault": "vault-a", "vault_id": vms["vault_id"][0],
                                           "existing": 198, "new": 5}]
    limits = plan.limits.set_index("vault")
    assert limits.loc["vault-a", "verdict"] == "over 200 policies: 3 VM(s) left out"
    assert (limits.loc["vault-a", "new_policies"], limits.loc["vault-a", "room"]) == (2, 2)
    assert limits.loc["vault-b", "verdict"] == "ok"
    skipped = plan.policies[plan.policies["action"] == "skipped"]
    assert sorted(skipped["policy_name"]) == ["p002-crash", "p003-crash", "p004-crash"]


def test_more_than_50_policy_writes_split_the_plan_a_day_apart():
    vms, spec = _fleet(60, vms_per_policy=2, other_vault_vms=3)
    plan = build_plan(vms, PlanOptions(canary=1, ramp=(5,), wave_size=20), spec)
    created = plan.policies[plan.policies["action"] == "create"]
    assert len(created) == 60
    # The first 50 groups (100 VMs) fill waves 1..; the other 10 wait for the wave that made
    # the 50th write plus 24 hours, in waves of their own.
    fiftieth = created.sort_values("first_wave")["first_wave"].iloc[49]
    later = plan.vms[plan.vms["source_policy"] >= "p050"]
    assert len(later) == 20 and later["wave"].min() > plan.vms.loc[
        plan.vms["source_policy"] < "p050", "wave"].max()
    assert set(later["not_before"]) == {f"24h after wave {fiftieth} ends"}
    assert set(plan.vms.loc[~plan.vms.index.isin(later.index), "not_before"]) == {""}
    waits = plan.waves[plan.waves["not_before"] != ""]
    assert waits["wave"].tolist() == sorted(later["wave"].unique().tolist())
    assert plan.summary["splits"] == [{
        "vault": "vault-a", "vault_id": vms["vault_id"][0], "writes": 60, "limit": 50,
        "waves": [{"wave": int(w), "after_wave": int(fiftieth)} for w in waits["wave"]]}]
    assert {w["wave"]: w["not_before"] for w in plan.summary["waves"] if w["not_before"]} == {
        int(w): {"after_wave": int(fiftieth), "hours": 24} for w in waits["wave"]}
    assert plan.limits.set_index("vault").loc["vault-a", "batches"] == 2
    assert plan.limits.set_index("vault").loc["vault-a", "verdict"].startswith(
        "split: 60 policy writes")


def test_each_further_50_writes_wait_for_the_batch_before():
    # 66 Standard sources need 132 writes (clone + rollback copy each) and fit 200 policies.
    rows = [vm(f"std-{p:02d}", policy=f"s{p:02d}", readiness="ready_with_conditions",
               warnings="POLICY_STANDARD") for p in range(66)]
    spec = vault_policies({"vault-a": [policy("vault-a", f"s{p:02d}", v1=True)
                                       for p in range(66)]})
    plan = build_plan(frame(rows), PlanOptions(include_standard=True, canary=1, ramp=(),
                                               wave_size=25), spec)
    waves = plan.summary["waves"]
    waits = [(w["wave"], w["not_before"]["after_wave"]) for w in waves if w["not_before"]]
    # 25 groups (50 writes) in waves 1-2, 25 in wave 3, the last 16 in wave 4.
    assert [w["size"] for w in waves] == [1, 24, 25, 16]
    assert waits == [(3, 2), (4, 3)]
    assert plan.limits.loc[0, "batches"] == 3


def test_standard_sources_count_their_rollback_policy_as_a_write():
    rows = [vm(f"std-{p:02d}", policy=f"s{p:02d}", readiness="ready_with_conditions",
               warnings="POLICY_STANDARD") for p in range(26)]
    spec = vault_policies({"vault-a": [policy("vault-a", f"s{p:02d}", v1=True)
                                       for p in range(26)]})
    plan = build_plan(frame(rows), PlanOptions(include_standard=True, wave_size=100), spec)
    assert plan.limits.loc[0, "writes_needed"] == 52
    late = plan.vms[plan.vms["not_before"] != ""]
    assert late["source_policy"].tolist() == ["s25"]  # 25 groups x 2 writes = 50
