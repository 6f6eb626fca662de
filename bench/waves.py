"""Wave benchmark (issue 5, item 9): one migration wave of 2,000 VMs in 4 subscriptions over 20
vaults, against an emulator in its own process with operation latency 1 s and ARM's buckets
(writes 200 burst + 10/s, reads 250 burst + 25/s, per subscription), ``--max-parallel 32``.

What runs: a hand-built fleet (every VM ready: Premium-capable size, managed disks, protected
by an app-consistent Enhanced policy ``enhanced-daily``; no crash-consistent policy yet, so the
wave creates one per vault) is assessed through Prefect and the real clients; every ``ready`` VM
goes into wave 1 of a plan in the state store; then ``flows.migrate.run_wave(execute=True)``
runs the wave in this process (Prefect API server: a private one, started once, in its own
process; the emulator: ``python bench/waves.py --serve FLEET``, the same ``Emulator`` object
``ccmigrate emulator serve`` runs, with the configuration written out here). Before the wave the
benchmark waits until the buckets the assessment used are full again.

Settings: throttles.max_parallel = P = 32; throttles.per_vault = ceil(P / vaults) = 2 (spreads
the 32 slots over all 20 vaults, and 20 vaults x 2 = 40 >= 32 keeps the global limit, not the
vault limit, in charge); throttles.polling_interval = 0.2 s (the job waits and the SDK poller;
in the poller the emulator's Retry-After, 1 s for a 1-s operation, takes precedence).

Calls per VM (r reads, w writes) are measured, not assumed: the emulator's per-kind counters
(``/_emulator/stats``: requests that passed the buckets; 429s are not counted) are read before
the wave, when the wave's target policies are in place, and after it; r and w are the VM phase's
reads and writes divided by the VMs moved. A client-side tally (each HTTP response by
subscription, kind of call and status) breaks them down and counts the 429s.

The ideal (L = operation latency = 1 s; W = 10 writes/s and R = 25 reads/s, the buckets'
refill per subscription; N_s VMs of N in subscription s):

    per subscription:  ideal_s = min(P / L, W / w, R / r)        [VMs per second]

    the issue's formula, with P / L as if s had every slot. Across subscriptions the terms do
    not add alike: P is one limit for the whole wave (at most P VMs in flight, each at least L
    long), the buckets are one per subscription. So the wave's ideal time is the longest of

        T* = max( N * L / P,  max_s N_s / min(W / w, R / r) )

    and its ideal rate N / T*. With the VMs spread evenly (N_s = N / S) that is
    min(P / L, S * min(W / w, R / r)). Burst capacity is left out, as in the issue's formula; a
    burst-aware floor (each bucket starts full: max_s (N_s * r - 250) / R, likewise for
    writes) is printed beside it for honesty.

Figures:
- wave: N / (wall of the ``run_wave`` call: plan load, lease, Prefect flow, target policies, the
  VMs, report) against N / T*; the VM phase alone (first VM started to last VM finished);
- per subscription: N_s / (its last VM's end - the VM phase's start) against ideal_s;
- overhead per VM: (wave wall - T*) / N, and what it is made of: before the flow body, the
  target-policy phase, Prefect's per-flow and per-task cost, the VM phase's excess over T*,
  the report; Prefect's own calls inside the VM phase (progress artifact updates) are timed;
- CPU seconds of this process (the runner), the emulator and the Prefect server during the wave.
Targets: wave rate >= 85 % of the ideal; overhead <= 20 ms per VM.

A runner failure (an exception out of ``run_wave``) is recorded and printed, not hidden: the
figures then cover the VMs that finished, and the journal's counts say what was left.
``--read-refill 250 --write-refill 100`` is the headroom run: buckets ten times larger, so the
ideal becomes P / L and the runner's own ceiling shows. ``--profile PATH`` runs cProfile (CPU
time, per thread) over every thread the wave starts; its timings are not figures.

Writes bench/results/waves.json; the "Waves" section of BENCHMARKS.md copies the table.

Run: python bench/waves.py [--vms 2000] [--subscriptions 4] [--vaults 20] [--max-parallel 32]
                           [--per-vault N] [--operation-seconds 1] [--polling-interval 0.2]
                           [--read-refill R] [--write-refill W] [--profile PATH] [--keep DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

# bench/ is this script's folder, first on sys.path
from emulator_process import EmulatorProcess, add_serve_arguments

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

PY = sys.executable
READ_CAPACITY, READ_REFILL = 250, 25.0
WRITE_CAPACITY, WRITE_REFILL = 200, 10.0
TARGETS = {"share_of_ideal": 0.85, "overhead_ms_per_vm": 20.0}


# -- the emulator process (child mode) -------------------------------------------------------

def serve(fleet: Path, operation_seconds: float, timing: str = "fast",
          time_scale: float = 1.0, arg_churn: float = 0.0) -> None:
    """What ``ccmigrate emulator serve --fleet FLEET --operation-seconds S`` (or ``--timing
    azure --time-scale K``) runs, with every throttle written out (so the benchmark does not
    depend on the defaults). Under ``azure`` timing the durations are the profile's."""
    from emulator.config import EmulatorConfig, Faults
    from emulator.server import Emulator, connection_line
    from flows.emulated import load_fleet_file

    fixed = operation_seconds if timing == "fast" else None
    config = EmulatorConfig(read_capacity=READ_CAPACITY, read_refill=READ_REFILL,
                            write_capacity=WRITE_CAPACITY, write_refill=WRITE_REFILL,
                            timing=timing, time_scale=time_scale, arg_churn=arg_churn,
                            operation_seconds=fixed, job_seconds=fixed)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    emu = Emulator(load_fleet_file(fleet), port=0, config=config, faults=Faults()).start()
    try:
        sys.stdout.write(connection_line(emu) + "\n")
        sys.stdout.flush()
        while not stop.wait(0.5):
            pass
    finally:
        emu.stop()


