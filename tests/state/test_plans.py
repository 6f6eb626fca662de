"""The plan repository: a saved plan comes back equal (record, wave items, policies), saving
sets up its waves and a pending journal, plans resolve by id, prefix or ``latest``, and every
miss (plan or wave) says what exists and how to name it."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa

from tasks.errors import CcmigrateError, InputError
from tasks.state import (
    AssessmentRecord,
    Journal,
    PlanRecord,
    get_wave,
    list_plans,
    list_waves,
    load_plan_policies,
    load_plan_vms,
    load_vms,
    migrate,
    new_plan_id,
    open_store,
    resolve_assessment,
    resolve_plan,
    save_assessment,
    save_plan,
    set_wave_status,
    wave_numbers,
)
from tasks.state import plans as repo
from tasks.state.tables import PLAN_VM_FIELDS, assessments, journal, plan_vms, plans, waves
from tests.state.frames import plan_frames, scored_frame
from tests.state.test_migrations import _save_in_first_shape

T0 = datetime(2026, 11, 26, 1, 30, tzinfo=UTC)


def _assessment(engine, minutes: int = 0) -> AssessmentRecord:
    record = AssessmentRecord.new({"cloud": "public"}, now=T0 + timedelta(minutes=minutes))
    save_assessment(engine, record, scored_frame(3, seed=minutes))
    return record


def _expected_vms(vms: pd.DataFrame) -> pd.DataFrame:
    """What load_plan_vms returns for a planner frame without vm_key / position columns."""
    out = vms.copy()
    out["vm_key"] = out["vm_id"].str.lower()
    out["position"] = out.groupby("wave").cumcount() + 1
    for name in PLAN_VM_FIELDS:
        if name in ("wave", "position"):
            out[name] = out[name].astype("Int64")
        elif name == "irreversible":
            out[name] = out[name].astype("boolean")
        else:
            out[name] = out[name].astype("string").fillna("")
    return out[list(PLAN_VM_FIELDS)].sort_values(["wave", "position"], ignore_index=True)


def test_plan_round_trips_record_wave_items_and_policies(engine):
    assessment = _assessment(engine)
    vms, policies = plan_frames(40, (1, 5, 10))
    options = {"wave_size": 10, "canary": 1, "ramp": [5], "allowed_warnings":
               ["HOST_CACHING_READWRITE"], "include_standard": True,
               "template": "{source}-crash", "order": "tag:criticality"}
    record = PlanRecord.new(assessment.id, options, now=T0,
                            summary={"vaults": 5, "irreversible": 10})
    save_plan(engine, record, vms, policies)

    assert record.vm_count == 40 and record.wave_count == 6  # 1, 5, 10, 10, 10, 4
    assert resolve_plan(engine, record.id) == record
    pd.testing.assert_frame_equal(load_plan_vms(engine, record.id), _expected_vms(vms))
    loaded = load_plan_policies(engine, record.id)
    assert list(loaded.columns) == ["vault_id", "policy_name", "vault", "kind",
                                    "source_policy_id", "source_policy", "first_wave", "body"]
    expected = (policies.sort_values(["first_wave", "vault_id", "policy_name"], ignore_index=True)
                .astype({"first_wave": "Int64"}))
    assert loaded.drop(columns="body").astype(str).equals(
        expected[loaded.columns].drop(columns="body").astype(str))
    assert loaded["body"].tolist() == expected["body"].tolist()
    assert set(loaded["kind"]) == {"crash_clone", "app_clone_for_rollback"}


def test_saving_a_plan_sets_up_planned_waves_and_a_pending_journal(engine, make_plan):
    record = make_plan(n=9, sizes=(1, 3, 5))
    assert wave_numbers(engine, record.id) == [1, 2, 3]
    listed = list_waves(engine, record.id)
    assert [(w.wave, w.size, w.status) for w in listed] == [(1, 1, "planned"), (2, 3, "planned"),
                                                            (3, 5, "planned")]
    assert all(w.started_at is None and w.counts == {} for w in listed)
    journal_ = Journal(engine, record.id)
    assert journal_.counts() == {"pending": 9, "in_progress": 0, "done": 0, "rolled_back": 0,
                                 "skipped": 0, "rollback_failed": 0}
    assert journal_.counts(2)["pending"] == 3
    entries = journal_.entries()
    assert entries["attempt"].tolist() == [0] * 9 and (entries["step"] == "").all()
    assert entries["vm_key"].tolist() == load_plan_vms(engine, record.id)["vm_key"].tolist()


def test_one_wave_loads_in_position_order(engine):
    assessment = _assessment(engine)
    vms, policies = plan_frames(12, (2, 5))
    vms["position"] = list(range(12, 0, -1))  # the planner's own order, reversed
    record = PlanRecord.new(assessment.id, now=T0)
    save_plan(engine, record, vms, policies)
    wave2 = load_plan_vms(engine, record.id, wave=2)
    assert wave2["wave"].unique().tolist() == [2]
    assert wave2["position"].tolist() == sorted(wave2["position"].tolist())
    assert wave2["vm_id"].tolist() == vms[vms["wave"] == 2]["vm_id"].tolist()[::-1]


def test_latest_and_a_unique_start_of_an_id_resolve(engine, make_plan):
    first, second = make_plan(minutes=0), make_plan(minutes=10)
    assert resolve_plan(engine, "latest").id == second.id
    assert resolve_plan(engine, " Latest ").id == second.id
    assert resolve_plan(engine, first.id[:-3]).id == first.id
    assert [p.id for p in list_plans(engine)] == [second.id, first.id]
    assert [p.id for p in list_plans(engine, assessment_id=first.assessment_id)] == [first.id]


def test_ambiguous_start_of_an_id_lists_the_matches(engine, make_plan):
    first, second = make_plan(minutes=0), make_plan(minutes=1)
    with pytest.raises(InputError) as err:
        resolve_plan(engine, "20261126-013")
    assert "ambiguous" in str(err.value)
    assert first.id in str(err.value) and second.id in str(err.value)


def test_unknown_plan_names_the_store_the_recent_plans_and_the_fix(engine, make_plan, store_url):
    known = make_plan(n=6, sizes=(1, 2))
    with pytest.raises(InputError) as err:
        resolve_plan(engine, "19990101-000000-dead")
    message = str(err.value)
    assert "no plan '19990101-000000-dead'" in message
    assert known.id in message and "6 VMs in 4 waves" in message
    assert f"from assessment {known.assessment_id}" in message
    assert "'latest'" in message and "ccmigrate plan" in message
    assert "state store" in message and (store_url.split("?")[0].split("/")[-1] in message)


def test_empty_store_says_to_plan_first(engine):
    for ref in ("latest", "20261126-013000-ab12"):
        with pytest.raises(InputError) as err:
            resolve_plan(engine, ref)
        message = str(err.value)
        assert f"'{ref}'" in message and "no plan" in message
        assert "ccmigrate plan" in message and "--state-store" in message


def test_unknown_wave_lists_the_plans_waves(engine, make_plan):
    record = make_plan(n=8, sizes=(1, 3))  # waves 1, 2, 3, 4 (1 + 3 + 3 + 1)
    calls = [lambda: get_wave(engine, record.id, 7),
             lambda: load_plan_vms(engine, record.id, wave=7),
             lambda: set_wave_status(engine, record.id, 7, "running"),
             lambda: Journal(engine, record.id).entries(wave=7)]
    for call in calls:
        with pytest.raises(InputError) as err:
            call()
        message = str(err.value)
        assert f"plan {record.id} has no wave 7" in message
        assert "its waves are 1-4 (1 is the canary)" in message and "--wave" in message


def test_unknown_plan_in_wave_reads_is_an_input_error(engine, make_plan):
    make_plan()
    for call in (lambda: wave_numbers(engine, "nope"), lambda: get_wave(engine, "nope", 1),
                 lambda: load_plan_policies(engine, "nope"), lambda: Journal(engine, "nope")):
        with pytest.raises(InputError, match="no plan 'nope'"):
            call()


def test_wave_status_keeps_first_start_and_records_counts_and_halt_reason(engine, make_plan):
    record = make_plan()
    running = set_wave_status(engine, record.id, 2, "running")
    assert running.status == "running" and running.started_at is not None
    assert running.finished_at is None
    halted = set_wave_status(engine, record.id, 2, "halted", counts={"done": 1, "rolled_back": 2},
                             halted_reason="3 failures passed --max-failures 2")
    assert halted.finished_at is not None and halted.finished_at >= running.started_at
    assert halted.counts == {"done": 1, "rolled_back": 2}
    assert halted.halted_reason == "3 failures passed --max-failures 2"
    resumed = set_wave_status(engine, record.id, 2, "running")
    assert resumed.started_at == running.started_at  # a resume keeps the first start
    assert resumed.finished_at is None and resumed.halted_reason is None
    assert resumed.counts == {"done": 1, "rolled_back": 2}
    assert get_wave(engine, record.id, 2) == resumed
    assert get_wave(engine, record.id, 1).status == "planned"
    with pytest.raises(ValueError, match="wave status"):
        set_wave_status(engine, record.id, 2, "finished")


def test_plan_of_an_unknown_assessment_is_refused(engine):
    vms, policies = plan_frames(3)
    with pytest.raises(CcmigrateError, match="assessment 20990101-000000-beef"):
        save_plan(engine, PlanRecord.new("20990101-000000-beef", now=T0), vms, policies)
    assert list_plans(engine) == []


def test_same_plan_id_twice_is_refused_and_keeps_the_first(engine, make_plan):
    record = make_plan(n=4)
    vms, policies = plan_frames(2)
    with pytest.raises(CcmigrateError, match=f"plan {record.id} is already"):
        save_plan(engine, dataclasses.replace(record, vm_count=0, wave_count=0), vms, policies)
    assert len(load_plan_vms(engine, record.id)) == 4


@pytest.mark.parametrize(("change", "error"), [
    (lambda v, p: v.assign(wave=[w + 1 if w > 1 else w for w in v["wave"]]), "without gaps"),
    (lambda v, p: v.assign(wave=[0] * len(v)), "integer >= 1"),
    (lambda v, p: v.assign(vm_id=[v["vm_id"][1].upper(), *v["vm_id"][1:].tolist()]),
     "repeats vm_key"),
    (lambda v, p: v.drop(columns="wave"), "lacks columns"),
    (lambda v, p: pd.concat([p, p.iloc[:1].assign(policy_name=p["policy_name"][0].upper())]),
     "repeats policy"),
    (lambda v, p: p.assign(kind="clone"), "kind must be one of"),
    (lambda v, p: p.assign(first_wave=99), "first_wave 99"),
])
def test_malformed_plans_are_refused_before_anything_is_written(engine, change, error):
    assessment = _assessment(engine)
    vms, policies = plan_frames(6)
    changed = change(vms.copy(), policies.copy())
    if "policy_name" in changed.columns:
        vms, policies = vms, changed
    else:
        vms = changed
    with pytest.raises(ValueError, match=error):
        save_plan(engine, PlanRecord.new(assessment.id, now=T0), vms, policies)
    assert list_plans(engine) == []


def test_save_is_all_or_nothing(engine, monkeypatch):
    assessment = _assessment(engine)
    real = repo._bulk_insert

    def failing_on_policies(conn, table, names, rows):
        if table.name == "plan_policies":
            raise RuntimeError("disk full")
        real(conn, table, names, rows)

    monkeypatch.setattr(repo, "_bulk_insert", failing_on_policies)
    vms, policies = plan_frames(5)
    with pytest.raises(RuntimeError):
        save_plan(engine, PlanRecord.new(assessment.id, now=T0), vms, policies)
    assert list_plans(engine) == []
    with engine.connect() as conn:
        for table in (plan_vms, waves, journal):
            assert conn.execute(sa.select(sa.func.count()).select_from(table)).scalar() == 0


def test_a_plan_without_vms_has_no_waves(engine):
    assessment = _assessment(engine)
    vms, policies = plan_frames(0)
    record = PlanRecord.new(assessment.id, now=T0)
    save_plan(engine, record, vms, policies)
    assert (record.vm_count, record.wave_count) == (0, 0)
    assert wave_numbers(engine, record.id) == []
    assert load_plan_vms(engine, record.id).empty
    assert load_plan_policies(engine, record.id).empty
    with pytest.raises(InputError, match="it has no waves"):
        get_wave(engine, record.id, 1)


def test_deleting_a_plan_deletes_its_items_waves_and_journal(engine, make_plan):
    keep, gone = make_plan(minutes=0), make_plan(minutes=1)
    Journal(engine, gone.id).begin(load_plan_vms(engine, gone.id)["vm_key"][0],
                                   original_policy_id="p", target_policy_id="t")
    with engine.begin() as conn:
        conn.execute(sa.delete(plans).where(plans.c.id == gone.id))
        for table in (plan_vms, waves, journal):
            left = conn.execute(sa.select(table.c.plan_id).distinct()).scalars()
            assert list(left) == [keep.id], table.name


def test_an_assessment_with_plans_cannot_be_deleted_under_them(engine, make_plan):
    record = make_plan()
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(sa.delete(assessments).where(assessments.c.id == record.assessment_id))
    assert resolve_plan(engine, record.id) == record


def test_plan_ids_look_like_assessment_ids():
    assert re.fullmatch(r"20261126-013000-[0-9a-f]{4}", new_plan_id(T0))
    assert new_plan_id(T0) < new_plan_id(T0 + timedelta(seconds=1))


def test_5k_vm_plan_saves_and_loads_equal(engine):
    assessment = _assessment(engine)
    vms, policies = plan_frames(5_000, (1, 5, 25, 500))
    record = PlanRecord.new(assessment.id, now=T0)
    save_plan(engine, record, vms, policies)
    pd.testing.assert_frame_equal(load_plan_vms(engine, record.id), _expected_vms(vms))
    assert Journal(engine, record.id).counts()["pending"] == 5_000


def test_v1_store_with_assessments_moves_to_v2_keeping_them(store_url):
    engine = open_store(store_url, migrate=False)
    try:
        assert migrate(engine, target=1) == (0, 1)  # a store written before plans existed
        old = AssessmentRecord.new({"cloud": "public"}, now=T0, rule_pack="ga")
        frame = scored_frame(25)
        _save_in_first_shape(engine, old, frame)  # the v1 shape: no tags_json (migration 3)
        before = load_vms(engine, old.id)

        assert migrate(engine, target=2) == (1, 2)
        assert resolve_assessment(engine, old.id) == old
        pd.testing.assert_frame_equal(load_vms(engine, old.id), before)
        # ...and the new tables work against the old data.
        record = PlanRecord.new(old.id, now=T0)
        save_plan(engine, record, *plan_frames(5))
        assert resolve_plan(engine, "latest") == record
    finally:
        engine.dispose()
