"""A wave end to end over HTTPS against the emulator: assess, a plan saved in the state store,
dry run (nothing changes in Azure), execute with one VM whose ConfigureBackup job fails (it is
rolled back, the others move and are verified), re-run (done VMs are skipped), thresholds that
halt a wave, a second runner refused, and ``rollback`` putting a done VM back."""

from __future__ import annotations

import contextlib

import pandas as pd
import pytest
import requests

from emulator.config import EmulatorConfig, Faults
from emulator.server import Emulator
from flows.assess import run_assessment
from flows.migrate import run_rollback, run_wave
from flows.options import with_emulator_principal
from tasks.errors import AzureError, InputError
from tasks.settings import load_settings
from tasks.state.db import open_store
from tasks.state.journal import Journal
from tasks.state.leases import WaveBusyError, acquire_wave_lease
from tasks.state.plans import PlanRecord, get_wave, save_plan
from tests.fleets import small_fleet

FAILING_VM = "vm-2222-1"


def _items(state: dict) -> dict[str, str]:
    return {r["properties"]["friendlyName"]: r["properties"].get("policyId", "")
            for r in state["resources"] if r["type"].lower().endswith("/protecteditems")}


def _plan(engine, scored: pd.DataFrame, assessment_id: str, waves: list[int],
          options: dict | None = None) -> str:
    """A plan of the assessment's ready VMs by name: the first to waves[0], ..., the rest to
    the last wave."""
    ready = scored[scored["readiness"] == "ready"].sort_values("vm_name").reset_index(drop=True)
    assert len(ready) >= len(waves)
    frame = pd.DataFrame({
        "wave": waves + [waves[-1]] * (len(ready) - len(waves)),
        "vm_id": ready["vm_id"], "vm_name": ready["vm_name"],
        "subscription_id": ready["subscription_id"], "vault_id": ready["vault_id"],
        "vault": ready["vault"], "item_id": ready["item_id"],
        "source_policy_id": ready["policy_id"], "source_policy": ready["policy_name"],
        "target_policy": ready["target_policy"], "irreversible": False,
        "rollback_policy": ready["policy_name"], "readiness": ready["readiness"],
        "warnings": ready["warnings"]})
    policies = frame[["vault_id", "vault", "target_policy", "source_policy_id",
                      "source_policy"]].drop_duplicates().rename(
        columns={"target_policy": "policy_name"}).assign(kind="crash_clone", first_wave=1)
    record = PlanRecord.new(assessment_id, options)
    save_plan(engine, record, frame, policies)
    return record.id


@contextlib.contextmanager
def planned(tmp_path, fleet: dict, config: EmulatorConfig, faults: Faults | None = None,
            waves: tuple[int, ...] = (1, 2), options: dict | None = None):
    """An emulator serving ``fleet``, assessed, and a plan of its ready VMs (``_plan``):
    ``(emulator, settings, engine, plan id)``."""
    with Emulator(fleet, config=config, faults=faults) as emu:
        settings = with_emulator_principal(load_settings(environ={}, flags={
            "state_store": f"sqlite:///{tmp_path}/state.db",
            "throttles.polling_interval": 0.05}), emu.connection_info())
        outcome = run_assessment(settings, tmp_path / "assess")
        engine = open_store(settings.state_store_url(), synchronous="FULL")
        yield emu, settings, engine, _plan(engine, outcome.scored, outcome.assessment_id,
                                           list(waves), options)


def _fleet_without_crash_policies() -> dict:
    """``small_fleet`` of 4 VMs a subscription without its crash-consistent policies (they
    would be reused), so a wave creates its target policies."""
    fleet = small_fleet(vms_per_sub=4)
    fleet["resources"] = [r for r in fleet["resources"] if r["name"] != "enhanced-daily-crash"]
    return fleet


@pytest.fixture
def world(prefect_api, tmp_path):
    with planned(tmp_path, _fleet_without_crash_policies(), EmulatorConfig(operation_seconds=0.2),
                 Faults(fail_jobs_for=[FAILING_VM])) as (emu, settings, engine, plan_id):
        yield emu, settings, engine, plan_id, tmp_path


