"""Every shape Azure allows for our writes, and ccmigrate surviving each (api-notes section 6):
a policy PUT answered 200, a policy operation that fails after part of it applied, a
ConfigureBackup job that fails after its operation succeeded, Recovery Services' own throttling
with a long Retry-After, and a Standard to Enhanced move that starts a backup job of its own
before ``--verify backup`` starts another. None of them is a VM failure; nothing is journaled
done or unchanged on an operation's word alone."""

from __future__ import annotations

import contextlib

import pandas as pd
import pytest
import requests

from emulator.config import EmulatorConfig, Faults
from emulator.server import Emulator
from flows.assess import run_assessment
from flows.edit_policy import run_edit_policy
from flows.migrate import run_rollback, run_wave
from flows.options import with_emulator_principal
from tasks.azure import backup
from tasks.azure.clients import AzureAccess
from tasks.settings import load_settings
from tasks.state.db import open_store
from tasks.state.journal import Journal
from tasks.state.plans import PlanRecord, save_plan
from tests.fleets import SUB_A, make_item, make_policy, make_vm, small_fleet
from tests.migration.test_wave_runner import planned

VAULT = (f"/subscriptions/{SUB_A}/resourceGroups/rg-backup/providers/"
         "Microsoft.RecoveryServices/vaults/vault-1111")
POLICY = f"{VAULT}/backupPolicies/enhanced-daily"


def _faults(emu: Emulator, **faults) -> None:
    requests.post(f"{emu.endpoint}/_emulator/faults", verify=str(emu.ca_bundle), json=faults,
                  timeout=10).raise_for_status()


def _resource(emu: Emulator, resource_id: str) -> dict | None:
    return next((r for r in emu.state()["resources"]
                 if r["id"].lower() == resource_id.lower()), None)


def _items(emu: Emulator) -> dict[str, str]:
    return {r["properties"]["friendlyName"]: r["properties"]["policyId"].lower()
            for r in emu.state()["resources"] if r["type"].lower().endswith("/protecteditems")}


def _settings(emu: Emulator, tmp_path, **extra):
    return with_emulator_principal(load_settings(environ={}, flags={
        "state_store": f"sqlite:///{tmp_path}/state.db",
        "throttles.polling_interval": 0.05, **extra}), emu.connection_info())


@pytest.fixture
def option2(prefect_api, tmp_path):
    fleet = small_fleet(vms_per_sub=3)
    with Emulator(fleet, config=EmulatorConfig(operation_seconds=0.2, job_seconds=0.2)) as emu:
        settings = _settings(emu, tmp_path)
        run_assessment(settings, tmp_path / "assess")
        yield emu, settings, open_store(settings.state_store_url()), tmp_path


def _crash(emu: Emulator) -> bool:
    policy = _resource(emu, POLICY) or {}
    return (policy.get("properties") or {}).get("snapshotConsistencyType") == \
        "OnlyCrashConsistent"


def test_option2_answered_200_finds_each_vms_job_and_reads_every_item_back(option2):
    emu, settings, engine, tmp = option2
    _faults(emu, policy_put_answers_200=True)
    outcome = run_edit_policy(settings, POLICY, assessment_ref="latest", execute=True,
                              out_dir=tmp / "out")
    assert outcome.status == "done" and outcome.counts == {"done": 3}
    assert _crash(emu)
    entries = Journal(engine, outcome.plan_id).entries(1)
    # No operation to name the jobs: each VM's ConfigureBackup job was found and followed.
    assert entries["job_ids"].map(len).eq(1).all()


def test_option2_answered_200_with_a_failing_job_still_reverts(option2):
    emu, settings, engine, tmp = option2
    _faults(emu, policy_put_answers_200=True, fail_jobs_for=["vm-1111-2"])
    outcome = run_edit_policy(settings, POLICY, assessment_ref="latest", execute=True,
                              out_dir=tmp / "out")
    assert outcome.counts == {"rolled_back": 3}
    assert not _crash(emu)
    entries = Journal(engine, outcome.plan_id).entries(1).set_index("vm_name")
    assert entries.loc["vm-1111-2", "error_code"] not in (None, "EDIT_FAILED_FOR_OTHERS")


