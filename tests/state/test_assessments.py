"""The assessment repository: what is saved comes back equal, ``latest`` / ``previous`` / ids
resolve within a scope, and every miss says what exists and how to name it."""

from __future__ import annotations

import dataclasses
import re
import time
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa

from tasks.errors import CcmigrateError, InputError
from tasks.inventory.schema import SCORED_COLUMNS, VM_COLUMNS
from tasks.state import (
    AssessmentRecord,
    list_assessments,
    load_vms,
    new_assessment_id,
    previous_of,
    resolve_assessment,
    save_assessment,
    scope_key,
)
from tasks.state import assessments as repo
from tasks.state.tables import VM_FIELDS
from tests.state.frames import scored_frame

T0 = datetime(2026, 11, 25, 22, 30, 12, tzinfo=UTC)
SCOPE_A = {"cloud": "public", "subscriptions": ["11111111-1111-1111-1111-111111111111"]}
SCOPE_B = {"cloud": "public", "subscriptions": ["22222222-2222-2222-2222-222222222222"]}


def _expected(frame: pd.DataFrame) -> pd.DataFrame:
    """What load_vms should return for ``frame``: stored columns, "" for <NA>, key order."""
    out = frame[list(VM_FIELDS)].astype("string").fillna("")
    return out.sort_values("vm_key", ignore_index=True)


def _save(engine, scope, minutes: int, n: int = 3, **fields) -> AssessmentRecord:
    record = AssessmentRecord.new(scope, now=T0 + timedelta(minutes=minutes), **fields)
    save_assessment(engine, record, scored_frame(n, seed=minutes))
    return record


def test_stored_columns_are_inventory_columns():
    assert set(VM_FIELDS) <= set(VM_COLUMNS) | set(SCORED_COLUMNS)


def test_1k_scored_vms_round_trip_equal(engine):
    frame = scored_frame(1000)
    record = AssessmentRecord.new(SCOPE_A, now=T0, rule_pack="ga-2025-07")
    save_assessment(engine, record, frame)
    loaded = load_vms(engine, record.id)
    assert list(loaded.columns) == list(VM_FIELDS)
    assert all(str(dtype) == "string" for dtype in loaded.dtypes)
    pd.testing.assert_frame_equal(loaded, _expected(frame))


def test_record_round_trips_with_every_field(engine):
    summary = {"vms": 2, "by_readiness": {"ready": 1, "unknown": 1}, "nested": [1, "x"]}
    record = AssessmentRecord(
        id=new_assessment_id(T0), created_at=T0, finished_at=T0 + timedelta(seconds=95.5),
        scope_key=scope_key(SCOPE_A), scope=SCOPE_A, rule_pack="ga-2025-07",
        pack_doc_version="2025-07-01", overrides=[{"rule": "CC-W02", "severity": "info"}],
        tool_version="0.1.0", cloud="public", vm_count=2, counts={"ready": 1, "unknown": 1},
        request_count=17, partial_errors=[{"scope": "sub-x", "error": "403 Forbidden"}],
        summary=summary)
    frame = scored_frame(2)
    frame["readiness"] = pd.array(["ready", "unknown"], dtype="string")
    save_assessment(engine, record, frame)
    assert resolve_assessment(engine, record.id) == record


def test_missing_optional_columns_are_stored_empty(engine):
    frame = pd.DataFrame({"vm_id": ["/subscriptions/S/resourceGroups/R/providers/"
                                    "Microsoft.Compute/virtualMachines/VM1"],
                          "readiness": ["not_protected"]})
    record = AssessmentRecord.new(SCOPE_A, now=T0)
    save_assessment(engine, record, frame)
    loaded = load_vms(engine, record.id)
    assert loaded.loc[0, "vm_key"] == frame.loc[0, "vm_id"].lower()
    assert loaded.loc[0, "vm_id"] == frame.loc[0, "vm_id"]
    assert loaded.loc[0, "readiness"] == "not_protected"
    assert (loaded.drop(columns=["vm_id", "vm_key", "readiness"]).iloc[0] == "").all()


def test_vm_count_and_counts_come_from_the_frame_when_not_given(engine):
    frame = scored_frame(50)
    record = AssessmentRecord.new(SCOPE_A, now=T0)
    save_assessment(engine, record, frame)
    stored = resolve_assessment(engine, "latest")
    assert stored.vm_count == 50
    assert stored.counts == frame["readiness"].value_counts().to_dict()


