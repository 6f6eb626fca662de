"""Wave benchmark: one migration wave against an emulator in its own process, the wave run by
``flows.migrate.run_wave(execute=True)`` in a process of its own (the runner), measured from
outside: its CPU (its own and its children's: the scoring included) and its peak RSS, the
emulator's request counters, and the journal's timestamps.

Scenarios (``--scenario``; any flag given explicitly wins over the scenario's value):

- ``default``: 2,000 VMs, 4 subscriptions, 20 vaults, ``--timing fast`` with every operation
  and job 1 s, ``--max-parallel 32``, per vault ceil(P / vaults). Target: at least 85 % of the
  ideal and no slower than 10.0 VMs/s (the runner before the wave engine).
- ``azure-8k``: 8,000 VMs, 4 subscriptions, 40 vaults, ``--timing azure --time-scale 4``: the
  emulator draws each VM's change (operation plus ConfigureBackup job, emulator/timing.py
  ``item_operation``: triangular 30/60/300 s, mean 130 s) and divides it by 4, so one change
  takes 7.5-75 s, 32.5 s on average (the issue asks for 20-40 s); ARM's buckets as Azure's
  (not scaled); the wave's in-flight cap P = 2,000 with adaptive concurrency on; polling
  interval the runner's default (the emulator's Retry-After, 15 s at this scale, paces the
  operation reads). Targets: at
  least 85 % of the ideal, at most 3 ARM reads per VM, runner CPU at most 20 ms per VM, runner
  peak RSS at most 800 MB.
- ``azure-8k-provider``: the same with the emulator's Recovery Services write throttling at
  5 writes per second per subscription and action (burst 5), below ARM's 10: the provider
  bounds the wave at S x 5 / w VMs/s. Target: the settled rate within 85 % of that bound with
  fewer than 2 % of the wave's requests answered 429.

What runs: a hand-built fleet (every VM ready, protected by an app-consistent Enhanced policy;
no crash-consistent policy yet, so the wave creates one per vault) is assessed through Prefect
and the real clients; every ``ready`` VM goes into wave 1 of a plan; after the buckets the
assessment used are full again, ``python bench/waves.py --run-wave SPEC`` runs the wave (Prefect
API server: a private one, started once, in its own process; the emulator: ``python
bench/waves.py --serve FLEET``, the ``Emulator`` that ``ccmigrate emulator serve`` runs, with its
buckets written out).

Calls per VM (r reads, w writes) are measured, not assumed: the emulator's counters
(``/_emulator/stats``) before the wave, when its target policies are in place, and after it;
r and w are the VM phase's reads and writes per VM moved. ``share_429`` is the wave's requests
the emulator answered 429 (any code) over all it received; a client-side tally in the runner
breaks the calls down by kind.

The ideal (L = mean change duration: the configured operation under ``fast``, the mean of the
ConfigureBackup jobs' durations the emulator drew under ``azure``; W = 10 writes/s and R = 25
reads/s, the buckets' refill per subscription; N_s VMs of N in subscription s; P the in-flight
cap). P is one limit for the whole wave (at most P VMs in flight, each at least L long), the
buckets are one per subscription, so the wave's ideal time is the longest of

    T* = max( N * L / P,  max_s N_s / min(W / w, R / r) )

and its ideal rate N / T*. Burst capacity is left out; a burst-aware floor (each bucket starts
full) is printed beside it. Under provider throttling at rate p per subscription the bound is
also max_s N_s * w / p (``ideal_provider_vms_per_s``).

Figures:
- ``vms_per_s``: N / the ``run_wave`` call's wall (plan load, lease, flow, target policies,
  VMs, report); the VM phase alone (first journal event of a VM to the last VM done);
- ``time_to_bound_s``: from the VM phase's start until the completion rate (VMs done in the
  last L / 4 seconds, per second) first reaches 85 % of the ideal, in units of L;
- ``settled_vms_per_s``: the completion rate between the 20th and the 90th percentile of the
  VMs' done times (the wave's steady state, without its ramp and its tail);
- runner: CPU (user + system of the runner process and its children, during ``run_wave``) per
  VM, peak RSS (the runner process's maximum resident set: fleet and assessment live in the
  parent, not there); the engine's own figures (``WaveOutcome.stats``: peak in flight, the
  in-flight curve, Resource Graph requests, client-side 429s), "n/a" where the runner does not
  give them.

Writes bench/results/waves.json (``--out``); with ``--json`` the last line printed is a JSON
object of the headline keys. The "Waves" section of BENCHMARKS.md copies the table.

Run: python bench/waves.py [--scenario default|azure-8k|azure-8k-provider] [--json]
                           [--vms N] [--subscriptions S] [--vaults V] [--max-parallel P]
                           [--per-vault N] [--operation-seconds 1] [--polling-interval 0.2]
                           [--timing fast|azure] [--time-scale K] [--provider-write-rate R]
                           [--provider-write-burst B] [--read-refill R] [--write-refill W]
                           [--profile PATH] [--keep DIR]
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
SHARE_OF_IDEAL = 0.85
# What the runner before the wave engine did on the default scenario (BENCHMARKS.md, "Waves").
DEFAULT_FLOOR_VMS_PER_S = 10.0
TARGETS = {
    "default": {"share_of_ideal": SHARE_OF_IDEAL, "vms_per_s": DEFAULT_FLOOR_VMS_PER_S},
    "azure-8k": {"share_of_ideal": SHARE_OF_IDEAL, "arm_reads_per_vm": 3.0,
                 "runner_cpu_ms_per_vm": 20.0, "peak_rss_mb": 800.0},
    "azure-8k-provider": {"share_of_provider_ideal": SHARE_OF_IDEAL, "share_429": 0.02,
                          "arm_reads_per_vm": 3.0, "runner_cpu_ms_per_vm": 20.0,
                          "peak_rss_mb": 800.0},
}
_AZURE_8K = {"vms": 8000, "subscriptions": 4, "vaults": 40, "max_parallel": 2000,
             "timing": "azure", "time_scale": 4.0, "adaptive": True}
SCENARIOS: dict[str, dict] = {
    "default": {"vms": 2000, "subscriptions": 4, "vaults": 20, "max_parallel": 32,
                "timing": "fast", "time_scale": 1.0, "polling_interval": 0.2},
    "azure-8k": _AZURE_8K,
    # Recovery Services' own limit is unpublished (api-notes section 5): 5 item PUTs a second
    # per subscription, half of ARM's write refill, so it and not ARM binds.
    "azure-8k-provider": {**_AZURE_8K, "provider_write_rate": 5.0, "provider_write_burst": 5},
}


# -- the emulator process (child mode) -------------------------------------------------------

def serve(fleet: Path, args) -> None:
    """What ``ccmigrate emulator serve --fleet FLEET`` runs with this benchmark's flags, every
    throttle written out (so the benchmark does not depend on the defaults). Under ``azure``
    timing the durations are the profile's, ``--operation-seconds`` unused."""
    from emulator.config import EmulatorConfig, Faults
    from emulator.server import Emulator, connection_line
    from flows.emulated import load_fleet_file

    fixed = args.operation_seconds if args.timing == "fast" else None
    config = EmulatorConfig(read_capacity=READ_CAPACITY, read_refill=READ_REFILL,
                            write_capacity=WRITE_CAPACITY, write_refill=WRITE_REFILL,
                            timing=args.timing, time_scale=args.time_scale,
                            arg_churn=args.arg_churn, operation_seconds=fixed, job_seconds=fixed)
    faults = Faults(provider_write_rate=args.provider_write_rate,
                    provider_write_burst=args.provider_write_burst)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    emu = Emulator(load_fleet_file(fleet), port=0, config=config, faults=faults).start()
    try:
        sys.stdout.write(connection_line(emu) + "\n")
        sys.stdout.flush()
        while not stop.wait(0.5):
            pass
    finally:
        emu.stop()


