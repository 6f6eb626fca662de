"""Readiness: first match wins (supported-scenarios.md), findings listed for every VM."""

from __future__ import annotations

import pandas as pd
import pytest

from tasks.inventory import schema
from tasks.rules.engine import RuleContext, load_pack, score
from tasks.settings import Rules
from tests.rules.inventory import disk, frames, unprotected, vm

GA = load_pack(Rules())
OPT_OUT = {"backup-consistency": "application"}


def scored(rows, disks=None, pack=GA, ctx=None, template="{source}-crash") -> pd.DataFrame:
    v, d = frames(rows, disks)
    return score(v, d, pack, ctx or RuleContext(), template).set_index("vm_name")


def test_scored_frame_is_the_inventory_plus_the_scored_columns_in_declared_order():
    v, d = frames([vm("a")])
    v["extra_column"] = "kept"
    out = score(v, d, GA, RuleContext())
    assert list(out.columns) == [*schema.VM_COLUMNS, *schema.SCORED_COLUMNS, "extra_column"]
    for name, (dtype, _) in schema.SCORED_COLUMNS.items():
        assert str(out[name].dtype) == dtype


def test_clean_protected_vm_is_ready_with_a_target_policy():
    out = scored([vm("a", policy_name="Daily-Enhanced")])
    assert out.loc["a", ["readiness", "blockers", "warnings", "unknowns", "infos",
                         "target_policy"]].tolist() == ["ready", "", "", "", "",
                                                        "Daily-Enhanced-crash"]


@pytest.mark.parametrize("row", [
    unprotected("a"),
    vm("a", protected=False, protection_state="ProtectionStopped"),
    vm("a", protected=False, protection_state="BackupsSuspended"),
    vm("a", protected=False, protection_state="ProtectionPaused"),
    # ``protected`` says active but a state says stopped: never counted as protected
    vm("a", protected=True, protection_state="ProtectionStopped"),
    vm("a", protected=True, protection_state="", arg_protection_state="SoftDeleted"),
    vm("a", protected=True, protection_state="", arg_protection_state="ProtectionStopped"),
])
def test_no_item_or_a_stopped_item_is_not_protected(row):
    assert scored([row]).loc["a", "readiness"] == "not_protected"


def test_unprotected_vm_with_a_blocker_is_not_protected_and_lists_the_blocker():
    out = scored([unprotected("a", tags=OPT_OUT, os_type="Linux")], [disk("a", max_shares=2)])
    assert out.loc["a", ["readiness", "blockers", "infos", "target_policy"]].tolist() == [
        "not_protected", "SHARED_DISK;OPTED_OUT", "LINUX_PREPOST_SCRIPTS", ""]


def test_crash_consistent_vm_with_a_blocker_keeps_its_readiness_and_lists_the_blocker():
    row = vm("a", consistency_type="OnlyCrashConsistent", vm_size="Standard_E8ds_v6")
    out = scored([row], [disk("a", caching="ReadWrite")])
    assert out.loc["a", ["readiness", "blockers", "warnings", "target_policy"]].tolist() == [
        "already_crash_consistent", "SIZE_AZURE_BOOST", "HOST_CACHING_READWRITE", ""]


def test_crash_consistency_is_read_ignoring_case():
    assert scored([vm("a", consistency_type="onlycrashconsistent")]).loc[
        "a", "readiness"] == "already_crash_consistent"


def test_stopped_item_on_a_crash_consistent_policy_is_not_protected():
    row = vm("a", protected=False, protection_state="ProtectionStopped",
             consistency_type="OnlyCrashConsistent")
    assert scored([row]).loc["a", "readiness"] == "not_protected"


def test_blocker_beats_unknown_and_warning():
    row = vm("a", tags=OPT_OUT, sku_known=False, sku_premium_io=None,
             protection_state="IRPending")
    out = scored([row])
    assert out.loc["a", ["readiness", "blockers", "warnings", "unknowns"]].tolist() == [
        "not_ready", "OPTED_OUT", "PROTECTION_UNHEALTHY", "SIZE_UNKNOWN"]