def emulator_process(fleet: Path, workdir: Path, args) -> EmulatorProcess:
    """This script's ``--serve`` in its own process (the buckets written out)."""
    return EmulatorProcess(
        [PY, str(Path(__file__).resolve()), "--serve", str(fleet),
         "--operation-seconds", str(args.operation_seconds), "--timing", args.timing,
         "--time-scale", str(args.time_scale), "--arg-churn", str(args.arg_churn),
         "--read-refill", str(READ_REFILL), "--write-refill", str(WRITE_REFILL)],
        workdir / "emulator.log", REPO)


def measured_latency(settings, vault_ids: list[str]) -> float:
    """Mean seconds the emulator's ConfigureBackup jobs of the wave took (their ``duration``):
    under ``--timing azure`` each VM's operation is drawn, so L is measured, not set."""
    import re as _re

    from tasks.azure import backup
    from tasks.azure.clients import AzureAccess

    access = AzureAccess(settings)
    took = []
    for vault_id in vault_ids:
        ref = backup.vault_ref(vault_id)
        for job in backup.list_jobs(access.backup(ref.subscription_id), ref,
                                    "operation eq 'ConfigureBackup'"):
            m = _re.fullmatch(r"PT(?:(\d+)H)?(?:(\d+)M)?(?:([\d.]+)S)?",
                              job["properties"].get("duration", ""))
            if m:
                h, mi, sec = (float(g) if g else 0.0 for g in m.groups())
                took.append(h * 3600 + mi * 60 + sec)
    return sum(took) / len(took) if took else math.nan


# -- the fleet -------------------------------------------------------------------------------

