"""The wave engine: as many VMs in flight as the limits allow, on a handful of threads.

Each VM of a wave is a small state machine (``Flight``), journaled at every step; one scheduler
thread moves them all, a few worker threads make the HTTP calls (one attempt each,
``tasks/azure/wire.py``), and answers come back to the scheduler as events. So in flight is a
count, not threads: a wave can hold thousands of VMs while each waits tens of seconds for
Azure.

A VM's forward path (its ARM cost in brackets):

1. *Look*, a chunk of VMs at once (``look.py``): Resource Graph reads the chunk's VMs, disks
   and protected items, the rule engine scores them, and each vault's running jobs are listed
   once [amortized]. Anything off is a skip, with the reason. A look is used for at most
   ``LOOK_MAX_AGE_S``; older, the VM is looked at again.
2. *Admit* when the wave, its subscription (adaptive: ``concurrency.py``) and its vault have
   room; read the item from ARM [1 read]: the facts a PUT acts on (policy, protection state),
   current to the second, since Resource Graph may lag ARM.
3. *Intent*: the journal row goes ``in_progress``/``intent``; intents are committed in groups,
   and a PUT is sent only after its intent is committed.
4. *PUT* the item with the target policy [1 write], under ARM's pacing and the subscription's
   learned change rate. A 429 is waited out (``throttling.py``), never a failure.
5. *Operation*: its status is read after the ``Retry-After`` the 202 gave [1 read, more only
   while it names no job]; it names the ConfigureBackup job.
6. *Job*: one job list per vault covers every VM of the vault waiting for its job [amortized],
   each matched by the job id its operation named (never by VM name: two VMs of one vault may
   share a name across resource groups).
7. *Verify*: the item names the target policy, from one list of the vault's items when enough
   of its VMs wait, else one GET each [amortized, at most 1].
8. With ``--verify backup``: an on-demand backup [1 write], its operation read for the Backup
   job's id, the job followed in the vault's Backup job list like step 6 (after a Standard to
   Enhanced move, first the backup Azure starts itself, seen in the vault's running jobs).

Failures after the PUT, refusals, timeouts and the reconciling of VMs a stopped runner left in
progress take the ``Mover``'s blocking paths (``move.py``) on a small pool of their own: they
are rare, and one place keeps their rules.
"""

from __future__ import annotations

import heapq
import itertools
import queue
import time
from collections import deque
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ..azure import backup, wire
from ..azure.clients import POOL_SIZE
from ..errors import AzureError, CcmigrateError
from . import throttling
from .concurrency import InFlight, Limits
from .live_checks import running_jobs, skip_reason
from .move import (
    DONE_JOB_STATES,
    RETRYABLE_CODES,
    LastLook,
    Mover,
    VmOutcome,
    VmPlan,
    WaveStop,
    _job_error,
    _same,
)

# A look is trusted this long (see look.py for why a few minutes is safe).
LOOK_MAX_AGE_S = 300.0
LOOK_CHUNK = 1000  # VMs per Resource Graph look (Resource Graph pages hold 1,000 rows)
LOOK_MIN_CHUNK = 50
# Calls a subscription may have on the wire at once, per kind (the pacer spaces them; this
# only keeps one subscription's waiting calls from taking every worker).
CALLS_PER_KIND = 8
SLOW_WORKERS = 16
# Target policies made at once: each waits for Azure (minutes at worst, emulator/timing.py),
# and a vault's VMs wait for theirs, so every vault of a wave of 32 vaults starts together.
POLICY_WORKERS = 32
JOURNAL_FLUSH_S = 0.2
ITEMS_PAGE = 200  # ARM list page size the emulator and Recovery Services use (unverified)
JOB_MARGIN = timedelta(minutes=5)  # clock skew allowed in the job list's startTime filter
# A vault's job and item lists are spaced so that each catches about this many VMs done.
CATCH_PER_LIST = 8
TICK_S = 0.5


@dataclass
class Flight:
    """One VM of the wave in this run: where it is, and what it learned on the way."""

    vm: VmPlan
    sub: str
    vault: str
    state: str = "queued"
    look: LastLook | None = None
    look_at: float = 0.0
    started: datetime | None = None
    admitted_at: float = 0.0
    deadline: float = 0.0
    op_id: str | None = None
    job_id: str | None = None
    put_at: datetime | None = None
    tries: int = 0
    configure_job: str | None = None  # with --verify backup, the ConfigureBackup job's id
    counts: bool = True  # its outcome counts in the failure gate (not a reconciled VM)
    before_put: bool = False  # admitted, its change not yet taken by Azure
    unlisted: bool = False  # its item was missing from the vault's list: a GET next time


class Lanes:
    """VMs not looked at yet, one lane per subscription, each in plan order. ARM's budgets are
    per subscription, so looks draw from every subscription at once: a plan grouped by
    subscription must not spend one subscription's budget at a time."""

    def __init__(self) -> None:
        self.lanes: dict[str, deque[Flight]] = {}
        self.count = 0
        self.in_vault: dict[str, int] = {}  # vault -> its VMs in the lanes

    def __len__(self) -> int:
        return self.count

    def append(self, flight: Flight) -> None:
        self.lanes.setdefault(flight.sub, deque()).append(flight)
        self._counted(flight.vault, 1)

    def appendleft(self, flight: Flight) -> None:
        self.lanes.setdefault(flight.sub, deque()).appendleft(flight)
        self._counted(flight.vault, 1)

    def _counted(self, vault: str, n: int) -> None:
        self.count += n
        self.in_vault[vault] = self.in_vault.get(vault, 0) + n

    def available(self, sub: str, held: Collection[str] = ()) -> int:
        """VMs of ``sub`` in its lane outside the ``held`` vaults."""
        lane = self.lanes.get(sub)
        return len(lane) - sum(self.in_vault.get(v, 0) for v in held) if lane else 0

    def take(self, sub: str, n: int, held: Collection[str] = ()) -> list[Flight]:
        """The next ``n`` VMs of ``sub`` in plan order, passing over the ``held`` vaults'
        (which keep their places)."""
        lane = self.lanes.get(sub) or deque()
        taken: list[Flight] = []
        passed: list[Flight] = []
        while lane and len(taken) < n:
            flight = lane.popleft()
            (passed if flight.vault in held else taken).append(flight)
        lane.extendleft(reversed(passed))
        for flight in taken:
            self._counted(flight.vault, -1)
        return taken

    def subscriptions(self) -> list[str]:
        return [sub for sub, lane in self.lanes.items() if lane]

    def clear(self) -> None:
        self.lanes.clear()
        self.in_vault.clear()
        self.count = 0