def test_dry_run_changes_nothing_in_azure(world):
    emu, settings, engine, plan_id, tmp = world
    before = emu.state()
    outcome = run_wave(settings, plan_id, 2, execute=False, out_dir=tmp / "out")
    assert emu.state() == before
    vms = outcome.actions[outcome.actions["what"] == "vm"]
    assert len(vms) == 7 and outcome.status == "dry_run"
    policies = outcome.actions[outcome.actions["what"] == "policy"]
    assert set(policies["target_policy"]) == {"enhanced-daily-crash"}
    assert all(a.startswith("create") for a in policies["action"])
    assert (tmp / "out" / "wave-2-dry-run.csv").is_file()
    assert Journal(engine, plan_id).counts(2)["pending"] == 7


def test_execute_moves_verifies_and_rolls_back_the_failing_vm(world):
    emu, settings, engine, plan_id, tmp = world
    outcome = run_wave(settings, plan_id, 2, execute=True, out_dir=tmp / "out",
                       max_failures="3")
    assert outcome.counts == {"done": 6, "rolled_back": 1}
    assert outcome.status == "partial" and outcome.halted_reason is None
    items = _items(emu.state())
    entries = Journal(engine, plan_id).entries(2).set_index("vm_name")
    for name, row in entries.iterrows():
        # The invariant: protected by the original or the target policy, and the journal says
        # which.
        on = items[name].lower()
        if row["status"] == "done":
            assert on == row["target_policy_id"].lower()
            assert on.endswith("/enhanced-daily-crash") and row["job_ids"]
        else:
            assert name == FAILING_VM and on == row["original_policy_id"].lower()
            assert row["error_code"] and "Azure kept" in row["rollback_outcome"]
    assert get_wave(engine, plan_id, 2).status == "partial"
    report = pd.read_csv(tmp / "out" / "wave-2.csv")
    assert len(report) == 7 and set(report["status"]) == {"done", "rolled_back"}
    assert (tmp / "out" / "wave-2.xlsx").is_file()

    # A re-run skips the done VMs and does not retry the failed one: nothing is written.
    writes = emu.stats()["write"]
    assert writes >= 7 + 1  # a PUT per VM and the policy created
    again = run_wave(settings, plan_id, 2, execute=True, out_dir=tmp / "out")
    assert again.counts == {"done": 6, "rolled_back": 1}
    assert _items(emu.state()) == items
    assert emu.stats()["write"] == writes


def test_an_item_deleted_as_its_change_completes_fails_that_vm_alone_and_is_not_re_protected(
        prefect_api, tmp_path):
    # Someone stops protection with delete data on one VM in the instant its change completes:
    # its job says Completed while the item is gone from the vault's list and from a GET.
    gone = "vm-1111-2"
    with planned(tmp_path, _fleet_without_crash_policies(), EmulatorConfig(operation_seconds=0.2),
                 Faults(items_deleted_after_change=[gone])) as (emu, settings, engine, plan_id):
        outcome = run_wave(settings, plan_id, 2, execute=True, out_dir=tmp_path / "out",
                           max_failures="3")
        assert outcome.counts == {"done": 6, "rollback_failed": 1}, outcome.counts
        entries = Journal(engine, plan_id).entries(2).set_index("vm_name")
        row = entries.loc[gone]
        assert row["status"] == "rollback_failed" and row["error_code"] == "ITEM_GONE"
        assert "deleted while it moved" in row["error_message"]
        assert "can no longer be read" in row["rollback_outcome"]
        items = _items(emu.state())
        assert gone not in items  # ccmigrate does not protect a VM someone removed
        assert all(items[name].endswith("/enhanced-daily-crash")
                   for name in entries.index if name != gone)
        report = pd.read_csv(tmp_path / "out" / "wave-2.csv").set_index("vm_name")
        assert report.loc[gone, "status"] == "rollback_failed"


def test_failure_threshold_halts_the_wave(world):
    emu, settings, engine, plan_id, tmp = world
    requests.post(f"{emu.endpoint}/_emulator/faults", verify=str(emu.ca_bundle),
                  json={"fail_jobs_for": [f"vm-{s}-{i}" for s in ("1111", "2222")
                                          for i in range(4)]}, timeout=10)
    settings = settings.model_copy(update={"throttles": settings.throttles.model_copy(
        update={"max_parallel": 1, "per_vault": 1})})
    outcome = run_wave(settings, plan_id, 2, execute=True, out_dir=tmp / "out",
                       max_failures="1")
    assert outcome.status == "halted" and "more than the 1 allowed" in outcome.halted_reason
    assert outcome.counts.get("rolled_back", 0) == 2  # the second failure crossed the line
    assert outcome.counts.get("pending", 0) == 5  # no new VM started after that
    assert get_wave(engine, plan_id, 2).halted_reason == outcome.halted_reason