def build_fleet(vms: int, subscriptions: int, vaults: int) -> dict:
    """``vms`` ready VMs, evenly over ``subscriptions`` and ``vaults`` (vaults evenly over the
    subscriptions), each protected by its vault's app-consistent Enhanced policy."""
    from tests.fleets import TENANT, make_item, make_policy, make_vault, make_vm

    if vaults % subscriptions or vms % vaults:
        raise SystemExit("--vaults must be a multiple of --subscriptions and divide --vms")
    subs = [f"{i + 1:08x}-0000-4000-8000-00000000be{i + 1:02x}" for i in range(subscriptions)]
    resources: list[dict] = []
    per_vault = vms // vaults
    for s, sub in enumerate(subs, 1):
        for v in range(1, vaults // subscriptions + 1):
            vault = make_vault(sub, f"rg-backup-{v}", f"vault-s{s}-{v}")
            policy = make_policy(vault, "enhanced-daily")
            resources += [vault, policy]
            for i in range(per_vault):
                vm, disks = make_vm(sub, f"rg-app-{v}", f"vm-s{s}-v{v}-{i:03d}")
                resources += [vm, *disks, make_item(vault, vm, policy)]
    return {"subscriptions": [{"subscriptionId": sub, "displayName": f"bench-waves-{s}",
                               "tenantId": TENANT, "state": "Enabled"}
                              for s, sub in enumerate(subs, 1)],
            "resources": resources}


def save_wave_plan(engine, scored, assessment_id: str) -> tuple[str, int]:
    """Every ``ready`` VM in wave 1 (as tests/migration/test_wave_runner.py plans)."""
    import pandas as pd

    from tasks.state.plans import PlanRecord, save_plan

    ready = scored[scored["readiness"] == "ready"].sort_values("vm_name").reset_index(drop=True)
    frame = pd.DataFrame({
        "wave": 1, "vm_id": ready["vm_id"], "vm_name": ready["vm_name"],
        "subscription_id": ready["subscription_id"], "vault_id": ready["vault_id"],
        "vault": ready["vault"], "item_id": ready["item_id"],
        "source_policy_id": ready["policy_id"], "source_policy": ready["policy_name"],
        "target_policy": ready["target_policy"], "irreversible": False,
        "rollback_policy": ready["policy_name"], "readiness": ready["readiness"],
        "warnings": ready["warnings"]})
    policies = frame[["vault_id", "vault", "target_policy", "source_policy_id",
                      "source_policy"]].drop_duplicates().rename(
        columns={"target_policy": "policy_name"}).assign(kind="crash_clone", first_wave=1)
    record = PlanRecord.new(assessment_id)
    save_plan(engine, record, frame, policies)
    return record.id, len(frame)


# -- instruments (wrappers around the runner's functions, in this process) -------------------

_SUB = re.compile(r"/subscriptions/([^/?]+)", re.IGNORECASE)


def call_kind(method: str, path: str) -> str:
    """What an ARM request is for, from its method and path."""
    p = path.lower()
    if "/virtualmachines/" in p and "/protecteditems/" not in p:
        return "GET vm" if method == "GET" else f"{method} vm"
    if "/protecteditems/" in p:
        if "/operationsstatus/" in p:
            return "GET item operation status"
        if "/operationresults/" in p:
            return "GET item operation result"
        return f"{method} item"
    if "/backupjobs" in p:
        return "GET job" if re.search(r"/backupjobs/[^/?]+", p) else "LIST jobs"
    if "/backuppolicies/" in p:
        if "/operations/" in p or "/operationresults/" in p or "/operationsstatus/" in p:
            return "GET policy operation"
        return f"{method} policy"
    return f"{method} other"


class Instruments:
    """Timestamps and tallies taken by wrapping the runner's own functions (monkeypatching in
    this process only; nothing in the repository changes)."""

    def __init__(self, emulator: EmulatorProcess) -> None:
        self.emulator = emulator
        self.lock = threading.Lock()
        self.t: dict[str, float] = {}
        self.chunks: list[tuple[float, float, int]] = []
        self.vms: list[dict] = []
        self.http: Counter = Counter()  # (sub, kind, status) -> n
        self.http_s: Counter = Counter()  # kind -> seconds in send
        self.retry_after_s = 0.0
        self.artifact = [0, 0.0]  # calls, seconds
        self.journal = [0, 0.0]
        self.stats_policies: dict[str, int] | None = None
        self.counting = False
        self.profiles: list = []  # cProfile.Profile per VM thread (CPU time), with --profile
        self.profile = False
        self._local = threading.local()
        self._undo: list[tuple[object, str, object]] = []

    def _patch(self, owner: object, name: str, make) -> None:
        original = getattr(owner, name)
        self._undo.append((owner, name, original))
        setattr(owner, name, make(original))

    def install(self) -> None:
        import prefect.artifacts
        import requests.adapters

        import flows.migrate as fm
        import tasks.migration.move as mv
        import tasks.migration.wave as wv
        import tasks.state.journal as jr
        import tasks.state.leases as ls
        import tasks.state.plans as pl

        inst = self

        def mark(key: str) -> None:
            inst.t.setdefault(key, time.perf_counter())

        def ensure_targets(orig):
            def wrapper(*args, **kwargs):
                mark("policies_start")
                try:
                    return orig(*args, **kwargs)
                finally:
                    inst.t["policies_end"] = time.perf_counter()
                    inst.stats_policies = inst.emulator.stats()
                    inst.t["policies_stats_end"] = time.perf_counter()
            return wrapper

        def set_wave_status(orig):
            def wrapper(engine, plan_id, wave, status, *args, **kwargs):
                inst.t[f"status_{status}"] = time.perf_counter()
                return orig(engine, plan_id, wave, status, *args, **kwargs)
            return wrapper

        def run_vms(orig):
            def wrapper(vms, *args, **kwargs):
                vms = list(vms)
                start = time.perf_counter()
                try:
                    return orig(vms, *args, **kwargs)
                finally:
                    with inst.lock:
                        inst.chunks.append((start, time.perf_counter(), len(vms)))
            return wrapper

        def move(orig):
            def wrapper(self, vm):
                start = time.perf_counter()
                outcome = orig(self, vm)
                with inst.lock:
                    inst.vms.append({"key": vm.vm_key, "sub": vm.subscription_id.lower(),
                                     "vault": vm.vault_id.lower(), "start": start,
                                     "end": time.perf_counter(), "status": outcome.status,
                                     "code": outcome.error_code})
                return outcome
            return wrapper

        def keep_alive(orig):
            def wrapper(self, *args, **kwargs):
                inst.t["flow_call_start"] = time.perf_counter()  # the flow is called next
                return orig(self, *args, **kwargs)
            return wrapper

        def release(orig):
            def wrapper(self, *args, **kwargs):
                inst.t.setdefault("flow_call_end", time.perf_counter())  # the flow returned
                return orig(self, *args, **kwargs)
            return wrapper

        def timed(counter: list):
            def make(orig):
                def wrapper(*args, **kwargs):
                    start = time.perf_counter()
                    try:
                        return orig(*args, **kwargs)
                    finally:
                        took = time.perf_counter() - start
                        with inst.lock:
                            counter[0] += 1
                            counter[1] += took
                return wrapper
            return make

        def send(orig):
            def wrapper(self, request, *args, **kwargs):
                start = time.perf_counter()
                response = orig(self, request, *args, **kwargs)
                if inst.counting:
                    from urllib.parse import urlsplit

                    path = urlsplit(request.url).path
                    sub = _SUB.search(path)
                    kind = call_kind(request.method, path)
                    with inst.lock:
                        inst.http[(sub.group(1).lower() if sub else "-", kind,
                                   response.status_code)] += 1
                        inst.http_s[kind] += time.perf_counter() - start
                        if response.status_code == 429:
                            with contextlib.suppress(ValueError):
                                inst.retry_after_s += float(
                                    response.headers.get("Retry-After") or 0)
                return response
            return wrapper

        self._patch(fm, "_ensure_targets", ensure_targets)
        self._patch(pl, "set_wave_status", set_wave_status)
        self._patch(wv, "run_vms", run_vms)
        self._patch(mv.Mover, "move", move)
        self._patch(ls.WaveLease, "keep_alive", keep_alive)
        self._patch(ls.WaveLease, "release", release)
        self._patch(prefect.artifacts, "update_progress_artifact", timed(self.artifact))
        self._patch(jr.Journal, "_write", timed(self.journal))
        self._patch(requests.adapters.HTTPAdapter, "send", send)
        if self.profile:  # every thread started from here on: the task runner's, the VMs'
            def thread_run(orig):
                def wrapper(thread):
                    prof = inst._profiler()
                    prof.enable()
                    try:
                        return orig(thread)
                    finally:
                        prof.disable()
                return wrapper

            self._patch(threading.Thread, "run", thread_run)

    def _profiler(self):
        import cProfile

        prof = getattr(self._local, "prof", None)
        if prof is None:
            prof = self._local.prof = cProfile.Profile(time.thread_time)
            with self.lock:
                self.profiles.append(prof)
        return prof

    def profile_report(self, path: Path, top: int = 40) -> str:
        """CPU time by function of the threads started during the wave (merged), sorted by
        own time, then by cumulative time."""
        import io
        import pstats

        out = io.StringIO()
        stats = pstats.Stats(self.profiles[0], stream=out)
        for prof in self.profiles[1:]:
            stats.add(prof)
        stats.dump_stats(str(path))
        stats.sort_stats("tottime").print_stats(top)
        stats.sort_stats("cumulative").print_stats(top)
        return out.getvalue()

    def uninstall(self) -> None:
        for owner, name, original in reversed(self._undo):
            setattr(owner, name, original)
        self._undo.clear()


# -- one wave --------------------------------------------------------------------------------

def cpu_self_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def children_cpu(exclude: int) -> float:
    """CPU seconds of this process's children other than the emulator (the Prefect server)."""
    import psutil

    total = 0.0
    for kid in psutil.Process().children(recursive=True):
        if kid.pid == exclude:
            continue
        with contextlib.suppress(psutil.Error):
            t = kid.cpu_times()
            total += t.user + t.system
    return total


def busy_cpu_s() -> float:
    """CPU seconds the whole machine spent busy (every process, every core)."""
    import psutil

    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0)


