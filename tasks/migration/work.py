"""What a wave run does with each of its VMs, and the rules it runs under: the split by journal
status, the failure gate's limits, the move and rescoring configuration, the in-flight limits.
The flow (``flows/migrate.py``) only orchestrates these."""

from __future__ import annotations

from typing import Any

import pandas as pd

from ..settings import Settings
from .concurrency import Limits
from .move import RETRYABLE_CODES, MoveConfig, VmOutcome, VmPlan
from .wave import Gate, allowed_failures


def setting(settings: Settings, key: str, default: Any) -> Any:
    """A ``[waves]`` setting (settings files of older versions may lack the table)."""
    waves = getattr(settings, "waves", None)
    return getattr(waves, key, default) if waves is not None else default


def move_config(settings: Settings, verify: str | None = None) -> MoveConfig:
    return MoveConfig(poll_interval=settings.throttles.polling_interval,
                      timeout=settings.throttles.operation_timeout,
                      irreversible_timeout=float(setting(settings, "irreversible_timeout_s",
                                                         14400)),
                      backup_timeout=float(setting(settings, "backup_timeout_s", 86400)),
                      verify=verify or setting(settings, "verify", "job"))


def limits(settings: Settings) -> Limits:
    t = settings.throttles
    return Limits(wave=t.max_parallel, per_vault=t.per_vault,
                  per_subscription=t.per_subscription or t.max_parallel, adaptive=t.adaptive)


def rescorer_for(settings: Settings, access: Any, plan: Any) -> Any:
    """The re-scoring each chunk of VMs gets right before it moves: the rule pack and overrides
    of the settings this run uses (as ``ccmigrate assess`` would score now), and the warnings
    the plan allowed. Chunks are scored in this process: one chunk of 1,000 VMs costs the
    pandas time of a handful, so the process of its own the per-VM scoring needed is gone."""
    from ..rules.engine import load_pack
    from .rescore import Rescorer

    options = plan.options or {}
    return Rescorer(access, settings, load_pack(settings.rules),
                    allow_warnings=tuple(options.get("allow_warnings") or ()),
                    include_standard=bool(options.get("include_standard")))


def vm_plans(frame: pd.DataFrame) -> list[VmPlan]:
    return [VmPlan.from_row(row) for row in frame.itertuples(index=False)]


def sort_work(vms: pd.DataFrame, journal: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Split a wave's VMs by what this run does with them, from the journal:
    ``reconcile`` (in progress: a runner stopped), ``move`` (pending, skipped, or stopped by
    something that was not the VM's fault), ``finished`` (done or rolled back), ``attention``
    (rollback failed: a person must look)."""
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


def plan_failures(journal: Any) -> int:
    """Failures across the plan's waves so far (what the cumulative threshold counts)."""
    entries = journal.entries()
    failed = entries["status"].eq("rollback_failed") | (
        entries["status"].eq("rolled_back") & ~entries["error_code"].fillna("").isin(
            RETRYABLE_CODES))
    return int(failed.sum())


def wave_gate(settings: Settings, journal: Any, moving: int, *, max_failures: str | None,
              cumulative: str | None) -> Gate:
    """The failure gate of a wave moving ``moving`` VMs: per wave, and across the plan."""
    counts = journal.counts()
    earlier_started = sum(counts.get(s, 0) for s in ("done", "rolled_back", "rollback_failed"))
    return Gate(
        wave_limit=allowed_failures(max_failures or setting(settings, "max_failures", "10%"),
                                    moving, option="--max-failures"),
        cumulative_limit=allowed_failures(
            cumulative or setting(settings, "cumulative_max_failures", "5%"),
            earlier_started + moving, option="--cumulative-max-failures"),
        earlier_failures=plan_failures(journal), earlier_started=earlier_started)


def pacing_line(stats: dict[str, Any]) -> str:
    """One log line on how the wave kept under ARM's buckets (the 429s it still met)."""
    if not stats.get("enabled"):
        return "ARM pacing: off (throttles.arm_pacing = false)"
    parts = [f"{kind} {stats[kind]['requests']} ({stats[kind]['waited']} waited "
             f"{stats[kind]['wait_s']:.1f} s, {stats[kind]['throttled']} x 429)"
             for kind in ("reads", "writes", "deletes") if stats[kind]["requests"]]
    return "ARM pacing: " + ("; ".join(parts) or "no requests")


def curve_line(curve: list[tuple[float, int, int]], points: int = 12) -> str:
    """The in-flight curve in one log line: ``t s: in flight/allowed`` at a dozen moments."""
    if not curve:
        return "in flight: no VM started"
    step = max(1, len(curve) // points)
    picked = [*curve[::step], curve[-1]] if (len(curve) - 1) % step else curve[::step]
    return "in flight (s: VMs/allowed): " + ", ".join(f"{t:g}: {n}/{a}" for t, n, a in picked)


def run_vms(access: Any, journal: Any, settings: Settings, plan: Any, to_move: pd.DataFrame,
            reconcile: list[tuple[VmPlan, Any]], gate: Gate, *, verify: str | None,
            log: Any, on_outcome: Any) -> tuple[list[VmOutcome], dict[str, Any]]:
    """Move ``to_move`` (their target policies made first, vault by vault) and reconcile
    ``reconcile`` with the wave engine; the outcomes and the engine's figures (in-flight
    curve, Resource Graph requests, throttles)."""
    from functools import partial

    from .engine import WaveEngine
    from .look import ChunkLook
    from .move import Mover
    from .targets import ensure_target, wave_targets

    cfg = move_config(settings, verify)
    rescorer = rescorer_for(settings, access, plan)
    mover = Mover(access, journal, cfg, log=log)
    looker = ChunkLook(access, rescorer, mover._mua, timeout=cfg.timeout)
    engine = WaveEngine(access, journal, mover, looker, gate, limits(settings),
                        verify=cfg.verify, poll_interval=cfg.poll_interval, timeout=cfg.timeout,
                        irreversible_timeout=cfg.irreversible_timeout,
                        backup_timeout=cfg.backup_timeout, on_outcome=on_outcome, log=log)
    outcomes = engine.run(vm_plans(to_move), reconcile, targets=wave_targets(to_move),
                          ensure=partial(ensure_target, access, log=log))
    return outcomes, engine.stats.as_dict()
