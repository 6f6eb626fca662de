"""Migration 3: the assessment keeps each VM's tags, so a plan can filter and order by tag."""

from __future__ import annotations

import pandas as pd

from tasks.state import AssessmentRecord, load_vms, migrate, open_store, save_assessment
from tasks.state.migrations import latest_version
from tasks.state.tables import VM_FIELDS
from tests.state.frames import scored_frame

SCOPE = {"cloud": "public"}


def test_tags_round_trip_as_dicts_and_untagged_vms_load_empty(engine):
    frame = scored_frame(6)
    frame["tags"] = [{"criticality": "2", "env": "prod"}, {}, None,
                     {"owner": "Zoë", "=cmd": "@x"}, float("nan"), {"criticality": "10"}]
    record = AssessmentRecord.new(SCOPE)
    save_assessment(engine, record, frame)
    loaded = load_vms(engine, record.id, tags=True)
    by_key = dict(zip(loaded["vm_key"], loaded["tags"], strict=True))
    expected = [t if isinstance(t, dict) else {} for t in frame["tags"]]
    assert {k: by_key[k] for k in frame["vm_key"]} == dict(
        zip(frame["vm_key"], expected, strict=True))


def test_tags_are_only_loaded_when_asked_for(engine):
    record = AssessmentRecord.new(SCOPE)
    save_assessment(engine, record, scored_frame(3))
    assert list(load_vms(engine, record.id).columns) == list(VM_FIELDS)
    assert list(load_vms(engine, record.id, tags=True).columns) == [*VM_FIELDS, "tags"]


def test_a_frame_without_tags_stores_empty_tags(engine):
    record = AssessmentRecord.new(SCOPE)
    save_assessment(engine, record, scored_frame(4).drop(columns=["tags"]))
    assert load_vms(engine, record.id, tags=True)["tags"].tolist() == [{}] * 4


def test_an_empty_assessment_loads_an_empty_tags_column(engine):
    record = AssessmentRecord.new(SCOPE)
    save_assessment(engine, record, scored_frame(0))
    loaded = load_vms(engine, record.id, tags=True)
    assert loaded.empty and "tags" in loaded.columns


def test_assessments_stored_before_migration_3_load_with_empty_tags(store_url):
    from tests.state.test_migrations import _save_in_first_shape

    engine = open_store(store_url, migrate=False)
    try:
        migrate(engine, target=2)
        record = AssessmentRecord.new(SCOPE)
        _save_in_first_shape(engine, record, scored_frame(5))
        assert migrate(engine) == (2, latest_version())
        loaded = load_vms(engine, record.id, tags=True)
        assert loaded["tags"].tolist() == [{}] * 5
        pd.testing.assert_frame_equal(loaded[list(VM_FIELDS)], load_vms(engine, record.id))
    finally:
        engine.dispose()
