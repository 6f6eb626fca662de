"""The per-VM journal: each change is committed when the call returns and leaves a history row;
VMs move through migration and rollback steps; illegal moves are refused and change nothing;
a resume finds what is in progress; a runner that lost its wave's lease cannot write."""

from __future__ import annotations

import pandas as pd
import pytest
import sqlalchemy as sa

from tasks.errors import InputError
from tasks.state import (
    Journal,
    JournalTransitionError,
    LeaseLostError,
    acquire_wave_lease,
    load_plan_vms,
    open_store,
)
from tasks.state.tables import wave_leases

ORIGINAL = "/subscriptions/s/resourceGroups/b/providers/Microsoft.RecoveryServices/vaults/v/" \
           "backupPolicies/EnhancedPolicy"
TARGET = ORIGINAL + "-crash"


@pytest.fixture
def journal_engine(store_url, engine):
    """The engine a wave runner writes the journal with: fsync on every commit (SQLite)."""
    full = open_store(store_url, synchronous="FULL")
    try:
        yield full
    finally:
        full.dispose()


def _keys(engine, plan_id, wave=None) -> list[str]:
    return load_plan_vms(engine, plan_id, wave)["vm_key"].tolist()


def _migrate_ok(journal, key, *, backup=False):
    journal.begin(key, original_policy_id=ORIGINAL, target_policy_id=TARGET)
    journal.step(key, "put_sent", operation_id="op-1")
    journal.step(key, "operation_done", job_id="job-configure")
    journal.step(key, "verified")
    if backup:
        journal.step(key, "backup_verified", job_id="job-backup")
    return journal.finish(key, "done")


def test_vm_migrates_through_its_steps_to_done_with_a_replayable_history(journal_engine,
                                                                          make_plan):
    plan = make_plan()
    key = _keys(journal_engine, plan.id, 1)[0]
    journal = Journal(journal_engine, plan.id, runner="host-a:101")
    done = _migrate_ok(journal, key, backup=True)

    assert (done.status, done.step, done.attempt) == ("done", "backup_verified", 1)
    assert (done.original_policy_id, done.target_policy_id) == (ORIGINAL, TARGET)
    assert done.operation_id == "op-1" and done.job_ids == ("job-configure", "job-backup")
    assert done.started_at <= done.updated_at == done.finished_at
    assert done.runner == "host-a:101"
    assert journal.entry(key.upper()) == done  # ARM ids compare case-insensitively

    history = journal.events(key)
    assert list(zip(history["status"], history["step"], strict=True)) == [
        ("in_progress", "intent"), ("in_progress", "put_sent"),
        ("in_progress", "operation_done"), ("in_progress", "verified"),
        ("in_progress", "backup_verified"), ("done", "backup_verified")]
    assert history["detail"][0] == {"original_policy_id": ORIGINAL, "target_policy_id": TARGET}
    assert history["detail"][1] == {"operation_id": "op-1"}
    assert history["id"].is_monotonic_increasing and history["at"].is_monotonic_increasing
    assert set(history["runner"]) == {"host-a:101"}


def test_every_write_is_committed_when_the_call_returns(journal_engine, store_url, make_plan):
    plan = make_plan()
    key = _keys(journal_engine, plan.id, 1)[0]
    other = open_store(store_url)  # another process would see the same: separate connections
    try:
        Journal(journal_engine, plan.id).begin(key, original_policy_id=ORIGINAL,
                                               target_policy_id=TARGET)
        seen = Journal(other, plan.id).entry(key)
        assert (seen.status, seen.step, seen.original_policy_id) == ("in_progress", "intent",
                                                                      ORIGINAL)
        assert len(Journal(other, plan.id).events(key)) == 1
    finally:
        other.dispose()


def test_failed_migration_rolls_back_with_its_error(journal_engine, make_plan):
    plan = make_plan()
    key = _keys(journal_engine, plan.id, 1)[0]
    journal = Journal(journal_engine, plan.id)
    journal.begin(key, original_policy_id=ORIGINAL, target_policy_id=TARGET)
    journal.step(key, "put_sent", operation_id="op-1")
    journal.step(key, "rollback_intent", error_code="UserErrorBackupOperationInProgress",
                 error_message="ConfigureBackup job failed")
    journal.step(key, "rollback_put_sent", operation_id="op-2")
    journal.step(key, "rollback_verified", job_id="job-rollback")
    entry = journal.finish(key, "rolled_back", rollback_outcome="back on EnhancedPolicy")

    assert (entry.status, entry.step) == ("rolled_back", "rollback_verified")
    assert entry.error_code == "UserErrorBackupOperationInProgress"
    assert entry.error_message == "ConfigureBackup job failed"
    assert entry.rollback_outcome == "back on EnhancedPolicy" and entry.operation_id == "op-2"
    assert journal.events(key)["step"].tolist()[-2:] == ["rollback_verified",
                                                          "rollback_verified"]