def emulator_process(fleet: Path, workdir: Path, args) -> EmulatorProcess:
    """This script's ``--serve`` in its own process (the buckets written out)."""
    argv = [PY, str(Path(__file__).resolve()), "--serve", str(fleet),
            "--operation-seconds", str(args.operation_seconds), "--timing", args.timing,
            "--time-scale", str(args.time_scale), "--arg-churn", str(args.arg_churn),
            "--read-refill", str(READ_REFILL), "--write-refill", str(WRITE_REFILL)]
    if args.provider_write_rate is not None:
        argv += ["--provider-write-rate", str(args.provider_write_rate)]
    if args.provider_write_burst is not None:
        argv += ["--provider-write-burst", str(args.provider_write_burst)]
    return EmulatorProcess(argv, workdir / "emulator.log", REPO)


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



# -- kinds of call -----------------------------------------------------------------------------

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




# -- the runner process (child mode) ---------------------------------------------------------

class Tally:
    """A client-side tally in the runner: each HTTP response by subscription, kind of call and
    status, and the Retry-After seconds its 429s asked for (wrapping ``requests``' adapter,
    in the runner process only). It also snapshots the emulator's counters when the wave's
    target policies are in place, where the runner has a function for that step."""

    def __init__(self, emulator: dict) -> None:
        self.emulator = emulator
        self.lock = threading.Lock()
        self.http: Counter = Counter()
        self.retry_after_s = 0.0
        self.stats_policies: dict | None = None
        self.policies_s: float | None = None

    def install(self) -> None:
        import importlib

        import requests.adapters

        tally = self
        original_send = requests.adapters.HTTPAdapter.send

        def send(adapter, request, *args, **kwargs):
            response = original_send(adapter, request, *args, **kwargs)
            from urllib.parse import urlsplit

            path = urlsplit(request.url).path
            if not path.startswith("/_emulator/"):
                sub = _SUB.search(path)
                key = (sub.group(1).lower() if sub else "-", call_kind(request.method, path),
                       response.status_code)
                with tally.lock:
                    tally.http[key] += 1
                    if response.status_code == 429:
                        with contextlib.suppress(ValueError):
                            tally.retry_after_s += float(response.headers.get("Retry-After") or 0)
            return response

        requests.adapters.HTTPAdapter.send = send

        def after_targets(orig):
            def wrapper(*args, **kwargs):
                start = time.perf_counter()
                try:
                    return orig(*args, **kwargs)
                finally:
                    tally.policies_s = time.perf_counter() - start
                    tally.stats_policies = _emulator_stats(tally.emulator)
            return wrapper

        # Where the runner makes the wave's target policies (the wave engine's runner, then the
        # one before it); looked up at call time by flows.migrate, so wrapping works.
        for module, name in (("tasks.migration.targets", "ensure_targets"),
                             ("flows.migrate", "_ensure_targets")):
            with contextlib.suppress(ImportError, AttributeError):
                owner = importlib.import_module(module)
                setattr(owner, name, after_targets(getattr(owner, name)))
                break


