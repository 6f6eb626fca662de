"""Comparing two assessments: each kind of change is found, named in a fixed order, and only
changed VMs are listed; the counts and changes.csv say the same thing."""

from __future__ import annotations

import csv
import json

import numpy as np
import pandas as pd
import pytest

from reports.changes import (
    CHANGE_COLUMNS,
    CHANGE_KINDS,
    compare,
    summarize_changes,
    write_changes_csv,
)
from tasks.inventory.schema import READINESS_VALUES

SUB = "11111111-1111-1111-1111-111111111111"


def _vm_id(name: str) -> str:
    return (f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/"
            f"virtualMachines/{name}")


def frame(*vms: tuple[str, str, str]) -> pd.DataFrame:
    """A stored-style VM frame from (name, readiness, blockers) triples."""
    ids = [_vm_id(name) for name, _, _ in vms]
    return pd.DataFrame({
        "vm_id": ids, "vm_key": [i.lower() for i in ids], "vm_name": [n for n, _, _ in vms],
        "subscription_id": SUB, "vault": "vault-1", "readiness": [r for _, r, _ in vms],
        "blockers": [b for _, _, b in vms]}).astype("string")


def by_name(changes: pd.DataFrame) -> dict[str, dict[str, str]]:
    return {row["vm_name"]: row for row in changes.to_dict("records")}


def test_each_kind_of_change_is_found_and_unchanged_vms_are_left_out():
    before = frame(("same", "ready", ""), ("to-cc", "ready", ""),
                   ("worse", "ready", ""), ("fixed", "not_ready", "SHARED_DISK;ULTRA_DISK"),
                   ("gone", "not_protected", ""))
    after = frame(("same", "ready", ""), ("to-cc", "already_crash_consistent", ""),
                  ("worse", "not_ready", "ULTRA_DISK;SHARED_DISK"),
                  ("fixed", "not_ready", "ULTRA_DISK"), ("new", "ready", ""))
    changes = by_name(compare(before, after))
    assert set(changes) == {"to-cc", "worse", "fixed", "gone", "new"}
    assert changes["to-cc"]["change"] == "moved_to_crash_consistent;readiness_changed"
    assert changes["worse"]["change"] == "readiness_changed;new_blockers"
    assert changes["worse"]["new_blockers"] == "SHARED_DISK;ULTRA_DISK"  # sorted
    assert changes["fixed"]["change"] == "resolved_blockers"
    assert changes["fixed"]["resolved_blockers"] == "SHARED_DISK"
    assert changes["fixed"]["blockers_before"] == "SHARED_DISK;ULTRA_DISK"
    assert changes["fixed"]["blockers_after"] == "ULTRA_DISK"
    assert changes["gone"]["change"] == "removed"
    assert (changes["gone"]["readiness_before"], changes["gone"]["readiness_after"]) == (
        "not_protected", "")
    assert changes["gone"]["vault"] == "vault-1"  # a removed VM keeps its identity
    assert changes["new"]["change"] == "added"
    assert (changes["new"]["readiness_before"], changes["new"]["readiness_after"]) == ("", "ready")


def test_all_kinds_on_one_vm_keep_the_fixed_order():
    before = frame(("vm", "not_ready", "B;C"))
    after = frame(("vm", "already_crash_consistent", "A;C"))
    row = compare(before, after).iloc[0]
    assert row["change"] == ("moved_to_crash_consistent;readiness_changed;new_blockers;"
                             "resolved_blockers")
    assert (row["new_blockers"], row["resolved_blockers"]) == ("A", "B")


def test_columns_are_stable_and_rows_sorted_by_vm_id():
    before = frame(*[(f"vm-{i}", "ready", "") for i in (3, 1, 2)])
    after = frame(*[(f"vm-{i}", "not_ready", "") for i in (2, 3)], ("vm-0", "ready", ""))
    changes = compare(before, after)
    assert list(changes.columns) == CHANGE_COLUMNS
    assert changes["vm_name"].tolist() == ["vm-0", "vm-1", "vm-2", "vm-3"]
    assert changes["change"].tolist() == ["added", "removed", "readiness_changed",
                                          "readiness_changed"]


def test_a_vm_is_the_same_vm_when_only_its_id_case_changed():
    before = frame(("VM-A", "ready", "X"))
    after = before.copy()
    after["vm_id"] = after["vm_id"].str.replace("resourceGroups/rg", "resourceGroups/RG")
    assert compare(before, after).empty


def test_a_moved_to_crash_consistent_vm_must_have_existed_before():
    before = frame(("old", "already_crash_consistent", ""))
    after = frame(("old", "already_crash_consistent", "SHARED_DISK"),
                  ("new", "already_crash_consistent", ""))
    changes = by_name(compare(before, after))
    assert changes["new"]["change"] == "added"
    assert changes["old"]["change"] == "new_blockers"  # already there: not a move


