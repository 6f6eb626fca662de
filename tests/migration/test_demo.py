"""`ccmigrate demo` tells the whole story on a generated fleet and leaves every report, under
the emulator's Azure timing (scale 60), as the README shows it."""

from __future__ import annotations

from openpyxl import load_workbook

from tests.cli.helpers import no_traceback, run_cli


def test_demo_runs_the_whole_story_under_azure_timing_and_writes_every_report(prefect_api,
                                                                             tmp_path):
    # Azure's documented durations and Retry-After, sixty times faster: the story as a user
    # sees it against real service latencies, and the demo says which timing it used.
    out = tmp_path / "demo"
    proc = run_cli("demo", "--vms", "400", "--out", str(out), "--timing", "azure",
                   "--time-scale", "60", timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert no_traceback(proc)
    assert "Emulator timing: azure at time scale 60" in proc.stdout
    for part in ("1. Assessing", "2. Planning", "3. Wave 1, the canary", "4. Wave 2",
                 "5. Assessing again"):
        assert part in proc.stdout
    assert "rolled_back" in proc.stdout  # the emulator failed a few VMs: rollback is shown
    for name in ("assessment/readiness.xlsx", "assessment/readiness.csv",
                 "assessment/summary.json", "plan/plan.csv", "plan/plan.xlsx",
                 "waves/wave-1.csv", "waves/wave-1.xlsx", "waves/wave-2.xlsx",
                 "assessment-after/readiness.xlsx", "assessment-after/changes.csv"):
        assert (out / name).is_file(), name
    after = load_workbook(out / "assessment-after" / "readiness.xlsx")
    assert {"Changes", "Migration"} <= set(after.sheetnames)