def test_frame_without_scored_columns_is_refused(engine):
    with pytest.raises(ValueError, match="readiness"):
        save_assessment(engine, AssessmentRecord.new(SCOPE_A), scored_frame(3).drop(
            columns=["readiness"]))


def test_repeated_vm_is_refused_before_anything_is_written(engine):
    frame = scored_frame(3)
    frame.loc[2, "vm_key"] = frame.loc[0, "vm_key"]
    with pytest.raises(ValueError, match="repeats vm_key"):
        save_assessment(engine, AssessmentRecord.new(SCOPE_A), frame)
    assert list_assessments(engine) == []


def test_save_is_all_or_nothing(engine, monkeypatch):
    def failing(conn, *args):
        raise RuntimeError("disk full")

    monkeypatch.setattr(repo, "_bulk_insert", failing)
    with pytest.raises(RuntimeError):
        save_assessment(engine, AssessmentRecord.new(SCOPE_A), scored_frame(3))
    assert list_assessments(engine) == []


def test_same_id_twice_is_refused(engine):
    record = _save(engine, SCOPE_A, 0)
    with pytest.raises(CcmigrateError, match=f"{record.id} is already"):
        save_assessment(engine, dataclasses.replace(record, vm_count=0, counts={}),
                        scored_frame(2))
    assert len(load_vms(engine, record.id)) == 3


def test_deleting_an_assessment_deletes_its_vms(engine):
    """ON DELETE CASCADE works, so foreign keys are enforced (SQLite: PRAGMA foreign_keys)."""
    keep, gone = _save(engine, SCOPE_A, 0), _save(engine, SCOPE_A, 1)
    with engine.begin() as conn:
        conn.execute(sa.delete(repo.assessments).where(repo.assessments.c.id == gone.id))
        left = conn.execute(sa.select(repo.assessment_vms.c.assessment_id).distinct()).scalars()
        assert list(left) == [keep.id]


def test_latest_previous_and_id_resolve(engine):
    first, second, third = (_save(engine, SCOPE_A, m) for m in (0, 10, 20))
    assert resolve_assessment(engine, "latest").id == third.id
    assert resolve_assessment(engine, "LATEST").id == third.id
    assert resolve_assessment(engine, "previous").id == second.id
    assert resolve_assessment(engine, first.id).id == first.id
    assert previous_of(engine, second).id == first.id
    assert previous_of(engine, first) is None
    assert [r.id for r in list_assessments(engine)] == [third.id, second.id, first.id]
    assert [r.id for r in list_assessments(engine, limit=2)] == [third.id, second.id]


def test_previous_stays_within_the_scope(engine):
    a1 = _save(engine, SCOPE_A, 0)
    b1 = _save(engine, SCOPE_B, 5)
    a2 = _save(engine, SCOPE_A, 10)
    b2 = _save(engine, SCOPE_B, 15)
    key_a, key_b = scope_key(SCOPE_A), scope_key(SCOPE_B)
    # Without a scope: latest overall, and the one before it in the latest's scope.
    assert resolve_assessment(engine, "latest").id == b2.id
    assert resolve_assessment(engine, "previous").id == b1.id
    # With a scope: both within it.
    assert resolve_assessment(engine, "latest", scope_key=key_a).id == a2.id
    assert resolve_assessment(engine, "previous", scope_key=key_a).id == a1.id
    assert resolve_assessment(engine, "previous", scope_key=key_b).id == b1.id
    assert previous_of(engine, a2).id == a1.id
    assert [r.id for r in list_assessments(engine, scope_key=key_a)] == [a2.id, a1.id]


def test_same_second_assessments_order_by_time_then_id(engine):
    early = AssessmentRecord.new(SCOPE_A, now=T0)
    late = AssessmentRecord.new(SCOPE_A, now=T0 + timedelta(microseconds=1))
    for record in (late, early):
        save_assessment(engine, record, scored_frame(2))
    assert resolve_assessment(engine, "latest").id == late.id
    assert resolve_assessment(engine, "previous").id == early.id


