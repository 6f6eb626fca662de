"""Versioned schema migrations, run by the tool itself whenever it opens the state store.

Adding a migration is one small function appended to ``MIGRATIONS``:

    def _m2_plans(conn: Connection) -> None:
        md = sa.MetaData()
        sa.Table("plans", md, sa.Column("id", sa.String(32), primary_key=True), ...)
        md.create_all(conn)
        add_column(conn, "assessments", sa.Column("note", sa.Text, nullable=False,
                                                   server_default=""))

    MIGRATIONS.append(Migration(2, "plans", _m2_plans))   # (written into the list literal)

Rules: a step declares the tables it creates on its own ``MetaData`` (a snapshot of that
moment), never imports ``tables.py`` (the current shape), so an old database moves step by step
through exactly the shapes its data passed through; a released step never changes; versions are
1, 2, 3, ... without gaps. Every pending step runs in one transaction with the version rows, so a
failed upgrade leaves the database as it was (SQLite and PostgreSQL have transactional DDL).

Concurrent opens (several CLI runs, Prefect workers) migrate once: the writer takes SQLite's
write lock up front (``BEGIN IMMEDIATE``) or a PostgreSQL advisory lock, then re-reads the
version; the others wait, then find nothing to do. Opening an up-to-date store takes no lock.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy import Connection, Engine

from .tables import UtcDateTime, schema_version


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    apply: Callable[[Connection], None]


class SchemaTooNewError(Exception):
    """The database was migrated by a newer ccmigrate (``db.open_store`` explains the fix)."""

    def __init__(self, found: int, known: int):
        super().__init__(f"schema version {found} is newer than this tool's {known}")
        self.found, self.known = found, known


# -- helpers for steps ------------------------------------------------------------------------

def add_column(conn: Connection, table: str, column: sa.Column) -> None:
    """``ALTER TABLE ... ADD COLUMN`` rendered for the connection's dialect (SQLAlchemy Core has
    no ALTER). A NOT NULL column needs a ``server_default`` so existing rows get a value."""
    ddl = sa.schema.CreateColumn(column).compile(dialect=conn.dialect)
    preparer = conn.dialect.identifier_preparer
    conn.exec_driver_sql(f"ALTER TABLE {preparer.quote(table)} ADD COLUMN {ddl}")


# -- the steps --------------------------------------------------------------------------------

def _m1_assessments(conn: Connection) -> None:
    """One row per assessment, one per scored VM: what reports (trends, diff) and waves read."""
    md = sa.MetaData()
    sa.Table(
        "assessments", md,
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("finished_at", UtcDateTime, nullable=True),
        sa.Column("scope_key", sa.String(64), nullable=False),
        sa.Column("scope_json", sa.Text, nullable=False),
        sa.Column("rule_pack", sa.Text, nullable=False),
        sa.Column("pack_doc_version", sa.Text, nullable=False),
        sa.Column("overrides_json", sa.Text, nullable=False),
        sa.Column("tool_version", sa.Text, nullable=False),
        sa.Column("cloud", sa.Text, nullable=False),
        sa.Column("vm_count", sa.Integer, nullable=False),
        sa.Column("counts_json", sa.Text, nullable=False),
        sa.Column("request_count", sa.Integer, nullable=False),
        sa.Column("partial_errors_json", sa.Text, nullable=False),
        sa.Column("summary_json", sa.Text, nullable=False),
        sa.Index("ix_assessments_created_at", "created_at"),
        sa.Index("ix_assessments_scope_key_created_at", "scope_key", "created_at"),
    )
    text_columns = (
        "vm_name", "subscription_id", "resource_group", "location", "vm_size", "vault",
        "vault_id", "policy_name", "policy_id", "item_id", "protection_state",
        "consistency_type", "readiness", "blockers", "warnings", "unknowns", "infos",
        "target_policy",
    )
    sa.Table(
        "assessment_vms", md,
        sa.Column("assessment_id", sa.String(32),
                  sa.ForeignKey("assessments.id", ondelete="CASCADE"), nullable=False),
        sa.Column("vm_id", sa.String(512), nullable=False),
        sa.Column("vm_key", sa.String(512), nullable=False),
        *(sa.Column(name, sa.Text, nullable=False) for name in text_columns),
        sa.PrimaryKeyConstraint("assessment_id", "vm_key"),
        sa.Index("ix_assessment_vms_vm_key", "vm_key"),
    )
    md.create_all(conn)


def _m2_plans_waves_journal_leases(conn: Connection) -> None:
    """Plans cut from an assessment (wave items, the policies they need), their waves, the
    per-VM journal with its append-only history, and one lease per wave being run."""
    md = sa.MetaData()
    # Stand-in for the existing table, only so the foreign key below can be rendered.
    sa.Table("assessments", md, sa.Column("id", sa.String(32), primary_key=True))
    new = [
        sa.Table(
            "plans", md,
            sa.Column("id", sa.String(32), primary_key=True),
            sa.Column("created_at", UtcDateTime, nullable=False),
            sa.Column("assessment_id", sa.String(32), sa.ForeignKey("assessments.id"),
                      nullable=False),
            sa.Column("options_json", sa.Text, nullable=False),
            sa.Column("summary_json", sa.Text, nullable=False),
            sa.Column("wave_count", sa.Integer, nullable=False),
            sa.Column("vm_count", sa.Integer, nullable=False),
            sa.Column("tool_version", sa.Text, nullable=False),
            sa.Index("ix_plans_created_at", "created_at"),
        ),
        sa.Table(
            "plan_vms", md,
            sa.Column("plan_id", sa.String(32), sa.ForeignKey("plans.id", ondelete="CASCADE"),
                      nullable=False),
            sa.Column("wave", sa.Integer, nullable=False),
            sa.Column("position", sa.Integer, nullable=False),
            sa.Column("vm_key", sa.String(512), nullable=False),
            sa.Column("vm_id", sa.String(512), nullable=False),
            *(sa.Column(name, sa.Text, nullable=False) for name in (
                "vm_name", "subscription_id", "vault_id", "vault", "item_id",
                "source_policy_id", "source_policy", "target_policy")),
            sa.Column("irreversible", sa.Boolean, nullable=False),
            *(sa.Column(name, sa.Text, nullable=False)
              for name in ("rollback_policy", "readiness", "warnings")),
            sa.PrimaryKeyConstraint("plan_id", "vm_key"),
            sa.CheckConstraint("wave >= 1", name="ck_plan_vms_wave"),
            sa.Index("ix_plan_vms_plan_id_wave", "plan_id", "wave", "position"),
        ),
        sa.Table(
            "plan_policies", md,
            sa.Column("plan_id", sa.String(32), sa.ForeignKey("plans.id", ondelete="CASCADE"),
                      nullable=False),
            sa.Column("vault_id", sa.String(512), nullable=False),
            sa.Column("policy_name", sa.String(256), nullable=False),
            sa.Column("vault", sa.Text, nullable=False),
            sa.Column("kind", sa.String(32), nullable=False),
            sa.Column("source_policy_id", sa.Text, nullable=False),
            sa.Column("source_policy", sa.Text, nullable=False),
            sa.Column("first_wave", sa.Integer, nullable=False),
            sa.Column("body_json", sa.Text, nullable=False),
            sa.PrimaryKeyConstraint("plan_id", "vault_id", "policy_name"),
        ),
        sa.Table(
            "waves", md,
            sa.Column("plan_id", sa.String(32), sa.ForeignKey("plans.id", ondelete="CASCADE"),
                      nullable=False),
            sa.Column("wave", sa.Integer, nullable=False),
            sa.Column("size", sa.Integer, nullable=False),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("started_at", UtcDateTime, nullable=True),
            sa.Column("finished_at", UtcDateTime, nullable=True),
            sa.Column("counts_json", sa.Text, nullable=False),
            sa.Column("halted_reason", sa.Text, nullable=True),
            sa.PrimaryKeyConstraint("plan_id", "wave"),
        ),
        sa.Table(
            "journal", md,
            sa.Column("plan_id", sa.String(32), nullable=False),
            sa.Column("vm_key", sa.String(512), nullable=False),
            sa.Column("wave", sa.Integer, nullable=False),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("step", sa.String(32), nullable=False),
            sa.Column("original_policy_id", sa.Text, nullable=True),
            sa.Column("target_policy_id", sa.Text, nullable=True),
            sa.Column("operation_id", sa.Text, nullable=True),
            sa.Column("job_ids_json", sa.Text, nullable=False),
            sa.Column("error_code", sa.Text, nullable=True),
            sa.Column("error_message", sa.Text, nullable=True),
            sa.Column("rollback_outcome", sa.Text, nullable=True),
            sa.Column("attempt", sa.Integer, nullable=False),
            sa.Column("started_at", UtcDateTime, nullable=True),
            sa.Column("updated_at", UtcDateTime, nullable=True),
            sa.Column("finished_at", UtcDateTime, nullable=True),
            sa.Column("runner", sa.Text, nullable=True),
            sa.PrimaryKeyConstraint("plan_id", "vm_key"),
            sa.ForeignKeyConstraint(["plan_id", "vm_key"],
                                    ["plan_vms.plan_id", "plan_vms.vm_key"], ondelete="CASCADE"),
            sa.Index("ix_journal_plan_id_wave_status", "plan_id", "wave", "status"),
        ),
        sa.Table(
            "journal_events", md,
            sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"),
                      primary_key=True, autoincrement=True),
            sa.Column("plan_id", sa.String(32), nullable=False),
            sa.Column("vm_key", sa.String(512), nullable=False),
            sa.Column("at", UtcDateTime, nullable=False),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("step", sa.String(32), nullable=False),
            sa.Column("runner", sa.Text, nullable=False),
            sa.Column("detail_json", sa.Text, nullable=False),
            sa.ForeignKeyConstraint(["plan_id", "vm_key"], ["journal.plan_id", "journal.vm_key"],
                                    ondelete="CASCADE"),
            sa.Index("ix_journal_events_plan_id_vm_key_id", "plan_id", "vm_key", "id"),
        ),
        sa.Table(
            "wave_leases", md,
            sa.Column("plan_id", sa.String(32), nullable=False),
            sa.Column("wave", sa.Integer, nullable=False),
            sa.Column("owner_host", sa.Text, nullable=False),
            sa.Column("owner_pid", sa.Integer, nullable=False),
            sa.Column("owner_node", sa.Text, nullable=False),
            sa.Column("owner_token", sa.String(64), nullable=False),
            sa.Column("acquired_at", UtcDateTime, nullable=False),
            sa.Column("heartbeat_at", UtcDateTime, nullable=False),
            sa.Column("expires_at", UtcDateTime, nullable=False),
            sa.PrimaryKeyConstraint("plan_id", "wave"),
            sa.ForeignKeyConstraint(["plan_id", "wave"], ["waves.plan_id", "waves.wave"],
                                    ondelete="CASCADE"),
        ),
    ]
    md.create_all(conn, tables=new)


def _m3_assessment_vm_tags(conn: Connection) -> None:
    """Each scored VM's tags (a JSON object), so a plan can filter and order waves by tag
    without re-reading Azure. Rows stored before keep ``{}``."""
    add_column(conn, "assessment_vms",
               sa.Column("tags_json", sa.Text, nullable=False, server_default="{}"))


MIGRATIONS: list[Migration] = [
    Migration(1, "assessments and their scored VMs", _m1_assessments),
    Migration(2, "plans, waves, journal, leases", _m2_plans_waves_journal_leases),
    Migration(3, "tags of assessed VMs", _m3_assessment_vm_tags),
]


# -- the runner -------------------------------------------------------------------------------

def latest_version(migrations: Sequence[Migration] = MIGRATIONS) -> int:
    return migrations[-1].version if migrations else 0


def current_version(conn: Connection) -> int:
    """The database's schema version; 0 for an empty database."""
    if not sa.inspect(conn).has_table(schema_version.name):
        return 0
    return conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar() or 0


