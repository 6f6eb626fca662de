"""The ``migrate`` and ``rollback`` flows: one wave of a plan (or chosen VMs), journaled per VM.

A wave is a Prefect flow; it only orchestrates. Before any VM the runner takes the wave's lease
in the state store (a second runner is refused; a dead one's lease is taken over), then one
task runs the wave engine (``tasks/migration/engine.py``: thousands of VMs in flight on a few
threads; each vault's target policies made first, ``tasks/migration/targets.py``; the VMs a
stopped runner left in progress reconciled). What a VM's journal
status means for this run, the failure gate, the limits and the dry run's verdicts are
decided in ``tasks/migration/``.

Without ``execute`` nothing is written anywhere: the dry run reads the plan, the journal and
(read-only) the vaults' policies and Resource Graph, and says exactly what would change.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from tasks.errors import CcmigrateError, InputError
from tasks.settings import Settings

from .progress import Progress

PROGRESS_KEY = "ccmigrate-wave-progress"
# Rollback of chosen VMs runs the Mover's blocking path, a thread per VM in flight.
ROLLBACK_WORKERS = 32


@dataclass
class WaveOutcome:
    plan_id: str
    wave: int | None
    executed: bool
    counts: dict[str, int]
    status: str
    halted_reason: str | None
    files: dict[str, Path] = field(default_factory=dict)
    actions: pd.DataFrame | None = field(default=None, repr=False)
    notes: list[str] = field(default_factory=list)
    # VMs that did not end done (name, status, error code and message), for the printout.
    attention: pd.DataFrame | None = field(default=None, repr=False)
    # The engine's figures: peak_in_flight, in_flight_curve, resource_graph_requests, ...
    stats: dict[str, Any] = field(default_factory=dict)


def run_wave(settings: Settings, plan_ref: str, wave: int, *, execute: bool, out_dir: Path,
             max_failures: str | None = None, cumulative_max_failures: str | None = None,
             verify: str | None = None, progress: Progress | None = None) -> WaveOutcome:
    """Migrate wave ``wave`` of plan ``plan_ref`` (dry run unless ``execute``)."""
    from tasks.azure.clients import AzureAccess
    from tasks.migration.work import sort_work
    from tasks.state.db import open_store
    from tasks.state.journal import Journal
    from tasks.state.plans import get_wave, load_plan_vms, resolve_plan

    progress = progress or Progress(enabled=False)
    engine = open_store(settings.state_store_url(), synchronous="FULL")
    plan = resolve_plan(engine, plan_ref)
    get_wave(engine, plan.id, wave)  # an unknown wave is bad input, said before anything else
    vms = load_plan_vms(engine, plan.id, wave)
    journal = Journal(engine, plan.id)
    work = sort_work(vms, journal.entries(wave))
    notes = [n for n in [too_early(engine, plan, wave)] if n]
    out_dir.mkdir(parents=True, exist_ok=True)
    access = AzureAccess(settings)
    if not execute:
        return _dry_run(settings, access, plan, wave, work, out_dir, notes)
    outcome = _execute(settings, engine, access, plan, wave, vms, work, out_dir,
                       max_failures=max_failures, cumulative=cumulative_max_failures,
                       verify=verify, progress=progress)
    outcome.notes = notes
    return outcome


def _dry_run(settings: Settings, access: Any, plan: Any, wave: int,
             work: dict[str, pd.DataFrame], out_dir: Path, notes: list[str]) -> WaveOutcome:
    from reports.readiness_csv import write_csv
    from tasks.migration.dry_run import dry_run_actions
    from tasks.migration.look import ChunkLook
    from tasks.migration.move import _GuardView
    from tasks.migration.work import move_config, rescorer_for

    looker = ChunkLook(access, rescorer_for(settings, access, plan), _GuardView(access),
                       timeout=move_config(settings).timeout)
    actions = dry_run_actions(access, work["move"], looker)
    path = write_csv(actions, out_dir / f"wave-{wave}-dry-run.csv")
    counts = {k: len(v) for k, v in work.items()}
    return WaveOutcome(plan.id, wave, False, counts, "dry_run", None, {"dry-run.csv": path},
                       actions, notes)


def too_early(engine: Any, plan: Any, wave: int) -> str | None:
    """The plan split a vault's policy writes across days (Azure allows 50 per vault in 24 h)
    and this wave's are due 24 h after an earlier wave ends: say so when that time has not come.
    Not a refusal: running a wave by hand is the user's call; a vault whose policy Azure
    refuses keeps its VMs where they are, and a later run moves them."""
    from tasks.state.plans import get_wave

    entry = next((w for w in (plan.summary or {}).get("waves", []) if w.get("wave") == wave),
                 None)
    due = (entry or {}).get("not_before")
    if not due:
        return None
    earlier = get_wave(engine, plan.id, int(due["after_wave"]))
    hours = float(due.get("hours", 24))
    if earlier.finished_at is None:
        return (f"wave {wave} is planned for {hours:g} h after wave {due['after_wave']} ends "
                f"(Azure allows 50 policy writes per vault a day), and wave "
                f"{due['after_wave']} has not finished: some target policies may be refused; "
                "their VMs are skipped and moved by a later run")
    ready_at = earlier.finished_at + pd.Timedelta(hours=hours)
    if datetime.now(UTC) < ready_at:
        return (f"wave {wave} is planned for {hours:g} h after wave {due['after_wave']} ended "
                f"({earlier.finished_at:%Y-%m-%d %H:%M} UTC), i.e. from "
                f"{ready_at:%Y-%m-%d %H:%M} UTC (Azure allows 50 policy writes per vault a "
                "day): some target policies may be refused until then; their VMs are skipped "
                "and moved by a later run")
    return None


def _execute(settings: Settings, engine: Any, access: Any, plan: Any, wave: int,
             vms: pd.DataFrame, work: dict[str, pd.DataFrame], out_dir: Path, *,
             max_failures: str | None, cumulative: str | None, verify: str | None,
             progress: Progress) -> WaveOutcome:
    from prefect import flow, get_run_logger, task
    from prefect.artifacts import create_progress_artifact, update_progress_artifact
    from prefect.cache_policies import NO_CACHE

    from reports.wave_report import write_wave_report
    from tasks.migration import work as plan_work
    from tasks.state.journal import Journal
    from tasks.state.leases import acquire_wave_lease
    from tasks.state.plans import set_wave_status

    lease = acquire_wave_lease(engine, plan.id, wave,
                               ttl_s=float(plan_work.setting(settings, "lease_ttl_s", 60)))
    journal = Journal(engine, plan.id, lease=lease)
    started_at = datetime.now(UTC)
    stats: dict[str, Any] = {}

    @flow(name="migrate-wave", log_prints=False)
    def wave_flow(plan_id: str, wave: int) -> dict[str, Any]:
        logger = get_run_logger()
        if lease.took_over_from is not None:
            logger.warning(f"took over the wave's lease from {lease.took_over_from}")
        set_wave_status(engine, plan_id, wave, "running")
        total = len(work["reconcile"]) + len(work["move"])
        artifact = create_progress_artifact(0.0, key=PROGRESS_KEY,
                                            description=f"plan {plan_id} wave {wave}")
        progress.stage("vms", f"wave {wave}", total)
        counter = _Counter(total, progress, artifact, update_progress_artifact, logger)

        # The VMs: those a stopped runner left in flight reconciled from what Azure shows
        # now; the wave's, each vault's once its target policies are in place (a vault whose
        # policy cannot be made keeps its VMs where they are, each skipped with the reason),
        # under the wave's limits and its failure gate.
        to_move = work["move"]
        entries = journal.entries(wave).set_index("vm_key")
        reconcile = []
        for vm in plan_work.vm_plans(work["reconcile"]):
            logger.info(f"{vm.vm_name}: reconciling (left {entries.loc[vm.vm_key, 'step']} by "
                        f"{entries.loc[vm.vm_key, 'runner']})")
            reconcile.append((vm, journal.entry(vm.vm_key)))
        gate = plan_work.wave_gate(settings, journal, len(to_move), max_failures=max_failures,
                                   cumulative=cumulative)
        _, figures = task(plan_work.run_vms, name="move-vms", cache_policy=NO_CACHE)(
            access, journal, settings, plan, to_move, reconcile, gate, verify=verify,
            log=logger.info, on_outcome=counter)
        stats.update(figures)
        logger.info(plan_work.curve_line(figures.get("in_flight_curve", [])))
        logger.info(plan_work.pacing_line(access.pacing_stats()))
        return {"halted_reason": gate.halted_reason}

    error: CcmigrateError | None = None
    try:
        with lease.keep_alive():
            result = wave_flow(plan.id, wave)
    except CcmigrateError as err:  # e.g. no write access: the wave halts, said plainly
        error, result = err, {"halted_reason": str(err)}
    finally:
        lease.release()
    entries = journal.entries(wave)
    counts = entries["status"].value_counts().to_dict()
    halted = result["halted_reason"]
    status = ("halted" if halted else
              "done" if counts.get("done", 0) == len(vms) else "partial")
    set_wave_status(engine, plan.id, wave, status,
                    counts={k: int(v) for k, v in counts.items()}, halted_reason=halted)
    files = write_wave_report(entries, out_dir, plan_id=plan.id, wave=wave,
                              status=status, halted_reason=halted, started_at=started_at,
                              stats=stats)
    if error is not None:
        raise error
    attention = entries[entries["status"].isin(["skipped", "rolled_back", "rollback_failed"])]
    return WaveOutcome(plan.id, wave, True, {k: int(v) for k, v in counts.items()}, status,
                       halted, files, attention=attention[["vm_name", "status", "error_code",
                                                           "error_message"]], stats=stats)


class _Counter:
    """Each VM's end on the progress bar; the Prefect progress artifact every 5 %."""

    def __init__(self, total: int, progress: Progress, artifact: Any, update: Any,
                 logger: Any) -> None:
        self.total, self.progress, self.artifact = total, progress, artifact
        self.update, self.logger = update, logger
        self.done, self.shown = 0, 0.0
        self.lock = threading.Lock()

    def __call__(self, outcome: Any) -> None:
        with self.lock:
            self.done += 1
            percent = 100.0 * self.done / max(self.total, 1)
            due = percent - self.shown >= 5 or self.done == self.total
            if due:
                self.shown = percent
        self.progress.advance("vms", f"{outcome.vm_name}: {outcome.status}"
                              + (f" ({outcome.error_code})" if outcome.error_code else ""))
        if due:
            _update_progress(self.update, self.artifact, percent, self.logger)