def test_a_second_runner_of_the_same_wave_is_refused(world):
    _emu, settings, engine, plan_id, tmp = world
    lease = acquire_wave_lease(engine, plan_id, 1, ttl_s=60)
    try:
        with pytest.raises(WaveBusyError) as err:
            run_wave(settings, plan_id, 1, execute=True, out_dir=tmp / "out")
        assert "wave" in str(err.value) and isinstance(err.value, InputError)
    finally:
        lease.release()
    assert Journal(engine, plan_id).counts(1)["pending"] == 1


def test_rollback_puts_a_done_vm_back_on_its_original_policy(world):
    emu, settings, engine, plan_id, tmp = world
    run_wave(settings, plan_id, 1, execute=True, out_dir=tmp / "out")
    entry = Journal(engine, plan_id).entries(1).iloc[0]
    assert entry["status"] == "done"
    before = emu.state()
    dry = run_rollback(settings, plan_id, wave=1, vm_ids=[], execute=False, out_dir=tmp / "rb")
    assert dry.counts == {"would_roll_back": 1} and emu.state() == before
    done = run_rollback(settings, plan_id, wave=1, vm_ids=[], execute=True, out_dir=tmp / "rb")
    assert done.status == "done"
    after = Journal(engine, plan_id).entries(1).iloc[0]
    assert after["status"] == "rolled_back"
    assert after["rollback_outcome"].startswith("restored to enhanced-daily")
    assert _items(emu.state())[entry["vm_name"]].lower() == entry["original_policy_id"].lower()


def _faults(emu, **faults) -> None:
    requests.post(f"{emu.endpoint}/_emulator/faults", verify=str(emu.ca_bundle), json=faults,
                  timeout=10).raise_for_status()


def test_read_only_credentials_halt_the_wave_and_change_nothing(world):
    emu, settings, engine, plan_id, tmp = world
    _faults(emu, read_only=True)
    before = emu.state()
    with pytest.raises(AzureError) as err:
        run_wave(settings, plan_id, 2, execute=True, out_dir=tmp / "out")
    assert "AuthorizationFailed" in str(err.value) and "Backup Contributor" in str(err.value)
    assert emu.state() == before
    assert get_wave(engine, plan_id, 2).status == "halted"
    assert Journal(engine, plan_id).counts(2)["pending"] == 7


def test_a_resource_guard_vault_moves_its_vms_when_retention_stays_the_same(world):
    """Multi-user authorization guards only critical operations: re-pointing VMs to clones
    with the same retention needs no approval (tests/mua has the critical case)."""
    emu, settings, engine, plan_id, tmp = world
    _faults(emu, fail_jobs_for=[], resource_guard_vaults=["vault-2222"])
    outcome = run_wave(settings, plan_id, 2, execute=True, out_dir=tmp / "out")
    entries = Journal(engine, plan_id).entries(2)
    assert set(entries["status"]) == {"done"}
    assert outcome.halted_reason is None and outcome.counts == {"done": 7}


def test_a_429_storm_is_absorbed_and_never_counted_as_a_failure(world):
    emu, settings, _engine, plan_id, tmp = world
    _faults(emu, fail_jobs_for=[], rate_429=0.3, retry_after_429=0)
    outcome = run_wave(settings, plan_id, 2, execute=True, out_dir=tmp / "out",
                       max_failures="0")
    assert outcome.halted_reason is None
    assert outcome.counts == {"done": 7}


def test_verify_backup_waits_for_an_on_demand_backup_under_the_new_policy(world):
    _emu, settings, engine, plan_id, tmp = world
    outcome = run_wave(settings, plan_id, 1, execute=True, out_dir=tmp / "out",
                       verify="backup")
    assert outcome.counts == {"done": 1}
    entry = Journal(engine, plan_id).entries(1).iloc[0]
    assert entry["step"] == "backup_verified"
    assert len(entry["job_ids"]) == 2  # ConfigureBackup, then the on-demand Backup
    events = Journal(engine, plan_id).events(entry["vm_key"])
    assert "backup_verified" in set(events["step"])


