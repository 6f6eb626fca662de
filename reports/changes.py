"""What changed between two assessments of a fleet: one row per VM whose readiness or blockers
moved, or that appeared or disappeared. Vectorized (hash lookups and array operations, no
per-VM Python) so two 100k-VM assessments compare in well under a second."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .readiness_csv import write_csv

CRASH_CONSISTENT = "already_crash_consistent"
# The order kinds are listed in a row's ``change`` cell and in every count.
CHANGE_KINDS: tuple[str, ...] = ("moved_to_crash_consistent", "readiness_changed", "new_blockers",
                                 "resolved_blockers", "added", "removed")
CHANGE_COLUMNS: list[str] = ["vm_id", "vm_name", "subscription_id", "vault", "change",
                             "readiness_before", "readiness_after", "new_blockers",
                             "resolved_blockers", "blockers_before", "blockers_after"]
_IDENTITY = ("vm_id", "vm_name", "subscription_id", "vault")
_REQUIRED = ("vm_id", "readiness", "blockers")


def compare(previous: pd.DataFrame, current: pd.DataFrame) -> pd.DataFrame:
    """The VMs that changed from ``previous`` to ``current`` (frames like ``load_vms`` returns),
    columns ``CHANGE_COLUMNS``, string dtype with "" for none, sorted by ``vm_id``.

    VMs are matched on ``vm_key`` (the lower-cased ARM id), so a VM whose id only changed case
    is the same VM. Identity columns come from ``current`` unless the VM was removed.
    """
    before = _columns(previous, "previous")
    after = _columns(current, "current")
    # Rows of the comparison: every current VM (in its order), then the previous VMs now gone.
    # Plain object arrays and one hash lookup: several times faster than a merge of string
    # columns at 100k VMs.
    found = pd.Index(after["vm_key"]).get_indexer(before["vm_key"])  # -1: VM is gone
    gone = np.flatnonzero(found < 0)
    n_after = len(after["vm_key"])
    earlier = np.full(n_after, -1)  # current row -> its previous row, -1 when new
    earlier[found[found >= 0]] = np.flatnonzero(found >= 0)
    had = earlier >= 0
    in_before = np.concatenate([had, np.ones(len(gone), dtype=bool)])
    in_after = np.concatenate([np.ones(n_after, dtype=bool), np.zeros(len(gone), dtype=bool)])
    both = in_before & in_after

    def then(column: str) -> np.ndarray:
        values = np.full(n_after, "", dtype=object)
        values[had] = before[column][earlier[had]]
        return np.concatenate([values, before[column][gone]])

    def now(column: str) -> np.ndarray:
        return np.concatenate([after[column], np.full(len(gone), "", dtype=object)])

    def known(column: str) -> np.ndarray:  # identity: a removed VM is known by its old row
        return np.concatenate([after[column], before[column][gone]])

    r_before, r_after = then("readiness"), now("readiness")
    b_before, b_after = then("blockers"), now("blockers")
    new, resolved = _blocker_differences(b_before, b_after, both & (b_before != b_after))
    masks = {
        "moved_to_crash_consistent": both & (r_after == CRASH_CONSISTENT)
                                     & (r_before != CRASH_CONSISTENT),
        "readiness_changed": both & (r_before != r_after),
        "new_blockers": new != "",
        "resolved_blockers": resolved != "",
        "added": ~in_before,
        "removed": ~in_after,
    }
    label = np.full(len(in_before), "", dtype=object)
    for kind in CHANGE_KINDS:  # one column pass per kind, in the fixed order
        piece = np.where(label == "", kind, ";" + kind).astype(object)
        label = np.where(masks[kind], label + piece, label)
    changed = label != ""

    columns = {name: known(name)[changed] for name in _IDENTITY}
    columns.update({
        "change": label[changed], "readiness_before": r_before[changed],
        "readiness_after": r_after[changed], "new_blockers": new[changed],
        "resolved_blockers": resolved[changed], "blockers_before": b_before[changed],
        "blockers_after": b_after[changed]})
    out = pd.DataFrame(columns).sort_values("vm_id", kind="stable", ignore_index=True)
    return out[CHANGE_COLUMNS].astype("string")


def _columns(frame: pd.DataFrame, name: str) -> dict[str, np.ndarray]:
    """The columns a comparison reads, as object arrays of str with "" for none; ``vm_key``
    falls back to the lower-cased ``vm_id`` (frames saved before the key existed)."""
    missing = [c for c in _REQUIRED if c not in frame.columns]
    if missing:
        raise ValueError(f"the {name} frame lacks columns {missing}; pass load_vms() frames")
    n = len(frame)
    out: dict[str, np.ndarray] = {}
    for column in (*_IDENTITY, "readiness", "blockers", "vm_key"):
        if column not in frame.columns:
            out[column] = np.full(n, "", dtype=object)
            continue
        series = frame[column]
        if not (pd.api.types.is_string_dtype(series) or series.dtype == object):
            series = series.astype("string")
        out[column] = series.to_numpy(dtype=object, na_value="")
    keyless = out["vm_key"] == ""
    if keyless.any():
        out["vm_key"][keyless] = pd.Series(out["vm_id"][keyless], dtype=object).str.lower()
    keys = pd.Index(out["vm_key"])
    if not keys.is_unique:
        raise ValueError(f"the {name} frame repeats vm_key {keys[keys.duplicated()][0]!r}; "
                         "one row per VM expected")
    return out


def _blocker_differences(before: np.ndarray, after: np.ndarray, differs: np.ndarray,
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Per row: blocker ids only in ``after`` (new) and only in ``before`` (resolved), sorted,
    joined by ';', "" when none. Only rows whose blocker text ``differs`` are split, so an
    unchanged fleet costs one string comparison per VM."""
    rows = np.flatnonzero(differs)
    pos_b, rules_b = _split(rows, before[rows])
    pos_a, rules_a = _split(rows, after[rows])
    # Encode (row, rule) as one integer; rule codes follow the ids' sort order.
    codes, rules = pd.factorize(np.concatenate([rules_b, rules_a]), sort=True)
    width = max(len(rules), 1)
    pairs_b = np.unique(pos_b * width + codes[:len(rules_b)])
    pairs_a = np.unique(pos_a * width + codes[len(rules_b):])
    new = pairs_a[~np.isin(pairs_a, pairs_b)]
    resolved = pairs_b[~np.isin(pairs_b, pairs_a)]
    return (_joined(new, width, rules, len(before)),
            _joined(resolved, width, rules, len(before)))


