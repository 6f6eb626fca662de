"""Versioned migrations: a new store reaches the latest schema, an old one moves step by step
keeping its data, re-running is a no-op, concurrent opens migrate once, a newer store is
refused, and a failed step changes nothing."""

from __future__ import annotations

import multiprocessing
import threading
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from tasks.state import (
    MIGRATIONS,
    AssessmentRecord,
    Migration,
    StateStoreError,
    load_vms,
    migrate,
    open_store,
)
from tasks.state.migrations import add_column, current_version, latest_version
from tasks.state.tables import metadata, schema_version
from tests.state.frames import scored_frame

LATEST = latest_version()


def _versions(engine: sa.Engine) -> list[int]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(schema_version.c.version)
                                 .order_by(schema_version.c.version)).scalars())


def test_migration_versions_are_1_to_n_with_descriptions():
    assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))
    assert all(m.description for m in MIGRATIONS)


def test_new_store_is_at_latest_version(engine):
    assert _versions(engine) == list(range(1, LATEST + 1))
    with engine.connect() as conn:
        row = conn.execute(sa.select(schema_version)).first()
    assert row is not None and row.applied_at.tzinfo is not None and row.tool_version


def test_migrated_schema_matches_tables_module(engine):
    """The migrations and tables.py (the shape queries use) describe the same database."""
    inspector = sa.inspect(engine)
    assert set(inspector.get_table_names()) == set(metadata.tables)
    for table in metadata.tables.values():
        columns = {c["name"]: c for c in inspector.get_columns(table.name)}
        assert list(columns) == [c.name for c in table.columns], table.name
        for column in table.columns:
            assert columns[column.name]["nullable"] == column.nullable, (table.name, column.name)
        pk = inspector.get_pk_constraint(table.name)["constrained_columns"]
        assert pk == [c.name for c in table.primary_key.columns], table.name
        indexes = {(i["name"], tuple(i["column_names"])) for i in inspector.get_indexes(table.name)}
        assert indexes == {(i.name, tuple(c.name for c in i.columns)) for i in table.indexes}
        fks = {(tuple(f["constrained_columns"]), f["referred_table"],
                (f.get("options") or {}).get("ondelete", "").upper())
               for f in inspector.get_foreign_keys(table.name)}
        assert fks == {(tuple(f.parent.name for f in fk.elements), fk.referred_table.name,
                        (fk.ondelete or "").upper()) for fk in table.foreign_key_constraints}


def test_reopening_a_current_store_is_a_no_op(store_url):
    open_store(store_url).dispose()
    engine = open_store(store_url)
    try:
        assert migrate(engine) == (LATEST, LATEST)
        assert _versions(engine) == list(range(1, LATEST + 1))
    finally:
        engine.dispose()


def _m_test_notes(conn: sa.Connection) -> None:
    """What a later migration looks like: a new table and a new column on an old one."""
    md = sa.MetaData()
    sa.Table("test_notes", md, sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("text", sa.Text, nullable=False))
    md.create_all(conn)
    add_column(conn, "assessments",
               sa.Column("test_label", sa.Text, nullable=False, server_default="none"))


def test_old_store_migrates_step_by_step_and_keeps_its_data(store_url):
    engine = open_store(store_url, migrate=False)
    try:
        assert migrate(engine, target=1) == (0, 1)  # a store written by the first release
        record = AssessmentRecord.new({"cloud": "public"}, rule_pack="ga")
        _save_in_first_shape(engine, record, scored_frame(10))
        assert migrate(engine, target=1) == (1, 1)

        future = [*MIGRATIONS, Migration(LATEST + 1, "test notes", _m_test_notes)]
        assert migrate(engine) == (1, LATEST)
        assert migrate(engine, migrations=future) == (LATEST, LATEST + 1)
        assert migrate(engine, migrations=future) == (LATEST + 1, LATEST + 1)
        with engine.connect() as conn:
            kept = conn.exec_driver_sql("SELECT id, test_label FROM assessments").all()
            assert [tuple(r) for r in kept] == [(record.id, "none")]
            assert conn.exec_driver_sql("SELECT count(*) FROM assessment_vms").scalar() == 10
            assert conn.exec_driver_sql("SELECT count(*) FROM test_notes").scalar() == 0
        assert _versions(engine) == list(range(1, LATEST + 2))
        assert load_vms(engine, record.id, tags=True)["tags"].tolist() == [{}] * 10
    finally:
        engine.dispose()