def _update_progress(update: Any, artifact: Any, percent: float, logger: Any) -> None:
    """The progress artifact is a courtesy to the Prefect UI: never a reason to stop a wave."""
    try:
        update(artifact, percent)
    except Exception as exc:  # best effort by design
        logger.warning(f"could not update the progress artifact: {exc}")


def run_rollback(settings: Settings, plan_ref: str, *, wave: int | None, vm_ids: list[str],
                 execute: bool, out_dir: Path, progress: Progress | None = None) -> WaveOutcome:
    """Put chosen VMs (a wave, or ids) back on their journaled original policy."""
    from prefect import flow, get_run_logger

    from reports.readiness_csv import write_csv
    from tasks.azure.clients import AzureAccess
    from tasks.migration.move import Mover
    from tasks.migration.wave import Gate, VaultThrottle, run_vms
    from tasks.migration.work import move_config, vm_plans
    from tasks.state.db import open_store
    from tasks.state.journal import Journal
    from tasks.state.plans import get_wave, load_plan_vms, resolve_plan

    progress = progress or Progress(enabled=False)
    engine = open_store(settings.state_store_url(), synchronous="FULL")
    plan = resolve_plan(engine, plan_ref)
    if wave is not None:
        get_wave(engine, plan.id, wave)
    vms = load_plan_vms(engine, plan.id, wave)
    journal = Journal(engine, plan.id)
    entries = journal.entries(wave).set_index("vm_key")
    if vm_ids:
        wanted = {v.lower() for v in vm_ids}
        unknown = sorted(wanted - set(vms["vm_key"]))
        if unknown:
            raise InputError(f"--vm: {len(unknown)} id(s) are not in plan {plan.id}: "
                             + ", ".join(unknown[:10]) + "; give the VMs' ARM ids as in "
                             "plan.csv")
        vms = vms[vms["vm_key"].isin(wanted)]
    status = vms["vm_key"].map(entries["status"])
    chosen = vms[status.isin(["done", "rollback_failed"]).to_numpy()]
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = pd.DataFrame({"vm_name": chosen["vm_name"], "vm_id": chosen["vm_id"],
                         "vault": chosen["vault"], "from_policy": chosen["target_policy"],
                         "back_to_policy": chosen["rollback_policy"].where(
                             chosen["irreversible"].astype(bool), chosen["source_policy"])})
    if not execute:
        path = write_csv(rows, out_dir / "rollback-dry-run.csv")
        return WaveOutcome(plan.id, wave, False, {"would_roll_back": len(chosen)}, "dry_run",
                           None, {"rollback-dry-run.csv": path}, rows)
    access = AzureAccess(settings)
    cfg = move_config(settings)
    workers = min(settings.throttles.max_parallel, ROLLBACK_WORKERS)

    @flow(name="rollback", log_prints=False)
    def rollback_flow() -> None:
        mover = Mover(access, journal, cfg, log=get_run_logger().info)
        gate = Gate(wave_limit=len(chosen) + 1, cumulative_limit=len(chosen) + 1)
        throttle = VaultThrottle(workers, min(settings.throttles.per_vault, workers))
        progress.stage("vms", "rollback", len(chosen))

        def one(vm):
            outcome = mover.roll_back(vm, requested=True)
            progress.advance("vms", f"{vm.vm_name}: {outcome.status}")
            return outcome

        run_vms(vm_plans(chosen), one, gate, throttle, workers)

    rollback_flow()
    after = journal.entries(wave)
    after = after[after["vm_key"].isin(set(chosen["vm_key"]))]
    counts = {k: int(v) for k, v in after["status"].value_counts().items()}
    path = write_csv(after.drop(columns=["job_ids"]).astype(str), out_dir / "rollback.csv")
    ok = counts.get("rolled_back", 0) == len(chosen)
    return WaveOutcome(plan.id, wave, True, counts, "done" if ok else "partial", None,
                       {"rollback.csv": path})
