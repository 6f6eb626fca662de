"""The ``migrate`` and ``rollback`` flows: one wave of a plan (or chosen VMs), journaled per VM.

A wave is a Prefect flow; its work is one task per chunk of vaults (never one per VM: a task
costs milliseconds and kilobytes in Prefect's API), each running its VMs on threads under the
wave's throttle and failure gate (``tasks/migration/wave.py``). Before any VM the runner takes
the wave's lease in the state store (a second runner is refused; a dead one's lease is taken
over), reconciles the VMs a stopped runner left ``in_progress``, and makes sure the wave's
target policies exist (a same-named policy with other settings stops the wave before any VM).

Without ``execute`` nothing is written anywhere: the dry run reads the plan, the journal and
(read-only) the vaults' policies, and says exactly what would change.
"""

from __future__ import annotations

import contextvars
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd

from tasks.errors import AzureError, CcmigrateError, InputError
from tasks.settings import Settings

from .progress import Progress

VAULTS_PER_TASK = 5
POLICY_WORKERS = 8
POLICY_PATIENCE_S = 60.0
PROGRESS_KEY = "ccmigrate-wave-progress"
# Waves this large re-score their VMs in a process of its own: its start-up (about a second)
# buys the runner's threads the interpreter lock back (tens of ms of pandas per scoring round).
PROCESS_SCORING_FROM = 200


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


def _setting(settings: Settings, key: str, default: Any) -> Any:
    waves = getattr(settings, "waves", None)
    return getattr(waves, key, default) if waves is not None else default


def move_config(settings: Settings, verify: str | None = None) -> Any:
    from tasks.migration.move import MoveConfig

    return MoveConfig(poll_interval=settings.throttles.polling_interval,
                      timeout=settings.throttles.operation_timeout,
                      irreversible_timeout=float(_setting(settings, "irreversible_timeout_s",
                                                          14400)),
                      backup_timeout=float(_setting(settings, "backup_timeout_s", 86400)),
                      verify=verify or _setting(settings, "verify", "job"))


def rescorer_for(settings: Settings, access: Any, plan: Any, vms: int = 0) -> Any:
    """The re-scoring each VM gets right before it moves: the rule pack and overrides of the
    settings this run uses (as ``ccmigrate assess`` would score now), and the warnings the plan
    allowed. From ``PROCESS_SCORING_FROM`` VMs on, the scoring gets a process of its own."""
    from tasks.migration.rescore import Rescorer
    from tasks.rules.engine import load_pack

    options = plan.options or {}
    return Rescorer(access, settings, load_pack(settings.rules),
                    allow_warnings=tuple(options.get("allow_warnings") or ()),
                    include_standard=bool(options.get("include_standard")),
                    process=vms >= PROCESS_SCORING_FROM)


def _vm_plans(frame: pd.DataFrame) -> list[Any]:
    from tasks.migration.move import VmPlan

    return [VmPlan.from_row(row) for row in frame.itertuples(index=False)]