def _emulator_stats(info: dict) -> dict:
    import requests

    resp = requests.get(f"{info['endpoint']}/_emulator/stats", verify=info["ca_bundle"],
                        timeout=60)
    resp.raise_for_status()
    return resp.json()


def _cpu_s(who: int) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def _live_children_cpu_s() -> float:
    """CPU of children not yet waited for (RUSAGE_CHILDREN counts only reaped ones)."""
    import psutil

    total = 0.0
    for kid in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            t = kid.cpu_times()
            total += t.user + t.system
    return total


def run_wave_child(spec_path: Path) -> None:
    """The runner: ``run_wave`` over the plan the parent saved, measured from inside (CPU of
    this process and its children during the call, peak RSS, a client-side tally); the
    result goes to the spec's ``result`` file."""
    spec = json.loads(spec_path.read_text())
    from flows.migrate import run_wave
    from flows.options import with_emulator_principal
    from flows.prefect_runtime import prefect_runtime
    from tasks.settings import load_settings

    settings = with_emulator_principal(load_settings(environ={}, flags=spec["flags"]),
                                       spec["emulator"])
    tally = Tally(spec["emulator"])
    tally.install()
    profiles: list = []
    profiler = None
    if spec.get("profile"):  # every thread: this one, and those the wave starts
        import cProfile

        profiler = cProfile.Profile(time.thread_time)
        original_run = threading.Thread.run

        def profiled_run(thread):
            prof = cProfile.Profile(time.thread_time)
            profiles.append(prof)
            prof.enable()
            try:
                return original_run(thread)
            finally:
                prof.disable()

        threading.Thread.run = profiled_run
    wave, error = None, None
    with prefect_runtime():
        cpu0 = _cpu_s(resource.RUSAGE_SELF)
        kids0 = _cpu_s(resource.RUSAGE_CHILDREN) + _live_children_cpu_s()
        t_call = time.time()
        if profiler:
            profiler.enable()
        try:
            wave = run_wave(settings, spec["plan_id"], 1, execute=True,
                            out_dir=Path(spec["out_dir"]))
        except Exception as err:  # the runner failed: say so, and measure what it did
            error = f"{type(err).__name__}: {err}"
        finally:
            if profiler:
                profiler.disable()
        t_return = time.time()
        cpu1 = _cpu_s(resource.RUSAGE_SELF)
        kids1 = _cpu_s(resource.RUSAGE_CHILDREN) + _live_children_cpu_s()
    if profiler:
        import pstats

        merged = pstats.Stats(profiler)
        for prof in profiles:
            with contextlib.suppress(TypeError):  # a thread that never ran profiled code
                merged.add(prof)
        merged.dump_stats(spec["profile"])
    kids_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result = {
        "t_call": t_call, "t_return": t_return, "error": error,
        "status": wave.status if wave else "failed",
        "halted_reason": wave.halted_reason if wave else None,
        "counts": wave.counts if wave else {},
        "stats": dict(getattr(wave, "stats", None) or {}) if wave else {},
        "cpu_s": {"self": cpu1 - cpu0, "children": kids1 - kids0},
        # ru_maxrss is in KiB on Linux: the runner's peak, and its largest child's.
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "children_peak_rss_mb": kids_rss / 1024,
        "http": [[s, k, st, n] for (s, k, st), n in tally.http.items()],
        "retry_after_s": tally.retry_after_s,
        "stats_policies": tally.stats_policies, "policies_s": tally.policies_s,
    }
    Path(spec["result"]).write_text(json.dumps(result, default=str))


# -- one wave --------------------------------------------------------------------------------

def children_cpu_s(exclude: int) -> float:
    """CPU seconds of this process's live children other than ``exclude`` (the emulator):
    the Prefect API server."""
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


