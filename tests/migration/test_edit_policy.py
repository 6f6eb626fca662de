"""Option 2, the in-place switch, against the emulator: refused unless every VM on the policy
is ready; success; a failing ConfigureBackup job reverts the policy; and when Azure refuses the
revert, every VM is re-pointed to an app-consistent clone. Every VM journaled throughout."""

from __future__ import annotations

import pytest
import requests

from emulator.config import EmulatorConfig
from emulator.server import Emulator
from flows.assess import run_assessment
from flows.edit_policy import run_edit_policy
from flows.options import with_emulator_principal
from tasks.errors import InputError
from tasks.settings import load_settings
from tasks.state.db import open_store
from tasks.state.journal import Journal
from tests.fleets import SUB_A, small_fleet

VAULT = (f"/subscriptions/{SUB_A}/resourceGroups/rg-backup/providers/"
         "Microsoft.RecoveryServices/vaults/vault-1111")
POLICY = f"{VAULT}/backupPolicies/enhanced-daily"


def _policy(emu, name: str) -> dict | None:
    return next((r for r in emu.state()["resources"]
                 if r["id"].lower() == f"{VAULT}/backupPolicies/{name}".lower()), None)


def _items(emu) -> dict[str, str]:
    return {r["properties"]["friendlyName"]: r["properties"]["policyId"].lower()
            for r in emu.state()["resources"] if r["type"].lower().endswith("/protecteditems")}


def _faults(emu, **faults) -> None:
    requests.post(f"{emu.endpoint}/_emulator/faults", verify=str(emu.ca_bundle), json=faults,
                  timeout=10).raise_for_status()


@pytest.fixture
def world(prefect_api, tmp_path):
    fleet = small_fleet(vms_per_sub=3)
    with Emulator(fleet, config=EmulatorConfig(operation_seconds=0.2, job_seconds=0.2)) as emu:
        settings = with_emulator_principal(load_settings(environ={}, flags={
            "state_store": f"sqlite:///{tmp_path}/state.db",
            "throttles.polling_interval": 0.05}), emu.connection_info())
        run_assessment(settings, tmp_path / "assess")
        yield emu, settings, open_store(settings.state_store_url()), tmp_path


def test_the_switch_needs_every_vm_on_the_policy_ready(prefect_api, tmp_path):
    fleet = small_fleet(vms_per_sub=3)
    vm = next(r for r in fleet["resources"] if r["name"] == "vm-1111-1")
    vm["tags"] = {"backup-consistency": "application"}  # opted out: not ready
    with Emulator(fleet, config=EmulatorConfig(operation_seconds=0.2)) as emu:
        settings = with_emulator_principal(load_settings(environ={}, flags={
            "state_store": f"sqlite:///{tmp_path}/state.db"}), emu.connection_info())
        run_assessment(settings, tmp_path / "assess")
        before = emu.state()
        with pytest.raises(InputError) as err:
            run_edit_policy(settings, POLICY, assessment_ref="latest", execute=True,
                            out_dir=tmp_path / "out")
        assert "vm-1111-1 (not_ready: OPTED_OUT)" in str(err.value)
        assert emu.state() == before


def test_dry_run_changes_nothing(world):
    emu, settings, _engine, tmp = world
    before = emu.state()
    outcome = run_edit_policy(settings, POLICY, assessment_ref="latest", execute=False,
                              out_dir=tmp / "out")
    assert outcome.counts == {"vms": 3} and emu.state() == before


def test_switch_in_place_makes_the_policy_crash_consistent(world):
    emu, settings, engine, tmp = world
    outcome = run_edit_policy(settings, POLICY, assessment_ref="latest", execute=True,
                              out_dir=tmp / "out")
    assert outcome.status == "done" and outcome.counts == {"done": 3}
    assert _policy(emu, "enhanced-daily")["properties"]["snapshotConsistencyType"] == \
        "OnlyCrashConsistent"
    entries = Journal(engine, outcome.plan_id).entries(1)
    assert entries["job_ids"].map(len).eq(1).all()  # each VM's ConfigureBackup job
    assert (tmp / "out" / "wave-1.csv").is_file()


def test_a_failing_job_reverts_the_policy(world):
    emu, settings, engine, tmp = world
    _faults(emu, fail_jobs_for=["vm-1111-2"])
    outcome = run_edit_policy(settings, POLICY, assessment_ref="latest", execute=True,
                              out_dir=tmp / "out")
    assert outcome.status == "partial" and outcome.counts == {"rolled_back": 3}
    assert "snapshotConsistencyType" not in _policy(emu, "enhanced-daily")["properties"]
    entries = Journal(engine, outcome.plan_id).entries(1).set_index("vm_name")
    assert entries.loc["vm-1111-2", "error_code"] not in (None, "EDIT_FAILED_FOR_OTHERS")
    assert entries.loc["vm-1111-2", "error_message"]
    assert entries.loc["vm-1111-0", "error_code"] == "EDIT_FAILED_FOR_OTHERS"
    assert entries["rollback_outcome"].str.contains("reverted to application-consistent").all()
    assert set(_items(emu).values()) >= {POLICY.lower()}


def test_a_refused_revert_falls_back_to_an_app_consistent_clone(world):
    emu, settings, engine, tmp = world
    _faults(emu, fail_jobs_for=["vm-1111-2"], refuse_consistency_revert=True)
    outcome = run_edit_policy(settings, POLICY, assessment_ref="latest", execute=True,
                              out_dir=tmp / "out")
    entries = Journal(engine, outcome.plan_id).entries(1).set_index("vm_name")
    clone = _policy(emu, "enhanced-daily-app")
    assert clone is not None and "snapshotConsistencyType" not in clone["properties"]
    items = _items(emu)
    for name in ("vm-1111-0", "vm-1111-1"):
        assert items[name] == clone["id"].lower()
        assert entries.loc[name, "status"] == "rolled_back"
        assert entries.loc[name, "rollback_outcome"].startswith("moved to enhanced-daily-app")
    # The emulator fails every job of vm-1111-2, so it cannot move either: it stays on the
    # edited policy, and the journal says so.
    assert items["vm-1111-2"] == POLICY.lower()
    assert entries.loc["vm-1111-2", "status"] == "rollback_failed"
    assert "the VM is on enhanced-daily" in entries.loc["vm-1111-2", "rollback_outcome"]
