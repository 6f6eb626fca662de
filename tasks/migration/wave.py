"""A wave's failure gate and thresholds, and the small thread runner ``ccmigrate rollback``
uses for the VMs a person chose (the wave itself runs on the engine, ``engine.py``).

- Failure thresholds, per wave and cumulative across the plan's waves: once crossed, no new VM
  starts; those in flight finish (and roll back if they fail); the wave ends ``halted``.
- Throttling is never a failure (``VmOutcome.failed``): it is waited out (``throttling.py``).
"""

from __future__ import annotations

import contextvars
import math
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ..errors import CcmigrateError, InputError
from .move import VmOutcome, VmPlan, WaveStop


def parse_threshold(value: str | int, *, option: str) -> tuple[int | None, float | None]:
    """``"3"`` -> (3, None); ``"10%"`` -> (None, 0.10). Bad values are bad input."""
    text = str(value).strip()
    try:
        if text.endswith("%"):
            share = float(text[:-1]) / 100
            if not 0 <= share <= 1:
                raise ValueError
            return None, share
        count = int(text)
        if count < 0:
            raise ValueError
        return count, None
    except ValueError:
        raise InputError(f"{option} {value!r}: give a number of VMs (e.g. 3) or a percentage "
                         "(e.g. 10%)") from None


def allowed_failures(value: str | int, of: int, *, option: str) -> int:
    """How many failures a threshold allows among ``of`` VMs: a share rounds down, but a
    non-zero share always allows at least one (so a 10% threshold on a canary of one VM does
    not halt on nothing)."""
    count, share = parse_threshold(value, option=option)
    if count is not None:
        return count
    assert share is not None
    return max(1, math.floor(share * of)) if share > 0 else 0


@dataclass
class Gate:
    """Failure accounting shared by every thread of a wave."""

    wave_limit: int
    cumulative_limit: int
    earlier_failures: int = 0  # failures in the plan's other waves
    earlier_started: int = 0
    failures: int = 0
    started: int = 0
    halted_reason: str | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def may_start(self) -> bool:
        with self.lock:
            if self.stop.is_set():
                return False
            self.started += 1
            return True

    def record(self, outcome: VmOutcome) -> None:
        with self.lock:
            if outcome.status == "skipped":
                self.started -= 1  # nothing was tried; does not dilute the failure rate
                return
            if not outcome.failed:
                return
            self.failures += 1
            if self.failures > self.wave_limit:
                self._halt(f"{self.failures} VM(s) failed in this wave, more than the "
                           f"{self.wave_limit} allowed (--max-failures)")
            total = self.earlier_failures + self.failures
            if total > self.cumulative_limit:
                self._halt(f"{total} VM(s) failed across the plan's waves, more than the "
                           f"{self.cumulative_limit} allowed (--cumulative-max-failures)")

    def halt(self, reason: str) -> None:
        with self.lock:
            self._halt(reason)

    def _halt(self, reason: str) -> None:
        if self.halted_reason is None:
            self.halted_reason = reason
        self.stop.set()


class VaultThrottle:
    """``per_vault`` VMs at a time in one vault, ``max_parallel`` in the whole wave."""

    def __init__(self, max_parallel: int, per_vault: int) -> None:
        self.total = threading.BoundedSemaphore(max_parallel)
        self.per_vault = per_vault
        self._vaults: dict[str, threading.BoundedSemaphore] = {}
        self._lock = threading.Lock()

    def vault(self, vault_id: str) -> threading.BoundedSemaphore:
        with self._lock:
            key = vault_id.lower()
            if key not in self._vaults:
                self._vaults[key] = threading.BoundedSemaphore(self.per_vault)
            return self._vaults[key]


def run_vms(vms: Iterable[VmPlan], handle: Callable[[VmPlan], VmOutcome], gate: Gate,
            throttle: VaultThrottle, workers: int) -> list[VmOutcome]:
    """Run ``handle`` over ``vms`` (one chunk of vaults) under the throttle and the gate."""
    outcomes: list[VmOutcome] = []
    done = threading.Lock()

    def one(vm: VmPlan) -> None:
        with throttle.vault(vm.vault_id), throttle.total:
            if not gate.may_start():
                return
            try:
                outcome = handle(vm)
            except WaveStop as err:  # the VM is journaled; no other VM may start
                gate.halt(str(err))
                return
            except CcmigrateError as err:
                # Unexpected for this VM (it stays in progress: a resume reconciles it from
                # Azure). Stop starting others, let those in flight finish.
                gate.halt(f"{vm.vm_name}: {err}")
                return
        gate.record(outcome)
        with done:
            outcomes.append(outcome)

    # Each worker runs in a copy of the caller's context, so whatever the caller set up there
    # (Prefect's run context and settings, e.g. the API URL of a private server) holds in the
    # worker threads too.
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="vm") as pool:
        for future in [pool.submit(contextvars.copy_context().run, one, vm) for vm in vms]:
            future.result()
    return outcomes