def wait_for_full_buckets(used_reads: int, used_writes: int) -> float:
    """Sleep until every bucket the assessment drew on is full again (worst case: all the
    reads from one subscription), and one more second; return the seconds slept."""
    need = max(used_reads / READ_REFILL, used_writes / WRITE_REFILL) + 1.0
    time.sleep(need)
    return need


def fleet_vault_ids(fleet_path: Path) -> list[str]:
    fleet = json.loads(fleet_path.read_text())
    return sorted(r["id"] for r in fleet["resources"]
                  if r["type"] == "Microsoft.RecoveryServices/vaults")


def wave_settings(args, workdir: Path) -> tuple[dict, list[str]]:
    """The settings the scenario needs, as flags; those this version of the runner does not
    know yet (``throttles.adaptive``) or allow (an in-flight cap above its range) are left out
    or clamped, each said in the notes returned."""
    from pydantic import ValidationError

    from tasks.settings import Throttles

    notes: list[str] = []
    throttles = {"max_parallel": args.max_parallel,
                 # The client paces under the buckets the emulator enforces (ARM's defaults, or
                 # the headroom run's larger refills), as a user sets them for their cloud.
                 "arm_reads_per_s": READ_REFILL, "arm_read_burst": READ_CAPACITY,
                 "arm_writes_per_s": WRITE_REFILL, "arm_write_burst": WRITE_CAPACITY}
    if args.per_vault is not None:
        throttles["per_vault"] = args.per_vault
    if args.polling_interval is not None:
        throttles["polling_interval"] = args.polling_interval
    if args.adaptive is not None:
        if "adaptive" in Throttles.model_fields:
            throttles["adaptive"] = args.adaptive
        else:
            notes.append("throttles.adaptive is not a setting of this runner: left out")
    try:
        Throttles(**throttles)
    except ValidationError:
        cap = next((m.le for m in Throttles.model_fields["max_parallel"].metadata
                    if hasattr(m, "le")), 256)
        if args.max_parallel > cap:
            notes.append(f"max_parallel {args.max_parallel} is above this runner's range: "
                         f"clamped to {cap}")
            throttles["max_parallel"] = cap
            if throttles.get("per_vault", 0) > cap:
                throttles["per_vault"] = cap
        Throttles(**throttles)  # anything else wrong is the benchmark's bug: say it loudly
    flags = {"state_store": f"sqlite:///{workdir}/state.db",
             **{f"throttles.{k}": v for k, v in throttles.items()}}
    return flags, notes


