"""`assess` over a hand-written fleet: every VM gets the verdict supported-scenarios.md gives it,
read back from the files a user opens (readiness.csv, summary.json) and the state store."""

from __future__ import annotations

import csv
import json

import pytest

from flows.assess import run_assessment
from flows.emulated import emulated
from tasks.settings import load_settings
from tasks.state.assessments import load_vms, resolve_assessment
from tasks.state.db import open_store
from tests.assess.cases import build

CONTRACT = ["vm_id", "vm_name", "subscription_id", "resource_group", "location", "vm_size",
            "vault", "policy_name", "readiness", "blockers", "warnings", "unknowns", "infos",
            "target_policy"]


def _assess(tmp_path, **flags):
    fleet, cases = build()
    settings = load_settings(environ={}, flags={
        "state_store": f"sqlite:///{tmp_path}/state.db", **flags})
    with emulated(settings, fleet) as (_emu, emu_settings):
        outcome = run_assessment(emu_settings, tmp_path / "out")
    with (tmp_path / "out" / "readiness.csv").open(encoding="utf-8", newline="") as fh:
        rows = {r["vm_name"]: r for r in csv.DictReader(fh)}
    return outcome, cases, rows, settings


@pytest.fixture(scope="module")
def assessed(prefect_api, tmp_path_factory):
    return _assess(tmp_path_factory.mktemp("assess"))


def _ids(text: str) -> set[str]:
    return set(filter(None, text.split(";")))


def test_every_vm_gets_the_documented_verdict(assessed):
    _, cases, rows, _ = assessed
    wrong = []
    for case in cases:
        row = rows[case.name]
        got = (row["readiness"], _ids(row["blockers"]), _ids(row["warnings"]),
               _ids(row["unknowns"]), _ids(row["infos"]))
        want = (case.readiness, set(case.blockers), set(case.warnings), set(case.unknowns),
                set(case.infos))
        if got != want:
            wrong.append(f"{case.name}: got {got}, want {want}")
    assert not wrong, "\n".join(wrong)


def test_every_readiness_value_and_rule_id_is_exercised(assessed):
    rows = assessed[2]
    assert {r["readiness"] for r in rows.values()} == {
        "ready", "ready_with_conditions", "not_ready", "already_crash_consistent",
        "not_protected", "unknown"}
    fired = set().union(*(_ids(r[c]) for r in rows.values()
                          for c in ("blockers", "warnings", "unknowns", "infos")))
    assert fired == {
        "POLICY_STANDARD", "REGION_NOT_SUPPORTED", "SIZE_NOT_PREMIUM_CAPABLE", "SIZE_UNKNOWN",
        "SIZE_AZURE_BOOST", "ULTRA_DISK", "PREMIUM_SSD_V2_DISK", "EPHEMERAL_OS_DISK",
        "SHARED_DISK", "WRITE_ACCELERATOR", "UNMANAGED_DISK", "CONFIDENTIAL_VM",
        "DISK_DATA_ACCESS_AUTH", "DISK_NOT_FOUND", "HOST_CACHING_READWRITE", "WORKLOAD_DATABASE",
        "PROTECTION_UNHEALTHY", "PROTECTION_DATA_UNREADABLE", "OPTED_OUT",
        "LINUX_PREPOST_SCRIPTS"}


def test_readiness_csv_keeps_the_contract_columns_and_one_row_per_vm(assessed):
    outcome, cases, rows, _ = assessed
    with outcome.files["readiness.csv"].open(encoding="utf-8") as fh:
        header = fh.readline().strip().split(",")
    assert header[:len(CONTRACT)] == CONTRACT
    assert len(rows) == len(cases)
    ready = rows["ready-win"]
    assert ready["vault"] == "vault-east" and ready["policy_name"] == "enhanced-daily"
    assert ready["target_policy"] == "enhanced-daily-crash"
    assert ready["vm_id"].endswith("/virtualMachines/ready-win")
    assert rows["unprotected"]["target_policy"] == "" == rows["not-premium"]["target_policy"]


