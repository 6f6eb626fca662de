"""Opening the state store: SQLite tuning, and one clear message (URL, problem, fix) for every
store a user cannot use, never a traceback."""

from __future__ import annotations

import importlib.util
import sqlite3
import uuid

import pytest
import sqlalchemy as sa

from tasks.errors import InputError
from tasks.state import StateStoreError, open_store


def _pragma(engine: sa.Engine, name: str) -> object:
    with engine.connect() as conn:
        return conn.exec_driver_sql(f"PRAGMA {name}").scalar()


def test_sqlite_store_uses_wal_foreign_keys_and_busy_timeout(tmp_path):
    engine = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        assert _pragma(engine, "journal_mode") == "wal"
        assert _pragma(engine, "foreign_keys") == 1
        assert _pragma(engine, "synchronous") == 1  # NORMAL
        assert _pragma(engine, "busy_timeout") == 30_000
    finally:
        engine.dispose()
    # WAL is a property of the file: a plain sqlite3 connection sees it too.
    with sqlite3.connect(tmp_path / "state.db") as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_journal_writers_can_ask_for_full_synchronous(tmp_path):
    engine = open_store(f"sqlite:///{tmp_path / 'state.db'}", synchronous="FULL")
    try:
        assert _pragma(engine, "synchronous") == 2
    finally:
        engine.dispose()


def test_sqlite_store_creates_missing_folders(tmp_path):
    path = tmp_path / "a" / "b" / "state.db"
    open_store(f"sqlite:///{path}").dispose()
    assert path.is_file()


def test_home_in_sqlite_path_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    open_store("sqlite:///~/ccm/state.db").dispose()
    assert (tmp_path / "ccm" / "state.db").is_file()


def test_store_errors_are_input_errors_with_exit_code_2():
    assert issubclass(StateStoreError, InputError)
    assert StateStoreError.exit_code == 2


def _message(url: str) -> str:
    with pytest.raises(StateStoreError) as err:
        open_store(url)
    message = str(err.value)
    assert "--state-store" in message and "CCMIGRATE_STATE_STORE" in message
    return message


def test_folder_that_cannot_be_made_is_named_with_the_fix(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    message = _message(f"sqlite:///{blocker / 'sub' / 'state.db'}")
    assert str(blocker) in message and "not a folder" in message


def test_file_that_is_not_a_database_is_named(tmp_path):
    path = tmp_path / "notes.db"
    path.write_text("these are not the tables you are looking for\n" * 100)
    message = _message(f"sqlite:///{path}")
    assert str(path) in message and "not a database" in message


def test_unknown_database_kind_is_named():
    message = _message("notadb://x")
    assert "notadb://x" in message and "unknown database kind" in message


def test_malformed_url_is_named():
    message = _message("this is not a url")
    assert "'this is not a url'" in message and "not a SQLAlchemy URL" in message


def test_unreachable_server_is_named_with_password_masked():
    message = _message("postgresql://nouser:s3cret@127.0.0.1:1/x")
    assert "postgresql://nouser:***@127.0.0.1:1/x" in message
    assert "s3cret" not in message
    assert "Connection refused" in message or "connection" in message.lower()


@pytest.mark.skipif(importlib.util.find_spec("psycopg2") is not None,
                    reason="psycopg2 is installed here, so its absence cannot be shown")
def test_missing_driver_is_named_with_what_to_install():
    message = _message("postgresql+psycopg2://u:pw@127.0.0.1/x")
    assert "psycopg2" in message and "ccmigrate[postgres]" in message
    assert ":pw@" not in message


def test_store_that_cannot_be_migrated_is_named(postgres_url):
    """A role without CREATE rights on the schema: the fix is a grant or another URL."""
    admin = sa.create_engine(postgres_url)
    role = f"ccm_test_reader_{uuid.uuid4().hex[:8]}"
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE ROLE {role} LOGIN")
        conn.exec_driver_sql(f"GRANT USAGE ON SCHEMA {_schema(postgres_url)} TO {role}")
    try:
        url = sa.make_url(postgres_url).set(username=role)
        message = _message(url.render_as_string(hide_password=False))
        assert role in message and "permission denied" in message
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP OWNED BY {role}")
            conn.exec_driver_sql(f"DROP ROLE {role}")
        admin.dispose()


def _schema(url: str) -> str:
    return sa.make_url(url).query["options"].split("=", 1)[1]
