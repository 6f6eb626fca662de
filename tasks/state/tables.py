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

# One row per scored VM of an assessment (migration 1; tags_json: migration 3).
assessment_vms = sa.Table(
    "assessment_vms", metadata,
    sa.Column("assessment_id", sa.String(32),
              sa.ForeignKey("assessments.id", ondelete="CASCADE"), nullable=False),
    *(sa.Column(name, sa.String(_KEYED[name]) if name in _KEYED else sa.Text, nullable=False)
      for name in VM_FIELDS),
    # The VM's tags as a JSON object (names as Azure returns them); "{}" when it has none.
    sa.Column("tags_json", sa.Text, nullable=False, server_default="{}"),
    sa.PrimaryKeyConstraint("assessment_id", "vm_key"),
    sa.Index("ix_assessment_vms_vm_key", "vm_key"),
)

# -- plans, waves, journal, leases (migration 2) ----------------------------------------------

# One row per plan: the waves cut from one assessment, with the planner's options.
plans = sa.Table(
    "plans", metadata,
    sa.Column("id", sa.String(32), primary_key=True),  # e.g. 20261126-013000-ab12
    sa.Column("created_at", UtcDateTime, nullable=False),
    # No cascade: an assessment a plan was cut from (and maybe run) must not vanish under it.
    sa.Column("assessment_id", sa.String(32), sa.ForeignKey("assessments.id"), nullable=False),
    sa.Column("options_json", sa.Text, nullable=False),
    sa.Column("summary_json", sa.Text, nullable=False),
    sa.Column("wave_count", sa.Integer, nullable=False),
    sa.Column("vm_count", sa.Integer, nullable=False),
    sa.Column("tool_version", sa.Text, nullable=False),
    sa.Index("ix_plans_created_at", "created_at"),
)

# The wave items of a plan, in load order: one row per VM (all text "" when unknown, never NULL).
PLAN_VM_FIELDS: tuple[str, ...] = (
    "wave", "position", "vm_key", "vm_id", "vm_name", "subscription_id", "vault_id", "vault",
    "item_id", "source_policy_id", "source_policy", "target_policy", "irreversible",
    "rollback_policy", "readiness", "warnings",
)
_PLAN_VM_TYPES: dict[str, Any] = {"wave": sa.Integer, "position": sa.Integer,
                                  "vm_key": sa.String(ARM_ID), "vm_id": sa.String(ARM_ID),
                                  "irreversible": sa.Boolean}

plan_vms = sa.Table(
    "plan_vms", metadata,
    sa.Column("plan_id", sa.String(32), sa.ForeignKey("plans.id", ondelete="CASCADE"),
              nullable=False),
    *(sa.Column(name, _PLAN_VM_TYPES.get(name, sa.Text), nullable=False)
      for name in PLAN_VM_FIELDS),
    sa.PrimaryKeyConstraint("plan_id", "vm_key"),
    sa.CheckConstraint("wave >= 1", name="ck_plan_vms_wave"),
    sa.Index("ix_plan_vms_plan_id_wave", "plan_id", "wave", "position"),
)

# The policies a plan needs per vault: crash-consistent clones, and the Enhanced app-consistent
# clones that irreversible (Standard-policy) VMs roll back to.
PLAN_POLICY_FIELDS: tuple[str, ...] = (
    "vault_id", "policy_name", "vault", "kind", "source_policy_id", "source_policy",
    "first_wave", "body_json",
)
plan_policies = sa.Table(
    "plan_policies", metadata,
    sa.Column("plan_id", sa.String(32), sa.ForeignKey("plans.id", ondelete="CASCADE"),
              nullable=False),
    sa.Column("vault_id", sa.String(ARM_ID), nullable=False),
    sa.Column("policy_name", sa.String(256), nullable=False),
    sa.Column("vault", sa.Text, nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),  # crash_clone | app_clone_for_rollback
    sa.Column("source_policy_id", sa.Text, nullable=False),
    sa.Column("source_policy", sa.Text, nullable=False),
    sa.Column("first_wave", sa.Integer, nullable=False),
    sa.Column("body_json", sa.Text, nullable=False),  # "{}" when the planner left it to the runner
    sa.PrimaryKeyConstraint("plan_id", "vault_id", "policy_name"),
)

# One row per wave of a plan: its size and where running it got to.
waves = sa.Table(
    "waves", metadata,
    sa.Column("plan_id", sa.String(32), sa.ForeignKey("plans.id", ondelete="CASCADE"),
              nullable=False),
    sa.Column("wave", sa.Integer, nullable=False),
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # planned running done halted partial
    sa.Column("started_at", UtcDateTime, nullable=True),
    sa.Column("finished_at", UtcDateTime, nullable=True),
    sa.Column("counts_json", sa.Text, nullable=False),
    sa.Column("halted_reason", sa.Text, nullable=True),
    sa.PrimaryKeyConstraint("plan_id", "wave"),
)

# The per-VM journal: where each VM of a plan is, written before every change in Azure.
journal = sa.Table(
    "journal", metadata,
    sa.Column("plan_id", sa.String(32), nullable=False),
    sa.Column("vm_key", sa.String(ARM_ID), nullable=False),
    sa.Column("wave", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("step", sa.String(32), nullable=False),  # "" until begun
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
    sa.Column("runner", sa.Text, nullable=True),  # host:pid of the last writer
    sa.PrimaryKeyConstraint("plan_id", "vm_key"),
    sa.ForeignKeyConstraint(["plan_id", "vm_key"], ["plan_vms.plan_id", "plan_vms.vm_key"],
                            ondelete="CASCADE"),
    sa.Index("ix_journal_plan_id_wave_status", "plan_id", "wave", "status"),
)

# Append-only history of the journal, one row per change: what an auditor replays.
journal_events = sa.Table(
    "journal_events", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
              autoincrement=True),
    sa.Column("plan_id", sa.String(32), nullable=False),
    sa.Column("vm_key", sa.String(ARM_ID), nullable=False),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("step", sa.String(32), nullable=False),
    sa.Column("runner", sa.Text, nullable=False),
    sa.Column("detail_json", sa.Text, nullable=False),
    sa.ForeignKeyConstraint(["plan_id", "vm_key"], ["journal.plan_id", "journal.vm_key"],
                            ondelete="CASCADE"),
    sa.Index("ix_journal_events_plan_id_vm_key_id", "plan_id", "vm_key", "id"),
)

# At most one runner per wave: the row is the lock, its heartbeat keeps it.
wave_leases = sa.Table(
    "wave_leases", metadata,
    sa.Column("plan_id", sa.String(32), nullable=False),
    sa.Column("wave", sa.Integer, nullable=False),
    sa.Column("owner_host", sa.Text, nullable=False),
    sa.Column("owner_pid", sa.Integer, nullable=False),
    # Where owner_pid names a process: host, boot and PID namespace. Only a runner with the same
    # node may judge the owner dead by its pid; any other waits for the heartbeat to expire.
    sa.Column("owner_node", sa.Text, nullable=False),
    sa.Column("owner_token", sa.String(64), nullable=False),
    sa.Column("acquired_at", UtcDateTime, nullable=False),
    sa.Column("heartbeat_at", UtcDateTime, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),
    sa.PrimaryKeyConstraint("plan_id", "wave"),
    sa.ForeignKeyConstraint(["plan_id", "wave"], ["waves.plan_id", "waves.wave"],
                            ondelete="CASCADE"),
)