def wait_for_full_buckets(used_reads: int, used_writes: int, subs: int) -> float:
    """Sleep until every bucket the assessment drew on is full again (worst case: all the
    reads from one subscription), and one more second; return the seconds slept."""
    need = max(used_reads / READ_REFILL, used_writes / WRITE_REFILL) + 1.0
    time.sleep(need)
    return need


def fleet_vaults(fleet_path: Path) -> list[dict]:
    """The fleet's vaults (ids), for the per-vault job reads after the wave."""
    fleet = json.loads(fleet_path.read_text())
    return [{"vault_id": r["id"]} for r in fleet["resources"]
            if r["type"] == "Microsoft.RecoveryServices/vaults"]


def run(args, workdir: Path) -> dict:
    from flows.assess import run_assessment
    from flows.migrate import run_wave
    from flows.options import with_emulator_principal
    from flows.prefect_runtime import prefect_runtime
    from tasks.settings import load_settings
    from tasks.state.db import open_store
    from tasks.state.journal import Journal

    fleet_path = workdir / f"fleet-{args.vms}-s{args.subscriptions}-v{args.vaults}.json"
    fleet = build_fleet(args.vms, args.subscriptions, args.vaults)
    fleet_path.write_text(json.dumps(fleet))
    del fleet
    result: dict = {"config": {
        "vms": args.vms, "subscriptions": args.subscriptions, "vaults": args.vaults,
        "max_parallel": args.max_parallel, "per_vault": args.per_vault,
        "operation_seconds": args.operation_seconds, "polling_interval": args.polling_interval,
        "timing": args.timing, "time_scale": args.time_scale, "arg_churn": args.arg_churn,
        "read_bucket": [READ_CAPACITY, READ_REFILL], "write_bucket": [WRITE_CAPACITY,
                                                                       WRITE_REFILL]}}
    started = time.perf_counter()
    with emulator_process(fleet_path, workdir, args) as emu, \
            prefect_runtime() as url:
        result["prefect_start_s"] = round(time.perf_counter() - started, 2)
        print(f"emulator at {emu.info['endpoint']}; Prefect API {url} "
              f"(up in {result['prefect_start_s']:.1f} s)", flush=True)
        settings = with_emulator_principal(load_settings(environ={}, flags={
            "state_store": f"sqlite:///{workdir}/state.db",
            "throttles.max_parallel": args.max_parallel,
            "throttles.per_vault": args.per_vault,
            "throttles.polling_interval": args.polling_interval,
            # The client paces under the buckets the emulator enforces (ARM's defaults,
            # or the headroom run's larger refills), as a user sets them for their cloud.
            "throttles.arm_reads_per_s": READ_REFILL, "throttles.arm_read_burst": READ_CAPACITY,
            "throttles.arm_writes_per_s": WRITE_REFILL,
            "throttles.arm_write_burst": WRITE_CAPACITY}), emu.info)

        t0 = time.perf_counter()
        outcome = run_assessment(settings, workdir / "assess")
        result["assess_s"] = round(time.perf_counter() - t0, 2)
        readiness = outcome.scored["readiness"].value_counts().to_dict()
        result["readiness"] = {k: int(v) for k, v in readiness.items()}
        engine = open_store(settings.state_store_url(), synchronous="FULL")
        plan_id, planned = save_wave_plan(engine, outcome.scored, outcome.assessment_id)
        result["planned"] = planned
        print(f"assessed in {result['assess_s']:.1f} s: {result['readiness']}; "
              f"plan {plan_id}: {planned} VMs in wave 1", flush=True)
        if planned != args.vms:
            print(f"WARNING: {args.vms - planned} VMs are not ready; the wave holds {planned}",
                  flush=True)
        used = emu.stats()
        result["refill_wait_s"] = round(wait_for_full_buckets(
            used.get("read", 0), used.get("write", 0), args.subscriptions), 1)

        inst = Instruments(emu)
        inst.profile = args.profile is not None
        inst.install()
        before = emu.stats()
        cpu0, emu_cpu0, server_cpu0 = cpu_self_s(), emu.cpu_s(), children_cpu(emu.proc.pid)
        busy0 = busy_cpu_s()
        inst.counting = True
        print(f"running the wave ({planned} VMs)...", flush=True)
        t_call = time.perf_counter()
        wave, error = None, None
        try:
            wave = run_wave(settings, plan_id, 1, execute=True, out_dir=workdir / "wave")
        except Exception as err:  # the runner failed: say so, and measure what it did
            error = f"{type(err).__name__}: {err}"
            print(f"THE WAVE FAILED: {error}", flush=True)
        t_return = time.perf_counter()
        inst.counting = False
        cpu1, emu_cpu1, server_cpu1 = cpu_self_s(), emu.cpu_s(), children_cpu(emu.proc.pid)
        busy1 = busy_cpu_s()
        after = emu.stats()
        inst.uninstall()
        if args.profile is not None:
            report = inst.profile_report(args.profile)
            Path(f"{args.profile}.txt").write_text(report)
            print(f"wave threads' CPU profile: {args.profile} (.txt: top functions)",
                  flush=True)
        events = Journal(engine, plan_id).events()
        journal = {k: v for k, v in Journal(engine, plan_id).counts(1).items() if v}
        if args.timing == "azure":
            vault_ids = sorted({v["vault_id"] for v in fleet_vaults(fleet_path)})
            args.latency_s = measured_latency(settings, vault_ids)
            result["config"]["measured_operation_seconds"] = round(args.latency_s, 3)
        result["wave_outcome"] = {"status": wave.status if wave else "failed",
                                  "journal": journal, "error": error,
                                  "halted_reason": wave.halted_reason if wave else None,
                                  "complete": error is None and journal == {"done": planned}}
        result["figures"] = figures(args, inst, before, after, t_call, t_return, events)
        result["cpu_s"] = {"runner": round(cpu1 - cpu0, 1),
                           "emulator": round(emu_cpu1 - emu_cpu0, 1),
                           "prefect_server": round(server_cpu1 - server_cpu0, 1)}
        ours = (cpu1 - cpu0) + (emu_cpu1 - emu_cpu0) + (server_cpu1 - server_cpu0)
        result["cpu_s"]["other_processes"] = round(busy1 - busy0 - ours, 1)
        result["cpu_s"]["machine_capacity"] = round((os.cpu_count() or 1) * (t_return - t_call),
                                                    1)
    return result