def test_missing_values_and_frames_without_a_key_compare_as_empty():
    before = frame(("vm", "ready", "")).drop(columns="vm_key")
    after = frame(("vm", "ready", ""))
    after.loc[0, "blockers"] = pd.NA
    after.loc[0, "vm_name"] = pd.NA
    assert compare(before, after).empty


def test_no_vms_on_either_side_gives_an_empty_frame_with_the_columns():
    empty = frame()
    changes = compare(empty, empty)
    assert changes.empty and list(changes.columns) == CHANGE_COLUMNS
    summary = summarize_changes(changes, "a", "b")
    assert summary["changed_vms"] == 0
    assert summary["by_change"] == dict.fromkeys(CHANGE_KINDS, 0)


def test_a_frame_that_repeats_a_vm_is_refused():
    twice = frame(("vm", "ready", ""), ("vm", "ready", ""))
    with pytest.raises(ValueError, match="repeats vm_key"):
        compare(twice, frame())


def test_summary_counts_each_kind_transitions_and_blocker_rules():
    before = frame(("a", "ready", ""), ("b", "ready", ""), ("c", "not_ready", "X;Y"),
                   ("gone", "ready", ""))
    after = frame(("a", "not_ready", "X"), ("b", "not_ready", "X"),
                  ("c", "already_crash_consistent", "Y"), ("new", "unknown", ""))
    summary = summarize_changes(compare(before, after), "20261124-1", "20261125-2")
    assert json.loads(json.dumps(summary)) == summary
    assert summary["previous_id"] == "20261124-1" and summary["current_id"] == "20261125-2"
    assert summary["changed_vms"] == 5
    assert summary["by_change"] == {"moved_to_crash_consistent": 1, "readiness_changed": 3,
                                    "new_blockers": 2, "resolved_blockers": 1, "added": 1,
                                    "removed": 1}
    assert summary["readiness_transitions"] == {"ready -> not_ready": 2,
                                                "not_ready -> already_crash_consistent": 1}
    assert summary["new_blockers_by_rule"] == {"X": 2}
    assert summary["resolved_blockers_by_rule"] == {"X": 1}


def test_changes_csv_has_a_header_and_neutralises_formulas(tmp_path):
    hostile = '=HYPERLINK("http://x")'
    changes = compare(frame(), frame((hostile, "ready", ""), ("plain-é", "ready", "")))
    path = write_changes_csv(changes, tmp_path / "changes.csv")
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == CHANGE_COLUMNS
    names = {row[1] for row in rows[1:]}
    assert names == {"'" + hostile, "plain-é"}
    assert path.read_bytes().count(b"\r") == 0


def test_100k_vms_compare_with_every_kind_counted_right():
    n = 100_000
    rng = np.random.default_rng(5)
    names = [f"vm-{i:06d}" for i in range(n)]
    readiness = rng.choice(READINESS_VALUES, n)
    before = frame(*zip(names, readiness, rng.choice(["", "A", "A;B"], n), strict=True))
    after = before.iloc[10:].copy()  # the first 10 VMs are gone
    moved = np.arange(10, n, 10)
    after.loc[moved, "readiness"] = np.where(readiness[moved] == "ready", "not_ready", "ready")
    after.loc[moved + 1, "blockers"] = "A;B;C"
    changes = compare(before, after)
    summary = summarize_changes(changes, "a", "b")
    assert summary["by_change"]["removed"] == 10
    assert summary["by_change"]["readiness_changed"] == len(moved)
    assert summary["new_blockers_by_rule"]["C"] == len(moved)
    assert changes["vm_id"].is_monotonic_increasing


def test_a_scored_inventory_equals_its_stored_copy():
    """The assess flow compares the stored previous run with the frame it just scored (all
    inventory columns, nullable dtypes, <NA> names): the same VMs must come out unchanged."""
    from tasks.state.tables import VM_FIELDS
    from tests.state.frames import scored_frame

    scored = scored_frame(500)
    stored = scored[list(VM_FIELDS)].astype("string").fillna("").sort_values("vm_key")
    assert compare(stored, scored).empty
    later = scored.copy()
    later.loc[later.index[:3], "readiness"] = "already_crash_consistent"
    later.loc[later.index[:3], "blockers"] = ""
    changes = compare(stored, later)
    first = scored.iloc[:3]
    moved = first[(first["readiness"] != "already_crash_consistent") | (first["blockers"] != "")]
    assert len(moved) and set(changes["vm_id"]) == set(moved["vm_id"])
    assert (changes["readiness_after"] == "already_crash_consistent").all()
