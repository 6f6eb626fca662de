"""Column helpers shared by the checks: case-insensitive matching and disk-to-VM roll-ups.

Azure compares enum values and names case-insensitively and returns them in mixed case, so every
comparison here casefolds both sides. Missing values never fire a rule by themselves: a check
that needs a missing fact to decide is an ``unknown`` rule of its own.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd


def text(series: pd.Series) -> pd.Series:
    """The column as casefolded, stripped strings, ``""`` where missing."""
    return series.astype("string").fillna("").str.strip().str.casefold()


def equals_any(series: pd.Series, values: Iterable[str]) -> pd.Series:
    """True where the value equals one of ``values``, ignoring case."""
    wanted = [str(v).strip().casefold() for v in values]
    return text(series).isin(wanted).astype(bool)


def flag(series: pd.Series) -> pd.Series:
    """A nullable boolean column as plain bool; <NA> counts as False."""
    return series.astype("boolean").fillna(False).astype(bool)


def any_disk(vms: pd.DataFrame, disks: pd.DataFrame, mask: pd.Series) -> pd.Series:
    """Roll a per-disk mask up to the VMs: True for a VM with at least one disk in ``mask``.

    Same answer as ``mask.groupby(disks["vm_key"]).any()`` mapped onto ``vms["vm_key"]``, done
    as one ``isin`` over the keys of the flagged disks (no group objects, no Python loop).
    """
    flagged = disks.loc[mask.astype("boolean").fillna(False).to_numpy(bool), "vm_key"]
    return vms["vm_key"].isin(flagged.unique()).astype(bool)


# Readiness step 1 (supported-scenarios.md): protection stopped on purpose, ARM or ARG view.
STOPPED_ARM_STATES = ("ProtectionStopped", "BackupsSuspended", "ProtectionPaused")
STOPPED_ARG_STATES = ("ProtectionStopped", "SoftDeleted")


def active_item(vms: pd.DataFrame) -> pd.Series:
    """The VM's counted protected item exists and is not stopped, paused, suspended or
    soft-deleted (``protected`` already means so; the states are checked again so that an
    inconsistent row never counts as protected)."""
    stopped = (equals_any(vms["protection_state"], STOPPED_ARM_STATES)
               | equals_any(vms["arg_protection_state"], STOPPED_ARG_STATES))
    return flag(vms["protected"]) & ~stopped