def run(args, workdir: Path) -> dict:
    from flows.assess import run_assessment
    from flows.options import with_emulator_principal
    from flows.prefect_runtime import prefect_runtime
    from tasks.settings import load_settings
    from tasks.state.db import open_store
    from tasks.state.journal import Journal

    fleet_path = workdir / f"fleet-{args.vms}-s{args.subscriptions}-v{args.vaults}.json"
    fleet = build_fleet(args.vms, args.subscriptions, args.vaults)
    fleet_path.write_text(json.dumps(fleet))
    del fleet
    flags, notes = wave_settings(args, workdir)
    args.max_parallel_used = flags["throttles.max_parallel"]
    result: dict = {"config": {
        "scenario": args.scenario, "vms": args.vms, "subscriptions": args.subscriptions,
        "vaults": args.vaults, "max_parallel": flags["throttles.max_parallel"],
        "per_vault": flags.get("throttles.per_vault"), "adaptive": args.adaptive,
        "operation_seconds": args.operation_seconds, "polling_interval": args.polling_interval,
        "timing": args.timing, "time_scale": args.time_scale, "arg_churn": args.arg_churn,
        "provider_write_rate": args.provider_write_rate,
        "provider_write_burst": args.provider_write_burst,
        "read_bucket": [READ_CAPACITY, READ_REFILL],
        "write_bucket": [WRITE_CAPACITY, WRITE_REFILL], "settings_notes": notes}}
    for note in notes:
        print(f"NOTE: {note}", flush=True)
    started = time.perf_counter()
    with emulator_process(fleet_path, workdir, args) as emu, prefect_runtime() as url:
        result["prefect_start_s"] = round(time.perf_counter() - started, 2)
        print(f"emulator at {emu.info['endpoint']}; Prefect API {url} "
              f"(up in {result['prefect_start_s']:.1f} s)", flush=True)
        settings = with_emulator_principal(load_settings(environ={}, flags=flags), emu.info)
        t0 = time.perf_counter()
        outcome = run_assessment(settings, workdir / "assess")
        result["assess_s"] = round(time.perf_counter() - t0, 2)
        readiness = outcome.scored["readiness"].value_counts().to_dict()
        result["readiness"] = {k: int(v) for k, v in readiness.items()}
        engine = open_store(settings.state_store_url(), synchronous="FULL")
        plan_id, planned = save_wave_plan(engine, outcome.scored, outcome.assessment_id)
        del outcome
        result["planned"] = planned
        print(f"assessed in {result['assess_s']:.1f} s: {result['readiness']}; "
              f"plan {plan_id}: {planned} VMs in wave 1", flush=True)
        if planned != args.vms:
            print(f"WARNING: {args.vms - planned} VMs are not ready; the wave holds {planned}",
                  flush=True)
        used = emu.stats()
        result["refill_wait_s"] = round(wait_for_full_buckets(used.get("read", 0),
                                                              used.get("write", 0)), 1)
        spec = {"flags": flags, "emulator": emu.info, "plan_id": plan_id,
                "out_dir": str(workdir / "wave"), "result": str(workdir / "runner.json"),
                "profile": str(args.profile) if args.profile else None}
        spec_path = workdir / "runner-spec.json"
        spec_path.write_text(json.dumps(spec))
        before = emu.all_stats()
        emu_cpu0, busy0 = emu.cpu_s(), busy_cpu_s()
        server0 = children_cpu_s(emu.proc.pid)
        print(f"running the wave ({planned} VMs) in a runner process...", flush=True)
        wall0 = time.perf_counter()
        proc = subprocess.run([PY, str(Path(__file__).resolve()), "--run-wave", str(spec_path)],
                              cwd=str(REPO), check=False)
        result["runner_process_s"] = round(time.perf_counter() - wall0, 1)
        emu_cpu1, busy1 = emu.cpu_s(), busy_cpu_s()
        server1 = children_cpu_s(emu.proc.pid)
        after = emu.all_stats()
        runner_path = Path(spec["result"])
        if proc.returncode != 0 or not runner_path.exists():
            raise SystemExit(f"the runner process failed (exit {proc.returncode})")
        runner = json.loads(runner_path.read_text())
        if runner["error"]:
            print(f"THE WAVE FAILED: {runner['error']}", flush=True)
        journal = Journal(engine, plan_id)
        events = journal.events()
        counts = {k: v for k, v in journal.counts(1).items() if v}
        latency = measured_latency(settings, fleet_vault_ids(fleet_path))
        result["config"]["measured_change_seconds"] = round(latency, 3)
        result["wave_outcome"] = {"status": runner["status"], "journal": counts,
                                  "error": runner["error"],
                                  "halted_reason": runner["halted_reason"],
                                  "complete": runner["error"] is None
                                  and counts == {"done": planned}}
        result["runner"] = {k: runner[k] for k in ("cpu_s", "peak_rss_mb",
                                                   "children_peak_rss_mb", "policies_s")}
        result["engine_stats"] = runner["stats"]
        result["figures"] = figures(args, runner, before, after, events, latency)
        result["cpu_s"] = {"runner": round(sum(runner["cpu_s"].values()), 1),
                           "emulator": round(emu_cpu1 - emu_cpu0, 1),
                           "prefect_server": round(server1 - server0, 1)}
        span = runner["t_return"] - runner["t_call"]
        result["cpu_s"]["other_processes"] = round(busy1 - busy0 - sum(result["cpu_s"].values()),
                                                   1)
        result["cpu_s"]["machine_capacity"] = round((os.cpu_count() or 1) * span, 1)
        if args.profile:
            print(f"runner CPU profile (main thread): {args.profile}", flush=True)
    return result


def _diff(after: dict, before: dict) -> dict[str, int]:
    return {k: after.get(k, 0) - before.get(k, 0) for k in sorted(set(after) | set(before))
            if after.get(k, 0) - before.get(k, 0)}


def completion_times(events, t0: float) -> tuple[list[float], float]:
    """Seconds from the VM phase's start (the wave's first journal event of a VM) at which
    each VM was journaled done; and that start (epoch seconds)."""
    at = events["at"].map(lambda ts: ts.timestamp())
    start = float(at.min()) if len(at) else t0
    done = events[events["status"] == "done"].assign(t=at).groupby("vm_key")["t"].min()
    return sorted(float(t) - start for t in done), start


def time_to_rate(done: list[float], rate: float, window: float) -> float | None:
    """First time (s from the start) at which the VMs done in the last ``window`` seconds,
    per second, reach ``rate``; None if they never do."""
    need = rate * window
    lo = 0
    for hi, t in enumerate(done):
        while done[lo] < t - window:
            lo += 1
        if hi - lo + 1 >= need:
            return t
    return None


def peak_from_journal(events) -> int:
    """VMs in flight at the busiest moment, from the journal: first event to done."""
    at = events.assign(t=events["at"].map(lambda ts: ts.timestamp()))
    first = at.groupby("vm_key")["t"].min()
    end = at[at["status"].isin(["done", "skipped", "rolled_back", "rollback_failed"])]
    last = end.groupby("vm_key")["t"].max()
    marks = sorted([(t, 1) for t in first] + [(t, -1) for t in last])
    peak = now = 0
    for _t, d in marks:
        now += d
        peak = max(peak, now)
    return peak