def test_rolled_back_vm_is_tried_again_as_a_new_attempt(journal_engine, make_plan):
    plan = make_plan()
    key = _keys(journal_engine, plan.id, 1)[0]
    journal = Journal(journal_engine, plan.id)
    journal.begin(key, original_policy_id=ORIGINAL, target_policy_id=TARGET)
    journal.finish(key, "rolled_back", error_code="AuthorizationFailed",
                   rollback_outcome="nothing to undo: the PUT was refused")
    again = journal.begin(key, original_policy_id=ORIGINAL, target_policy_id=TARGET)
    assert (again.status, again.step, again.attempt) == ("in_progress", "intent", 2)
    assert again.error_code is None and again.finished_at is None and again.job_ids == ()
    assert journal.events(key)["status"].tolist() == ["in_progress", "rolled_back",
                                                      "in_progress"]


def test_done_vm_cannot_be_begun_again_and_nothing_is_written(journal_engine, make_plan):
    plan = make_plan()
    key = _keys(journal_engine, plan.id, 1)[0]
    journal = Journal(journal_engine, plan.id, runner="host-a:7")
    done = _migrate_ok(journal, key)
    with pytest.raises(JournalTransitionError) as err:
        journal.begin(key, original_policy_id=TARGET, target_policy_id=TARGET)
    message = str(err.value)
    assert f"cannot begin migrating it: VM {key} of plan {plan.id} is done" in message
    assert "last written by host-a:7" in message and "ccmigrate rollback" in message
    assert journal.entry(key) == done
    assert len(journal.events(key)) == 5


@pytest.mark.parametrize(("setup", "call", "why"), [
    (["begin"], lambda j, k: j.finish(k, "done"), "only after its new policy was verified"),
    (["begin", "rollback_intent"], lambda j, k: j.step(k, "put_sent"),
     "never returns to migrating"),
    (["begin", "verified"], lambda j, k: j.step(k, "put_sent"), "comes before verified"),
    (["begin", "rollback_intent"], lambda j, k: j.finish(k, "rolled_back"),
     "only after its original policy was verified"),
    (["begin", "put_sent"], lambda j, k: j.finish(k, "rolled_back"),
     "only after its original policy was verified"),
    (["begin"], lambda j, k: j.begin(k, original_policy_id=ORIGINAL, target_policy_id=TARGET),
     r"reconciled \(resumed\), not begun again"),
    ([], lambda j, k: j.step(k, "put_sent"), "only a VM in progress"),
    ([], lambda j, k: j.finish(k, "rolled_back"), "only a VM in progress can finish"),
    ([], lambda j, k: j.begin_rollback(k), "never moved from its original policy"),
    (["begin", "put_sent"], lambda j, k: j.skip(k, "not ready"),
     "a request may already be in Azure"),
])
def test_illegal_transitions_are_refused_and_change_nothing(journal_engine, make_plan, setup,
                                                            call, why):
    plan = make_plan()
    key = _keys(journal_engine, plan.id, 1)[0]
    journal = Journal(journal_engine, plan.id)
    for action in setup:
        if action == "begin":
            journal.begin(key, original_policy_id=ORIGINAL, target_policy_id=TARGET)
        else:
            journal.step(key, action)
    before, history = journal.entry(key), len(journal.events(key))
    with pytest.raises(JournalTransitionError, match=why):
        call(journal, key)
    assert journal.entry(key) == before
    assert len(journal.events(key)) == history


def test_unknown_steps_and_outcomes_are_programming_errors(journal_engine, make_plan):
    plan = make_plan()
    journal = Journal(journal_engine, plan.id)
    key = _keys(journal_engine, plan.id, 1)[0]
    with pytest.raises(ValueError, match="unknown journal step 'sent'"):
        journal.step(key, "sent")
    with pytest.raises(ValueError, match="skip"):
        journal.finish(key, "skipped")


