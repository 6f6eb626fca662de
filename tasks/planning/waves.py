"""Wave order and sizes.

Order: ``order_by`` first (``""`` = none; ``tag:NAME`` = that tag's value, lowest first,
numbers as numbers, VMs without the tag last), then subscription, vault and VM name. Keeping a
vault's VMs next to each other within the order means a wave touches few vaults, so per-vault
throttles and policy writes stay contained.

Sizes: wave 1 is the canary, then one wave per ramp step (a count, or ``"N%"`` of the plan's
VMs, rounded up), then ``wave_size`` until every VM is placed; the last wave takes what is left.
Steps are parsed and checked where every setting is (``tasks.settings.count_or_percent``), so
``--ramp``, the environment and the settings file give the same messages.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np
import pandas as pd

from .selection import tag_values

_PERCENT = re.compile(r"^(\d+(?:\.\d+)?)%$")


def resolve_ramp(ramp: Sequence[int | str], candidates: int) -> list[int]:
    """Ramp steps as VM counts: ``"N%"`` of ``candidates``, rounded up, at least 1."""
    sizes: list[int] = []
    for step in ramp:
        match = _PERCENT.match(str(step).strip())
        if match:
            sizes.append(max(1, math.ceil(float(match.group(1)) * candidates / 100)))
        else:
            sizes.append(int(step))
    return sizes


def size_of(index: int, canary: int, ramp: Sequence[int], wave_size: int) -> int:
    """The size of the ``index``-th wave (0 = the canary) in the size sequence."""
    if index == 0:
        return canary
    if index <= len(ramp):
        return ramp[index - 1]
    return wave_size


def wave_sizes(total: int, canary: int, ramp: Sequence[int], wave_size: int, *,
               start: int = 0) -> list[int]:
    """Sizes of the waves that hold ``total`` VMs, continuing the sequence at wave index
    ``start`` (a later batch carries on where the one before stopped); the last may be
    smaller than its step."""
    sizes: list[int] = []
    left = total
    index = start
    while left > 0:
        size = min(size_of(index, canary, ramp, wave_size), left)
        sizes.append(size)
        left -= size
        index += 1
    return sizes


def _sort_text(values: pd.Series) -> pd.Series:
    return values.astype("string").fillna("").str.casefold()


def order_vms(vms: pd.DataFrame, order_by: str = "") -> pd.Index:
    """``vms``' index in wave order."""
    keys: dict[str, pd.Series] = {}
    if order_by:
        if not order_by.lower().startswith("tag:"):
            raise ValueError(f"order_by must be '' or 'tag:NAME', not {order_by!r}")
        value = tag_values(vms, order_by[4:])
        number = pd.to_numeric(value, errors="coerce")
        keys["_missing"] = value.isna()
        keys["_text_value"] = number.isna() & value.notna()  # numbers before words
        keys["_number"] = number.fillna(0.0)
        keys["_value"] = _sort_text(value)
    for column in ("subscription_id", "vault_id", "vm_name", "vm_key"):
        keys[f"_{column}"] = (_sort_text(vms[column]) if column in vms.columns
                              else pd.Series("", index=vms.index))
    frame = pd.DataFrame(keys, index=vms.index)
    return frame.sort_values(list(keys), kind="stable").index


def reversible_canary(order: pd.Index, irreversible: pd.Series, canary: int) -> pd.Index:
    """``order`` with the canary wave made of reversible VMs where there are enough: the first
    ``canary`` reversible VMs move to the front, everything else keeps its place. A canary is
    the trial run; a Standard-policy VM's move can't be undone, so it never goes first unless
    the plan holds nothing else."""
    flags = irreversible.reindex(order).fillna(False).astype(bool).to_numpy()
    head = np.flatnonzero(~flags)[:canary]
    if not flags[:canary].any() or len(head) == 0:
        return order
    rest = np.setdiff1d(np.arange(len(order)), head, assume_unique=True)
    return order[np.concatenate([head, rest])]


def assign_waves(batch: pd.Series, canary: int, ramp: Sequence[int], wave_size: int) -> pd.Series:
    """Wave numbers (1..) for VMs given in wave order with their ``batch`` (0, 1, ...): batch
    0's VMs fill the first waves, batch 1's start a fresh wave after them, and so on; sizes
    follow one sequence across batches."""
    waves = np.zeros(len(batch), dtype="int64")
    values = batch.to_numpy()
    index = 0  # waves used so far
    for number in sorted(set(values.tolist())):
        rows = np.flatnonzero(values == number)
        sizes = wave_sizes(len(rows), canary, ramp, wave_size, start=index)
        waves[rows] = np.repeat(np.arange(index + 1, index + 1 + len(sizes)), sizes)
        index += len(sizes)
    return pd.Series(waves, index=batch.index, name="wave")


__all__ = [
    "assign_waves",
    "order_vms",
    "resolve_ramp",
    "reversible_canary",
    "size_of",
    "wave_sizes",
]