def figures(args, runner: dict, before: dict, after: dict, events, measured: float) -> dict:
    n = int((events.groupby("vm_key")["status"].last() == "done").sum()) if len(events) else 0
    policies = runner["stats_policies"] or before
    wave_calls = _diff(after["requests"], before["requests"])
    policy_calls = _diff(policies["requests"], before["requests"])
    vm_calls = _diff(after["requests"], policies["requests"])
    r = vm_calls.get("read", 0) / max(n, 1)
    w = vm_calls.get("write", 0) / max(n, 1)
    p = args.max_parallel_used  # the in-flight cap the runner was given
    lat = args.operation_seconds if args.timing == "fast" else measured
    done_at = events[events["status"] == "done"]
    per_sub_n = Counter(k.split("/")[2].lower() if k.count("/") > 2 else "-"
                        for k in done_at["vm_key"].unique())
    bucket_rate = min(WRITE_REFILL / w if w else math.inf, READ_REFILL / r if r else math.inf)
    biggest = max(per_sub_n.values()) if per_sub_n else 0
    t_star = max(n * lat / p, biggest / bucket_rate) if n else math.nan
    ideal = n / t_star if n else math.nan
    floor = max(n * lat / p, *(max((ns * r - READ_CAPACITY) / READ_REFILL,
                                   (ns * w - WRITE_CAPACITY) / WRITE_REFILL, 0.0)
                               for ns in per_sub_n.values())) if n else math.nan
    provider = args.provider_write_rate
    t_provider = max(t_star, biggest * w / provider) if provider and n else None
    ideal_provider = n / t_provider if t_provider else None

    wall = runner["t_return"] - runner["t_call"]
    done, phase_start = completion_times(events, runner["t_call"])
    before_vms = phase_start - runner["t_call"]
    phase = done[-1] if done else math.nan
    window = lat / 4
    bound = ideal_provider if ideal_provider else ideal
    reached = time_to_rate(done, SHARE_OF_IDEAL * bound, window) if done else None
    lo, hi = (done[int(0.2 * (len(done) - 1))], done[int(0.9 * (len(done) - 1))]) if done \
        else (0.0, 0.0)
    settled = (int(0.9 * (len(done) - 1)) - int(0.2 * (len(done) - 1))) / (hi - lo) \
        if hi > lo else math.nan
    received = sum(_diff(after["received"], before["received"]).values())
    throttled = _diff(after["throttled"], before["throttled"])
    share_429 = sum(throttled.values()) / received if received else 0.0
    stats = runner["stats"]
    cpu_ms = 1000 * sum(runner["cpu_s"].values()) / max(n, 1)
    http: Counter = Counter()
    by_kind: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for _s, kind, status, c in runner["http"]:
        by_kind[kind][str(status)] += c
        http[status] += c
    rate = n / wall if wall else math.nan
    out = {
        "vms": n, "vms_per_s": round(rate, 3), "ideal_vms_per_s": round(ideal, 3),
        "share_of_ideal": round(rate / ideal, 3) if ideal else None,
        "ideal_provider_vms_per_s": round(ideal_provider, 3) if ideal_provider else None,
        "share_of_provider_ideal": round(settled / ideal_provider, 3)
        if ideal_provider else None,
        "arm_reads_per_vm": round(r, 3), "arm_writes_per_vm": round(w, 3),
        "resource_graph_requests": wave_calls.get("arg", 0),
        "resource_graph_requests_runner": stats.get("resource_graph_requests"),
        "looks": stats.get("looks"), "looked_vms": stats.get("looked_vms"),
        "stale_looks": stats.get("stale_looks"),
        "peak_in_flight": stats.get("peak_in_flight"),
        "peak_in_flight_journal": peak_from_journal(events) if len(events) else 0,
        "runner_cpu_ms_per_vm": round(cpu_ms, 2),
        "peak_rss_mb": round(runner["peak_rss_mb"], 1),
        "share_429": round(share_429, 4), "throttled_by_code": throttled,
        "client_429s": stats.get("throttled"),
        "time_to_bound_s": round(reached / lat, 2) if reached is not None else None,
        "time_to_bound_window_s": round(window, 2),
        "mean_change_s": round(measured, 3), "latency_s_in_ideal": round(lat, 3),
        "settled_vms_per_s": round(settled, 3),
        "vm_phase_s": round(phase, 2), "before_vm_phase_s": round(before_vms, 2),
        "vm_phase_vms_per_s": round(n / phase, 3) if phase else None,
        "wave_wall_s": round(wall, 2),
        "t_star_s": round(t_star, 2), "burst_aware_floor_s": round(floor, 2),
        "ideal_terms": {"concurrency_vms_per_s": round(p / lat, 3),
                        "write_bucket_vms_per_s": round(WRITE_REFILL / w, 3) if w else None,
                        "read_bucket_vms_per_s": round(READ_REFILL / r, 3) if r else None,
                        "subscriptions": dict(per_sub_n)},
        "emulator_calls": {"wave": wave_calls, "policy_phase": policy_calls,
                           "vm_phase": vm_calls,
                           "policy_phase_separated": runner["stats_policies"] is not None},
        "policies_s": runner["policies_s"],
        "client_calls_by_kind": {k: dict(v) for k, v in sorted(by_kind.items())},
        "client_retry_after_s": round(runner["retry_after_s"], 1),
        "in_flight_curve": stats.get("in_flight_curve"),
    }
    targets = TARGETS.get(args.scenario, {})
    checks = {"share_of_ideal": lambda v, t: v is not None and v >= t,
              "share_of_provider_ideal": lambda v, t: v is not None and v >= t,
              "vms_per_s": lambda v, t: v >= t, "share_429": lambda v, t: v < t}
    out["pass"] = {k: bool(checks.get(k, lambda v, t: v is not None and v <= t)(out[k], t))
                   for k, t in targets.items()}
    return out