def test_option2_whose_operation_failed_after_applying_is_read_back_and_reverted(option2):
    emu, settings, engine, tmp = option2
    _faults(emu, policy_partial_failure=["enhanced-daily"])
    outcome = run_edit_policy(settings, POLICY, assessment_ref="latest", execute=True,
                              out_dir=tmp / "out")
    # The failed operation had changed the policy: it is not "nothing to undo".
    assert outcome.counts == {"rolled_back": 3}
    assert not _crash(emu)
    entries = Journal(engine, outcome.plan_id).entries(1)
    assert entries["rollback_outcome"].str.contains("reverted to application-consistent").all()
    assert not entries["rollback_outcome"].str.contains("nothing to undo").any()
    items = _items(emu)
    assert all(items[f"vm-1111-{i}"] == POLICY.lower() for i in range(3))


def test_option2_refused_outright_is_confirmed_unchanged_by_reading_the_policy(option2):
    emu, settings, engine, tmp = option2
    _faults(emu, read_only=True)
    outcome = run_edit_policy(settings, POLICY, assessment_ref="latest", execute=True,
                              out_dir=tmp / "out")
    entries = Journal(engine, outcome.plan_id).entries(1)
    assert set(entries["status"]) == {"rolled_back"}
    assert entries["rollback_outcome"].str.contains("nothing to undo").all()
    assert not _crash(emu)


@pytest.fixture
def wave_world(prefect_api, tmp_path):
    fleet = small_fleet(vms_per_sub=3)
    fleet["resources"] = [r for r in fleet["resources"] if r["name"] != "enhanced-daily-crash"]
    return fleet, tmp_path


def test_a_configure_job_failing_after_its_operation_succeeded_is_rolled_back(wave_world):
    fleet, tmp = wave_world
    with planned(tmp, fleet, EmulatorConfig(operation_seconds=0.2, job_seconds=0.3),
                 Faults(jobs_fail_after_operation=["vm-1111-1"]), waves=(1,)) as (
            emu, settings, engine, plan_id):
        outcome = run_wave(settings, plan_id, 1, execute=True, out_dir=tmp / "out",
                           max_failures="3", cumulative_max_failures="3")
        entries = Journal(engine, plan_id).entries(1).set_index("vm_name")
        assert entries.loc["vm-1111-1", "status"] == "rolled_back"
        assert entries.loc["vm-1111-1", "error_code"]
        assert "vm-1111-1" not in entries[entries["status"] == "done"].index
        # Back on its original policy, which the journal names.
        assert _items(emu)["vm-1111-1"] == \
            entries.loc["vm-1111-1", "original_policy_id"].lower()
        assert outcome.counts.get("done", 0) == len(entries) - 1


def test_a_wave_whose_policy_creates_are_answered_200_makes_its_policies_and_moves(
        wave_world):
    fleet, tmp = wave_world
    with planned(tmp, fleet, EmulatorConfig(operation_seconds=0.2),
                 Faults(policy_put_answers_200=True), waves=(1,)) as (
            emu, settings, engine, plan_id):
        run_wave(settings, plan_id, 1, execute=True, out_dir=tmp / "out")
        entries = Journal(engine, plan_id).entries(1)
        assert set(entries["status"]) == {"done"}
        crash = _resource(emu, f"{VAULT}/backupPolicies/enhanced-daily-crash")
        assert crash["properties"]["snapshotConsistencyType"] == "OnlyCrashConsistent"


def test_recovery_services_throttling_with_a_long_retry_after_is_never_a_vm_failure(
        wave_world):
    fleet, tmp = wave_world
    # A Retry-After of minutes in Azure; 3 s keeps the test short, the shape is the same: a
    # 429 ResourceRequestsThrottled while the subscription's remaining-requests header is high.
    with planned(tmp, fleet, EmulatorConfig(operation_seconds=0.2), waves=(1,)) as (
            emu, settings, engine, plan_id):
        _faults(emu, provider_throttle_next=6, provider_throttle_retry_after=3)
        outcome = run_wave(settings, plan_id, 1, execute=True, out_dir=tmp / "out")
        entries = Journal(engine, plan_id).entries(1)
        assert set(entries["status"]) == {"done"}, entries[["vm_name", "status",
                                                             "error_code"]].to_string()
        assert outcome.halted_reason is None
        assert emu.world.faults.provider_throttle_next == 0  # every throttle was met


