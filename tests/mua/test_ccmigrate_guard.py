"""Multi-user authorization as a ccmigrate user meets it, over HTTPS against the emulator with
the real SDK: the assessment names the vault linked to a Resource Guard, the plan marks the one
change that shortens retention there (a Standard policy whose Enhanced clone keeps fewer
instant-restore days) with the role to request on which guard, and the wave sends the guard's
request for it. Without the role Azure refuses: the VM is named, nothing changed, it is not a
failure, and a re-run moves it once the role is held."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import openpyxl
import pytest
import requests

from emulator.config import EmulatorConfig
from emulator.server import Emulator
from flows.assess import run_assessment
from flows.migrate import run_wave
from flows.options import with_emulator_principal
from flows.plan import PlanRequest, prepare_plan, run_plan
from tasks.migration.mua import JOURNAL_CODE
from tasks.settings import load_settings
from tasks.state.journal import Journal
from tests.fleets import make_item, make_policy, make_vm
from tests.mua.guarded import GUARD_ID, UPDATE_PROTECTION_REQUEST, VAULT, VAULT_ID, guarded_fleet

STANDARD_VM = "vm-std-short"


def _fleet() -> dict:
    """The guarded fleet, plus on the guarded vault a Standard policy keeping 5 instant-restore
    days but daily points only 3 days: its Enhanced clone can keep only 3 IR days (IR can't
    exceed the retention), so moving a VM there shortens retention."""
    fleet = guarded_fleet()
    vault = next(r for r in fleet["resources"] if r["id"] == VAULT_ID)
    short = make_policy(vault, "standard-short", v1=True)
    short["properties"]["instantRpRetentionRangeInDays"] = 5
    short["properties"]["retentionPolicy"]["dailySchedule"]["retentionDuration"]["count"] = 3
    vm, disks = make_vm(VAULT_ID.split("/")[2], "rg-app", STANDARD_VM)
    fleet["resources"] += [short, vm, *disks, make_item(vault, vm, short)]
    # The shipped crash-consistent policies would be reused; the wave creates its own.
    fleet["resources"] = [r for r in fleet["resources"] if r["name"] != "enhanced-daily-crash"]
    return fleet


def _faults(emu: Emulator, **faults: object) -> None:
    requests.post(f"{emu.endpoint}/_emulator/faults", verify=str(emu.ca_bundle), json=faults,
                  timeout=10).raise_for_status()


def _items(emu: Emulator) -> dict[str, str]:
    """Each protected item's policy, as ``GET /_emulator/state`` shows Azure now."""
    state = requests.get(f"{emu.endpoint}/_emulator/state", verify=str(emu.ca_bundle),
                         timeout=10).json()
    return {r["properties"]["friendlyName"]: r["properties"].get("policyId", "")
            for r in state["resources"] if r["type"].lower().endswith("/protecteditems")}


@pytest.fixture
def planned(prefect_api, tmp_path):
    """An emulator serving the fleet, an assessment, and a real plan (one wave after the canary
    ... every VM of the guarded vault in wave 1 or 2) with Standard VMs included."""
    with Emulator(_fleet(), config=EmulatorConfig(operation_seconds=0.1)) as emu:
        settings = with_emulator_principal(load_settings(environ={}, flags={
            "state_store": f"sqlite:///{tmp_path}/state.db",
            "throttles.polling_interval": 0.05, "waves.include_standard": True,
            "waves.canary": 1, "waves.ramp": [], "waves.wave_size": 50}),
            emu.connection_info())
        assessed = run_assessment(settings, tmp_path / "assess")
        prepared = prepare_plan(settings, PlanRequest(select=[f"vault={VAULT}"]))
        (tmp_path / "plan").mkdir()
        try:
            outcome = run_plan(settings, prepared, tmp_path / "plan")
        finally:
            prepared.engine.dispose()
        yield emu, settings, assessed, outcome, tmp_path


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def test_the_assessment_names_the_guarded_vault(planned):
    _emu, _settings, assessed, _plan, tmp = planned
    summary = json.loads((tmp / "assess" / "summary.json").read_text())
    (guarded,) = summary["guarded_vaults"]
    assert (guarded["vault"], guarded["guard_id"]) == (VAULT, GUARD_ID)
    assert guarded["vms"] == 4  # three on enhanced-daily, the Standard one
    assert "Backup MUA Operator" in guarded["operator_request"]
    book = openpyxl.load_workbook(assessed.files["readiness.xlsx"], read_only=True)
    text = " ".join(str(c) for row in book["Summary"].iter_rows(values_only=True)
                    for c in row if c)
    assert "Multi-user authorization: 1 vault(s) linked to a Resource Guard" in text
    assert GUARD_ID in text


