"""The state store: one database (SQLite file by default, any SQLAlchemy URL by setting) for
assessments, plans, waves, the per-VM journal and wave leases.

``open_store(url)`` returns a migrated engine. Repositories, one job each: ``assessments`` (the
assess flow writes, reports read), ``plans`` (the planner writes; runner and reports read; wave
status), ``journal`` (the wave runner's per-VM record, written before every change in Azure),
``leases`` (one runner per wave). Schema changes go through ``migrations.MIGRATIONS`` only.
"""

from __future__ import annotations

from .assessments import (
    AssessmentRecord,
    list_assessments,
    load_vms,
    new_assessment_id,
    normalize_scope,
    previous_of,
    resolve_assessment,
    save_assessment,
    scope_key,
)
from .db import StateStoreError, masked, open_store, write_transaction
from .journal import Journal, JournalEntry, JournalTransitionError
from .leases import (
    LeaseLostError,
    LeaseOwner,
    WaveBusyError,
    WaveLease,
    acquire_wave_lease,
    lease_holder,
    this_runner,
    wave_lease,
)
from .migrations import MIGRATIONS, Migration, migrate
from .plans import (
    PlanRecord,
    WaveRecord,
    get_wave,
    list_plans,
    list_waves,
    load_plan_policies,
    load_plan_vms,
    new_plan_id,
    resolve_plan,
    save_plan,
    set_wave_status,
    wave_numbers,
)

__all__ = [
    "MIGRATIONS",
    "AssessmentRecord",
    "Journal",
    "JournalEntry",
    "JournalTransitionError",
    "LeaseLostError",
    "LeaseOwner",
    "Migration",
    "PlanRecord",
    "StateStoreError",
    "WaveBusyError",
    "WaveLease",
    "WaveRecord",
    "acquire_wave_lease",
    "get_wave",
    "lease_holder",
    "list_assessments",
    "list_plans",
    "list_waves",
    "load_plan_policies",
    "load_plan_vms",
    "load_vms",
    "masked",
    "migrate",
    "new_assessment_id",
    "new_plan_id",
    "normalize_scope",
    "open_store",
    "previous_of",
    "resolve_assessment",
    "resolve_plan",
    "save_assessment",
    "save_plan",
    "scope_key",
    "set_wave_status",
    "this_runner",
    "wave_lease",
    "wave_numbers",
    "write_transaction",
]