def test_unique_start_of_an_id_resolves_and_an_ambiguous_one_lists_matches(engine):
    first, second = _save(engine, SCOPE_A, 0), _save(engine, SCOPE_A, 1)
    assert resolve_assessment(engine, first.id[:-3]).id == first.id
    with pytest.raises(InputError) as err:
        resolve_assessment(engine, "20261125-22")
    assert "ambiguous" in str(err.value)
    assert first.id in str(err.value) and second.id in str(err.value)


def test_unknown_id_names_the_ref_and_the_recent_ids(engine):
    known = _save(engine, SCOPE_A, 0, n=4)
    with pytest.raises(InputError) as err:
        resolve_assessment(engine, "19990101-000000-dead")
    message = str(err.value)
    assert "'19990101-000000-dead'" in message
    assert known.id in message and "4 VMs" in message
    assert "'latest'" in message


def test_empty_store_says_to_assess_first(engine):
    for ref in ("latest", "previous", "20261125-223012-3f9a"):
        with pytest.raises(InputError) as err:
            resolve_assessment(engine, ref)
        message = str(err.value)
        assert f"'{ref}'" in message and "no assessment" in message
        assert "ccmigrate assess" in message and "--state-store" in message


def test_previous_with_a_single_assessment_says_so(engine):
    only = _save(engine, SCOPE_A, 0)
    with pytest.raises(InputError) as err:
        resolve_assessment(engine, "previous")
    assert f"no assessment before the latest ({only.id})" in str(err.value)


def test_loading_vms_of_an_unknown_assessment_is_an_input_error(engine):
    with pytest.raises(InputError, match="no assessment 'nope'"):
        load_vms(engine, "nope")


def test_an_assessment_of_no_vms_loads_as_an_empty_frame(engine):
    record = AssessmentRecord.new(SCOPE_A, now=T0)
    save_assessment(engine, record, scored_frame(0))
    loaded = load_vms(engine, record.id)
    assert loaded.empty and list(loaded.columns) == list(VM_FIELDS)
    assert resolve_assessment(engine, "latest").vm_count == 0


def test_assessment_ids_are_utc_time_plus_short_random():
    local = datetime(2026, 11, 26, 0, 30, 12, tzinfo=UTC).astimezone(
        __import__("zoneinfo").ZoneInfo("Europe/Berlin"))
    new_id = new_assessment_id(local)
    assert re.fullmatch(r"20261126-003012-[0-9a-f]{4}", new_id)
    assert new_assessment_id(T0) < new_assessment_id(T0 + timedelta(seconds=1))
    assert len({new_assessment_id(T0) for _ in range(50)}) > 40


def test_scope_key_ignores_endpoint_order_case_and_empty_settings():
    base = {"cloud": "public", "subscriptions": ["B-SUB", "a-sub"],
            "exclude_resource_groups": ["RG1"], "exclude_tags": ["Env=Prod"]}
    same = {"subscriptions": ["a-sub", "b-sub", "a-sub"], "cloud": "Public",
            "endpoint": "https://127.0.0.1:51234", "management_groups": [],
            "excludeResourceGroups": ["rg1"], "exclude_tags": ["env=Prod"]}
    assert scope_key(base) == scope_key(same)
    assert re.fullmatch(r"[0-9a-f]{16}", scope_key(base))
    assert scope_key({}) == scope_key({"cloud": "public"})
    assert scope_key(base) != scope_key({**base, "cloud": "usgov"})
    assert scope_key(base) != scope_key({**base, "subscriptions": ["a-sub"]})
    assert scope_key(base) != scope_key({**base, "exclude_tags": ["env=prod"]})  # values count


@pytest.mark.slow
def test_100k_scored_vms_save_and_load(engine, store_url):
    frame = scored_frame(100_000)
    record = AssessmentRecord.new(SCOPE_A, now=T0)
    start = time.perf_counter()
    save_assessment(engine, record, frame)
    saved = time.perf_counter() - start
    start = time.perf_counter()
    loaded = load_vms(engine, record.id)
    took = time.perf_counter() - start
    print(f"\n{engine.dialect.name}: save 100k VMs {saved:.2f} s, load {took:.2f} s")
    assert len(loaded) == 100_000
    pd.testing.assert_frame_equal(loaded, _expected(frame))
