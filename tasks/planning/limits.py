"""Recovery Services vault limits a plan must respect (Azure Backup FAQ; api-notes section 5):

- at most 200 backup policies per vault: the vault's existing policies plus the ones the plan
  creates; groups whose new policies would pass it stay out of the plan;
- at most 50 policy creates or edits per vault in 24 hours, the rollback policies a
  Standard-policy VM may need on demand included: groups whose writes come after a vault's
  first 50 go into later waves that wait 24 h after the wave that used the 50th write.

Both work on *groups*: the VMs of one vault on one source policy, which need the same policies
(a crash-consistent clone, and for a Standard source also its app-consistent rollback copy).
A group moves or waits as a whole, so a policy is never needed before it may be written.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

MAX_POLICIES_PER_VAULT = 200
MAX_POLICY_WRITES_PER_DAY = 50
WRITE_WINDOW_HOURS = 24


def over_policy_limit(groups: pd.DataFrame, existing: pd.Series,
                      limit: int = MAX_POLICIES_PER_VAULT) -> pd.Series:
    """True for the groups whose new policies don't fit their vault. ``groups``: ``vault_key``,
    ``first_pos`` (where the group's first VM stands in the wave order) and ``creates``;
    ``existing``: policies per ``vault_key`` today. Earlier groups get the room first; groups
    that create nothing always fit."""
    if groups.empty:
        return pd.Series(False, index=groups.index, dtype=bool)
    ordered = groups.sort_values(["vault_key", "first_pos"], kind="stable")
    used = ordered.groupby("vault_key", sort=False)["creates"].cumsum()
    have = ordered["vault_key"].map(existing).fillna(0).astype("int64")
    over = (ordered["creates"] > 0) & (have + used > limit)
    return over.reindex(groups.index).astype(bool)


def write_batches(groups: pd.DataFrame, limit: int = MAX_POLICY_WRITES_PER_DAY) -> pd.Series:
    """Each group's 24-hour batch (0 = now, 1 = after the first window, ...): per vault, groups
    in wave order are packed into batches of at most ``limit`` policy writes (``creates``).
    Groups that write nothing are batch 0. Only vaults over the limit need the packing loop,
    and it runs per group, not per VM."""
    batch = pd.Series(0, index=groups.index, dtype="int64")
    if groups.empty:
        return batch
    totals = groups.groupby("vault_key")["creates"].sum()
    for vault in totals[totals > limit].index:
        mine = groups[(groups["vault_key"] == vault) & (groups["creates"] > 0)]
        mine = mine.sort_values("first_pos", kind="stable")
        number, used = 0, 0
        out = np.zeros(len(mine), dtype="int64")
        for i, writes in enumerate(mine["creates"].tolist()):
            if used + writes > limit:
                number, used = number + 1, 0
            used += writes
            out[i] = number
        batch[mine.index] = out
    return batch


__all__ = [
    "MAX_POLICIES_PER_VAULT",
    "MAX_POLICY_WRITES_PER_DAY",
    "WRITE_WINDOW_HOURS",
    "over_policy_limit",
    "write_batches",
]
