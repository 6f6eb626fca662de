"""`ccmigrate report` as a user runs it, over a state store holding assessments saved the way
`ccmigrate assess` saves them: show, list and diff print what a user needs, diff writes a
formula-safe changes.csv, and every mistake is one line and exit code 2."""

from __future__ import annotations

import csv
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from reports.summary import build_summary
from tasks.rules.engine import load_pack
from tasks.settings import Rules
from tasks.state import AssessmentRecord, open_store, save_assessment
from tests.cli.helpers import no_traceback, run_cli

SUB = "11111111-1111-1111-1111-111111111111"
OTHER_SUB = "22222222-2222-2222-2222-222222222222"
SCOPE = {"subscriptions": [SUB], "management_groups": [], "cloud": "public"}
T0 = datetime(2026, 11, 24, 22, 0, 5, tzinfo=UTC)
HOSTILE = '=HYPERLINK("http://x")'
PACK = load_pack(Rules())  # the default pack, as `ccmigrate assess` uses it


def _vm_id(name: str, sub: str = SUB) -> str:
    return (f"/subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.Compute/"
            f"virtualMachines/{name}")


def _scored(rows: list[tuple[str, str, str]], sub: str = SUB) -> pd.DataFrame:
    """A scored frame from (vm name, readiness, blockers)."""
    return pd.DataFrame({
        "vm_id": [_vm_id(n, sub) for n, _, _ in rows], "vm_name": [n for n, _, _ in rows],
        "subscription_id": sub, "resource_group": "rg", "location": "eastus",
        "vault": "vault-1", "readiness": [r for _, r, _ in rows],
        "blockers": [b for _, _, b in rows], "warnings": "", "unknowns": "", "infos": ""})


def _save(url: str, rows: list[tuple[str, str, str]], *, hours: int, scope: dict = SCOPE,
          sub: str = SUB, summary: dict | None = None) -> AssessmentRecord:
    """Save one assessment with the summary `ccmigrate assess` would have built for it."""
    created = T0 + timedelta(hours=hours)
    scored = _scored(rows, sub)
    record = AssessmentRecord.new(scope, now=created, rule_pack="ga-2025-07")
    if summary is None:
        summary = build_summary(
            scored, assessment_id=record.id, scope=scope, pack=PACK, cloud="public",
            requests={"resource_graph": 3}, partial_errors=[], timings={"total": 1.0},
            excluded_vms=0, tool_version="0.1.0", created_at=created.isoformat())
    record.summary = summary
    engine = open_store(url)
    try:
        save_assessment(engine, record, scored)
    finally:
        engine.dispose()
    return record


BEFORE = [("vm-1", "ready", ""), ("vm-2", "ready", ""),
          ("vm-3", "not_ready", "SHARED_DISK;ULTRA_DISK"), ("vm-4", "ready", ""),
          ("vm-5", "not_protected", "")]
AFTER = [("vm-1", "already_crash_consistent", ""), ("vm-2", "not_ready", "SHARED_DISK"),
         ("vm-3", "not_ready", "ULTRA_DISK"), ("vm-4", "ready", ""), (HOSTILE, "ready", "")]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> SimpleNamespace:
    """A state store with two assessments of one scope, a day apart."""
    url = f"sqlite:///{tmp_path_factory.mktemp('report') / 'state.db'}"
    first = _save(url, BEFORE, hours=0)
    second = _save(url, AFTER, hours=24)
    return SimpleNamespace(url=url, first=first, second=second)