def test_unknown_beats_warning():
    row = vm("a", policy_type="V1", schedule_type="SimpleSchedulePolicy")
    disks = [disk("a"), disk("a", "data", 0, found=False, sku_name="")]
    out = scored([row], disks)
    assert out.loc["a", ["readiness", "warnings", "unknowns", "target_policy"]].tolist() == [
        "unknown", "POLICY_STANDARD", "DISK_NOT_FOUND", ""]


def test_warning_gives_ready_with_conditions_and_a_target():
    out = scored([vm("a", is_sql_vm=True, policy_name="SqlDaily")])
    assert out.loc["a", ["readiness", "warnings", "target_policy"]].tolist() == [
        "ready_with_conditions", "WORKLOAD_DATABASE", "SqlDaily-crash"]


def test_info_never_changes_readiness():
    out = scored([vm("a", os_type="Linux")])
    assert out.loc["a", ["readiness", "infos"]].tolist() == ["ready", "LINUX_PREPOST_SCRIPTS"]


def test_unreadable_policy_is_unknown_without_a_target():
    row = vm("a", policy_readable=False, policy_type="", schedule_type="")
    out = scored([row])
    assert out.loc["a", ["readiness", "unknowns", "target_policy"]].tolist() == [
        "unknown", "PROTECTION_DATA_UNREADABLE", ""]


def test_findings_are_joined_in_pack_order():
    row = vm("a", location="usgovvirginia", vm_size="Standard_D4s_v6", os_disk_ephemeral=True,
             security_type="ConfidentialVM", tags=OPT_OUT)
    disks = [disk("a", ephemeral=True, managed=False, disk_key="", write_accelerator=True),
             disk("a", "data", 0, storage_type="UltraSSD_LRS", max_shares=2)]
    out = scored([row], disks)
    assert out.loc["a", "blockers"] == (
        "REGION_NOT_SUPPORTED;SIZE_AZURE_BOOST;ULTRA_DISK;EPHEMERAL_OS_DISK;SHARED_DISK;"
        "WRITE_ACCELERATOR;CONFIDENTIAL_VM;OPTED_OUT")


def test_every_readiness_value_in_one_frame():
    rows = [vm("ready"), vm("cond", os_type="Linux", is_sql_vm=True),
            vm("blocked", tags=OPT_OUT), vm("unk", sku_known=False, sku_premium_io=None),
            vm("crash", consistency_type="OnlyCrashConsistent"), unprotected("none")]
    out = scored(rows)
    assert out["readiness"].to_dict() == {
        "ready": "ready", "cond": "ready_with_conditions", "blocked": "not_ready",
        "unk": "unknown", "crash": "already_crash_consistent", "none": "not_protected"}
    assert set(out["readiness"]) == set(schema.READINESS_VALUES)
    assert out["target_policy"].to_dict() == {
        "ready": "DailyEnhanced-crash", "cond": "DailyEnhanced-crash", "blocked": "",
        "unk": "", "crash": "", "none": ""}


def test_target_follows_the_template_setting():
    out = scored([vm("a", policy_name="Gold")], template="cc-{source}")
    assert out.loc["a", "target_policy"] == "cc-Gold"


def test_empty_inventory_scores_to_an_empty_frame():
    v, d = frames([], [])
    out = score(v, d, GA, RuleContext())
    assert len(out) == 0
    assert list(out.columns) == [*schema.VM_COLUMNS, *schema.SCORED_COLUMNS]


def test_all_rules_disabled_leaves_every_protected_vm_ready():
    pack = load_pack(Rules(disabled=[r.id for r in GA.rules]))
    out = scored([vm("a", tags=OPT_OUT), unprotected("b")], pack=pack)
    assert out["readiness"].tolist() == ["ready", "not_protected"]
    assert out["blockers"].tolist() == ["", ""]