@dataclass
class EngineStats:
    """What the wave did, for the report, the log and the benchmarks."""

    peak_in_flight: int = 0
    curve: list[tuple[float, int, int]] = field(default_factory=list)
    resource_graph_requests: int = 0
    looks: int = 0
    looked_vms: int = 0  # VMs in those looks, a VM looked at again counted again
    stale_looks: int = 0  # VMs whose look grew too old before they started: looked again
    throttled: int = 0
    journal_commits: int = 0
    calls: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"peak_in_flight": self.peak_in_flight,
                "in_flight_curve": [list(p) for p in self.curve],
                "resource_graph_requests": self.resource_graph_requests,
                "looks": self.looks, "looked_vms": self.looked_vms,
                "stale_looks": self.stale_looks, "throttled": self.throttled,
                "journal_commits": self.journal_commits, "calls": dict(self.calls)}


class WaveEngine:
    """Runs one wave's VMs (see the module docstring). ``looker`` looks at a chunk of VMs and
    returns a ``LastLook`` per ``vm_key`` plus the Resource Graph requests it cost; ``gate``
    is the wave's failure accounting (``wave.Gate``); ``on_outcome`` hears every VM's end."""

    def __init__(self, access: Any, journal: Any, mover: Mover, looker: Any, gate: Any,
                 limits: Limits, *, verify: str = "job", poll_interval: float = 5.0,
                 timeout: float = 1800.0, irreversible_timeout: float = 14400.0,
                 backup_timeout: float = 86400.0,
                 on_outcome: Callable[[VmOutcome], None] | None = None,
                 log: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.access, self.journal, self.mover, self.looker = access, journal, mover, looker
        self.gate, self.limits = gate, limits
        self.verify = verify
        self.poll_interval = max(0.05, poll_interval)
        self.timeout, self.irreversible_timeout = timeout, irreversible_timeout
        self.backup_timeout = backup_timeout
        self.on_outcome = on_outcome or (lambda _o: None)
        self.log = log or (lambda _line: None)
        self.clock = clock
        self.flow = InFlight(limits, clock=clock)
        self.stats = EngineStats()
        self.outcomes: list[VmOutcome] = []
        self._events: queue.SimpleQueue = queue.SimpleQueue()
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._queued = Lanes()
        self._ready: dict[str, deque[Flight]] = {}  # vault -> looked VMs, plan order
        self._ready_count = 0
        self._ready_by_sub: dict[str, int] = {}
        self._look_turn = 0  # which subscription a look serves first (they take turns)
        self._vault_turn: deque[str] = deque()
        self._looking = 0
        self._intents: list[Flight] = []
        self._batch = journal.batch()
        self._last_flush = 0.0
        self._waiting_job: dict[str, dict[str, Flight]] = {}  # vault -> job id -> flight
        self._waiting_verify: dict[str, dict[str, Flight]] = {}  # vault -> item id -> flight
        self._waiting_backup: dict[str, dict[str, Flight]] = {}  # vault -> job id -> flight
        self._waiting_idle: dict[str, dict[str, Flight]] = {}  # vault -> item id -> flight
        self._watched: set[str] = set()
        self._vault_items: dict[str, int] = {}  # vault -> items its last list held
        self._calls: dict[tuple[str, str], int] = {}
        self._call_queue: dict[tuple[str, str], deque[Callable[[], None]]] = {}
        self._open = 0  # VMs not finished
        self._error: BaseException | None = None
        self._pool: ThreadPoolExecutor | None = None  # sized in run(), by subscriptions
        self._stop_now = False
        self._before_put: dict[str, int] = {}  # subscription -> VMs admitted, change not taken
        throttles = getattr(getattr(access, "settings", None), "throttles", None)
        self._writes_per_s = float(getattr(throttles, "arm_writes_per_s", 10.0))
        self._slow = ThreadPoolExecutor(max_workers=SLOW_WORKERS, thread_name_prefix="vm-slow")
        self._look_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="look")
        self._policy_pool = ThreadPoolExecutor(max_workers=POLICY_WORKERS,
                                               thread_name_prefix="policy")
        self._vault_pending: dict[str, int] = {}  # vault -> its target policies not ready yet
        self._held: dict[str, set[str]] = {}  # subscription -> its vaults with policies pending
        self._vault_blocked: dict[str, tuple[str, str]] = {}  # vault -> (code, reason)
        self._last_line = 0.0
        self._admissions: dict[str, deque[float]] = {}  # sub -> when VMs started (last min)
        # Mean seconds a VM holds its slot, admission to verified (a running mean); until one
        # is verified, the first Retry-After seen (Azure's guess at the wait) or ten polls.
        self._change_s = 10 * self.poll_interval
        self._changes_seen = 0

    # -- running ------------------------------------------------------------------------------

    def run(self, vms: list[VmPlan], reconcile: list[tuple[VmPlan, Any]] = (), *,
            targets: list[Any] = (),
            ensure: Callable[[Any], tuple[str, str] | None] | None = None) -> list[VmOutcome]:
        """Move ``vms`` (plan order) and reconcile ``reconcile`` (VM, journal entry) pairs;
        return every VM's outcome. ``targets`` (each with a ``vault_id``) are the policies the
        VMs move to, made by ``ensure`` side by side while the first looks run: a vault's VMs
        start once its targets are in place, and are skipped with the reason ``ensure`` gives
        when one cannot be made. Returns when every VM finished or, once the gate stopped new
        starts, when those in flight finished."""
        import contextvars

        self._ctx = contextvars.copy_context()
        subscriptions = {vm.subscription_id.lower() for vm in vms} | {
            vm.subscription_id.lower() for vm, _ in reconcile}
        # Every subscription's calls of both kinds on the wire at once (the connection pool
        # holds clients.POOL_SIZE).
        self._pool = ThreadPoolExecutor(
            max_workers=min(POOL_SIZE - SLOW_WORKERS - POLICY_WORKERS - 2,
                            2 * CALLS_PER_KIND * max(1, len(subscriptions)) + 2),
            thread_name_prefix="arm")
        pacer = getattr(self.access, "pacer", None)
        holds = pacer.provider_holds if pacer is not None else None
        if pacer is not None:  # throttles are this engine's to wait out (throttling.py)
            pacer.provider_holds = False
        try:
            self._prepare(targets, ensure)
            for vm, entry in reconcile:
                flight = self._flight(vm)
                flight.counts = False
                self._open += 1
                self.flow.enter(flight.sub, flight.vault)
                flight.state = "slow"
                self._slow_call(flight, lambda f=flight, e=entry: self.mover.reconcile(f.vm, e))
            for vm in vms:
                flight = self._flight(vm)
                self._queued.append(flight)
                self._open += 1
                # A vault holds at least the wave's items: what its first list will cost.
                self._vault_items[flight.vault] = self._vault_items.get(flight.vault, 0) + 1
            self._loop()
        finally:
            if pacer is not None:
                pacer.provider_holds = holds
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._slow.shutdown(wait=True, cancel_futures=True)
            self._look_pool.shutdown(wait=True, cancel_futures=True)
            self._policy_pool.shutdown(wait=True, cancel_futures=True)
        self.stats.peak_in_flight = self.flow.peak
        self.flow.point(force=True)
        self.stats.curve = list(self.flow.curve)
        self.stats.throttled = self.flow.throttled()
        if self._error is not None:
            raise self._error
        return self.outcomes

    def _flight(self, vm: VmPlan) -> Flight:
        return Flight(vm, vm.subscription_id.lower(), vm.vault_id.lower())

    def _loop(self) -> None:
        while self._open > 0 and self._error is None and not self._stop_now:
            if self.gate.stop.is_set() and not self.flow.total and not self._looking:
                self._abandon_unstarted()
                break
            now = self.clock()
            self._fire_timers(now)
            self._look_ahead(now)
            self._admit(now)
            self._flush(now)
            self._line(now)
            wait = TICK_S
            if self._timers:
                wait = min(wait, max(0.0, self._timers[0][0] - self.clock()))
            if self._intents or len(self._batch):
                wait = min(wait, JOURNAL_FLUSH_S)
            try:
                event = self._events.get(timeout=wait)
            except queue.Empty:
                continue
            self._handle(event)
            while True:  # everything else that arrived meanwhile, before the next tick
                try:
                    event = self._events.get_nowait()
                except queue.Empty:
                    break
                self._handle(event)
        self._flush(self.clock(), force=True)

    def _handle(self, event: tuple[Callable[..., None], tuple]) -> None:
        callback, args = event
        try:
            callback(*args)
        except CcmigrateError as err:
            # What no VM can get past (the credential can no longer get a token, the lease was
            # lost): stop now. VMs in flight stay in progress in the journal, which a resume
            # reconciles from what Azure shows.
            self.gate.halt(str(err))
            self._stop_now = True
        except BaseException as err:  # a bug: stop the wave, say it
            self._error = err

    def _abandon_unstarted(self) -> None:
        """The gate stopped new starts: what was never started stays pending."""
        self._open -= len(self._queued) + self._ready_count
        self._queued.clear()
        self._ready.clear()
        self._ready_count = 0
        self._ready_by_sub.clear()

    def _line(self, now: float) -> None:
        self.flow.point()
        if now - self._last_line >= 10:
            self._last_line = now
            self.log(f"in flight {self.flow.total} (allowed {self.flow.allowed()}); "
                     f"{len(self.outcomes)} finished, {self._open} to go")

    # -- timers, calls and events ----------------------------------------------------------------

    def _at(self, due: float, callback: Callable[[], None]) -> None:
        heapq.heappush(self._timers, (due, next(self._seq), callback))

    def _fire_timers(self, now: float) -> None:
        while self._timers and self._timers[0][0] <= now:
            _, _, callback = heapq.heappop(self._timers)
            self._handle((callback, ()))

    def _post(self, callback: Callable[..., None], *args: Any) -> None:
        self._events.put((callback, args))

    def _call(self, sub: str, kind: str, call: Callable[[], Any],
              done: Callable[[Any], None]) -> None:
        """Run ``call`` on a worker (at most ``CALLS_PER_KIND`` per subscription and kind on
        the wire); ``done(result)`` runs on the scheduler. ``call`` returns a ``wire.Answer``
        or raises (then ``done`` gets the exception)."""
        key = (sub, kind)
        self.stats.calls[kind] = self.stats.calls.get(kind, 0) + 1

        def start() -> None:
            self._calls[key] = self._calls.get(key, 0) + 1

            def work() -> None:
                try:
                    result: Any = self._ctx.copy().run(call)
                except BaseException as err:  # handed to the scheduler, which decides
                    result = err
                self._post(finish, result)

            self._pool.submit(work)

        def finish(result: Any) -> None:
            self._calls[key] -= 1
            waiting = self._call_queue.get(key)
            if waiting:
                waiting.popleft()()
            done(result)

        if self._calls.get(key, 0) < CALLS_PER_KIND:
            start()
        else:
            self._call_queue.setdefault(key, deque()).append(start)

    def _slow_call(self, flight: Flight, work: Callable[[], VmOutcome]) -> None:
        """A blocking path of the ``Mover`` (rollback, refusal, reconcile, backup verify). The
        VM's steps so far are committed first: the Mover journals its own steps at once."""
        flight.state = "slow"
        self._put_taken(flight)
        self._flush(self.clock(), force=True)

        def run() -> None:
            try:
                result: Any = self._ctx.copy().run(work)
            except BaseException as err:
                result = err
            self._post(self._slow_done, flight, result)

        self._slow.submit(run)

    def _slow_done(self, flight: Flight, result: Any) -> None:
        if (not flight.counts and isinstance(result, VmOutcome)
                and result.status == "rolled_back" and result.error_code in RETRYABLE_CODES
                and not self.gate.stop.is_set()):
            # Reconciled back onto its original policy for a reason that was not its own (the
            # runner stopped before its change reached Azure): this run moves it after all.
            self.log(f"{flight.vm.vm_name}: reconciled ({result.error_code}); moving it again")
            self.flow.leave(flight.sub, flight.vault)
            again = self._flight(flight.vm)
            self._queued.append(again)
            flight.state = "finished"
            return
        if isinstance(result, WaveStop):
            self.gate.halt(str(result))
            self._leave(flight, None)
            return
        if isinstance(result, CcmigrateError):
            # Unexpected for this VM: it stays in progress (a resume reconciles it from Azure);
            # no new VM starts, those in flight finish.
            self.gate.halt(f"{flight.vm.vm_name}: {result}")
            self._leave(flight, None)
            return
        if isinstance(result, BaseException):
            self._error = result
            self._leave(flight, None)
            return
        self._leave(flight, result)

    def _leave(self, flight: Flight, outcome: VmOutcome | None) -> None:
        """The VM's run is over (``outcome`` None: left in progress for a resume)."""
        if flight.state in ("finished",):
            return
        admitted = flight.state not in ("queued", "looking", "ready")
        self._put_taken(flight)
        flight.state = "finished"
        self._open -= 1
        if admitted:
            self.flow.leave(flight.sub, flight.vault)
        self._unwait(flight)
        if outcome is None:
            return
        self.outcomes.append(outcome)
        if admitted and flight.counts:  # the gate counted its start
            self.gate.record(outcome)
        self.on_outcome(outcome)

    def _outcome(self, flight: Flight, status: str, *, code: str | None = None,
                 message: str | None = None, throttled: bool = False,
                 job_ids: list[str] | None = None) -> VmOutcome:
        started = flight.started or datetime.now(UTC)
        outcome = VmOutcome(flight.vm.vm_key, flight.vm.vm_name, status, started,
                            datetime.now(UTC), list(job_ids or []), code, message, None,
                            throttled)
        if status != "done":
            detail = f" ({code}: {message})" if code or message else ""
            self.log(f"{flight.vm.vm_name}: {status}{detail}")
        return outcome

    # -- target policies ----------------------------------------------------------------------

    def _prepare(self, targets: list[Any], ensure: Any) -> None:
        if not targets or ensure is None:
            return
        # Subscriptions take turns, so each has a vault ready early: their budgets are apart.
        by_sub: dict[str, list[Any]] = {}
        for target in targets:
            by_sub.setdefault(backup.vault_ref(target.vault_id).subscription_id.lower(),
                              []).append(target)
        turns = itertools.zip_longest(*by_sub.values())
        for target in (t for turn in turns for t in turn if t is not None):
            vault = target.vault_id.lower()
            self._vault_pending[vault] = self._vault_pending.get(vault, 0) + 1
            self._held.setdefault(backup.vault_ref(vault).subscription_id.lower(),
                                  set()).add(vault)

            def work(target: Any = target) -> None:
                try:
                    result: Any = self._ctx.copy().run(ensure, target)
                except BaseException as err:
                    result = err
                self._post(self._target_done, target, result)

            self._policy_pool.submit(work)

    def _target_done(self, target: Any, result: Any) -> None:
        vault = target.vault_id.lower()
        self._vault_pending[vault] -= 1
        if not self._vault_pending[vault]:
            self._held[backup.vault_ref(vault).subscription_id.lower()].discard(vault)
        if isinstance(result, WaveStop):
            self._error = result  # the identity may not write: every VM would meet it
            return
        if isinstance(result, BaseException):
            raise result
        if result is not None and vault not in self._vault_blocked:
            self._vault_blocked[vault] = result
            self.log(result[1])
            lane = self._ready.pop(vault, None) or deque()
            self._ready_count -= len(lane)
            if lane:
                self._ready_by_sub[lane[0].sub] -= len(lane)
            for flight in lane:
                self._skip_unstarted(flight, *result)

    def _blocked(self, flight: Flight) -> bool:
        """Skip a VM whose vault's target policy could not be made."""
        found = self._vault_blocked.get(flight.vault)
        if found is None:
            return False
        self._skip_unstarted(flight, *found)
        return True

    # -- looking ----------------------------------------------------------------------------------

    def _want_ready(self, sub: str, now: float) -> int:
        """How many looked VMs of a subscription to keep at hand: what it starts in half a
        look's lifetime (so looks rarely go stale), at least a chunk's floor, at most a page.
        The start rate is the last minute's, or what its limit allows over ten seconds when
        that is higher (a subscription still growing)."""
        started = self._admissions.get(sub) or deque()
        while started and started[0] < now - 60:
            started.popleft()
        rate = max(len(started) / 60, self.flow.limit(sub).allowed / 10)
        return int(max(LOOK_MIN_CHUNK, min(LOOK_CHUNK, rate * LOOK_MAX_AGE_S / 2)))

    def _look_ahead(self, now: float) -> None:
        """Look at the next VMs of every subscription running short of looked VMs it can
        start, in one chunk (at most a page) shared between them by what each lacks.

        A vault whose target policy is still being made holds its VMs back: the look passes
        over them (they keep their places) so that one slow policy operation does not stall
        its subscription's other vaults. Before any vault of a subscription is ready, the
        look takes its VMs in plan order, so they are at hand when their policies land."""
        if self._looking or not self._queued or self.gate.stop.is_set():
            return
        subs = self._queued.subscriptions()
        self._look_turn = (self._look_turn + 1) % len(subs)
        subs = subs[self._look_turn:] + subs[:self._look_turn]
        need: dict[str, tuple[int, Collection[str]]] = {}
        for sub in subs:
            held: Collection[str] = self._held.get(sub) or ()
            ready = self._ready_by_sub.get(sub, 0)
            startable = ready - sum(len(self._ready.get(v) or ()) for v in held)
            if held and not self._queued.available(sub, held):
                if ready:
                    continue  # every VM left waits for a policy, and some are looked already
                held = ()
            want = self._want_ready(sub, now)
            if startable < want // 2:
                need[sub] = (max(LOOK_MIN_CHUNK, want - startable), held)
        if not need:
            return
        scale = min(1.0, LOOK_CHUNK / sum(n for n, _ in need.values()))
        chunk: list[Flight] = []
        for sub, (n, held) in need.items():  # the turn's order: a page fills
            room = LOOK_CHUNK - len(chunk)
            if room <= 0:
                break
            taken = self._queued.take(sub, min(room, max(1, int(n * scale))), held)
            chunk += [flight for flight in taken if not self._blocked(flight)]
        if not chunk:
            return
        for flight in chunk:
            flight.state = "looking"
        self._looking += 1

        def work() -> None:
            try:
                result: Any = self._ctx.copy().run(self.looker, [f.vm for f in chunk])
            except BaseException as err:
                result = err
            self._post(self._looked, chunk, result)

        self._look_pool.submit(work)

    def _looked(self, chunk: list[Flight], result: Any) -> None:
        self._looking -= 1
        if isinstance(result, BaseException):
            if isinstance(result, AzureError):
                # Resource Graph could not be read (after its own retries): the chunk waits
                # and is looked at again, like a throttled VM.
                self.log(f"could not look at {len(chunk)} VM(s) before moving them: {result}")
                for flight in reversed(chunk):
                    flight.state = "queued"
                    self._queued.appendleft(flight)
                pause = throttling.delay(1, None) * 10
                self._looking += 1
                self._at(self.clock() + pause, lambda: self._unpause_look())
                return
            raise result
        looks, requests = result
        self.stats.looks += 1
        self.stats.looked_vms += len(chunk)
        self.stats.resource_graph_requests += requests
        now = self.clock()
        for flight in chunk:
            found: LastLook = looks[flight.vm.vm_key]
            flight.look, flight.look_at = found, now
            if self._blocked(flight):
                continue
            if found.skip:
                self._skip_unstarted(flight, *found.skip, throttled=found.throttled,
                                     message=found.error)
                continue
            flight.state = "ready"
            lane = self._ready.get(flight.vault)
            if lane is None:
                lane = self._ready[flight.vault] = deque()
                self._vault_turn.append(flight.vault)
            lane.append(flight)
            self._ready_count += 1
            self._ready_by_sub[flight.sub] = self._ready_by_sub.get(flight.sub, 0) + 1

    def _unpause_look(self) -> None:
        self._looking -= 1

    def _skip_unstarted(self, flight: Flight, code: str, reason: str, *,
                        throttled: bool = False, message: str | None = None) -> None:
        self._batch.skip(flight.vm.vm_key, reason, code=code)
        self._leave(flight, self._outcome(flight, "skipped", code=code,
                                          message=message or reason, throttled=throttled))

    # -- admitting ----------------------------------------------------------------------------

    def _admit(self, now: float) -> None:
        """Start ready VMs while the limits allow, the vaults taking turns."""
        if self.gate.stop.is_set():
            return
        turns = len(self._vault_turn)
        idle = 0
        while self._ready_count and idle < turns and self.flow.total < self.limits.wave:
            vault = self._vault_turn[0]
            self._vault_turn.rotate(-1)
            lane = self._ready.get(vault)
            if not lane:
                self._ready.pop(vault, None)
                self._vault_turn.remove(vault)
                turns -= 1
                continue
            flight = lane[0]
            if (self._vault_pending.get(vault) or not self.flow.room(flight.sub, vault)
                    or not self._may_queue_put(flight.sub)):
                idle += 1
                continue
            idle = 0
            lane.popleft()
            self._ready_count -= 1
            self._ready_by_sub[flight.sub] -= 1
            if now - flight.look_at > LOOK_MAX_AGE_S:  # too old to trust: look again
                self.stats.stale_looks += 1
                flight.state = "queued"
                self._queued.appendleft(flight)
                continue
            if not self.gate.may_start():
                flight.state = "queued"
                self._queued.appendleft(flight)
                return
            self._start(flight, now)

    def _may_queue_put(self, sub: str) -> bool:
        """Admit a subscription's VMs no faster than its changes can go out: at most two
        seconds' worth of changes (ARM's write refill, or the learned rate) waiting for their
        PUT, so in flight counts changes in Azure, not a queue for the write bucket."""
        rate = self._writes_per_s
        learned = self.flow.limit(sub).rate
        if learned is not None:
            rate = min(rate, learned)
        return self._before_put.get(sub, 0) < max(2 * CALLS_PER_KIND, 2 * rate)

    def _put_taken(self, flight: Flight) -> None:
        if flight.before_put:
            flight.before_put = False
            self._before_put[flight.sub] -= 1

    def _start(self, flight: Flight, now: float) -> None:
        flight.before_put = True
        self._before_put[flight.sub] = self._before_put.get(flight.sub, 0) + 1
        self.flow.enter(flight.sub, flight.vault)
        self._admissions.setdefault(flight.sub, deque()).append(now)
        flight.state = "reading"
        flight.started = datetime.now(UTC)
        flight.admitted_at = now
        flight.deadline = now + self.timeout
        self._read_item(flight)

    # -- 2. the item, from ARM --------------------------------------------------------------------

    def _client(self, flight: Flight) -> Any:
        return self.access.backup(flight.vm.subscription_id)

    def _read_item(self, flight: Flight) -> None:
        ref = backup.item_ref(flight.vm.item_id)
        self._call(flight.sub, "reads", lambda: wire.get_item(self._client(flight), ref),
                   lambda answer: self._item_read(flight, answer))

    def _item_read(self, flight: Flight, answer: Any) -> None:
        if isinstance(answer, BaseException):
            raise answer
        vm = flight.vm
        if answer.transient:
            if self._wait_out(flight, answer, lambda: self._read_item(flight), before_put=True):
                return
            self._skip_started(flight, "THROTTLED" if answer.throttled else "UNREADABLE",
                               f"could not read it before moving: {answer.error}",
                               throttled=answer.throttled)
            return
        flight.tries = 0
        if answer.status == 404:
            self._skip_started(flight, "ITEM_GONE", "the VM's protected item no longer exists")
            return
        if not answer.ok:
            self._skip_started(flight, "UNREADABLE", f"could not read it before moving: "
                               f"{answer.error}")
            return
        item = answer.body
        reason = skip_reason({"id": vm.vm_id}, item, [], vm_name=vm.vm_name,
                             item_id=vm.item_id, source_policy_id=vm.source_policy_id,
                             target_policy_id=vm.target_policy_id)
        if reason is not None:
            self._skip_started(flight, *reason)
            return
        self._batch.begin(vm.vm_key, original_policy_id=vm.source_policy_id,
                          target_policy_id=vm.target_policy_id)
        if _same((item.get("properties") or {}).get("policyId"), vm.target_policy_id):
            # Moved already (by hand, or by a run whose journal was lost): verify and keep.
            self._batch.step(vm.vm_key, "verified",
                             detail={"note": "the item was already on the target policy"})
            self._batch.finish(vm.vm_key, "done")
            self._leave(flight, self._outcome(flight, "done"))
            return
        flight.state = "intent"
        self._intents.append(flight)

    def _skip_started(self, flight: Flight, code: str, reason: str, *,
                      throttled: bool = False) -> None:
        self._batch.skip(flight.vm.vm_key, reason, code=code)
        self._leave(flight, self._outcome(flight, "skipped", code=code, message=reason,
                                          throttled=throttled))

    def _wait_out(self, flight: Flight, answer: Any, again: Callable[[], None], *,
                  before_put: bool = False) -> bool:
        """Wait out a throttle or transient failure and ``again()``; False when the VM's
        deadline would pass first (``throttling.py`` decides how long)."""
        flight.tries += 1
        now = self.clock()
        wait = throttling.delay(flight.tries, answer.retry_after)
        if not throttling.fits(now, wait, flight.deadline):
            return False
        self._at(now + wait, again)
        return True

    # -- 3. intents, committed in groups ----------------------------------------------------

    def _flush(self, now: float, force: bool = False) -> None:
        if not (self._intents or len(self._batch)):
            return
        if not force and now - self._last_flush < JOURNAL_FLUSH_S and not (
                self._intents and now - self._last_flush >= JOURNAL_FLUSH_S / 4):
            return
        intents, self._intents = self._intents, []
        refused = self._batch.commit()
        self.stats.journal_commits += 1
        self._last_flush = self.clock()
        for flight in intents:
            err = refused.get(flight.vm.vm_key)
            if err is not None:  # a runner bug or a second runner: nothing reaches Azure
                self.gate.halt(f"{flight.vm.vm_name}: {err}")
                self._leave(flight, None)
                continue
            self._send_put(flight)
        for key, err in refused.items():
            if not any(f.vm.vm_key == key for f in intents):
                self.gate.halt(f"{key}: {err}")

    # -- 4. the PUT -------------------------------------------------------------------------------

    def _send_put(self, flight: Flight) -> None:
        limit = self.flow.limit(flight.sub)
        now = self.clock()
        at = limit.next_change_at(now)
        limit.sent_change(now)
        if at > now:
            self._at(at, lambda: self._put_now(flight))
        else:
            self._put_now(flight)

    def _put_now(self, flight: Flight) -> None:
        vm = flight.vm
        flight.state = "putting"
        ref = backup.item_ref(vm.item_id)
        guard = list(flight.look.guard_requests) if flight.look else []
        self._call(flight.sub, "writes", lambda: wire.put_item_policy(
            self._client(flight), ref, vm.vm_id, vm.target_policy_id, guard_requests=guard),
            lambda answer: self._put_answered(flight, answer))

    def _put_answered(self, flight: Flight, answer: Any) -> None:
        if isinstance(answer, BaseException):
            raise answer
        vm = flight.vm
        now = self.clock()
        limit = self.flow.limit(flight.sub)
        if answer.throttled:
            if limit.throttle(now, self.flow.by_subscription.get(flight.sub, 0),
                              self._change_s):
                self.log(f"subscription {flight.sub}: throttled ({answer.code}); in flight "
                         f"limit now {limit.allowed}, changes at most "
                         f"{limit.rate or 0:.1f}/s")
            if self._wait_out(flight, answer, lambda: self._send_put(flight)):
                return
            # Azure took nothing (a 429 is answered before the request is processed).
            self._batch.finish(vm.vm_key, "rolled_back", error_code="THROTTLED",
                               error_message=f"throttled until its deadline: {answer.error}",
                               rollback_outcome="nothing to undo: the change was never taken")
            self._leave(flight, self._outcome(flight, "rolled_back", code="THROTTLED",
                                              message=str(answer.error), throttled=True))
            return
        if answer.status == 0 or answer.status >= 500:
            # The PUT may or may not have been taken: Azure's own state decides (as after a
            # crash between sending and journaling it).
            self._slow_call(flight, lambda: self.mover.reconcile(
                vm, self.journal.entry(vm.vm_key)))
            return
        if not answer.ok:
            err = answer.error or AzureError(f"the change was refused ({answer.status})",
                                             status=answer.status)
            client, ref = self._client(flight), backup.item_ref(vm.item_id)
            started = flight.started or datetime.now(UTC)
            self._slow_call(flight, lambda: self.mover._refused(vm, client, ref, err, started))
            return
        limit.accepted(now, self._change_s)
        self._put_taken(flight)
        flight.tries = 0
        flight.put_at = datetime.now(UTC)
        flight.deadline = now + (self.irreversible_timeout if vm.irreversible else self.timeout)
        flight.op_id = wire.operation_id(answer)
        detail = ({"detail": {"resource_guard_requests": list(flight.look.guard_requests)}}
                  if flight.look and flight.look.guard_requests else {})
        self._batch.step(vm.vm_key, "put_sent", operation_id=flight.op_id, **detail)
        self.mover._last[vm.vm_key] = "put_sent"
        if answer.status in (200, 201) or not flight.op_id:
            self._to_verify(flight)  # applied at once (or nothing to follow): check the item
            return
        flight.state = "operation"
        wait = answer.retry_after if answer.retry_after is not None else self.poll_interval
        if not self._changes_seen and answer.retry_after:
            self._change_s = max(self._change_s, answer.retry_after)
        self._at(now + max(wait, 0.05), lambda: self._read_operation(flight))

    # -- 5. the operation -------------------------------------------------------------------------

    def _read_operation(self, flight: Flight) -> None:
        if flight.state == "finished":
            return
        ref = backup.item_ref(flight.vm.item_id)
        op_id = flight.op_id or ""
        self._call(flight.sub, "reads",
                   lambda: wire.item_operation(self._client(flight), ref, op_id),
                   lambda answer: self._operation_read(flight, answer))

    def _operation_read(self, flight: Flight, answer: Any) -> None:
        if isinstance(answer, BaseException):
            raise answer
        now = self.clock()
        if answer.transient or answer.status == 404:
            if self._wait_out(flight, answer, lambda: self._read_operation(flight)):
                return
            self._fail(flight, "TIMEOUT", f"the change's operation could not be read before "
                       f"its deadline: {answer.error}")
            return
        if not answer.ok:
            self._fail(flight, answer.code or "UNREADABLE", str(answer.error))
            return
        flight.tries = 0
        status = answer.body
        state = status.get("status")
        job_id = (status.get("properties") or {}).get("jobId") or None
        if state in ("Failed", "Canceled", "Cancelled"):
            error = status.get("error") or {}
            self._batch.step(flight.vm.vm_key, "operation_done", job_id=job_id,
                             error_code=error.get("code"), error_message=error.get("message"))
            self._fail(flight, error.get("code") or "OPERATION_FAILED",
                       error.get("message") or f"the change ended {state}",
                       [job_id] if job_id else [])
            return
        if job_id:
            flight.job_id = job_id
            if state == "Succeeded":
                self._batch.step(flight.vm.vm_key, "operation_done", job_id=job_id)
            else:
                self._batch.step(flight.vm.vm_key, "put_sent", job_id=job_id)
            self._to_job(flight)
            return
        if state == "Succeeded":
            self._batch.step(flight.vm.vm_key, "operation_done")
            self._to_verify(flight)
            return
        if now >= flight.deadline:
            self._fail(flight, "TIMEOUT", f"the change did not finish within "
                       f"{self._limit_s(flight):.0f} s (operation {flight.op_id})")
            return
        wait = answer.retry_after if answer.retry_after is not None else self.poll_interval
        self._at(now + max(wait, self.poll_interval), lambda: self._read_operation(flight))

    def _limit_s(self, flight: Flight) -> float:
        return self.irreversible_timeout if flight.vm.irreversible else self.timeout

    # -- 6. jobs and 7. verification, in bulk per vault ----------------------------------

    def _learn_duration(self, flight: Flight) -> None:
        """How long a VM holds its slot, admission to verified: with a change rate, what the
        wave keeps in flight (Little's law), and how far apart a vault's lists may be."""
        took = self.clock() - flight.admitted_at
        self._changes_seen += 1
        self._change_s += (took - self._change_s) / min(self._changes_seen, 100)

    def _to_job(self, flight: Flight) -> None:
        flight.state = "job"
        self._waiting_job.setdefault(flight.vault, {})[flight.job_id or ""] = flight
        self._watch(flight.vault)

    def _to_verify(self, flight: Flight) -> None:
        flight.state = "verify"
        self._waiting_verify.setdefault(flight.vault, {})[flight.vm.item_id.lower()] = flight
        self._watch(flight.vault)

    def _watch(self, vault: str) -> None:
        if vault in self._watched:
            return
        self._watched.add(vault)
        self._at(self.clock() + self._watch_interval(vault), lambda: self._watch_round(vault))

    def _watch_interval(self, vault: str) -> float:
        """Seconds until a vault's next look: long enough that one list catches about
        ``CATCH_PER_LIST`` VMs done (the vault's waiting VMs finish at about waiting / L a
        second, L the changes' mean duration so far), so lists stay a small share of the
        reads per VM; at least ``poll_interval``, at most L / 4 (a VM never waits long: at the
        end of a wave, when few VMs wait, the read budget is idle anyway)."""
        waiting = sum(len(w.get(vault) or {}) for w in (
            self._waiting_job, self._waiting_verify, self._waiting_backup, self._waiting_idle))
        took = self._change_s
        interval = CATCH_PER_LIST * took / max(1, waiting)
        return max(self.poll_interval, min(interval, took / 4))

    def _watch_round(self, vault: str) -> None:
        """One look at a vault's waiting VMs: the job lists first (each VM's job by its id),
        then, for those whose job ended and those already waiting, the items (verification)."""
        jobs = self._waiting_job.get(vault) or {}
        backups = self._waiting_backup.get(vault) or {}
        idle = self._waiting_idle.get(vault) or {}
        if not (jobs or backups or idle or self._waiting_verify.get(vault)):
            self._watched.discard(vault)
            return
        pending = [1]

        def lists_done() -> None:
            pending[0] -= 1
            if pending[0]:
                return
            verify = self._waiting_verify.get(vault) or {}
            if verify:
                self._verify_items(vault, list(verify.values()), round_done)
            else:
                round_done()

        def round_done() -> None:
            self._timeouts(vault)
            self._at(self.clock() + self._watch_interval(vault),
                     lambda: self._watch_round(vault))

        if jobs:
            pending[0] += 1
            self._list_jobs(vault, list(jobs.values()), lists_done)
        if backups:
            pending[0] += 1
            self._list_jobs(vault, list(backups.values()), lists_done, operation="Backup")
        if idle:
            pending[0] += 1
            self._when_idle(vault, list(idle.values()), lists_done)
        lists_done()  # the round's own count: verification runs once every list answered

    def _unwait(self, flight: Flight) -> None:
        for waiting in (self._waiting_job, self._waiting_backup):
            waiting.get(flight.vault, {}).pop(flight.job_id or "", None)
        for waiting in (self._waiting_verify, self._waiting_idle):
            waiting.get(flight.vault, {}).pop(flight.vm.item_id.lower(), None)

    def _timeouts(self, vault: str) -> None:
        now = self.clock()
        for waiting in (self._waiting_job.get(vault) or {}, self._waiting_verify.get(vault) or {},
                        self._waiting_backup.get(vault) or {},
                        self._waiting_idle.get(vault) or {}):
            for flight in [f for f in waiting.values() if now >= f.deadline]:
                if flight.configure_job:  # --verify backup's wait
                    what, limit = "the on-demand backup did not finish", self.backup_timeout
                else:
                    what, limit = "the change was not verified", self._limit_s(flight)
                self._fail(flight, "TIMEOUT", f"{what} within {limit:.0f} s (job "
                           f"{flight.job_id or 'unknown'})", self._job_ids(flight))

    def _read_list(self, sub: str, client: Any, first: tuple[str, dict], what: str,
                   then: Callable[[list[dict] | None], None]) -> None:
        """Every page of an ARM list, one read each; ``then(rows)`` on the scheduler, ``None``
        when a page could not be read (throttled or failing: the next round asks again)."""
        rows: list[dict] = []

        def page(url: str, params: dict | None) -> None:
            self._call(sub, "reads", lambda: wire.list_page(client, url, what, params), got)

        def got(answer: Any) -> None:
            if isinstance(answer, BaseException):
                raise answer
            if not answer.ok:
                then(None)
                return
            rows.extend(answer.body.get("value") or [])
            link = answer.body.get("nextLink")
            if link:
                page(link, None)
                return
            then(rows)

        page(*first)

    def _list_jobs(self, vault: str, flights: list[Flight], done: Callable[[], None], *,
                   operation: str = "ConfigureBackup") -> None:
        """One list of the vault's ``operation`` jobs started since the earliest of these VMs'
        requests; each VM's job found by the id its operation named."""
        ref = backup.vault_ref(flights[0].vm.vault_id)
        sub = flights[0].sub
        since = min(f.put_at or datetime.now(UTC) for f in flights) - JOB_MARGIN
        until = datetime.now(UTC) + timedelta(days=1)
        odata = (f"operation eq '{operation}' and startTime eq '{_job_time(since)}' "
                 f"and endTime eq '{_job_time(until)}'")
        state = "job" if operation == "ConfigureBackup" else "backup_job"
        client = self._client(flights[0])

        def got(jobs: list[dict] | None) -> None:
            if jobs is None:
                done()
                return
            seen = {str(job.get("name", "")).lower(): job for job in jobs}
            for flight in flights:
                if flight.state != state:
                    continue
                job = seen.get((flight.job_id or "").lower())
                if job is None:
                    continue  # not listed yet: the next round
                status = (job.get("properties") or {}).get("status")
                if status in ("InProgress", "Cancelling", None):
                    continue
                if status not in DONE_JOB_STATES:
                    self._fail(flight, *_job_error(job), self._job_ids(flight))
                    continue
                self._unwait(flight)
                if state == "job":
                    self._batch.step(flight.vm.vm_key, "operation_done", job_id=flight.job_id)
                    self._to_verify(flight)
                else:
                    self._batch.step(flight.vm.vm_key, "backup_verified", job_id=flight.job_id)
                    self._batch.finish(flight.vm.vm_key, "done")
                    self._leave(flight, self._outcome(flight, "done",
                                                      job_ids=self._job_ids(flight)))
            done()

        self._read_list(sub, client, wire.jobs_first_page(client, ref, odata),
                        f"listing backup jobs of vault {ref.vault}", got)

    def _verify_items(self, vault: str, flights: list[Flight],
                      done: Callable[[], None]) -> None:
        """The items of ``flights`` from one list of the vault's items when that costs fewer
        reads than a GET each (the vault's last list size says how many pages it takes); an
        item a list did not hold is read by a GET (a 404 there: the item is gone)."""
        pages = max(1, -(-self._vault_items.get(vault, 0) // ITEMS_PAGE))
        client = self._client(flights[0])
        sub = flights[0].sub
        listed = [f for f in flights if not f.unlisted]
        by_get = [f for f in flights if f.unlisted]
        if len(listed) < pages:
            listed, by_get = [], flights
        left = [len(by_get) + (1 if listed else 0)]

        def each_done() -> None:
            left[0] -= 1
            if left[0] == 0:
                done()

        if listed:
            ref = backup.vault_ref(flights[0].vm.vault_id)

            def got(items: list[dict] | None) -> None:
                if items is not None:
                    seen = {str(item.get("id", "")).lower(): item for item in items}
                    self._vault_items[vault] = len(seen)
                    for flight in listed:
                        self._verified(flight, seen.get(flight.vm.item_id.lower()))
                each_done()

            self._read_list(sub, client, wire.items_first_page(client, ref),
                            f"listing protected items of vault {ref.vault}", got)
        for flight in by_get:
            ref = backup.item_ref(flight.vm.item_id)

            def got_one(answer: Any, flight: Flight = flight) -> None:
                if isinstance(answer, BaseException):
                    raise answer
                if answer.ok:
                    self._verified(flight, answer.body)
                elif answer.status == 404 and flight.state == "verify":
                    self._fail(flight, "ITEM_GONE", "the VM's protected item was deleted while "
                               "it moved (stop protection with delete data?)",
                               [flight.job_id] if flight.job_id else [])
                each_done()

            self._call(sub, "reads", lambda ref=ref: wire.get_item(client, ref), got_one)

    def _verified(self, flight: Flight, item: dict | None) -> None:
        if flight.state != "verify":
            return
        if item is None:  # not in the list (yet): a GET next round
            flight.unlisted = True
            return
        vm = flight.vm
        self._waiting_verify.get(flight.vault, {}).pop(vm.item_id.lower(), None)
        if not _same((item.get("properties") or {}).get("policyId"), vm.target_policy_id):
            self._fail(flight, "NOT_ON_TARGET", "the change succeeded but the item does not "
                       "name the target policy", [flight.job_id] if flight.job_id else [])
            return
        self._batch.step(vm.vm_key, "verified")
        self.mover._last[vm.vm_key] = "verified"
        self._learn_duration(flight)
        job_ids = [flight.job_id] if flight.job_id else []
        if self.verify == "backup":
            flight.configure_job = flight.job_id
            flight.deadline = self.clock() + self.backup_timeout
            if vm.irreversible:
                # A Standard to Enhanced move starts a backup job of its own that "might take
                # up to several hours", and a new backup needs none running
                # (backup-azure-vm-migrate-enhanced-policy.md): wait for it first.
                flight.state = "idle_wait"
                self._waiting_idle.setdefault(flight.vault, {})[vm.item_id.lower()] = flight
                self._watch(flight.vault)
            else:
                self._trigger_backup(flight)
            return
        self._batch.finish(vm.vm_key, "done")
        self._leave(flight, self._outcome(flight, "done", job_ids=job_ids))

    def _job_ids(self, flight: Flight) -> list[str]:
        return [j for j in dict.fromkeys([flight.configure_job, flight.job_id]) if j]

    # -- 8. --verify backup --------------------------------------------------------------------

    def _when_idle(self, vault: str, flights: list[Flight], done: Callable[[], None]) -> None:
        """Start the backups of VMs no Backup job runs on (one list of the vault's running
        Backup jobs for all of them)."""
        ref = backup.vault_ref(flights[0].vm.vault_id)
        client = self._client(flights[0])

        def got(running: list[dict] | None) -> None:
            for flight in flights if running is not None else []:
                if flight.state == "idle_wait" and not running_jobs(
                        running, flight.vm.vm_name, flight.vm.item_id):
                    self._unwait(flight)
                    self._trigger_backup(flight)
            done()

        self._read_list(flights[0].sub, client, wire.jobs_first_page(
            client, ref, "operation eq 'Backup' and status eq 'InProgress'"),
            f"listing running backup jobs of vault {ref.vault}", got)

    def _trigger_backup(self, flight: Flight) -> None:
        flight.state = "backup_trigger"
        ref = backup.item_ref(flight.vm.item_id)
        expiry = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
        self._call(flight.sub, "writes",
                   lambda: wire.trigger_backup(self._client(flight), ref, expiry),
                   lambda answer: self._backup_triggered(flight, answer))

    def _backup_triggered(self, flight: Flight, answer: Any) -> None:
        if isinstance(answer, BaseException):
            raise answer
        if answer.transient or answer.code == "BMSUserErrorObjectLocked":
            if self._wait_out(flight, answer, lambda: self._trigger_backup(flight)):
                return
            self._fail(flight, "BACKUP_NOT_STARTED", f"the on-demand backup could not start "
                       f"before its deadline: {answer.error}", self._job_ids(flight))
            return
        op_id = wire.operation_id(answer)
        if not answer.ok or not op_id:
            self._fail(flight, answer.code or "BACKUP_NOT_STARTED",
                       str(answer.error or "the on-demand backup was accepted without an "
                           "operation to follow"), self._job_ids(flight))
            return
        flight.tries = 0
        flight.op_id, flight.state = op_id, "backup_operation"
        flight.put_at = datetime.now(UTC)
        wait = answer.retry_after if answer.retry_after is not None else self.poll_interval
        self._at(self.clock() + max(wait, 0.05), lambda: self._read_backup_operation(flight))

    def _read_backup_operation(self, flight: Flight) -> None:
        if flight.state != "backup_operation":
            return
        ref = backup.item_ref(flight.vm.item_id)
        op_id = flight.op_id or ""
        self._call(flight.sub, "reads",
                   lambda: wire.item_operation(self._client(flight), ref, op_id),
                   lambda answer: self._backup_operation_read(flight, answer))

    def _backup_operation_read(self, flight: Flight, answer: Any) -> None:
        """The trigger's operation names the Backup job: never guessed by time or name."""
        if isinstance(answer, BaseException):
            raise answer
        if answer.transient or answer.status == 404:
            if self._wait_out(flight, answer, lambda: self._read_backup_operation(flight)):
                return
            self._fail(flight, "BACKUP_NOT_STARTED", f"the on-demand backup's operation could "
                       f"not be read: {answer.error}", self._job_ids(flight))
            return
        status = answer.body if answer.ok else {}
        job_id = (status.get("properties") or {}).get("jobId")
        if not answer.ok or status.get("status") in ("Failed", "Canceled", "Cancelled"):
            error = status.get("error") or {}
            self._fail(flight, error.get("code") or "BACKUP_NOT_STARTED",
                       error.get("message") or str(answer.error or "the on-demand backup "
                                                   "failed to start"), self._job_ids(flight))
            return
        if job_id:
            flight.job_id = str(job_id).rstrip("/").rsplit("/", 1)[-1]
            flight.state = "backup_job"
            self._waiting_backup.setdefault(flight.vault, {})[flight.job_id] = flight
            self._watch(flight.vault)
            return
        now = self.clock()
        wait = answer.retry_after if answer.retry_after is not None else self.poll_interval
        self._at(now + max(wait, self.poll_interval), lambda: self._read_backup_operation(flight))

    # -- failures -------------------------------------------------------------------------------

    def _fail(self, flight: Flight, code: str, message: str,
              job_ids: list[str] | None = None) -> None:
        """Anything short of success after the PUT: the Mover's rollback (journal first)."""
        if flight.state in ("finished", "slow"):
            return
        self._unwait(flight)
        vm, started = flight.vm, flight.started or datetime.now(UTC)
        ids = [j for j in (job_ids or []) if j]
        self._slow_call(flight, lambda: self.mover.roll_back(
            vm, started=started, code=code, message=message, job_ids=ids))


def _job_time(moment: datetime) -> str:
    """Job filter times as Azure's examples write them (``2016-01-01 00:00:00 AM``, UTC;
    specs ListJobsWithStartTimeAndEndTimeFilters.json)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %I:%M:%S %p")

