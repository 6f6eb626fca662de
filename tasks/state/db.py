"""Opening the state store: one SQLAlchemy engine, tuned per database, migrated on open.

SQLite (the default, one file per user) gets, on every connection: WAL (readers never block the
writer, so a report can run beside a wave), ``synchronous=NORMAL`` (in WAL a crash of the process
loses nothing; a power cut may lose the last commits), foreign keys on (SQLite's default is off,
and ``ON DELETE CASCADE`` needs them), and a 30 s busy timeout (a second process waits for the
write lock instead of failing). Callers whose commits must survive a power cut (the wave journal,
written before every change in Azure) open with ``synchronous="FULL"``: one fsync per commit.

PostgreSQL (several workers) and other URLs get a plain engine with ``pool_pre_ping``.

Every problem a user can fix (bad URL, missing driver, unreachable server, unwritable folder, a
database from a newer ccmigrate) is a ``StateStoreError`` (an ``InputError``, exit 2) naming the
URL with its password masked, the problem and the fix.
"""

from __future__ import annotations

import importlib.util
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy import Connection, Engine, event
from sqlalchemy.engine import URL, make_url

from ..errors import InputError
from . import migrations

BUSY_TIMEOUT_MS = 30_000
CONNECT_TIMEOUT_S = 10
FIX = ("give another URL with --state-store or CCMIGRATE_STATE_STORE (for example "
       "sqlite:///PATH/state.db or postgresql+psycopg://USER@HOST:5432/DB)")


class StateStoreError(InputError):
    """The state store cannot be opened or used as configured; the message says how to fix it."""