def _standard_plan(engine, assessment_id: str, scored: pd.DataFrame) -> str:
    """A one-wave plan of the Standard-policy VM: irreversible, rollback to an Enhanced clone."""
    row = scored[scored["vm_name"] == "vm-std-0"].iloc[0]
    frame = pd.DataFrame([{
        "wave": 1, "vm_id": row["vm_id"], "vm_name": row["vm_name"],
        "subscription_id": row["subscription_id"], "vault_id": row["vault_id"],
        "vault": row["vault"], "item_id": row["item_id"], "source_policy_id": row["policy_id"],
        "source_policy": row["policy_name"], "target_policy": row["target_policy"],
        "irreversible": True, "rollback_policy": f"{row['policy_name']}-enh",
        "readiness": row["readiness"], "warnings": row["warnings"]}])
    policies = frame[["vault_id", "vault", "target_policy", "source_policy_id",
                      "source_policy"]].rename(columns={"target_policy": "policy_name"}).assign(
        kind="crash_clone", first_wave=1)
    record = PlanRecord.new(assessment_id, {"include_standard": True})
    save_plan(engine, record, frame, policies)
    return record.id


def _standard_vm_fleet() -> tuple[dict, dict]:
    fleet = small_fleet(vms_per_sub=1)
    vault = next(r for r in fleet["resources"] if r["name"] == "vault-1111")
    standard = make_policy(vault, "standard-daily", v1=True)
    vm, disks = make_vm(SUB_A, "rg-app", "vm-std-0")
    fleet["resources"] += [standard, vm, *disks, make_item(vault, vm, standard)]
    return fleet, vault


@contextlib.contextmanager
def _standard_planned(tmp_path, backup_job_seconds: float):
    """An emulator over the Standard-policy VM's fleet, assessed, and its one-wave plan:
    ``(emulator, settings, engine, plan id, vault)``."""
    fleet, vault = _standard_vm_fleet()
    config = EmulatorConfig(operation_seconds=0.2, backup_job_seconds=backup_job_seconds)
    with Emulator(fleet, config=config) as emu:
        settings = _settings(emu, tmp_path)
        outcome = run_assessment(settings, tmp_path / "assess")
        engine = open_store(settings.state_store_url(), synchronous="FULL")
        yield emu, settings, engine, _standard_plan(engine, outcome.assessment_id,
                                                    outcome.scored), vault


def test_rolling_back_while_the_moves_own_backup_runs_waits_for_it_instead_of_failing(
        prefect_api, tmp_path):
    # The move's own backup holds the item for a while (Azure: BMSUserErrorObjectLocked).
    with _standard_planned(tmp_path, 4.0) as (emu, settings, _engine, plan_id, _vault):
        assert run_wave(settings, plan_id, 1, execute=True,
                        out_dir=tmp_path / "out").counts == {"done": 1}
        back = run_rollback(settings, plan_id, wave=1, vm_ids=[], execute=True,
                            out_dir=tmp_path / "out")
        assert back.counts == {"rolled_back": 1}
        # Enhanced can't go back to Standard: the rollback target is its Enhanced app clone.
        assert _items(emu)["vm-std-0"].endswith("/backuppolicies/standard-daily-enh")


def test_verify_backup_waits_for_the_standard_to_enhanced_moves_own_backup_and_follows_its_own_job(
        prefect_api, tmp_path):
    with _standard_planned(tmp_path, 2.0) as (_emu, settings, engine, plan_id, vault):
        wave = run_wave(settings, plan_id, 1, execute=True, out_dir=tmp_path / "out",
                        verify="backup")
        entry = Journal(engine, plan_id).entry(next(iter(
            Journal(engine, plan_id).entries(1)["vm_key"])))
        assert wave.counts == {"done": 1}, (entry.error_code, entry.error_message)
        client = AzureAccess(settings).backup(SUB_A)
        jobs = {j["name"]: j["properties"] for j in backup.list_jobs(
            client, backup.vault_ref(vault["id"]), "operation eq 'Backup'")}
        moves = [p for p in jobs.values() if not p["isUserTriggered"]]
        ours = jobs[entry.job_ids[-1]]
        # The journal names the on-demand backup Azure started for us, not the move's own job,
        # and ours started only after the move's had ended.
        assert ours["isUserTriggered"] is True and ours["status"] == "Completed"
        assert len(moves) == 1 and moves[0]["status"] == "Completed"
        assert ours["startTime"] >= moves[0]["endTime"]