def test_the_plan_marks_only_the_retention_reducing_change_critical(planned):
    _emu, _settings, _assessed, plan, tmp = planned
    rows = {r["vm_name"]: r for r in _csv(tmp / "plan" / "plan.csv")}
    header = list(next(iter(rows.values())))
    assert header[:7] == ["wave", "vm_id", "vm_name", "vault", "source_policy", "target_policy",
                          "irreversible"]
    assert header[-4:] == ["resource_guard", "retention_reduced", "critical", "mua_request"]
    std = rows[STANDARD_VM]
    assert std["critical"] == "true"
    assert std["resource_guard"] == GUARD_ID
    assert std["retention_reduced"] == "move: instant restore 5 -> 3 days"
    assert "Backup MUA Operator role on Resource Guard " + GUARD_ID in std["mua_request"]
    others = [r for name, r in rows.items() if name != STANDARD_VM]
    assert others and all(r["critical"] == "false" and r["mua_request"] == "" and
                          r["resource_guard"] == GUARD_ID for r in others)
    (guarded,) = plan.plan.summary["guarded_vaults"]
    assert (guarded["critical_vms"], guarded["vms"]) == (1, 4)
    book = openpyxl.load_workbook(tmp / "plan" / "plan.xlsx", read_only=True)
    lines = [str(r[0]) for r in book["Waves"].iter_rows(max_row=4, values_only=True) if r]
    assert any("1 planned change(s) shorten retention there" in line for line in lines)
    header = next(book["Plan"].iter_rows(values_only=True))
    assert list(header[-4:]) == ["resource_guard", "retention_reduced", "critical",
                                 "mua_request"]


def test_the_dry_run_says_which_move_needs_the_guard_and_changes_nothing(planned):
    emu, settings, _assessed, plan, tmp = planned
    wave = int(next(r for r in _csv(tmp / "plan" / "plan.csv")
                    if r["vm_name"] == STANDARD_VM)["wave"])
    before = emu.state()
    outcome = run_wave(settings, plan.record.id, wave, execute=False, out_dir=tmp / "dry")
    actions = outcome.actions.set_index("vm_name")
    assert "critical under multi-user authorization" in actions.at[STANDARD_VM, "action"]
    assert UPDATE_PROTECTION_REQUEST in actions.at[STANDARD_VM, "action"]
    others = actions[(actions["what"] == "vm") & (actions.index != STANDARD_VM)]
    assert not others["action"].str.contains("multi-user").any()
    assert emu.state() == before


def test_a_wave_sends_the_guards_request_for_the_critical_change(planned):
    emu, settings, _assessed, plan, tmp = planned
    wave = int(next(r for r in _csv(tmp / "plan" / "plan.csv")
                    if r["vm_name"] == STANDARD_VM)["wave"])
    outcome = run_wave(settings, plan.record.id, wave, execute=True, out_dir=tmp / "out")
    assert outcome.halted_reason is None
    assert _items(emu)[STANDARD_VM].endswith("/backupPolicies/standard-short-crash")
    events = Journal(_engine(settings), plan.record.id).events(plan_vm_key(plan, STANDARD_VM))
    assert UPDATE_PROTECTION_REQUEST in json.dumps(events["detail"].tolist(), default=str)


def test_without_the_role_the_change_is_refused_named_retryable_and_changes_nothing(planned):
    emu, settings, _assessed, plan, tmp = planned
    wave = int(next(r for r in _csv(tmp / "plan" / "plan.csv")
                    if r["vm_name"] == STANDARD_VM)["wave"])
    _faults(emu, mua_operator_missing=["contoso-guard"])
    before = _items(emu)
    outcome = run_wave(settings, plan.record.id, wave, execute=True, out_dir=tmp / "out",
                       max_failures="0", cumulative_max_failures="0")
    assert outcome.halted_reason is None  # a guard's refusal is never a VM failure
    entries = Journal(_engine(settings), plan.record.id).entries(wave)
    std = entries[entries["vm_name"] == STANDARD_VM].iloc[0]
    assert (std["status"], std["error_code"]) == ("rolled_back", JOURNAL_CODE)
    assert "Backup MUA Operator" in std["error_message"] and GUARD_ID in std["error_message"]
    assert _items(emu)[STANDARD_VM] == before[STANDARD_VM]  # Azure unchanged for it
    others = entries[entries["vm_name"] != STANDARD_VM]
    assert set(others["status"]) <= {"done"}  # same-retention moves need no approval
    # The operator takes the role on the guard; the re-run moves the VM.
    _faults(emu, mua_operator_missing=[])
    again = run_wave(settings, plan.record.id, wave, execute=True, out_dir=tmp / "out")
    assert again.halted_reason is None
    assert _items(emu)[STANDARD_VM].endswith("/backupPolicies/standard-short-crash")


def _engine(settings):
    from tasks.state.db import open_store

    return open_store(settings.state_store_url())


def plan_vm_key(plan, name: str) -> str:
    return str(plan.plan.vms.loc[plan.plan.vms["vm_name"] == name, "vm_key"].iloc[0])