def test_provisioned_size_sums_disk_resource_sizes_else_the_vm_profile_sizes(assessed):
    scored = assessed[0].scored
    sizes = dict(zip(scored["vm_name"], scored["provisioned_gb"], strict=True))
    assert sizes["sized"] == 30 + 256 + 128
    assert sizes["ready-win"] == 30 + 128
    assert sizes["missing-disk"] == 30 + 128  # data disk resource gone: the profile's size
    assert sizes["ephemeral"] == 30 + 128  # no resource for an ephemeral OS disk
    assert sizes["shared-b"] == 30 + 128  # the data disk it shares with shared-a


def test_the_active_item_counts_when_a_vm_has_an_old_stopped_one(assessed):
    _, _, rows, _ = assessed
    row = rows["two-items"]
    assert row["readiness"] == "ready" and row["vault"] == "vault-east"
    assert "vault-old" in row["other_items"]


def test_summary_counts_match_the_csv(assessed):
    outcome, _, rows, _ = assessed
    summary = json.loads(outcome.files["summary.json"].read_text())
    for value, count in summary["by_readiness"].items():
        assert count == sum(r["readiness"] == value for r in rows.values()), value
    assert summary["vms"] == len(rows)
    assert summary["rule_pack"]["name"] == "ga-2025-07"
    assert summary["complete"] is True and summary["partial_errors"] == []
    assert summary["by_rule"]["blocker"]["SHARED_DISK"] == 2
    assert summary["crash_consistent_with_blockers"] == 1
    # A fleet under a page: the scope, the vaults and special disks, the VMs with their items,
    # the disk check; one request each.
    assert summary["requests"]["resource_graph"] == 4
    assert summary["requests"]["resource_graph_429s"] == 0


def test_the_assessment_is_recorded_in_the_state_store(assessed):
    outcome, _, rows, settings = assessed
    engine = open_store(settings.state_store_url())
    record = resolve_assessment(engine, "latest")
    assert record.id == outcome.assessment_id
    assert record.vm_count == len(rows)
    stored = load_vms(engine, record.id)
    assert dict(zip(stored["vm_name"], stored["readiness"], strict=True)) == {
        name: r["readiness"] for name, r in rows.items()}


def test_preview_pack_does_not_know_the_later_rules(prefect_api, tmp_path):
    _, _, rows, _ = _assess(tmp_path, **{"rules.pack": "preview-2024-03"})
    assert rows["boost-intel"]["readiness"] == "ready"
    assert rows["confidential"]["readiness"] == "ready"
    assert rows["aad-disk"]["readiness"] == "ready"
    assert "UNMANAGED_DISK" not in rows["unmanaged"]["blockers"]


def test_severity_override_and_disabled_rule_change_the_verdict(prefect_api, tmp_path):
    outcome, _, rows, _ = _assess(tmp_path, **{
        "rules.severity": {"HOST_CACHING_READWRITE": "info"},
        "rules.disabled": ["LINUX_PREPOST_SCRIPTS"]})
    assert rows["readwrite"]["readiness"] == "ready"
    assert rows["readwrite"]["infos"] == "HOST_CACHING_READWRITE"
    assert rows["ready-linux"]["infos"] == ""
    overrides = json.loads(outcome.files["summary.json"].read_text())["rule_pack"]["overrides"]
    assert {o["rule"] for o in overrides} == {"HOST_CACHING_READWRITE", "LINUX_PREPOST_SCRIPTS"}


def test_exclusions_by_tag_and_resource_group(prefect_api, tmp_path):
    outcome, _, rows, _ = _assess(tmp_path, **{"scope.exclude_tags": ["backup-consistency="]})
    assert "opted-out" not in rows and "tag-other-value" not in rows
    assert outcome.summary["vms_excluded"] == 2
