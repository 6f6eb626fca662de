"""`ccmigrate assess --demo 2000 --out out/` as the issue's user runs it: the report files are
there, and the summary on the terminal says what the Summary sheet says."""

from __future__ import annotations

import json
import re
from decimal import ROUND_HALF_UP, Decimal

import pytest
from openpyxl import load_workbook

from reports.labels import READINESS_LABELS
from tests.cli.helpers import no_traceback, run_cli


@pytest.fixture(scope="module")
def demo_run(prefect_api, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("demo-reports")
    out = tmp / "out"
    proc = run_cli("assess", "--demo", "2000", "--out", str(out),
                   "--state-store", f"sqlite:///{tmp}/state.db", timeout=400)
    return proc, out


def test_demo_assessment_leaves_the_three_files(demo_run):
    proc, out = demo_run
    assert proc.returncode == 0, proc.stderr
    assert no_traceback(proc)
    for name in ("readiness.xlsx", "readiness.csv", "summary.json", "blockers.csv"):
        assert (out / name).is_file(), name
        assert str(out / name) in proc.stdout


def test_terminal_summary_matches_the_summary_sheet(demo_run):
    proc, out = demo_run
    book = load_workbook(out / "readiness.xlsx")
    rows = list(book["Summary"].iter_rows(values_only=True))
    start = next(n for n, r in enumerate(rows) if r[0] == "Readiness")
    sheet = {r[0]: (r[1], r[2]) for r in rows[start + 1:start + 1 + len(READINESS_LABELS)]}
    for label in READINESS_LABELS.values():
        count, share = sheet[label]
        printed = re.search(rf"^\s+{re.escape(label)}\s+(\d+)\s+([\d.]+)%$", proc.stdout,
                            re.MULTILINE)
        assert printed, f"{label} not printed"
        assert int(printed.group(1)) == count
        assert share == pytest.approx(count / 2000)
        # Excel shows share with the format 0.0%: halves round up on the decimal value
        shown = Decimal(str(round(share * 100, 10))).quantize(Decimal("0.1"), ROUND_HALF_UP)
        assert printed.group(2) == str(shown)
    summary = json.loads((out / "summary.json").read_text())
    assert f"Assessment {summary['assessment_id']}: {summary['vms']} VMs" in proc.stdout
    top = next(r for r in rows if r[0] == "Rule")
    first_blocker = rows[rows.index(top) + 1]
    assert f"Top blockers: {first_blocker[0]} ({first_blocker[1]})" in proc.stdout
    units = summary["cost"]["totals"]["pi_units"]
    assert "protected-instance units (no prices configured: units only)" in proc.stdout
    assert f"{units:g} protected-instance units" in proc.stdout


def test_the_assess_run_publishes_prefect_artifacts(demo_run, prefect_api):
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from reports.artifacts import BY_SUBSCRIPTION_KEY, FILES_KEY, SUMMARY_KEY

    _proc, out = demo_run
    summary = json.loads((out / "summary.json").read_text())

    async def latest() -> dict[str, str]:
        async with get_client() as client:
            found = {}
            for key in (SUMMARY_KEY, BY_SUBSCRIPTION_KEY, FILES_KEY):
                artifacts = await client.read_artifacts(
                    artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
                    sort="CREATED_DESC", limit=1)
                found[key] = artifacts[0].data if artifacts else ""
            return found

    found = asyncio.run(latest())
    assert summary["assessment_id"] in found[SUMMARY_KEY]
    assert "Ready with conditions" in found[SUMMARY_KEY]
    assert f"({out.resolve().as_uri()})" in found[FILES_KEY]  # a markdown link to the folder
    rows = json.loads(found[BY_SUBSCRIPTION_KEY])
    assert sum(r["Total"] for r in rows) == summary["vms"]
    assert {r["Subscription"] for r in rows} == set(summary["by_subscription"])