def test_done_vm_can_be_rolled_back_later(journal_engine, make_plan):
    plan = make_plan()
    key = _keys(journal_engine, plan.id, 1)[0]
    journal = Journal(journal_engine, plan.id)
    _migrate_ok(journal, key)
    started = journal.begin_rollback(key, reason="ccmigrate rollback --wave 1")
    assert (started.status, started.step, started.attempt) == ("in_progress", "rollback_intent",
                                                               2)
    assert started.original_policy_id == ORIGINAL  # what the rollback re-points to
    journal.step(key, "rollback_put_sent", operation_id="op-r")
    journal.step(key, "rollback_verified")
    assert journal.finish(key, "rolled_back").status == "rolled_back"
    assert journal.events(key)["detail"].tolist()[5] == {"reason": "ccmigrate rollback --wave 1"}


def test_failed_rollback_needs_a_rollback_retry_not_a_new_migration(journal_engine, make_plan):
    plan = make_plan()
    key = _keys(journal_engine, plan.id, 1)[0]
    journal = Journal(journal_engine, plan.id)
    journal.begin(key, original_policy_id=ORIGINAL, target_policy_id=TARGET)
    journal.step(key, "put_sent")
    journal.step(key, "rollback_intent")
    journal.step(key, "rollback_put_sent")
    failed = journal.finish(key, "rollback_failed", error_code="BMSUserErrorObjectLocked",
                            error_message="resource guard")
    assert failed.status == "rollback_failed"
    with pytest.raises(JournalTransitionError, match="retry the rollback"):
        journal.begin(key, original_policy_id=TARGET, target_policy_id=TARGET)
    assert journal.begin_rollback(key).step == "rollback_intent"


def test_skips_keep_their_reason(journal_engine, make_plan):
    plan = make_plan()
    first, second = _keys(journal_engine, plan.id, 2)[:2]
    journal = Journal(journal_engine, plan.id)
    skipped = journal.skip(first, "a backup job is running on it", code="BACKUP_RUNNING")
    assert (skipped.status, skipped.error_code) == ("skipped", "BACKUP_RUNNING")
    assert skipped.error_message == "a backup job is running on it"
    journal.begin(second, original_policy_id=ORIGINAL, target_policy_id=TARGET)
    assert journal.skip(second, "no longer ready: CC-B01").status == "skipped"  # nothing sent
    assert journal.begin(first, original_policy_id=ORIGINAL,
                         target_policy_id=TARGET).attempt == 1  # a later run tries again
    assert journal.events(first)["detail"][0] == {"reason": "a backup job is running on it",
                                                  "code": "BACKUP_RUNNING"}


def test_in_progress_lists_what_a_resume_must_reconcile(journal_engine, make_plan):
    plan = make_plan(n=8, sizes=(1, 3))
    wave2, wave3 = _keys(journal_engine, plan.id, 2), _keys(journal_engine, plan.id, 3)
    journal = Journal(journal_engine, plan.id)
    _migrate_ok(journal, wave2[0])
    journal.begin(wave2[1], original_policy_id=ORIGINAL, target_policy_id=TARGET)
    journal.step(wave2[1], "put_sent", operation_id="op-9")
    journal.begin(wave3[0], original_policy_id=ORIGINAL, target_policy_id=TARGET)

    pending = journal.in_progress(2)
    assert pending["vm_key"].tolist() == [wave2[1]]
    row = pending.iloc[0]
    assert (row["step"], row["operation_id"], row["original_policy_id"]) == ("put_sent", "op-9",
                                                                              ORIGINAL)
    vm = load_plan_vms(journal_engine, plan.id, 2).iloc[1]
    assert (row["vm_id"], row["item_id"], row["vault_id"]) == (vm["vm_id"], vm["item_id"],
                                                               vm["vault_id"])
    assert journal.in_progress()["vm_key"].tolist() == [wave2[1], wave3[0]]
    assert journal.counts(2) == {"pending": 1, "in_progress": 1, "done": 1, "rolled_back": 0,
                                 "skipped": 0, "rollback_failed": 0}