def sort_work(vms: pd.DataFrame, journal: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Split a wave's VMs by what this run does with them, from the journal:
    ``reconcile`` (in progress: a runner stopped), ``move`` (pending, skipped, or stopped by
    something that was not the VM's fault), ``finished`` (done or rolled back), ``attention``
    (rollback failed: a person must look)."""
    from tasks.migration.move import RETRYABLE_CODES

    state = journal.set_index("vm_key")[["status", "error_code"]]
    joined = vms.join(state, on="vm_key")
    status, code = joined["status"].fillna("pending"), joined["error_code"].fillna("")
    retry = (status == "rolled_back") & code.isin(RETRYABLE_CODES)
    return {
        "reconcile": vms[(status == "in_progress").to_numpy()],
        "move": vms[(status.isin(["pending", "skipped"]) | retry).to_numpy()],
        "finished": vms[(status.isin(["done", "rolled_back"]) & ~retry).to_numpy()],
        "attention": vms[(status == "rollback_failed").to_numpy()],
    }


def dry_run_actions(access: Any, vms: pd.DataFrame, policies: pd.DataFrame,
                    look: Any = None, workers: int = 8) -> pd.DataFrame:
    """What ``--execute`` would do, per VM and per policy, from read-only calls. With ``look``
    (``Mover.look``) each VM also gets the last look a real run gives it, so a VM changed
    since the plan shows as skipped, with the reason, before anything runs."""
    from tasks.azure import backup

    rows = []
    for (vault_id, name), group in vms.groupby(["vault_id", "target_policy"], sort=True):
        ref = backup.vault_ref(vault_id)
        try:
            backup.get_policy(access.backup(ref.subscription_id), ref, name)
            action = "reuse the existing policy (checked for identical settings first)"
        except AzureError as err:
            if err.status != 404:
                raise
            action = "create it (a crash-consistent clone of " \
                     f"{', '.join(sorted(set(group['source_policy'])))})"
        rows.append({"what": "policy", "vault": ref.vault, "vm_name": "", "vm_id": "",
                     "source_policy": ", ".join(sorted(set(group["source_policy"]))),
                     "target_policy": name, "action": action, "would": "write"})
    plans = _vm_plans(vms)
    if look is not None and plans:
        with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="look") as pool:
            seen = list(pool.map(lambda vm: contextvars.copy_context().run(look, vm), plans))
    else:
        seen = [None] * len(plans)
    for row, found in zip(vms.itertuples(index=False), seen, strict=True):
        note = " (irreversible: Standard -> Enhanced)" if bool(row.irreversible) else ""
        would, action = "move", (f"re-point its protected item{note}, follow ConfigureBackup, "
                                 "verify; roll back on failure")
        if found is not None and found.skip:
            would, action = "skip", f"leave it where it is ({found.skip[0]}): {found.skip[1]}"
        elif found is not None and found.on_target:
            would, action = "keep", "already on the target policy: journal it done"
        elif found is not None and found.guard_requests:
            action += ("; critical under multi-user authorization (it shortens retention): "
                       "sends the Resource Guard's request, so hold the Backup MUA Operator "
                       f"role on it first ({', '.join(found.guard_requests)})")
        rows.append({"what": "vm", "vault": row.vault, "vm_name": row.vm_name,
                     "vm_id": row.vm_id, "source_policy": row.source_policy,
                     "target_policy": row.target_policy, "action": action, "would": would})
    return pd.DataFrame(rows, columns=["what", "vault", "vm_name", "vm_id", "source_policy",
                                       "target_policy", "would", "action"])


def run_wave(settings: Settings, plan_ref: str, wave: int, *, execute: bool, out_dir: Path,
             max_failures: str | None = None, cumulative_max_failures: str | None = None,
             verify: str | None = None, progress: Progress | None = None) -> WaveOutcome:
    """Migrate wave ``wave`` of plan ``plan_ref`` (dry run unless ``execute``)."""
    from tasks.azure.clients import AzureAccess
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
        from tasks.migration.move import Mover

        looker = Mover(access, None, move_config(settings, verify),
                       rescorer=rescorer_for(settings, access, plan))
        actions = dry_run_actions(access, work["move"], _policies(engine, plan.id),
                                  look=looker.look, workers=settings.throttles.max_parallel)
        from reports.readiness_csv import write_csv

        path = write_csv(actions, out_dir / f"wave-{wave}-dry-run.csv")
        counts = {k: len(v) for k, v in work.items()}
        return WaveOutcome(plan.id, wave, False, counts, "dry_run", None,
                           {"dry-run.csv": path}, actions, notes)
    outcome = _execute(settings, engine, access, plan, wave, vms, work, out_dir,
                       max_failures=max_failures, cumulative=cumulative_max_failures,
                       verify=verify, progress=progress)
    outcome.notes = notes
    return outcome


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


def _policies(engine: Any, plan_id: str) -> pd.DataFrame:
    from tasks.state.plans import load_plan_policies

    return load_plan_policies(engine, plan_id)


def _execute(settings: Settings, engine: Any, access: Any, plan: Any, wave: int,
             vms: pd.DataFrame, work: dict[str, pd.DataFrame], out_dir: Path, *,
             max_failures: str | None, cumulative: str | None, verify: str | None,
             progress: Progress) -> WaveOutcome:
    from prefect import flow, get_run_logger, task
    from prefect.artifacts import create_progress_artifact, update_progress_artifact
    from prefect.cache_policies import NO_CACHE

    from reports.wave_report import write_wave_report
    from tasks.migration.move import Mover
    from tasks.migration.wave import Gate, VaultThrottle, allowed_failures, run_vms, vault_chunks
    from tasks.state.journal import Journal
    from tasks.state.leases import acquire_wave_lease
    from tasks.state.plans import set_wave_status

    cfg = move_config(settings, verify)
    rescorer = rescorer_for(settings, access, plan, vms=len(work["move"]))
    throttles = settings.throttles
    lease = acquire_wave_lease(engine, plan.id, wave,
                               ttl_s=float(_setting(settings, "lease_ttl_s", 60)))
    journal = Journal(engine, plan.id, lease=lease)
    started_at = datetime.now(UTC)

    @flow(name="migrate-wave", log_prints=False)
    def wave_flow(plan_id: str, wave: int) -> dict[str, Any]:
        logger = get_run_logger()
        if lease.took_over_from is not None:
            logger.warning(f"took over the wave's lease from {lease.took_over_from}")
        mover = Mover(access, journal, cfg, log=logger.info, rescorer=rescorer)
        set_wave_status(engine, plan_id, wave, "running")
        total = len(work["reconcile"]) + len(work["move"])
        artifact = create_progress_artifact(0.0, key=PROGRESS_KEY,
                                            description=f"plan {plan_id} wave {wave}")
        progress.stage("vms", f"wave {wave}", total)
        done = [0]

        shown = [0.0]
        lock = threading.Lock()

        def counted(handle):
            def run(vm):
                outcome = handle(vm)
                with lock:
                    done[0] += 1
                    percent = 100.0 * done[0] / max(total, 1)
                    due = percent - shown[0] >= 5 or done[0] == total
                    if due:
                        shown[0] = percent
                progress.advance("vms", f"{vm.vm_name}: {outcome.status}"
                                 + (f" ({outcome.error_code})" if outcome.error_code else ""))
                if due:
                    _update_progress(update_progress_artifact, artifact, percent, logger)
                return outcome
            return run

        # 1. Finish what a stopped runner left in flight, from what Azure shows now.
        entries = journal.entries(wave).set_index("vm_key")
        for vm in _vm_plans(work["reconcile"]):
            entry = journal.entry(vm.vm_key)
            logger.info(f"{vm.vm_name}: reconciling (left {entries.loc[vm.vm_key, 'step']} by "
                        f"{entries.loc[vm.vm_key, 'runner']})")
            counted(lambda v, e=entry: mover.reconcile(v, e))(vm)

        # 2. The target policies this wave needs, before any VM moves. A vault whose policy
        #    cannot be made (Resource Guard, a same-named policy with other settings, the
        #    write limit) keeps its VMs where they are, each skipped with the reason.
        to_move = work["move"]
        unavailable = _ensure_targets(access, to_move, logger)
        if unavailable:
            blocked = to_move["vault_id"].str.lower().isin(set(unavailable))
            for vm in _vm_plans(to_move[blocked.to_numpy()]):
                code, why = unavailable[vm.vault_id.lower()]
                journal.skip(vm.vm_key, why, code=code)
                counted(partial(_skipped, code=code, why=why))(vm)
            to_move = to_move[~blocked.to_numpy()]

        # 3. The VMs, a task per chunk of vaults, under the throttle and the gate.
        counts = journal.counts()
        earlier_started = sum(counts.get(s, 0) for s in ("done", "rolled_back",
                                                         "rollback_failed"))
        earlier_failed = _plan_failures(journal)
        gate = Gate(
            wave_limit=allowed_failures(max_failures or _setting(settings, "max_failures",
                                                                 "10%"),
                                        len(to_move), option="--max-failures"),
            cumulative_limit=allowed_failures(
                cumulative or _setting(settings, "cumulative_max_failures", "5%"),
                earlier_started + len(to_move), option="--cumulative-max-failures"),
            earlier_failures=earlier_failed, earlier_started=earlier_started)
        throttle = VaultThrottle(throttles.max_parallel, throttles.per_vault)
        def move_chunk(chunk: list[Any]) -> list[Any]:
            return run_vms(chunk, counted(mover.move), gate, throttle, throttles.max_parallel)

        chunk_task = task(move_chunk, name="move-vault-chunk", cache_policy=NO_CACHE)
        chunks = vault_chunks(_vm_plans(to_move), VAULTS_PER_TASK)
        futures = [chunk_task.submit(chunk) for chunk in chunks]
        for future in futures:
            future.result()
        logger.info(_pacing_line(access.pacing_stats()))
        return {"halted_reason": gate.halted_reason}

    error: CcmigrateError | None = None
    try:
        with lease.keep_alive():
            result = wave_flow(plan.id, wave)
    except CcmigrateError as err:  # e.g. no write access: the wave halts, said plainly
        error, result = err, {"halted_reason": str(err)}
    finally:
        lease.release()
        rescorer.close()
    entries = journal.entries(wave)
    counts = entries["status"].value_counts().to_dict()
    halted = result["halted_reason"]
    status = ("halted" if halted else
              "done" if counts.get("done", 0) == len(vms) else "partial")
    set_wave_status(engine, plan.id, wave, status,
                    counts={k: int(v) for k, v in counts.items()}, halted_reason=halted)
    files = write_wave_report(entries, out_dir, plan_id=plan.id, wave=wave,
                              status=status, halted_reason=halted, started_at=started_at)
    if error is not None:
        raise error
    attention = entries[entries["status"].isin(["skipped", "rolled_back", "rollback_failed"])]
    return WaveOutcome(plan.id, wave, True, {k: int(v) for k, v in counts.items()}, status,
                       halted, files, attention=attention[["vm_name", "status", "error_code",
                                                           "error_message"]])


def _update_progress(update: Any, artifact: Any, percent: float, logger: Any) -> None:
    """The progress artifact is a courtesy to the Prefect UI: never a reason to stop a wave."""
    try:
        update(artifact, percent)
    except Exception as exc:  # best effort by design
        logger.warning(f"could not update the progress artifact: {exc}")


def _plan_failures(journal: Any) -> int:
    from tasks.migration.move import RETRYABLE_CODES

    entries = journal.entries()
    failed = entries["status"].eq("rollback_failed") | (
        entries["status"].eq("rolled_back") & ~entries["error_code"].fillna("").isin(
            RETRYABLE_CODES))
    return int(failed.sum())


def _ensure_targets(access: Any, to_move: pd.DataFrame, logger: Any,
                    ) -> dict[str, tuple[str, str]]:
    """Create (or reuse) each crash-consistent policy the wave's VMs move to; return the vaults
    (lower-case id) where that failed, with a code and the reason. Missing write access is not
    a vault's problem: it stops the wave."""
    from tasks.azure import backup, error_codes
    from tasks.migration.move import WaveStop
    from tasks.migration.mua import JOURNAL_CODE, is_guard_refusal
    from tasks.policies.bodies import crash_clone_body
    from tasks.policies.ensure import PolicyConflictError, ensure_policy

    pairs = to_move[["vault_id", "source_policy", "target_policy"]].drop_duplicates()

    def ensure(row: Any, ref: Any) -> Any:
        # Throttling beyond the retry policy is waited out (up to a minute), not a reason to
        # keep a whole vault's VMs back.
        delay, waited = 1.0, 0.0
        while True:
            try:
                source = backup.get_policy(access.backup(ref.subscription_id), ref,
                                           row.source_policy)
                return ensure_policy(access, row.vault_id, row.target_policy,
                                     crash_clone_body(source))
            except AzureError as err:
                if err.status != 429 or waited >= POLICY_PATIENCE_S:
                    raise
            time.sleep(delay)
            waited, delay = waited + delay, min(delay * 2, 15.0)

    def one(row: Any) -> tuple[str, tuple[str, str] | None]:
        ref = backup.vault_ref(row.vault_id)
        try:
            result = ensure(row, ref)
        except PolicyConflictError as err:
            return row.vault_id.lower(), ("POLICY_CONFLICT", str(err))
        except AzureError as err:
            if err.status == 403 and error_codes.matches(err, "AuthorizationFailed"):
                raise WaveStop(str(err), status=403, code=err.code) from err
            # Creating a policy is not critical under multi-user authorization; should the
            # guard still refuse, it is named and retried, like a refused VM (mua.py).
            code = JOURNAL_CODE if is_guard_refusal(err) else "POLICY_UNAVAILABLE"
            return row.vault_id.lower(), (code, f"policy {row.target_policy} in vault "
                                                f"{ref.vault} could not be made: {err}")
        logger.info(f"policy {row.target_policy} in vault {ref.vault}: {result.outcome}")
        return row.vault_id.lower(), None

    # Vaults side by side: each policy write waits about a second for its operation.
    failed: dict[str, tuple[str, str]] = {}
    rows = list(pairs.itertuples(index=False))
    with ThreadPoolExecutor(max_workers=POLICY_WORKERS, thread_name_prefix="policy") as pool:
        for vault_key, problem in pool.map(
                lambda r: contextvars.copy_context().run(one, r), rows):
            if problem and vault_key not in failed:
                failed[vault_key] = problem
                logger.warning(problem[1])
    return failed


def _pacing_line(stats: dict[str, Any]) -> str:
    """One log line on how the wave kept under ARM's buckets (the 429s it still met)."""
    if not stats.get("enabled"):
        return "ARM pacing: off (throttles.arm_pacing = false)"
    parts = [f"{kind} {stats[kind]['requests']} ({stats[kind]['waited']} waited "
             f"{stats[kind]['wait_s']:.1f} s, {stats[kind]['throttled']} x 429)"
             for kind in ("reads", "writes", "deletes") if stats[kind]["requests"]]
    return "ARM pacing: " + ("; ".join(parts) or "no requests")


def _skipped(vm: Any, *, code: str, why: str) -> Any:
    from tasks.migration.move import VmOutcome

    now = datetime.now(UTC)
    return VmOutcome(vm.vm_key, vm.vm_name, "skipped", now, now, [], code, why)


def run_rollback(settings: Settings, plan_ref: str, *, wave: int | None, vm_ids: list[str],
                 execute: bool, out_dir: Path, progress: Progress | None = None) -> WaveOutcome:
    """Put chosen VMs (a wave, or ids) back on their journaled original policy."""
    from prefect import flow, get_run_logger

    from reports.readiness_csv import write_csv
    from tasks.azure.clients import AzureAccess
    from tasks.migration.move import Mover
    from tasks.migration.wave import Gate, VaultThrottle, run_vms
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

    @flow(name="rollback", log_prints=False)
    def rollback_flow() -> None:
        mover = Mover(access, journal, cfg, log=get_run_logger().info)
        gate = Gate(wave_limit=len(chosen) + 1, cumulative_limit=len(chosen) + 1)
        throttle = VaultThrottle(settings.throttles.max_parallel, settings.throttles.per_vault)
        progress.stage("vms", "rollback", len(chosen))

        def one(vm):
            outcome = mover.roll_back(vm, requested=True)
            progress.advance("vms", f"{vm.vm_name}: {outcome.status}")
            return outcome

        run_vms(_vm_plans(chosen), one, gate, throttle, settings.throttles.max_parallel)

    rollback_flow()
    after = journal.entries(wave)
    after = after[after["vm_key"].isin(set(chosen["vm_key"]))]
    counts = {k: int(v) for k, v in after["status"].value_counts().items()}
    path = write_csv(after.drop(columns=["job_ids"]).astype(str), out_dir / "rollback.csv")
    ok = counts.get("rolled_back", 0) == len(chosen)
    return WaveOutcome(plan.id, wave, True, counts, "done" if ok else "partial", None,
                       {"rollback.csv": path})