def step_breakdown(inst: Instruments, events) -> dict:
    """Median seconds per step of a done VM, from the journal's event times and the wrapped
    ``Mover.move``: live checks (start -> intent), PUT (intent -> put_sent), the operation
    (put_sent -> operation_done), verify (operation_done -> verified), finish (verified -> done
    journaled) and after (done journaled -> move returned)."""
    import pandas as pd

    epoch_offset = time.time() - time.perf_counter()
    starts = {v["key"]: (v["start"] + epoch_offset, v["end"] + epoch_offset)
              for v in inst.vms if v["status"] == "done"}
    ev = events[events["vm_key"].isin(set(starts))]
    at = ev.assign(t=ev["at"].map(pd.Timestamp.timestamp)).groupby(["vm_key", "step"])["t"].min()
    at = at.unstack()
    steps = {"live checks": ("start", "intent"), "PUT": ("intent", "put_sent"),
             "operation (poller)": ("put_sent", "operation_done"),
             "verify (item GET, job GET)": ("operation_done", "verified")}
    out: dict[str, float] = {}
    frame = at.assign(start=[starts[k][0] for k in at.index], end=[starts[k][1] for k in at.index])
    for label, (a, b) in steps.items():
        if a in frame and b in frame:
            out[label] = round(float((frame[b] - frame[a]).median()), 3)
    if "verified" in frame:
        out["journal done + return"] = round(float((frame["end"] - frame["verified"]).median()), 3)
    out["whole VM"] = round(float((frame["end"] - frame["start"]).median()), 3)
    return out