def _save_in_first_shape(engine: sa.Engine, record: AssessmentRecord, frame) -> None:
    """An assessment as the first release stored it: no tags_json column (migration 3)."""
    from tasks.state import assessments as repo
    from tasks.state.tables import VM_FIELDS, assessment_vms, assessments

    names = ["assessment_id", *VM_FIELDS]
    with engine.begin() as conn:
        conn.execute(sa.insert(assessments).values(repo._record_row(record)))
        conn.execute(sa.insert(assessment_vms), [
            dict(zip(names, row[:len(names)], strict=True))
            for row in repo._vm_rows(record.id, frame)])


def test_failed_step_leaves_the_store_as_it_was(store_url):
    def broken(conn: sa.Connection) -> None:
        md = sa.MetaData()
        sa.Table("half_done", md, sa.Column("id", sa.Integer, primary_key=True))
        md.create_all(conn)
        raise RuntimeError("step failed half way")

    engine = open_store(store_url)
    try:
        with pytest.raises(RuntimeError):
            migrate(engine, migrations=[*MIGRATIONS, Migration(LATEST + 1, "broken", broken)])
        assert _versions(engine) == list(range(1, LATEST + 1))
        assert not sa.inspect(engine).has_table("half_done")
    finally:
        engine.dispose()


def test_store_from_a_newer_tool_is_refused_with_upgrade_hint(store_url):
    open_store(store_url).dispose()
    engine = sa.create_engine(store_url)
    with engine.begin() as conn:
        conn.execute(sa.insert(schema_version).values(
            version=LATEST + 5, description="from the future", applied_at=datetime.now(UTC),
            tool_version="9.9.9"))
    engine.dispose()
    with pytest.raises(StateStoreError) as err:
        open_store(store_url)
    message = str(err.value)
    assert "newer ccmigrate" in message and "upgrade ccmigrate" in message
    assert f"schema version {LATEST + 5}" in message and "--state-store" in message


def test_concurrent_opens_from_threads_migrate_once(store_url):
    barrier = threading.Barrier(6)
    errors: list[BaseException] = []

    def open_one() -> None:
        try:
            barrier.wait()
            open_store(store_url).dispose()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [str(e) for e in errors] == []
    engine = open_store(store_url)
    try:
        assert _versions(engine) == list(range(1, LATEST + 1))
    finally:
        engine.dispose()


def _migrate_in_child(url: str, barrier, results) -> None:
    engine = open_store(url, migrate=False)
    try:
        barrier.wait()
        results.put(migrate(engine))
    except BaseException as exc:
        results.put(repr(exc))
    finally:
        engine.dispose()


def test_concurrent_opens_from_processes_migrate_once(store_url):
    # fork starts in milliseconds (spawn re-imports pandas in every child); spawn elsewhere.
    fork = "fork" in multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if fork else "spawn")
    n = 4
    barrier, results = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_migrate_in_child, args=(store_url, barrier, results))
             for _ in range(n)]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert sorted(outcomes, key=str) == sorted([(0, LATEST)] + [(LATEST, LATEST)] * (n - 1),
                                               key=str)
    engine = open_store(store_url)
    try:
        assert _versions(engine) == list(range(1, LATEST + 1))
        with engine.connect() as conn:
            assert current_version(conn) == LATEST
    finally:
        engine.dispose()