def _report(store: SimpleNamespace, *args: str, cwd: Path | None = None):
    return run_cli("report", *args, "--state-store", store.url, cwd=cwd)


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def test_diff_prints_counts_transitions_and_examples_and_writes_changes_csv(store, tmp_path):
    proc = _report(store, "diff", store.first.id, store.second.id, "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert f"Changes from {store.first.id} (2026-11-24 22:00 UTC, 5 VM(s)) to " \
           f"{store.second.id} (2026-11-25 22:00 UTC, 5 VM(s)): 5 VM(s) changed" in out
    for kind, n in [("moved_to_crash_consistent", 1), ("readiness_changed", 2),
                    ("new_blockers", 1), ("resolved_blockers", 1), ("added", 1),
                    ("removed", 1)]:
        assert re.search(rf"^  {kind}\s+{n}$", out, re.M), kind
    assert re.search(r"Ready -> Already crash-consistent\s+1$", out, re.M)
    assert re.search(r"Ready -> Not ready\s+1$", out, re.M)
    assert re.search(r"vm-2\s+readiness_changed;new_blockers\s+Ready -> Not ready; "
                     r"new blockers SHARED_DISK", out)
    assert re.search(r"vm-5\s+removed\s+was Not protected$", out, re.M)
    assert f"changes.csv: {tmp_path / 'changes.csv'}" in out
    assert proc.stderr == ""  # same scope: no warning

    rows = _rows(tmp_path / "changes.csv")
    assert [r["vm_name"] for r in rows] == ["'" + HOSTILE, "vm-1", "vm-2", "vm-3", "vm-5"]
    vm3 = rows[3]
    assert (vm3["change"], vm3["resolved_blockers"], vm3["blockers_before"]) == (
        "resolved_blockers", "SHARED_DISK", "SHARED_DISK;ULTRA_DISK")


def test_changes_csv_neutralises_a_hostile_vm_name(store, tmp_path):
    proc = _report(store, "diff", "previous", "latest", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    text = (tmp_path / "changes.csv").read_text(encoding="utf-8")
    assert not any(line.split(",")[1].startswith("=") for line in text.splitlines()[1:])
    added = next(r for r in _rows(tmp_path / "changes.csv") if r["change"] == "added")
    assert added["vm_name"] == "'" + HOSTILE
    assert added["readiness_after"] == "ready"


def test_diff_without_arguments_compares_previous_with_latest_into_the_current_folder(
        store, tmp_path):
    proc = _report(store, "diff", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f"Changes from {store.first.id} " in proc.stdout
    assert len(_rows(tmp_path / "changes.csv")) == 5


def test_diff_of_an_assessment_with_itself_is_bad_input(store, tmp_path):
    proc = _report(store, "diff", store.second.id, "latest", "--out", str(tmp_path))
    assert proc.returncode == 2
    assert no_traceback(proc)
    assert f"both name assessment {store.second.id}" in proc.stderr
    assert not (tmp_path / "changes.csv").exists()


def test_diff_with_an_unknown_id_names_the_recent_ones(store, tmp_path):
    proc = _report(store, "diff", "19990101-000000-dead", "latest", "--out", str(tmp_path))
    assert proc.returncode == 2
    assert no_traceback(proc)
    assert "no assessment '19990101-000000-dead'" in proc.stderr
    assert store.second.id in proc.stderr  # "most recent: ..."
    assert len(proc.stderr.strip().splitlines()) == 1


def test_diff_into_a_path_that_is_a_file_is_bad_input(store, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    proc = _report(store, "diff", "--out", str(blocker / "sub"))
    assert proc.returncode == 2
    assert no_traceback(proc)
    assert "--out" in proc.stderr


def test_diff_warns_on_one_line_when_the_scopes_differ(tmp_path):
    url = f"sqlite:///{tmp_path / 'state.db'}"
    a = _save(url, BEFORE, hours=0)
    other = {"subscriptions": [OTHER_SUB], "management_groups": [], "cloud": "public"}
    b = _save(url, [("vm-9", "ready", "")], hours=1, scope=other, sub=OTHER_SUB)
    proc = run_cli("report", "diff", a.id, b.id, "--out", str(tmp_path),
                   "--state-store", url)
    assert proc.returncode == 0, proc.stderr
    warnings = [ln for ln in proc.stderr.splitlines() if "warning" in ln]
    assert len(warnings) == 1 and "different scopes" in warnings[0]
    assert re.search(r"^  removed\s+5$", proc.stdout, re.M)
    assert re.search(r"^  added\s+1$", proc.stdout, re.M)


def test_diff_with_no_changes_says_so(tmp_path):
    url = f"sqlite:///{tmp_path / 'state.db'}"
    a = _save(url, BEFORE, hours=0)
    b = _save(url, BEFORE, hours=1)
    proc = run_cli("report", "diff", a.id, b.id, "--out", str(tmp_path), "--state-store", url)
    assert proc.returncode == 0, proc.stderr
    assert "no VM changed" in proc.stdout
    assert _rows(tmp_path / "changes.csv") == []


def test_show_prints_the_latest_summary_as_assess_printed_it(store):
    proc = _report(store, "show")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert f"Assessment {store.second.id}: 5 VMs in 1 subscription(s), rule pack ga-2025-07" \
           in out
    assert re.search(r"Ready\s+2\s+40\.0%", out)
    assert re.search(r"Already crash-consistent\s+1\s+20\.0%", out)
    assert "Top blockers: SHARED_DISK (1), ULTRA_DISK (1)" in out
    assert "Recorded: 2026-11-25 22:00 UTC" in out


def test_show_by_id_prefix_and_as_json(store):
    proc = _report(store, "show", store.first.id[:-2], "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["assessment_id"] == store.first.id
    assert summary["by_readiness"]["ready"] == 3


def test_show_copes_with_a_summary_missing_optional_keys(tmp_path):
    url = f"sqlite:///{tmp_path / 'state.db'}"
    record = _save(url, BEFORE, hours=0, summary={"assessment_id": "x", "vms": 5})
    proc = run_cli("report", "show", record.id, "--state-store", url)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"Ready\s+3\s+60\.0%", proc.stdout)  # from the stored counts
    assert no_traceback(proc)


def test_show_on_an_empty_store_says_to_run_assess_first(tmp_path):
    proc = run_cli("report", "show", "--state-store", f"sqlite:///{tmp_path / 'empty.db'}")
    assert proc.returncode == 2
    assert no_traceback(proc)
    assert "run `ccmigrate assess` first" in proc.stderr


def test_list_shows_recent_assessments_newest_first(store):
    proc = _report(store, "list")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("ID") and "Not ready" in lines[0]
    assert lines[1].startswith(store.second.id) and lines[2].startswith(store.first.id)
    assert "2026-11-25 22:00" in lines[1]
    assert re.search(r"\s5\s+2\s+0\s+2\s+1\s+0\s+0\s+public, 1 subscription\(s\)", lines[1])