def figures(args, inst: Instruments, before: dict, after: dict, t_call: float,
            t_return: float, events) -> dict:
    t = inst.t
    vms = sorted(inst.vms, key=lambda v: v["start"])
    done = [v for v in vms if v["status"] == "done"]
    n = len(done)
    policies = inst.stats_policies or before
    kinds = sorted(set(before) | set(after) | set(policies))
    wave_calls = {k: after.get(k, 0) - before.get(k, 0) for k in kinds}
    policy_calls = {k: policies.get(k, 0) - before.get(k, 0) for k in kinds}
    vm_calls = {k: after.get(k, 0) - policies.get(k, 0) for k in kinds}
    r = vm_calls.get("read", 0) / max(n, 1)
    w = vm_calls.get("write", 0) / max(n, 1)
    p, lat = args.max_parallel, getattr(args, "latency_s", args.operation_seconds)
    per_sub_n = Counter(v["sub"] for v in done)
    bucket_rate = min(WRITE_REFILL / w if w else math.inf, READ_REFILL / r if r else math.inf)
    ideal_sub = min(p / lat, bucket_rate)
    t_star = max(n * lat / p, max(per_sub_n.values()) / bucket_rate)
    ideal = n / t_star
    floor = max(n * lat / p, *(max((ns * r - READ_CAPACITY) / READ_REFILL,
                                   (ns * w - WRITE_CAPACITY) / WRITE_REFILL, 0.0)
                               for ns in per_sub_n.values()))

    wall = t_return - t_call
    phase_start = min(v["start"] for v in vms)
    phase_end = max(v["end"] for v in vms)
    phase = phase_end - phase_start
    chunk_start = min(c[0] for c in inst.chunks)
    chunk_end = max(c[1] for c in inst.chunks)
    body_start = t["status_running"]
    parts = {
        "before the flow call (store, plan, journal, lease)": t["flow_call_start"] - t_call,
        "Prefect flow start (call -> body)": body_start - t["flow_call_start"],
        "body before the policies (status, artifact, journal read)": (
            t["policies_start"] - body_start),
        "target policies (per vault: GET source, GET target, PUT, poll, GET), in turn": (
            t["policies_end"] - t["policies_start"]),
        "benchmark's stats read": t["policies_stats_end"] - t["policies_end"],
        "policies -> first chunk body (gate, chunks, task submit/start)": (
            chunk_start - t["policies_stats_end"]),
        "chunk bodies (first start -> last end)": chunk_end - chunk_start,
        "last chunk end -> flow returned (task + flow finish)": t["flow_call_end"] - chunk_end,
        "after the flow (lease, journal, status, report)": t_return - t["flow_call_end"],
    }
    per_sub = {}
    for sub, ns in sorted(per_sub_n.items()):
        end = max(v["end"] for v in done if v["sub"] == sub)
        mine = [(kind, status, c) for (s, kind, status), c in inst.http.items() if s == sub]
        writes = sum(c for kind, status, c in mine
                     if status != 429 and kind.startswith(("PUT", "DELETE", "POST")))
        reads = sum(c for _k, status, c in mine if status != 429) - writes
        throttled = sum(c for _k, status, c in mine if status == 429)
        rate = ns / (end - phase_start)
        per_sub[sub] = {"vms": ns, "seconds": round(end - phase_start, 2),
                        "vms_per_s": round(rate, 3), "ideal_vms_per_s": round(ideal_sub, 3),
                        "share": round(rate / ideal_sub, 3),
                        "client_reads": reads, "client_writes": writes, "client_429s": throttled}
    by_kind: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for (_s, kind, status), c in inst.http.items():
        by_kind[kind][str(status)] += c
    in_flight = sum(v["end"] - v["start"] for v in vms) / phase
    overhead = (wall - t_star) / max(n, 1)
    phase_overhead = (phase - t_star) / max(n, 1)
    prefect_flow = ((body_start - t["flow_call_start"]) + (t["flow_call_end"] - chunk_end))
    prefect_tasks_start = chunk_start - t["policies_stats_end"]
    rate = n / wall
    return {
        "vms_done": n, "statuses": dict(Counter(v["status"] for v in vms)),
        "codes": dict(Counter(v["code"] for v in vms if v["code"])),
        "emulator_calls": {"wave": wave_calls, "policy_phase": policy_calls,
                           "vm_phase": vm_calls},
        "reads_per_vm": round(r, 3), "writes_per_vm": round(w, 3),
        "client_calls_by_kind": {k: dict(v) for k, v in sorted(by_kind.items())},
        "client_429s": sum(c for (_s, _k, status), c in inst.http.items() if status == 429),
        "retry_after_s_total": round(inst.retry_after_s, 1),
        "ideal": {"concurrency_vms_per_s": p / lat,
                  "write_bucket_vms_per_s": round(WRITE_REFILL / w, 3) if w else None,
                  "read_bucket_vms_per_s": round(READ_REFILL / r, 3) if r else None,
                  "per_subscription_vms_per_s": round(ideal_sub, 3),
                  "wave_vms_per_s": round(ideal, 3), "t_star_s": round(t_star, 2),
                  "burst_aware_floor_s": round(floor, 2),
                  "burst_aware_vms_per_s": round(n / floor, 3) if floor else None},
        "wave_wall_s": round(wall, 2), "wave_vms_per_s": round(rate, 3),
        "share_of_ideal": round(rate / ideal, 3),
        "share_of_burst_aware": round(rate / (n / floor), 3) if floor else None,
        "vm_phase_s": round(phase, 2), "vm_phase_vms_per_s": round(n / phase, 3),
        "vm_phase_share_of_ideal": round(n / phase / ideal, 3),
        "overhead_ms_per_vm": round(1000 * overhead, 2),
        "vm_phase_overhead_ms_per_vm": round(1000 * phase_overhead, 2),
        "parts_s": {k: round(v, 3) for k, v in parts.items()},
        "prefect": {"flow_s": round(prefect_flow, 3),
                    "task_submit_to_first_body_s": round(prefect_tasks_start, 3),
                    "task_runs": len(inst.chunks),
                    "chunks": [{"vms": c[2], "start_s": round(c[0] - chunk_start, 3),
                                "end_s": round(c[1] - chunk_start, 3)} for c in inst.chunks],
                    "progress_artifact_updates": inst.artifact[0],
                    "progress_artifact_s": round(inst.artifact[1], 2),
                    "progress_artifact_ms_each": round(1000 * inst.artifact[1]
                                                       / max(inst.artifact[0], 1), 2)},
        "journal_writes": inst.journal[0], "journal_s": round(inst.journal[1], 2),
        "journal_ms_each": round(1000 * inst.journal[1] / max(inst.journal[0], 1), 2),
        "http_s_by_kind": {k: round(v, 1) for k, v in sorted(inst.http_s.items())},
        "mean_in_flight": round(in_flight, 2),
        "median_step_s": step_breakdown(inst, events),
        "per_subscription": per_sub,
        "pass": {"share_of_ideal": rate / ideal >= TARGETS["share_of_ideal"],
                 "overhead_ms_per_vm": 1000 * overhead <= TARGETS["overhead_ms_per_vm"]},
    }