def _split(rows: np.ndarray, joined: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row, rule id) per id in each ';'-joined cell, blanks dropped. A fleet has few distinct
    blocker combinations, so only those are split; rows find theirs by integer code."""
    codes, combos = pd.factorize(joined)
    code, ids = _split_unique(combos)
    pairs = pd.DataFrame({"code": codes, "row": rows}).merge(
        pd.DataFrame({"code": code, "rule": ids}), on="code", sort=False)
    return pairs["row"].to_numpy(dtype=np.int64), pairs["rule"].to_numpy(dtype=object)


def _split_unique(combos: Any) -> tuple[np.ndarray, np.ndarray]:
    """(index into ``combos``, id) for every non-blank id of every ';'-joined combination."""
    ids = pd.Series(np.asarray(combos, dtype=object), dtype=object).str.split(";").explode()
    ids = ids.str.strip()
    ids = ids[ids.notna() & (ids != "")]
    return ids.index.to_numpy(dtype=np.int64), ids.to_numpy(dtype=object)


def _joined(pairs: np.ndarray, width: int, rules: np.ndarray, n: int) -> np.ndarray:
    """From sorted (row * width + rule code) integers: per row its ids joined by ';'."""
    out = np.full(n, "", dtype=object)
    if not len(pairs):
        return out
    rows, codes = pairs // width, pairs % width
    first = np.concatenate([[True], rows[1:] != rows[:-1]])
    # The first id of a row stands alone, later ones carry their separator: one reduceat
    # concatenates each row's ids without a Python loop.
    plain = np.asarray(rules, dtype=object)
    joined_ids = np.where(first, plain[codes], (";" + pd.Series(plain, dtype=object))
                          .to_numpy(dtype=object)[codes])
    starts = np.flatnonzero(first)
    out[rows[starts]] = np.add.reduceat(joined_ids.astype(object), starts)
    return out


def summarize_changes(changes: pd.DataFrame, previous_id: str, current_id: str,
                      ) -> dict[str, Any]:
    """Counts for people and tools (JSON-serialisable): VMs per change kind (every kind, 0
    included), readiness transitions ``"before -> after"`` (most common first), and which
    blocker rules appeared or cleared on how many VMs."""
    kinds = _id_counts(changes["change"])
    pairs = changes[["readiness_before", "readiness_after"]].astype("string").fillna("")
    moved = pairs[(pairs["readiness_before"] != "") & (pairs["readiness_after"] != "")
                  & (pairs["readiness_before"] != pairs["readiness_after"])]
    transitions = {f"{before} -> {after}": n
                   for (before, after), n in moved.value_counts(sort=False).items()}
    return {
        "previous_id": previous_id,
        "current_id": current_id,
        "changed_vms": len(changes),
        "by_change": {kind: kinds.get(kind, 0) for kind in CHANGE_KINDS},
        "readiness_transitions": _ordered(transitions),
        "new_blockers_by_rule": _ordered(_id_counts(changes["new_blockers"])),
        "resolved_blockers_by_rule": _ordered(_id_counts(changes["resolved_blockers"])),
    }


def _id_counts(joined: pd.Series) -> dict[str, int]:
    """How many rows name each id of a ';'-joined column: the distinct combinations are
    counted first and only those split."""
    combos = joined.astype("string").fillna("").value_counts(sort=False)
    index, ids = _split_unique(combos.index)
    counts = pd.Series(combos.to_numpy(dtype=np.int64)[index]).groupby(ids).sum()
    return {str(k): int(v) for k, v in counts.items()}


def _ordered(counts: dict[str, Any]) -> dict[str, int]:
    """Most common first, ties by name, so the dict reads the same every run."""
    return {str(k): int(v) for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))}


def write_changes_csv(changes: pd.DataFrame, path: Path) -> Path:
    """``changes.csv``: header row, UTF-8, one row per changed VM in ``CHANGE_COLUMNS`` order;
    VM names come from Azure and may be hostile, so every cell is formula-safe."""
    return write_csv(changes[CHANGE_COLUMNS], path)
