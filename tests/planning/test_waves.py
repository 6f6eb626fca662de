"""Wave sizes (canary, ramp counts and percentages, then wave size) and wave order (a tag's
value, lowest first, then vault by vault so a wave touches few vaults)."""

from __future__ import annotations

from itertools import groupby

import pandas as pd

from tasks.planning import (
    PlanOptions,
    assign_waves,
    build_plan,
    order_vms,
    resolve_ramp,
    reversible_canary,
    wave_sizes,
)
from tasks.settings import load_settings
from tests.fleets import SUB_B
from tests.planning.frames import frame, policy, vault_policies, vm


def test_percent_steps_are_shares_of_the_plans_vms_rounded_up():
    assert resolve_ramp([1, 5, "25%"], 40) == [1, 5, 10]
    assert resolve_ramp(["12.5%", "1%"], 9) == [2, 1]  # never a wave of 0


def test_sizes_run_canary_then_ramp_then_wave_size_and_the_last_takes_the_rest():
    assert wave_sizes(40, 1, [1, 5, 10], 10) == [1, 1, 5, 10, 10, 10, 3]
    assert wave_sizes(3, 1, [5], 50) == [1, 2]
    assert wave_sizes(1, 2, [5], 50) == [1]
    assert wave_sizes(0, 1, [5], 50) == []
    assert wave_sizes(12, 1, [5], 50, start=1) == [5, 7]  # a later batch carries on


def test_ramp_from_the_flag_becomes_wave_sizes_of_a_plan():
    settings = load_settings(environ={}, flags={"waves.ramp": "1,5,25%", "waves.wave_size": 8})
    options = PlanOptions.from_settings(settings)
    assert options.ramp == (1, 5, "25%")
    vms = frame([vm(f"vm-{i:02d}") for i in range(40)])
    plan = build_plan(vms, options, vault_policies({"vault-a": [policy("vault-a",
                                                                       "enhanced-daily")]}))
    assert plan.waves["size"].tolist() == [1, 1, 5, 10, 8, 8, 7]
    assert plan.vms["wave"].tolist() == sorted(plan.vms["wave"].tolist())
    assert plan.vms.groupby("wave")["position"].apply(list).tolist()[3] == list(range(1, 11))


def test_default_order_is_subscription_then_vault_then_name():
    vms = frame([vm("b", vault="vault-2"), vm("a", vault="vault-2"), vm("z", vault="vault-1"),
                 vm("c", vault="vault-x", sub=SUB_B)])
    assert vms.loc[order_vms(vms), "vm_name"].tolist() == ["z", "a", "b", "c"]


def test_tag_order_puts_numbers_by_value_then_words_then_untagged_vms_last():
    rows = [vm("untagged"), vm("ten", tags={"Criticality": "10"}),
            vm("two", tags={"criticality": "2"}), vm("word", tags={"criticality": "high"}),
            vm("two-b", vault="vault-b", tags={"criticality": "2"}),
            vm("one", tags={"criticality": "1"})]
    vms = frame(rows)
    assert vms.loc[order_vms(vms, "tag:criticality"), "vm_name"].tolist() == [
        "one", "two", "two-b", "ten", "word", "untagged"]


def test_within_the_order_a_vaults_vms_stay_together():
    rows = [vm(f"{v}-{i}", vault=v, tags={"prio": str(i % 2)})
            for i in range(6) for v in ("vault-b", "vault-a")]
    vms = frame(rows)
    ordered = vms.loc[order_vms(vms, "tag:prio"), "vault"].tolist()
    # Per priority: vault-a's VMs, then vault-b's.
    assert [v for v, _ in groupby(ordered)] == ["vault-a", "vault-b"] * 2


def test_waves_of_a_plan_touch_few_vaults():
    rows = [vm(f"{v}-{i:02d}", vault=v) for v in ("vault-c", "vault-a", "vault-b")
            for i in range(10)]
    spec = {v: [policy(v, "enhanced-daily")] for v in ("vault-a", "vault-b", "vault-c")}
    plan = build_plan(frame(rows), PlanOptions(canary=1, ramp=(4,), wave_size=6),
                      vault_policies(spec))
    vaults_per_wave = plan.vms.groupby("wave")["vault"].nunique()
    assert plan.waves["size"].tolist() == [1, 4, 6, 6, 6, 6, 1]
    # Each vault's VMs follow one another, so only a wave that straddles two vaults has two.
    assert [v for v, _ in groupby(plan.vms["vault"])] == ["vault-a", "vault-b", "vault-c"]
    assert vaults_per_wave.tolist() == [1, 1, 2, 1, 2, 1, 1]


def test_later_batches_start_fresh_waves_and_continue_the_size_sequence():
    batch = pd.Series([0, 0, 0, 1, 1, 1, 1, 2])
    assert assign_waves(batch, 1, [2], 3).tolist() == [1, 2, 2, 3, 3, 3, 4, 5]


def test_the_canary_is_a_reversible_vm_where_the_plan_has_one():
    vms = frame([vm("a-std"), vm("b"), vm("c")])
    irreversible = pd.Series([True, False, False], index=vms.index)
    order = reversible_canary(order_vms(vms), irreversible, 1)
    assert vms.loc[order, "vm_name"].tolist() == ["b", "a-std", "c"]
    everything = pd.Series(True, index=vms.index)
    assert reversible_canary(order_vms(vms), everything, 1).tolist() == order_vms(vms).tolist()
