"""Column helpers shared by the checks: case-insensitive matching and disk-to-VM roll-ups.

Azure compares enum values and names case-insensitively and returns them in mixed case, so every
comparison here casefolds both sides. Missing values never fire a rule by themselves: a check
that needs a missing fact to decide is an ``unknown`` rule of its own.

Text columns hold few distinct values (states, sizes, regions, publishers) over many rows, and
pandas' Python-backed string methods cost a Python call per row. So matching is done on the
distinct values only (``pd.factorize``, a C hash pass) and spread back with one ``take``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from itertools import chain

import numpy as np
import pandas as pd

from tasks.inventory.schema import distinct


def objects(series: pd.Series) -> np.ndarray:
    """The column's values as an object array, without a per-row pass (a string column hands
    over its backing array; missing values stay NA, which ``pd.factorize`` codes as -1)."""
    return np.asarray(series.array, dtype=object)


def _normalize(value: object) -> str:
    return "" if value is None or value is pd.NA else str(value).strip().casefold()


# Within ``factorized_once()``: a column's backing array -> (that array, codes, uniques), so
# the checks that read one column (the disks' storage types and skus, the image publisher)
# hash its values once per evaluation, not once per check.
_FACTORIZED: ContextVar[dict[int, tuple] | None] = ContextVar("factorized", default=None)


@contextmanager
def factorized_once() -> Iterator[None]:
    """While open, ``per_value`` factorizes each column array once (the frames must not change
    meanwhile: the rule engine evaluates its own copies)."""
    token = _FACTORIZED.set({})
    try:
        yield
    finally:
        _FACTORIZED.reset(token)


def _factorize(series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    cache = _FACTORIZED.get()
    if cache is None:
        return pd.factorize(objects(series))
    array = series.array
    hit = cache.get(id(array))
    if hit is None or hit[0] is not array:  # the array is kept, so its id is not reused
        hit = cache[id(array)] = (array, *pd.factorize(objects(series)))
    return hit[1], hit[2]


def per_value(series: pd.Series, test: Callable[[str], bool]) -> pd.Series:
    """``test`` applied to each distinct casefolded, stripped value (missing -> ``""``), spread
    back to every row as a bool Series on ``series.index``."""
    codes, uniques = _factorize(series)
    hits = np.fromiter((bool(test(_normalize(u))) for u in uniques), dtype=bool,
                       count=len(uniques))
    hits = np.append(hits, bool(test("")))  # code -1 (missing) takes the last slot
    return pd.Series(hits[codes], index=series.index)


def equals_any(series: pd.Series, values: Iterable[str]) -> pd.Series:
    """True where the value equals one of ``values``, ignoring case and outer spaces."""
    wanted = {_normalize(v) for v in values}
    return per_value(series, wanted.__contains__)


def flag(series: pd.Series) -> pd.Series:
    """A nullable boolean column as plain bool; <NA> counts as False."""
    return series.astype("boolean").fillna(False).astype(bool)


# Column the engine adds to its copy of the disks frame: the position of each disk's VM row.
VM_ROW = "_vm_row"
NO_JOIN = -2


def vm_rows(vms: pd.DataFrame, disks: pd.DataFrame) -> np.ndarray:
    """Position in ``vms`` of each disk's VM: -1 for a disk whose VM is not in the frame, and
    ``NO_JOIN`` everywhere if ``vm_key`` repeats (then ``any_disk`` matches by key)."""
    keys = pd.Index(objects(vms["vm_key"]))
    if not keys.is_unique:
        return np.full(len(disks), NO_JOIN, dtype=np.int64)
    return keys.get_indexer(objects(disks["vm_key"]))


def any_disk(vms: pd.DataFrame, disks: pd.DataFrame, mask: pd.Series) -> pd.Series:
    """Roll a per-disk mask up to the VMs: True for a VM with at least one disk in ``mask``.

    Same answer as ``mask.groupby(disks["vm_key"]).any()`` mapped onto ``vms["vm_key"]``. The
    engine joins disks to VM rows once (``VM_ROW``), so this is one scatter of the flagged rows;
    without that column it is one ``isin`` over the flagged disks' keys.
    """
    hit = mask.astype("boolean").fillna(False).to_numpy(bool)
    rows = disks[VM_ROW].to_numpy() if VM_ROW in disks.columns else None
    if rows is None or (rows == NO_JOIN).any():
        flagged = disks.loc[hit, "vm_key"]
        return vms["vm_key"].isin(flagged.unique()).astype(bool)
    picked = rows[hit]
    out = np.zeros(len(vms), dtype=bool)
    out[picked[picked >= 0]] = True
    return pd.Series(out, index=vms.index)


def has_tag(tags: pd.Series, name: str, value: str) -> pd.Series:
    """True where a dict cell has tag ``name`` (any case) with ``value`` (any case; ``""``
    matches any value). The cells are flattened once into (row, name, value) arrays, then
    names and values are matched on their distinct values; cells that are one object
    (``schema.TagSets``) are looked at once."""
    codes, distinct_cells = distinct(tags.to_numpy(dtype=object))
    cells = [t if isinstance(t, Mapping) else {} for t in distinct_cells]
    counts = np.fromiter(map(len, cells), dtype=np.int64, count=len(cells))
    rows = np.repeat(np.arange(len(cells)), counts)
    names = pd.Series(list(chain.from_iterable(cells)), dtype=object)
    values = pd.Series(list(chain.from_iterable(c.values() for c in cells)), dtype=object)
    hit = equals_any(names, [name]).to_numpy()
    if value:
        hit = hit & equals_any(values, [value]).to_numpy()
    out = np.zeros(len(cells), dtype=bool)
    out[rows[hit]] = True
    return pd.Series(out[codes], index=tags.index)


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