# -- report ----------------------------------------------------------------------------------

def table(res: dict) -> str:
    f, c = res["figures"], res["config"]
    ideal = f["ideal"]

    def ok(flag: bool) -> str:
        return "met" if flag else "**missed**"

    out = res["wave_outcome"]
    rows = [
        "| figure | value |", "| --- | --- |",
        f"| wave outcome (journal) | {out['status']}: "
        + ", ".join(f"{k} {v}" for k, v in out["journal"].items())
        + (f"; **failed**: {out['error'][:300]}" if out["error"] else "") + " |",
        f"| VMs moved (statuses) | {f['vms_done']:,} ("
        + ", ".join(f"{k} {v}" for k, v in f["statuses"].items()) + ") |",
        f"| settings | max_parallel {c['max_parallel']}, per_vault {c['per_vault']}, "
        f"polling_interval {c['polling_interval']} s, " + (
            f"operation {c['operation_seconds']} s |" if c.get("timing", "fast") == "fast" else
            f"timing azure at scale {c['time_scale']:g} (operation L measured: "
            f"{c.get('measured_operation_seconds', float('nan')):.2f} s) |")
        + (f" Resource Graph churn {c['arg_churn']:g} |" if c.get("arg_churn") else ""),
        f"| calls per VM, measured (emulator counters, VM phase) | {f['reads_per_vm']:.2f} reads, "
        f"{f['writes_per_vm']:.2f} writes |",
        f"| ideal per subscription min(P/L, W/w, R/r) | min({ideal['concurrency_vms_per_s']:.0f}, "
        f"{ideal['write_bucket_vms_per_s']}, {ideal['read_bucket_vms_per_s']}) = "
        f"{ideal['per_subscription_vms_per_s']:.3f} VMs/s |",
        f"| ideal wave: N / T*, T* = max(N L / P, max_s N_s / min(W/w, R/r)) | "
        f"{ideal['wave_vms_per_s']:.2f} VMs/s (T* = {ideal['t_star_s']:.1f} s) |",
        f"| wave: VMs / run_wave wall | {f['wave_vms_per_s']:.2f} VMs/s "
        f"({f['wave_wall_s']:.1f} s) = {100 * f['share_of_ideal']:.1f} % of ideal: "
        f"{ok(f['pass']['share_of_ideal'])} (target >= 85 %) |",
        f"| VM phase alone (first VM start -> last VM end) | {f['vm_phase_vms_per_s']:.2f} VMs/s "
        f"({f['vm_phase_s']:.1f} s) = {100 * f['vm_phase_share_of_ideal']:.1f} % of ideal |",
        f"| burst-aware floor (buckets start full) | {ideal['burst_aware_floor_s']:.1f} s = "
        f"{ideal['burst_aware_vms_per_s']:.2f} VMs/s; wave at "
        f"{100 * f['share_of_burst_aware']:.1f} % of it |",
    ]
    for sub, s in f["per_subscription"].items():
        rows.append(f"| subscription {sub[:8]}: {s['vms']} VMs | {s['vms_per_s']:.2f} VMs/s "
                    f"({s['seconds']:.1f} s) vs ideal {s['ideal_vms_per_s']:.2f} = "
                    f"{100 * s['share']:.1f} %; {s['client_reads']} reads, "
                    f"{s['client_writes']} writes, {s['client_429s']} 429s (client) |")
    rows += [
        f"| overhead per VM (wave wall - T*) / N | {f['overhead_ms_per_vm']:.1f} ms: "
        f"{ok(f['pass']['overhead_ms_per_vm'])} (target <= 20 ms) |",
        f"| VM phase only (phase - T*) / N | {f['vm_phase_overhead_ms_per_vm']:.1f} ms |",
    ]
    for label, secs in f["parts_s"].items():
        rows.append(f"|   {label} | {secs:.2f} s |")
    pf = f["prefect"]
    rows += [
        f"| Prefect: flow start + finish; {pf['task_runs']} task runs (first body after "
        f"submit) | {pf['flow_s']:.2f} s; {pf['task_submit_to_first_body_s']:.2f} s |",
        f"| Prefect: progress artifact updates (in VM threads) | "
        f"{pf['progress_artifact_updates']:,} x {pf['progress_artifact_ms_each']:.1f} ms = "
        f"{pf['progress_artifact_s']:.1f} s |",
        f"| journal writes (SQLite, synchronous FULL) | {f['journal_writes']:,} x "
        f"{f['journal_ms_each']:.1f} ms = {f['journal_s']:.1f} s |",
        f"| 429s seen by the client (Retry-After slept, sum over threads) | "
        f"{f['client_429s']:,} ({f['retry_after_s_total']:.0f} s) |",
        f"| mean VMs in flight (VM phase) | {f['mean_in_flight']:.1f} |",
        "| median seconds per VM step | " + "; ".join(
            f"{k} {v:.2f}" for k, v in f["median_step_s"].items()) + " |",
        f"| CPU seconds during the wave: runner / emulator / Prefect server / other "
        f"processes (of {res['cpu_s']['machine_capacity']} on {os.cpu_count()} cores) | "
        f"{res['cpu_s']['runner']} / {res['cpu_s']['emulator']} / "
        f"{res['cpu_s']['prefect_server']} / {res['cpu_s']['other_processes']} |",
        f"| runner CPU per VM | {1000 * res['cpu_s']['runner'] / max(f['vms_done'], 1):.0f} ms |",
    ]
    return "\n".join(rows)


