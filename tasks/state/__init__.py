"""The state store: one database (SQLite file by default, any SQLAlchemy URL by setting) for
assessments and, as later issues land, plans, waves and the per-VM journal.

``open_store(url)`` returns a migrated engine; ``assessments`` is the repository the assess flow
writes and reports read. Schema changes go through ``migrations.MIGRATIONS`` only.
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
from .migrations import MIGRATIONS, Migration, migrate

__all__ = [
    "MIGRATIONS",
    "AssessmentRecord",
    "Migration",
    "StateStoreError",
    "list_assessments",
    "load_vms",
    "masked",
    "migrate",
    "new_assessment_id",
    "normalize_scope",
    "open_store",
    "previous_of",
    "resolve_assessment",
    "save_assessment",
    "scope_key",
    "write_transaction",
]