def test_entries_carry_vm_identity_job_ids_and_utc_times(journal_engine, make_plan):
    plan = make_plan(n=4, sizes=(1, 3))
    journal = Journal(journal_engine, plan.id)
    key = _keys(journal_engine, plan.id, 1)[0]
    _migrate_ok(journal, key)
    entries = journal.entries()
    assert entries["wave"].tolist() == [1, 2, 2, 2]
    first = entries.iloc[0]
    assert first["job_ids"] == ["job-configure"] and entries.iloc[1]["job_ids"] == []
    dtype = entries["finished_at"].dtype
    assert isinstance(dtype, pd.DatetimeTZDtype) and str(dtype.tz) == "UTC"
    assert first["finished_at"] >= first["started_at"]
    assert entries["started_at"].isna().tolist() == [False, True, True, True]


def test_unknown_vm_is_an_input_error(journal_engine, make_plan):
    plan = make_plan()
    with pytest.raises(InputError, match=f"VM /subscriptions/x is not in plan {plan.id}"):
        Journal(journal_engine, plan.id).begin("/subscriptions/X", original_policy_id=None,
                                               target_policy_id=TARGET)


def test_runner_that_lost_its_lease_cannot_write(journal_engine, make_plan):
    plan = make_plan()
    key = _keys(journal_engine, plan.id, 2)[0]
    lease = acquire_wave_lease(journal_engine, plan.id, 2)
    journal = Journal(journal_engine, plan.id, lease=lease)
    journal.begin(key, original_policy_id=ORIGINAL, target_policy_id=TARGET)
    with journal_engine.begin() as conn:  # another runner took the wave over
        conn.execute(sa.update(wave_leases).values(owner_token="someone-else",
                                                   owner_pid=4242))
    with pytest.raises(LeaseLostError, match=r":4242 holds it now"):
        journal.step(key, "put_sent")
    assert journal.entry(key).step == "intent"
    assert lease.lost is not None


def test_lease_holder_writes_only_its_own_wave(journal_engine, make_plan):
    plan = make_plan()
    with acquire_wave_lease(journal_engine, plan.id, 2) as lease:
        journal = Journal(journal_engine, plan.id, lease=lease)
        other = _keys(journal_engine, plan.id, 3)[0]
        with pytest.raises(JournalTransitionError, match="lease of wave 2 only"):
            journal.begin(other, original_policy_id=ORIGINAL, target_policy_id=TARGET)
        assert journal.entry(other).status == "pending"


def test_a_batch_commits_many_vms_steps_at_once_with_the_same_checks(journal_engine,
                                                                      make_plan):
    plan = make_plan()
    keys = _keys(journal_engine, plan.id)
    journal = Journal(journal_engine, plan.id)
    done, refused = keys[0], keys[1]
    journal.begin(refused, original_policy_id=ORIGINAL, target_policy_id=TARGET)
    batch = journal.batch()
    batch.begin(done, original_policy_id=ORIGINAL, target_policy_id=TARGET)
    batch.step(done, "put_sent", operation_id="op-1")
    batch.step(done, "verified")
    batch.finish(done, "done")
    batch.begin(refused, original_policy_id=ORIGINAL, target_policy_id=TARGET)  # in progress
    for key in keys[2:]:
        batch.skip(key, "left for later", code="THROTTLED")
    assert journal.entry(done).status == "pending"  # nothing written before the commit
    assert len(batch) == 4 + 1 + len(keys) - 2

    errors = batch.commit()

    assert set(errors) == {refused} and "begin migrating it" in str(errors[refused])
    entry = journal.entry(done)
    assert (entry.status, entry.step, entry.operation_id) == ("done", "verified", "op-1")
    assert list(journal.events(done)["step"]) == ["intent", "put_sent", "verified", "verified"]
    assert journal.entry(refused).attempt == 1  # its refused change wrote nothing
    assert {journal.entry(k).status for k in keys[2:]} == {"skipped"}
    assert batch.commit() == {}  # an empty batch writes nothing


def test_a_batch_of_a_runner_that_lost_its_lease_writes_nothing(journal_engine, make_plan):
    plan = make_plan()
    key = _keys(journal_engine, plan.id, 2)[0]
    lease = acquire_wave_lease(journal_engine, plan.id, 2)
    journal = Journal(journal_engine, plan.id, lease=lease)
    with journal_engine.begin() as conn:
        conn.execute(sa.update(wave_leases).values(owner_token="someone-else",
                                                   owner_pid=4242))
    batch = journal.batch()
    batch.begin(key, original_policy_id=ORIGINAL, target_policy_id=TARGET)
    with pytest.raises(LeaseLostError):
        batch.commit()
    assert journal.entry(key).status == "pending"
