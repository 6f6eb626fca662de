"""Prefect artifacts of an assessment: published from inside a real flow run against the test
session's Prefect API, read back by key through the Prefect client, as the UI would show them."""

from __future__ import annotations

import json
from pathlib import Path

from reports.artifacts import (
    BY_SUBSCRIPTION_KEY,
    FILES_KEY,
    SUMMARY_KEY,
    assessment_markdown,
    publish_assessment_artifacts,
    subscription_rows,
)
from reports.labels import READINESS_LABELS
from tasks.inventory.schema import READINESS_VALUES

SUB_A = "11111111-1111-1111-1111-111111111111"
SUB_B = "22222222-2222-2222-2222-222222222222"


def _summary(**changes) -> dict:
    summary = {
        "assessment_id": "20261125-223012-3f9a",
        "created_at": "2026-11-25T22:30:12.123456+00:00",
        "tool_version": "0.1.0",
        "cloud": "public",
        "scope": {"subscriptions": [SUB_A, SUB_B], "management_groups": [], "cloud": "public"},
        "rule_pack": {"name": "ga-2025-07", "doc_version": "2025-07-01", "overrides": []},
        "vms": 20,
        "vms_excluded": 0,
        "by_readiness": {"ready": 10, "ready_with_conditions": 2, "not_ready": 4,
                         "already_crash_consistent": 3, "not_protected": 1, "unknown": 0},
        "by_rule": {"blocker": {"SHARED_DISK": 3, "ULTRA_DISK": 1}, "warning": {},
                    "unknown": {}, "info": {}},
        "by_subscription": {
            SUB_A: {"ready": 2, "ready_with_conditions": 0, "not_ready": 4,
                    "already_crash_consistent": 0, "not_protected": 0, "unknown": 0, "vms": 6},
            SUB_B: {"ready": 8, "ready_with_conditions": 2, "not_ready": 0,
                    "already_crash_consistent": 3, "not_protected": 1, "unknown": 0,
                    "vms": 14},
        },
        "crash_consistent_with_blockers": 1,
        "requests": {"resource_graph": 7},
        "partial_errors": [{"scope": "33333333-3333-3333-3333-333333333333",
                            "error": "403 AuthorizationFailed | no read access",
                            "retry": "ccmigrate assess --subscription 3333 --out DIR"}],
        "complete": False,
        "timings_s": {"total": 1.5},
    }
    summary.update(changes)
    return summary


def _files(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for name in ("readiness.xlsx", "readiness.csv", "summary.json"):
        (folder / name).write_text("x")
        files[name] = folder / name
    return files


def _publish_in_a_flow(summary: dict, files: dict[str, Path]) -> tuple[list[str], str]:
    from prefect import flow
    from prefect.runtime import flow_run

    @flow(name="artifacts-test")
    def publish() -> tuple[list[str], str]:
        return publish_assessment_artifacts(summary, files), str(flow_run.id)

    return publish()


def _read_back(run_id: str) -> dict:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
    )

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=[SUMMARY_KEY, BY_SUBSCRIPTION_KEY, FILES_KEY]),
            flow_run_id=ArtifactFilterFlowRunId(any_=[run_id])))
    return {a.key: a for a in found}


def test_labels_cover_every_readiness_value_in_order():
    assert tuple(READINESS_LABELS) == READINESS_VALUES
    assert READINESS_LABELS["already_crash_consistent"] == "Already crash-consistent"


