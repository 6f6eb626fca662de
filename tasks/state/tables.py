"""The state store's tables as they are now (SQLAlchemy Core), for queries and writes.

This is the *current* shape. The database reaches it through ``migrations.py``, whose steps each
declare the tables they create or change on their own ``MetaData``; a test checks that a freshly
migrated database matches this file, so the two cannot drift apart.

Portable types only (SQLite and PostgreSQL): JSON is kept as text (``*_json`` columns; cast to
``jsonb`` in PostgreSQL to query it), times are UTC (``UtcDateTime``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeEngine

# ARM ids stay well below this (subscription + resource group + name + fixed parts < 400).
ARM_ID = 512
_TEXT_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


class UtcDateTime(sa.types.TypeDecorator[datetime]):
    """An aware UTC datetime. ``timestamptz`` in PostgreSQL; elsewhere fixed-width ISO text
    (``2026-11-25T22:30:12.000000Z``) that sorts as the time does, since SQLite has no datetime
    type and SQLAlchemy's would drop the zone. Never change the text format: stored rows use it.
    """

    impl = sa.String(32)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(sa.TIMESTAMP(timezone=True))
        return dialect.type_descriptor(sa.String(32))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the state store keeps aware UTC times")
        value = value.astimezone(UTC)
        return value if dialect.name == "postgresql" else value.strftime(_TEXT_FORMAT)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, datetime):
            return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        return datetime.strptime(value, _TEXT_FORMAT).replace(tzinfo=UTC)


metadata = sa.MetaData()

# One row per applied migration; the schema version is max(version). Its shape never changes:
# every version of the tool must be able to read it (to refuse a newer database).
schema_version = sa.Table(
    "schema_version", metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("applied_at", UtcDateTime, nullable=False),
    sa.Column("tool_version", sa.Text, nullable=False),
)

# One row per assessment run (migration 1).
assessments = sa.Table(
    "assessments", metadata,
    sa.Column("id", sa.String(32), primary_key=True),  # e.g. 20261125-223012-3f9a
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

# The scored-VM columns kept per assessment, in load order (a subset of the inventory's
# VM_COLUMNS + SCORED_COLUMNS: what trends, diffs and the planner need).
VM_FIELDS: tuple[str, ...] = (
    "vm_id", "vm_key", "vm_name", "subscription_id", "resource_group", "location", "vm_size",
    "vault", "vault_id", "policy_name", "policy_id", "item_id", "protection_state",
    "consistency_type", "readiness", "blockers", "warnings", "unknowns", "infos",
    "target_policy",
)
_KEYED = {"vm_key": ARM_ID, "vm_id": ARM_ID}

# One row per scored VM of an assessment (migration 1).
assessment_vms = sa.Table(
    "assessment_vms", metadata,
    sa.Column("assessment_id", sa.String(32),
              sa.ForeignKey("assessments.id", ondelete="CASCADE"), nullable=False),
    *(sa.Column(name, sa.String(_KEYED[name]) if name in _KEYED else sa.Text, nullable=False)
      for name in VM_FIELDS),
    sa.PrimaryKeyConstraint("assessment_id", "vm_key"),
    sa.Index("ix_assessment_vms_vm_key", "vm_key"),
)
