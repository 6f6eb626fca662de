"""State-store fixtures: a store URL per backend (SQLite file in tmp_path; PostgreSQL in a schema
of its own, dropped afterwards, so parallel and repeated runs never collide)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from urllib.parse import quote

import pytest
import sqlalchemy as sa

POSTGRES_URL = os.environ.get("CCMIGRATE_TEST_POSTGRES_URL",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _admin_engine() -> sa.Engine:
    """An engine on the test server, or a skip that says why."""
    try:
        engine = sa.create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except ImportError as err:
        pytest.skip(f"PostgreSQL driver not installed ({err}); pip install -e '.[test]'")
    except sa.exc.DBAPIError as err:
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_URL} (set "
                    f"CCMIGRATE_TEST_POSTGRES_URL): {str(err.orig).strip().splitlines()[0]}")
    return engine


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """URL of an empty schema of its own on the test server (search_path via libpq options)."""
    admin = _admin_engine()
    schema = f"ccm_test_{uuid.uuid4().hex[:12]}"
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{sep}options={quote(f'-csearch_path={schema}')}"
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """The same test against a SQLite file and a PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store' / 'state.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def engine(store_url: str) -> Iterator[sa.Engine]:
    """An opened (migrated) store, disposed afterwards."""
    from tasks.state import open_store

    eng = open_store(store_url)
    try:
        yield eng
    finally:
        eng.dispose()


@pytest.fixture
def make_plan(engine: sa.Engine):
    """Save an assessment and a plan cut from it: ``make_plan(n=8, sizes=(1, 3), minutes=0)``
    returns the stored ``PlanRecord`` (``minutes`` after a fixed start, so plans order)."""
    from datetime import UTC, datetime, timedelta

    from tasks.state import AssessmentRecord, PlanRecord, save_assessment, save_plan
    from tests.state.frames import plan_frames, scored_frame

    start = datetime(2026, 11, 26, 1, 30, tzinfo=UTC)

    def make(n: int = 8, sizes: tuple[int, ...] = (1, 3), minutes: int = 0, **fields):
        now = start + timedelta(minutes=minutes)
        assessment = AssessmentRecord.new({"cloud": "public"}, now=now)
        save_assessment(engine, assessment, scored_frame(3, seed=minutes))
        record = PlanRecord.new(assessment.id, {"wave_size": sizes[-1], "canary": sizes[0]},
                                now=now, **fields)
        vms, policies = plan_frames(n, sizes, seed=minutes)
        save_plan(engine, record, vms, policies)
        return record

    return make
