"""What a plan leaves behind: plan.csv (the contract), plan.xlsx, and the state store rows the
wave runner reads."""

from __future__ import annotations

import csv

import openpyxl
import pandas as pd

from reports.plan_report import SHEETS, write_plan_csv, write_plan_workbook
from tasks.planning import PlanOptions, build_plan, involved_vaults, nothing_qualifies
from tasks.settings import load_settings
from tasks.state import (
    AssessmentRecord,
    PlanRecord,
    load_plan_policies,
    load_plan_vms,
    open_store,
    save_assessment,
    save_plan,
)
from tasks.state.tables import PLAN_VM_FIELDS
from tests.planning.frames import frame, policy, vault_policies, vm

CONTRACT = ["wave", "vm_id", "vm_name", "vault", "source_policy", "target_policy",
            "irreversible", "subscription_id", "rollback_policy", "warnings", "not_before",
            "resource_guard", "retention_reduced", "critical", "mua_request"]


def _plan(n: int = 6):
    rows = [vm(f"vm-{i}") for i in range(n)]
    rows += [vm("=cmd|calc", policy="standard-daily", readiness="ready_with_conditions",
                warnings="POLICY_STANDARD"),
             vm("blocked", readiness="not_ready", blockers="ULTRA_DISK")]
    vms = frame(rows)
    spec = vault_policies({"vault-a": [policy("vault-a", "enhanced-daily"),
                                       policy("vault-a", "standard-daily", v1=True)]})
    return vms, build_plan(vms, PlanOptions(include_standard=True, ramp=(2,)), spec)


def test_plan_csv_has_the_contract_columns_first_and_one_row_per_vm(tmp_path):
    _, plan = _plan()
    path = write_plan_csv(plan, tmp_path / "plan.csv")
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == CONTRACT
    assert [r["wave"] for r in rows] == ["1", "2", "2", "3", "3", "3", "3"]
    assert {r["irreversible"] for r in rows} == {"true", "false"}
    assert {(r["resource_guard"], r["critical"]) for r in rows} == {("", "false")}  # no guard
    irreversible = next(r for r in rows if r["irreversible"] == "true")
    assert irreversible["vm_name"] == "'=cmd|calc"  # formula-safe, as every CSV we write
    assert irreversible["rollback_policy"] == "standard-daily-enh"
    assert irreversible["warnings"] == "POLICY_STANDARD"


def test_plan_workbook_has_every_sheet_with_a_frozen_filtered_plan(tmp_path):
    _, plan = _plan()
    path = write_plan_workbook(plan, tmp_path / "plan.xlsx", plan_id="P1", assessment_id="A1")
    book = openpyxl.load_workbook(path)
    assert book.sheetnames == list(SHEETS)
    sheet = book["Plan"]
    assert [c.value for c in sheet[1]] == CONTRACT
    assert sheet.freeze_panes == "A2" and sheet.auto_filter.ref == "A1:O8"
    assert sheet.cell(2, 7).value is False  # a real boolean in Excel
    waves = list(book["Waves"].iter_rows(min_row=3, values_only=True))
    assert waves[0][:2] == ("Wave", "VMs") and [w[1] for w in waves[1:4]] == [1, 2, 4]
    policies = list(book["Policies"].iter_rows(min_row=3, values_only=True))
    assert {(p[1], p[3]) for p in policies[1:] if p[0]} == {
        ("enhanced-daily-crash", "create"), ("standard-daily-crash", "create"),
        ("standard-daily-enh", "create")}
    excluded = list(book["Excluded"].iter_rows(min_row=4, values_only=True))
    assert excluded[0][1] == "blocked" and excluded[0][5] == "not ready: ULTRA_DISK"
    limits = list(book["Limits"].iter_rows(min_row=4, values_only=True))
    assert limits[0][0] == "vault-a" and limits[0][-1] == "ok"


def test_a_plan_round_trips_through_the_state_store(tmp_path):
    vms, plan = _plan()
    engine = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        assessment = AssessmentRecord.new({"cloud": "public"})
        save_assessment(engine, assessment, vms)
        record = PlanRecord.new(assessment.id, PlanOptions().as_dict(), summary=plan.summary)
        save_plan(engine, record, plan.vms, plan.stored_policies())
        stored = load_plan_vms(engine, record.id)
        expected = plan.vms[list(PLAN_VM_FIELDS)].astype(
            {c: "string" for c in PLAN_VM_FIELDS if c not in ("wave", "position",
                                                             "irreversible")})
        expected = expected.astype({"wave": "Int64", "position": "Int64",
                                    "irreversible": "boolean"})
        pd.testing.assert_frame_equal(stored, expected)
        policies = load_plan_policies(engine, record.id)
        assert sorted(policies["policy_name"]) == ["enhanced-daily-crash",
                                                   "standard-daily-crash", "standard-daily-enh"]
        assert record.wave_count == 3
    finally:
        engine.dispose()


def test_options_come_from_settings_and_allowed_warnings_add_up():
    settings = load_settings(environ={"CCMIGRATE_WAVES__ALLOW_WARNINGS": "WORKLOAD_DATABASE",
                                      "CCMIGRATE_RULES__TARGET_POLICY_TEMPLATE": "{source}-cc"})
    options = PlanOptions.from_settings(settings, allow_warnings=("HOST_CACHING_READWRITE",
                                                                  "WORKLOAD_DATABASE"))
    assert options.allow_warnings == ("WORKLOAD_DATABASE", "HOST_CACHING_READWRITE")
    assert options.target_template == "{source}-cc"
    assert options.as_dict()["ramp"] == [5]


def test_only_the_candidates_vaults_are_read():
    vms = frame([vm("a"), vm("b", vault="vault-b", readiness="not_ready", blockers="X"),
                 vm("c", vault="VAULT-A")])
    assert involved_vaults(vms, PlanOptions()) == [vms["vault_id"][0]]


def test_a_plan_without_vms_says_why():
    vms = frame([vm("b", readiness="not_ready", blockers="ULTRA_DISK"),
                 vm("c", readiness="ready_with_conditions", warnings="WORKLOAD_DATABASE"),
                 vm("d", readiness="not_ready", blockers="ULTRA_DISK")])
    plan = build_plan(vms, PlanOptions(), vault_policies({}))
    message = nothing_qualifies(plan)
    assert message.startswith("no VM qualifies: 3 excluded, top reasons: not ready: ULTRA_DISK "
                              "(2); warning WORKLOAD_DATABASE not allowed")