def source_state() -> dict:
    def git(*a: str) -> str | None:
        try:
            return subprocess.run(["git", "-C", str(REPO), *a], capture_output=True, text=True,
                                  check=True).stdout.rstrip()
        except (OSError, subprocess.CalledProcessError):
            return None

    changed = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": (git("rev-parse", "--short", "HEAD") or "").strip() or None,
            "changed": [ln[3:] for ln in (changed or "").splitlines()
                        if not ln[3:].startswith("bench/")]}


def main() -> None:
    global READ_REFILL, WRITE_REFILL
    parser = argparse.ArgumentParser(description="Wave benchmark (see the module doc).")
    parser.add_argument("--vms", type=int, default=2000)
    parser.add_argument("--subscriptions", type=int, default=4)
    parser.add_argument("--vaults", type=int, default=20)
    parser.add_argument("--max-parallel", type=int, default=32)
    parser.add_argument("--per-vault", type=int, default=None,
                        help="default: ceil(max_parallel / vaults)")
    parser.add_argument("--operation-seconds", type=float, default=1.0)
    parser.add_argument("--polling-interval", type=float, default=0.2)
    # --timing, --time-scale, --arg-churn (azure timing: --operation-seconds unused, L measured)
    add_serve_arguments(parser)
    parser.add_argument("--keep", type=Path, help="keep the fleet, state store and reports here")
    parser.add_argument("--read-refill", type=float, default=READ_REFILL,
                        help="reads per second per subscription (a headroom run raises it)")
    parser.add_argument("--write-refill", type=float, default=WRITE_REFILL)
    parser.add_argument("--profile", type=Path, help="profile the CPU time of the threads the "
                        "wave starts (cProfile per thread, to this .pstats path; slows the "
                        "run, so its timings are not figures)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "waves.json")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)  # the emulator process
    args = parser.parse_args()
    args.timing, args.time_scale = args.timing or "fast", args.time_scale or 1.0
    READ_REFILL, WRITE_REFILL = args.read_refill, args.write_refill
    if args.serve:
        serve(args.serve, args.operation_seconds, args.timing, args.time_scale, args.arg_churn)
        return
    if args.per_vault is None:
        args.per_vault = math.ceil(args.max_parallel / args.vaults)

    workdir = args.keep or Path(tempfile.mkdtemp(prefix="ccmigrate-waves-"))
    workdir.mkdir(parents=True, exist_ok=True)
    results_dir = REPO / "bench" / "results"
    results_dir.mkdir(exist_ok=True)
    os.environ.setdefault("PREFECT_HOME", str(results_dir / "prefect-home"))
    os.environ["NO_PROXY"] = "127.0.0.1,localhost"
    source = source_state()
    print(f"measuring commit {source['commit']}"
          + (f", with changes to {', '.join(source['changed'])}" if source["changed"] else ""),
          flush=True)
    started = time.perf_counter()
    load0 = [round(x, 2) for x in os.getloadavg()]
    try:
        result = run(args, workdir)
    finally:
        if not args.keep:
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)
    result["source"] = source
    result["loadavg"] = {"start": load0, "end": [round(x, 2) for x in os.getloadavg()]}
    result["benchmark_wall_s"] = round(time.perf_counter() - started, 1)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print()
    print(table(result))
    print(f"\nbenchmark wall {result['benchmark_wall_s']:.0f} s; load average "
          f"{result['loadavg']['start']} -> {result['loadavg']['end']}; figures in {args.out}")


if __name__ == "__main__":
    main()