def masked(url: str | URL) -> str:
    """The URL as it may be shown to a user or written to a log: password replaced by ***."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return str(url)


def open_store(url: str, *, migrate: bool = True,
               synchronous: Literal["NORMAL", "FULL"] = "NORMAL") -> Engine:
    """Engine for the state store at ``url``, its schema migrated to this tool's version.

    ``migrate=False`` skips migration (tests of the migration runner). The caller disposes the
    engine (``engine.dispose()``) when done.
    """
    if synchronous not in ("NORMAL", "FULL"):
        raise ValueError(f"synchronous must be NORMAL or FULL, not {synchronous!r}")
    parsed = _parse(url)
    shown = masked(url)  # as the user wrote it
    engine = _create_engine(parsed, shown, synchronous)
    try:
        with engine.connect() as conn:  # fail here, with a clear message, not at first use
            conn.exec_driver_sql("SELECT 1")
            conn.rollback()
        if migrate:
            migrations.migrate(engine)
    except migrations.SchemaTooNewError as err:
        engine.dispose()
        raise StateStoreError(
            f"state store {shown} was written by a newer ccmigrate (schema version {err.found}; "
            f"this ccmigrate knows up to {err.known}); upgrade ccmigrate "
            "(pip install --upgrade ccmigrate), or " + FIX) from None
    except sa.exc.DBAPIError as err:
        engine.dispose()
        raise StateStoreError(
            f"cannot open the state store {shown}: {_reason(err, parsed)}; check that the "
            "database exists, is reachable and writable, or " + FIX) from None
    return engine


@contextmanager
def write_transaction(engine: Engine, *, defer_checkpoint: bool = False) -> Iterator[Connection]:
    """A transaction that takes SQLite's write lock up front (``BEGIN IMMEDIATE``), so two writers
    queue on the busy timeout instead of one failing when its read lock cannot be upgraded.
    Elsewhere a plain transaction.

    ``defer_checkpoint``: in WAL mode SQLite copies the log back into the database file right
    after a commit that leaves it longer than ``wal_autocheckpoint`` pages (1000 by default;
    MD sqlite.org/wal.html, "Automatic Checkpoint"), inside ``commit``: for a big write that
    copy and its fsync are most of the commit. Deferred, the commit only appends to the log
    (as durable as before under ``synchronous=NORMAL``: the log is what a crash recovers
    from), and the caller runs ``checkpoint`` when it suits, e.g. in a thread beside other
    work (SQLite holds no Python lock meanwhile)."""
    with engine.connect() as conn:
        raw = conn.connection.driver_connection if defer_checkpoint and _is_sqlite(conn) \
            else None
        before = None
        if raw is not None:
            before = raw.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
            raw.execute("PRAGMA wal_autocheckpoint = 0")
        try:
            conn.execution_options(ccmigrate_begin="IMMEDIATE")
            with conn.begin():
                yield conn
        finally:
            if raw is not None:
                raw.execute(f"PRAGMA wal_autocheckpoint = {int(before)}")


def checkpoint(engine: Engine) -> None:
    """Copy SQLite's write-ahead log back into the database file (a passive checkpoint: it
    waits for no reader or writer); nothing to do for other databases."""
    if engine.dialect.name != "sqlite":
        return
    with engine.connect() as conn:
        conn.connection.driver_connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()


def _is_sqlite(conn: Connection) -> bool:
    return conn.dialect.name == "sqlite"


# -- internals --------------------------------------------------------------------------------

def _parse(url: str) -> URL:
    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError:
        raise StateStoreError(f"state store URL {masked(url)!r} is not a SQLAlchemy URL; "
                              + FIX) from None
    database = parsed.database or ""
    if (parsed.get_backend_name() == "sqlite" and database not in ("", ":memory:")
            and not database.startswith("file:")):
        parsed = parsed.set(database=str(Path(database).expanduser()))
    if (parsed.drivername == "postgresql" and importlib.util.find_spec("psycopg2") is None
            and importlib.util.find_spec("psycopg") is not None):
        # Plain postgresql:// means psycopg2 before SQLAlchemy 2.1; we ship psycopg 3.
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def _create_engine(url: URL, shown: str, synchronous: str) -> Engine:
    backend = url.get_backend_name()
    try:
        if backend == "sqlite":
            _make_folder(url, shown)
            engine = sa.create_engine(url)
            _tune_sqlite(engine, memory=url.database in (None, "", ":memory:"),
                         synchronous=synchronous)
            return engine
        connect_args: dict[str, Any] = {}
        if backend == "postgresql" and "connect_timeout" not in url.query:
            connect_args["connect_timeout"] = CONNECT_TIMEOUT_S
        return sa.create_engine(url, pool_pre_ping=True, connect_args=connect_args)
    except sa.exc.NoSuchModuleError:
        raise StateStoreError(
            f"state store URL {shown} names an unknown database kind {url.drivername!r}; "
            + FIX) from None
    except ImportError as err:
        hint = ("pip install 'ccmigrate[postgres]' (psycopg 3; use postgresql+psycopg://)"
                if backend == "postgresql" else f"install the Python driver for {backend}")
        raise StateStoreError(
            f"state store {shown} needs the database driver {err.name or url.drivername!r}, "
            f"which is not installed: {hint}, or " + FIX) from None


def _make_folder(url: URL, shown: str) -> None:
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return
    folder = Path(database).absolute().parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = next(p for p in (folder, *folder.parents) if p.exists() and not p.is_dir())
        raise StateStoreError(
            f"cannot create the folder {folder} for the state store {shown}: {blocker} is a "
            "file, not a folder; choose another path, or " + FIX) from None
    except OSError as err:
        raise StateStoreError(
            f"cannot create the folder {folder} for the state store {shown}: "
            f"{err.strerror or err}; choose a writable path, or " + FIX) from None


def _tune_sqlite(engine: Engine, *, memory: bool, synchronous: str) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide where transactions begin (the module
        # would run DDL outside any transaction and never take the write lock up front).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        try:
            cur.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            if not memory:
                _use_wal(cur)
            cur.execute(f"PRAGMA synchronous = {synchronous}")
            cur.execute("PRAGMA foreign_keys = ON")
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("ccmigrate_begin", "")
        conn.exec_driver_sql("BEGIN IMMEDIATE" if mode == "IMMEDIATE" else "BEGIN")


def _use_wal(cur: Any) -> None:
    """Switch the file to WAL once; later opens find it set (WAL is stored in the file).

    The switch needs the file to itself and SQLite reports "database is locked" at once, without
    the busy timeout, when several processes open a new store together: retry until the timeout.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    delay = 0.005
    while True:
        try:
            if str(cur.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                cur.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as err:
            if "locked" not in str(err) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)


def _reason(err: sa.exc.DBAPIError, url: URL) -> str:
    """The driver's message, first line, without the password should a driver echo it."""
    message = str(err.orig).strip()
    text = message.splitlines()[0] if message else type(err.orig).__name__
    if url.password:
        text = text.replace(str(url.password), "***")
    return text