# -- report ----------------------------------------------------------------------------------

def _na(value, fmt: str = "{}") -> str:
    return "n/a" if value is None else fmt.format(value)


def table(res: dict) -> str:
    f, c = res["figures"], res["config"]

    def ok(key: str) -> str:
        if key not in f["pass"]:
            return ""
        return ": met" if f["pass"][key] else ": **missed**"

    out = res["wave_outcome"]
    terms = f["ideal_terms"]
    timing = (f"operation {c['operation_seconds']} s" if c["timing"] == "fast" else
              f"timing azure at scale {c['time_scale']:g}")
    rows = [
        "| figure | value |", "| --- | --- |",
        f"| scenario | {c['scenario']}: {c['vms']:,} VMs, {c['subscriptions']} subscriptions, "
        f"{c['vaults']} vaults; {timing}; max_parallel {c['max_parallel']}, per_vault "
        f"{_na(c['per_vault'])}, adaptive {_na(c['adaptive'])}; provider writes "
        + (f"{c['provider_write_rate']:g}/s per subscription (burst "
           f"{_na(c['provider_write_burst'])})" if c["provider_write_rate"] else "unthrottled")
        + " |",
        f"| wave outcome (journal) | {out['status']}: "
        + ", ".join(f"{k} {v}" for k, v in out["journal"].items())
        + (f"; **failed**: {out['error'][:300]}" if out["error"] else "") + " |",
        f"| mean change L (ConfigureBackup jobs as drawn) / L in the ideal | "
        f"{f['mean_change_s']:.2f} s / {f['latency_s_in_ideal']:.2f} s |",
        f"| calls per VM (emulator, VM phase) | {f['arm_reads_per_vm']:.2f} reads"
        f"{ok('arm_reads_per_vm')}, {f['arm_writes_per_vm']:.2f} writes |",
        f"| ideal: N / T*, T* = max(N L / P, max_s N_s / min(W/w, R/r)) | "
        f"{f['ideal_vms_per_s']:.2f} VMs/s (T* = {f['t_star_s']:.1f} s; P/L "
        f"{terms['concurrency_vms_per_s']:.1f}, W/w {_na(terms['write_bucket_vms_per_s'])}, "
        f"R/r {_na(terms['read_bucket_vms_per_s'])} per subscription) |",
        f"| wave: VMs / run_wave wall | {f['vms_per_s']:.2f} VMs/s ({f['wave_wall_s']:.1f} s) "
        f"= {100 * (f['share_of_ideal'] or 0):.1f} % of ideal{ok('share_of_ideal')}"
        + (f"; target >= {DEFAULT_FLOOR_VMS_PER_S} VMs/s{ok('vms_per_s')}"
           if "vms_per_s" in f["pass"] else "") + " |",
        f"| VM phase (first VM event -> last VM done) | {_na(f['vm_phase_vms_per_s'])} VMs/s "
        f"({f['vm_phase_s']:.1f} s, after {f['before_vm_phase_s']:.1f} s before it: target "
        f"policies {_na(f['policies_s'], '{:.1f}')} s); settled (20th-90th percentile of "
        f"done) {f['settled_vms_per_s']:.2f} VMs/s |",
        f"| burst-aware floor (buckets start full) | {f['burst_aware_floor_s']:.1f} s |",
    ]
    if f["ideal_provider_vms_per_s"]:
        rows.append(f"| provider bound: N / max(T*, max_s N_s w / p) | "
                    f"{f['ideal_provider_vms_per_s']:.2f} VMs/s; settled at "
                    f"{100 * f['share_of_provider_ideal']:.1f} %{ok('share_of_provider_ideal')}"
                    " |")
    rows += [
        f"| time to bound (85 % of it, VMs done per {f['time_to_bound_window_s']:.1f} s) | "
        + _na(f["time_to_bound_s"], "{:.2f} L") + " |",
        f"| requests answered 429 (emulator, wave) | {100 * f['share_429']:.2f} %"
        f"{ok('share_429')} ("
        + (", ".join(f"{k} {v}" for k, v in f["throttled_by_code"].items()) or "none")
        + f"); client-side per the engine: {_na(f['client_429s'])} |",
        f"| Resource Graph requests (emulator / engine) | {f['resource_graph_requests']} / "
        f"{_na(f['resource_graph_requests_runner'])} |",
        f"| looks: chunks / VMs looked at (again when stale) / looks gone stale | "
        f"{_na(f['looks'])} / {_na(f['looked_vms'])} / {_na(f['stale_looks'])} |",
        f"| peak in flight (engine / journal) | {_na(f['peak_in_flight'])} / "
        f"{f['peak_in_flight_journal']} |",
        f"| runner CPU per VM (process + children) | {f['runner_cpu_ms_per_vm']:.1f} ms"
        f"{ok('runner_cpu_ms_per_vm')} |",
        f"| runner peak RSS | {f['peak_rss_mb']:.0f} MB{ok('peak_rss_mb')} |",
        f"| CPU seconds during the wave: runner / emulator / Prefect server / other processes "
        f"(of {res['cpu_s']['machine_capacity']} on {os.cpu_count()} cores) | "
        f"{res['cpu_s']['runner']} / {res['cpu_s']['emulator']} / "
        f"{res['cpu_s']['prefect_server']} / {res['cpu_s']['other_processes']} |",
    ]
    curve = f.get("in_flight_curve") or []
    if curve:
        step = max(1, len(curve) // 12)
        rows.append("| in flight (s: in flight / allowed) | " + "; ".join(
            f"{p[0]:.0f}: {p[1]}/{p[2]}" for p in curve[::step]) + " |")
    return "\n".join(rows)


def headline(res: dict) -> dict:
    """The ``--json`` line: the issue's keys and the pass/fail of each target."""
    f = res["figures"]
    keys = ("vms", "vms_per_s", "ideal_vms_per_s", "share_of_ideal", "arm_reads_per_vm",
            "arm_writes_per_vm", "resource_graph_requests", "peak_in_flight",
            "runner_cpu_ms_per_vm", "peak_rss_mb", "share_429", "time_to_bound_s",
            "mean_change_s", "settled_vms_per_s", "ideal_provider_vms_per_s",
            "share_of_provider_ideal", "throttled_by_code")
    return {"scenario": res["config"]["scenario"], **{k: f.get(k) for k in keys},
            "pass": f["pass"], "complete": res["wave_outcome"]["complete"],
            "commit": res["source"]["commit"], "loadavg": res["loadavg"]}


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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The flags, the scenario's values filled in where a flag was not given."""
    parser = argparse.ArgumentParser(description="Wave benchmark (see the module doc).")
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), default="default")
    parser.add_argument("--json", action="store_true",
                        help="print a last line of JSON with the headline figures")
    parser.add_argument("--vms", type=int)
    parser.add_argument("--subscriptions", type=int)
    parser.add_argument("--vaults", type=int)
    parser.add_argument("--max-parallel", type=int)
    parser.add_argument("--per-vault", type=int, default=None,
                        help="default scenario: ceil(max_parallel / vaults); the azure ones: "
                        "the runner's default")
    parser.add_argument("--adaptive", action=argparse.BooleanOptionalAction, default=None,
                        help="throttles.adaptive (azure scenarios: on)")
    parser.add_argument("--operation-seconds", type=float, default=1.0)
    parser.add_argument("--polling-interval", type=float, default=None,
                        help="throttles.polling_interval (default scenario: 0.2 s, for its "
                        "1-s operations; the azure ones: the runner's default)")
    # --timing, --time-scale, --arg-churn, --provider-write-rate, --provider-write-burst
    add_serve_arguments(parser, provider=True)
    parser.add_argument("--keep", type=Path, help="keep the fleet, state store and reports here")
    parser.add_argument("--read-refill", type=float, default=READ_REFILL,
                        help="reads per second per subscription (a headroom run raises it)")
    parser.add_argument("--write-refill", type=float, default=WRITE_REFILL)
    parser.add_argument("--profile", type=Path, help="cProfile the runner's threads to this "
                        ".pstats path (slows the run: its timings are not figures)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "waves.json")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)  # the emulator process
    parser.add_argument("--run-wave", type=Path, help=argparse.SUPPRESS)  # the runner process
    args = parser.parse_args(argv)
    for key, value in SCENARIOS[args.scenario].items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    if args.per_vault is None and args.scenario == "default":
        args.per_vault = math.ceil(args.max_parallel / args.vaults)
    return args


def main() -> None:
    global READ_REFILL, WRITE_REFILL
    args = parse_args()
    READ_REFILL, WRITE_REFILL = args.read_refill, args.write_refill
    if args.serve:
        serve(args.serve, args)
        return
    if args.run_wave:
        run_wave_child(args.run_wave)
        return
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
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print()
    print(table(result))
    print(f"\nbenchmark wall {result['benchmark_wall_s']:.0f} s; load average "
          f"{result['loadavg']['start']} -> {result['loadavg']['end']}; figures in {args.out}")
    if args.json:
        print(json.dumps(headline(result)))


if __name__ == "__main__":
    main()