def test_throttling_beyond_the_retry_policy_is_waited_out_and_never_fails_a_vm(world):
    emu, settings, engine, plan_id, tmp = world
    _faults(emu, fail_jobs_for=[], rate_429=0.2, retry_after_429=0)
    settings = settings.model_copy(update={"throttles": settings.throttles.model_copy(
        update={"http_retries": 0})})  # every 429 reaches our code
    for _ in range(15):  # re-runs move what throttling left; nothing is ever a failure
        outcome = run_wave(settings, plan_id, 2, execute=True, out_dir=tmp / "out",
                           max_failures="0")
        entries = Journal(engine, plan_id).entries(2)
        assert outcome.halted_reason is None, entries[["status", "error_code",
                                                       "error_message"]].to_string()
        # A VM throttled before or at its PUT is left for a later run (skipped, or rolled
        # back with THROTTLED: Azure refused the change, nothing to undo).
        left = entries[entries["status"] != "done"]
        assert set(left["status"]) <= {"skipped", "rolled_back"}, outcome.counts
        assert set(left.loc[left["status"] == "rolled_back", "error_code"]) <= {"THROTTLED"}
        if outcome.counts == {"done": 7}:
            break
    assert outcome.counts == {"done": 7}, left[["vm_name", "error_code",
                                                "error_message"]].to_string()


def test_a_vm_with_a_backup_running_is_left_alone_and_moved_by_a_later_run(prefect_api,
                                                                           tmp_path):
    import time

    from tasks.azure import backup
    from tasks.azure.clients import AzureAccess
    from tasks.state.plans import load_plan_vms

    config = EmulatorConfig(operation_seconds=0.2, backup_job_seconds=20)
    with planned(tmp_path, small_fleet(vms_per_sub=2), config) as (_emu, settings, engine,
                                                                   plan_id):
        row = next(load_plan_vms(engine, plan_id, 1).itertuples(index=False))
        access = AzureAccess(settings)
        client = access.backup(row.subscription_id)
        # A backup in progress holds a lock on the item (Azure would answer
        # BMSUserErrorObjectLocked to a policy change) and must not be disturbed.
        backup.trigger_backup(client, backup.item_ref(row.item_id), "2099-01-01T00:00:00Z")
        first = run_wave(settings, plan_id, 1, execute=True, out_dir=tmp_path / "out")
        entry = Journal(engine, plan_id).entry(row.vm_key)
        assert first.counts == {"skipped": 1} and entry.error_code == "JOB_RUNNING"
        assert "Backup job is running" in entry.error_message
        assert first.halted_reason is None
        deadline = time.monotonic() + 60
        while backup.list_jobs(client, backup.vault_ref(row.vault_id),
                               "status eq 'InProgress'") and time.monotonic() < deadline:
            time.sleep(0.5)
        again = run_wave(settings, plan_id, 1, execute=True, out_dir=tmp_path / "out")
        assert again.counts == {"done": 1}


def test_two_vms_sharing_a_name_in_one_vault_are_told_apart_by_their_job_ids(prefect_api,
                                                                           tmp_path):
    """The engine follows each VM's ConfigureBackup job in the vault's job list by the id its
    operation named: two VMs of one vault named alike (other resource groups) never take each
    other's outcome."""
    from tests.fleets import SUB_A, make_item, make_vm

    fleet = small_fleet(vms_per_sub=1)
    vault = next(r for r in fleet["resources"]
                 if r["type"] == "Microsoft.RecoveryServices/vaults" and SUB_A in r["id"])
    policy = next(r for r in fleet["resources"] if r["name"] == "enhanced-daily"
                  and r["id"].startswith(vault["id"]))
    twins = []
    for rg in ("rg-app", "rg-other"):
        vm, disks = make_vm(SUB_A, rg, "vm-twin")
        twins.append(vm["id"])
        fleet["resources"] += [vm, *disks, make_item(vault, vm, policy)]
    failing = twins[1]
    with planned(tmp_path, fleet, EmulatorConfig(operation_seconds=0.2),
                 Faults(fail_jobs_for=[failing]), waves=(1,)) as (_emu, settings, engine,
                                                                  plan_id):
        outcome = run_wave(settings, plan_id, 1, execute=True, out_dir=tmp_path / "out",
                           max_failures="100%")
        entries = Journal(engine, plan_id).entries(1).set_index("vm_id")
        assert entries.loc[twins[0], "status"] == "done"
        assert entries.loc[failing, "status"] == "rolled_back"
        assert outcome.counts == {"done": len(entries) - 1, "rolled_back": 1}
        # Each journal names its own VM's job: the twins' job ids differ.
        assert set(entries.loc[twins[0], "job_ids"]).isdisjoint(entries.loc[failing, "job_ids"])
