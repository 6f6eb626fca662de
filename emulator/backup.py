"""Recovery Services backup routes, assembled into the one ``router`` the server mounts.

The parts: ``backup_policies`` (policies), ``backup_items`` (protected items, on-demand backup),
``backup_discovery`` (container refresh, protectable items),
``jobs`` (backup jobs), ``operations`` (async operations, the scheduler that completes them,
and the vault-level operation routes). ``support`` is the emulator's own crash-consistent
support table that decides which jobs fail.
"""

from __future__ import annotations

from . import backup_discovery, backup_items, backup_policies, jobs, operations
from .http import Router

router = Router()
for _part in (backup_policies.router, backup_items.router, backup_discovery.router, jobs.router,
              operations.router):
    router.routes.extend(_part.routes)

__all__ = ["router"]