def test_artifacts_are_stored_under_stable_keys_with_the_headline_numbers(prefect_api, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactCollectionFilter, ArtifactCollectionFilterKey

    out = tmp_path / "out"
    keys, run_id = _publish_in_a_flow(_summary(), _files(out))
    assert keys == [SUMMARY_KEY, BY_SUBSCRIPTION_KEY, FILES_KEY]
    stored = _read_back(run_id)
    assert set(stored) == set(keys)

    markdown = stored[SUMMARY_KEY].data
    assert stored[SUMMARY_KEY].type == "markdown"
    assert "Assessment **20261125-223012-3f9a**, 2026-11-25 22:30 UTC" in markdown
    assert "**ga-2025-07** (doc 2025-07-01)" in markdown
    assert "| Ready | 10 | 50.0% |" in markdown
    assert "| Already crash-consistent | 3 | 15.0% |" in markdown
    assert "| Unknown | 0 | 0.0% |" in markdown
    assert "| **Total** | **20** | 100.0% |" in markdown
    assert markdown.index("`SHARED_DISK` | 3") < markdown.index("`ULTRA_DISK` | 1")
    assert "**1** VM(s) already on a crash-consistent policy have blockers" in markdown
    assert "**1** scope(s) could not be read" in markdown
    assert "403 AuthorizationFailed \\| no read access" in markdown  # cannot split a table
    assert f"`{out / 'readiness.csv'}`" in markdown

    table = stored[BY_SUBSCRIPTION_KEY]
    assert table.type == "table"
    rows = json.loads(table.data)
    assert [row["Subscription"] for row in rows] == [SUB_B, SUB_A]  # biggest first
    assert rows[0] == {"Subscription": SUB_B, "Ready": 8, "Ready with conditions": 2,
                       "Not ready": 0, "Already crash-consistent": 3, "Not protected": 1,
                       "Unknown": 0, "Total": 14}

    link = stored[FILES_KEY].data
    assert link == (f"[readiness.xlsx, readiness.csv, summary.json in {out.resolve()}]"
                    f"({out.resolve().as_uri()})")

    # The keys are collections: the UI's Artifacts page lists each once, newest version first.
    with get_client(sync_client=True) as client:
        latest = client.read_latest_artifacts(artifact_filter=ArtifactCollectionFilter(
            key=ArtifactCollectionFilterKey(any_=keys)))
    assert {c.key for c in latest} == set(keys)


def test_an_older_summary_without_optional_keys_still_publishes(prefect_api):
    summary = {"assessment_id": "20250101-000000-0000", "vms": 2,
               "by_readiness": {"ready": 2}, "by_subscription": {SUB_A: {"ready": 2}}}
    keys, run_id = _publish_in_a_flow(summary, {})
    assert keys == [SUMMARY_KEY, BY_SUBSCRIPTION_KEY]  # no files, no link
    stored = _read_back(run_id)
    assert set(stored) == set(keys)
    assert "| Ready | 2 | 100.0% |" in stored[SUMMARY_KEY].data
    assert "None: every scope was read." in stored[SUMMARY_KEY].data
    assert json.loads(stored[BY_SUBSCRIPTION_KEY].data)[0]["Total"] == 2


def test_azure_text_cannot_change_the_summary_page():
    errors = [{"scope": "s`x", "error": "<script>alert(1)</script>"},
              {"scope": "s2", "error": "[click](http://x)"},
              {"scope": "s3", "error": "a | b\n# heading"}]
    markdown = assessment_markdown(_summary(partial_errors=errors), {})
    assert "<script>" not in markdown and "\\<script\\>" in markdown
    assert "[click](" not in markdown and "\\[click\\](http://x)" in markdown
    assert "\n# heading" not in markdown and "a \\| b \\# heading" in markdown
    assert "- `s'x`:" in markdown


def test_a_new_readiness_value_from_a_newer_tool_is_shown_not_dropped():
    summary = _summary(by_readiness={"ready": 1, "future_state": 1}, vms=2)
    markdown = assessment_markdown(summary, {})
    assert "| future\\_state | 1 | 50.0% |" in markdown
    assert subscription_rows(_summary(by_subscription={})) == []


def test_names_rule_titles_and_changes_show_when_the_summary_has_them():
    summary = _summary(
        subscription_names={SUB_A: "prod-core"},
        top_blockers=[{"rule": "SHARED_DISK", "severity": "blocker", "vms": 3,
                       "title": "Shared disks are not supported"}],
        changes={"previous_id": "20261124-220000-abcd", "current_id": "20261125-223012-3f9a",
                 "changed_vms": 4,
                 "by_change": {"moved_to_crash_consistent": 1, "readiness_changed": 3,
                               "new_blockers": 0, "resolved_blockers": 0, "added": 1,
                               "removed": 0},
                 "readiness_transitions": {"ready -> not_ready": 2}})
    markdown = assessment_markdown(summary, {})
    assert "| `SHARED_DISK` | 3 | Shared disks are not supported |" in markdown
    assert "1 more blocker rule(s) in summary.json" in markdown  # ULTRA_DISK
    assert ("Compared with **20261124-220000-abcd**: 4 VM(s) changed (moved to crash "
            "consistent 1, readiness changed 3, added 1).") in markdown
    assert "Ready → Not ready 2" in markdown
    rows = subscription_rows(summary)
    assert [(r["Subscription"], r["Name"]) for r in rows] == [(SUB_B, ""), (SUB_A, "prod-core")]