def migrate(engine: Engine, *, migrations: Sequence[Migration] = MIGRATIONS,
            target: int | None = None) -> tuple[int, int]:
    """Bring the database to ``target`` (default: the latest step); return (from, to).

    Idempotent and safe to call from several processes at once. ``migrations`` and ``target``
    exist for tests (simulating an old database); the tool uses the defaults.
    Raises ``SchemaTooNewError`` when the database is ahead of ``migrations``.
    """
    _check_sequence(migrations)
    known = latest_version(migrations)
    goal = known if target is None else target
    with engine.connect() as conn:  # fast path: no write lock when there is nothing to do
        found = current_version(conn)
        conn.rollback()
    if found > known:
        raise SchemaTooNewError(found, known)
    if found >= goal:
        return found, found
    with engine.connect() as conn:
        conn.execution_options(ccmigrate_begin="IMMEDIATE")
        with conn.begin():
            _lock(conn)
            schema_version.create(conn, checkfirst=True)
            start = current_version(conn)  # another process may have migrated meanwhile
            if start > known:
                raise SchemaTooNewError(start, known)
            for step in migrations:
                if start < step.version <= goal:
                    step.apply(conn)
                    conn.execute(sa.insert(schema_version).values(
                        version=step.version, description=step.description,
                        applied_at=datetime.now(UTC), tool_version=_tool_version()))
    return start, max(start, goal)


def _lock(conn: Connection) -> None:
    """Serialize migrators. SQLite: the ``BEGIN IMMEDIATE`` above already holds the write lock.
    PostgreSQL: a transaction-scoped advisory lock per schema (released at commit)."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:name || current_schema()))"),
                     {"name": "ccmigrate.migrate:"})


def _check_sequence(migrations: Sequence[Migration]) -> None:
    versions = [m.version for m in migrations]
    if versions != list(range(1, len(versions) + 1)):
        raise ValueError(f"migration versions must be 1, 2, 3, ... without gaps: {versions}")


def _tool_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ccmigrate")
    except PackageNotFoundError:
        return "unknown"
