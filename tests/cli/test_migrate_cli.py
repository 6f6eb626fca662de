"""`ccmigrate migrate` / `rollback` given bad input: one clear message naming the input and the
fix, exit code 2, no traceback, nothing changed (these runs never reach Azure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tasks.state import AssessmentRecord, PlanRecord, open_store, save_assessment, save_plan
from tasks.state.journal import Journal
from tasks.state.leases import acquire_wave_lease
from tests.cli.helpers import no_traceback, run_cli
from tests.state.frames import plan_frames, scored_frame

# Nothing listens here: a command that tried to reach Azure would fail differently.
NOWHERE = ["--endpoint", "https://127.0.0.1:9", "--credential", "emulator"]


@pytest.fixture
def store(tmp_path):
    url = f"sqlite:///{tmp_path}/state.db"
    engine = open_store(url)
    assessment = AssessmentRecord.new({"cloud": "public"}, now=datetime.now(UTC))
    save_assessment(engine, assessment, scored_frame(3))
    vms, policies = plan_frames(6, (1, 2))
    plan = PlanRecord.new(assessment.id)
    save_plan(engine, plan, vms, policies)
    yield url, engine, plan, vms
    engine.dispose()


def _cli(url: str, *args: str):
    return run_cli(*args, "--state-store", url, *NOWHERE)


def test_unknown_plan_is_bad_input(store):
    url, _engine, _plan, _vms = store
    proc = _cli(url, "migrate", "--plan", "20990101-000000-dead", "--wave", "1")
    assert proc.returncode == 2 and no_traceback(proc)
    assert "20990101-000000-dead" in proc.stderr and "ccmigrate plan" in proc.stderr


def test_unknown_wave_lists_the_plans_waves(store):
    url, _engine, plan, _vms = store
    proc = _cli(url, "migrate", "--plan", plan.id, "--wave", "9")
    assert proc.returncode == 2 and no_traceback(proc)
    assert "no wave 9" in proc.stderr and "--wave" in proc.stderr


def test_bad_threshold_is_bad_input(store):
    url, _engine, plan, _vms = store
    proc = _cli(url, "migrate", "--plan", plan.id, "--wave", "1", "--execute", "--yes",
                "--max-failures", "lots")
    assert proc.returncode == 2 and no_traceback(proc)
    assert "--max-failures 'lots'" in proc.stderr


@pytest.mark.parametrize("flags", [["--max-parallel", "0"], ["--max-parallel", "10001"],
                                   ["--per-vault", "0"]])
def test_in_flight_limits_out_of_range_are_bad_input(store, flags):
    url, _engine, plan, _vms = store
    proc = _cli(url, "migrate", "--plan", plan.id, "--wave", "1", *flags)
    assert proc.returncode == 2 and no_traceback(proc)
    assert flags[0] in proc.stderr


def test_a_per_vault_limit_above_the_waves_is_bad_input(store):
    url, engine, plan, _vms = store
    proc = _cli(url, "migrate", "--plan", plan.id, "--wave", "1", "--execute", "--yes",
                "--max-parallel", "100", "--per-vault", "500")
    assert proc.returncode == 2 and no_traceback(proc)
    assert "per_vault (500) is above max_parallel (100)" in proc.stderr
    assert "--per-vault" in proc.stderr and "--max-parallel" in proc.stderr
    assert Journal(engine, plan.id).counts()["pending"] == 6  # nothing started


def test_a_wave_already_running_is_refused(store):
    url, engine, plan, _vms = store
    lease = acquire_wave_lease(engine, plan.id, 1, ttl_s=300)
    try:
        proc = _cli(url, "migrate", "--plan", plan.id, "--wave", "1", "--execute", "--yes")
    finally:
        lease.release()
    assert proc.returncode == 2 and no_traceback(proc)
    assert f"wave 1 of plan {plan.id} is being run by" in proc.stderr


def test_rollback_of_unknown_vm_ids_names_them(store):
    url, _engine, plan, _vms = store
    bogus = "/subscriptions/x/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/nope"
    proc = _cli(url, "rollback", "--plan", plan.id, "--vm", bogus)
    assert proc.returncode == 2 and no_traceback(proc)
    assert bogus.lower() in proc.stderr.lower() and "plan.csv" in proc.stderr


def test_rollback_needs_a_wave_or_vms(store):
    url, _engine, plan, _vms = store
    proc = _cli(url, "rollback", "--plan", plan.id)
    assert proc.returncode == 2 and no_traceback(proc)
    assert "--wave" in proc.stderr and "--vm" in proc.stderr


def test_a_wave_planned_a_day_later_says_when_its_policies_can_be_written(tmp_path):
    from flows.migrate import too_early
    from tasks.state.plans import set_wave_status

    engine = open_store(f"sqlite:///{tmp_path}/state.db")
    assessment = AssessmentRecord.new({"cloud": "public"}, now=datetime.now(UTC))
    save_assessment(engine, assessment, scored_frame(3))
    vms, policies = plan_frames(6, (1, 2))
    plan = PlanRecord.new(assessment.id)
    plan.summary = {"waves": [{"wave": 1, "not_before": None},
                              {"wave": 2, "not_before": {"after_wave": 1, "hours": 24}}]}
    save_plan(engine, plan, vms, policies)
    assert too_early(engine, plan, 1) is None
    assert "wave 1 has not finished" in too_early(engine, plan, 2)
    set_wave_status(engine, plan.id, 1, "done")
    note = too_early(engine, plan, 2)
    assert "24 h after wave 1 ended" in note and "skipped and moved by a later run" in note
    engine.dispose()
