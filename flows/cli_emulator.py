"""``ccmigrate emulator``: generate fleet files and serve them over HTTPS on loopback."""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated

import typer

from tasks.errors import InputError

from . import options as opt

app = typer.Typer(help="The local Azure emulator: generate fleets, serve them.",
                  no_args_is_help=True)


@app.command("generate")
def generate(
    vms: Annotated[int, typer.Option("--vms", min=1, help="Number of VMs.")],
    out: Annotated[Path, typer.Option("--out", help="Fleet JSON file to write.")],
    subscriptions: Annotated[int, typer.Option("--subscriptions", min=1,
                                               help="Number of subscriptions.")] = 4,
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same file.")] = 7,
    spec: Annotated[Path | None, typer.Option(
        "--spec", help="Proportions file; default config/demo-fleet.toml.",
        show_default=False)] = None,
) -> None:
    """Write a realistic fleet file (ARM resources exactly as ARM returns them)."""
    from emulator.generator import generate_fleet, load_spec, write_fleet

    try:
        spec_data = load_spec(spec) if spec else None
    except (OSError, ValueError) as exc:
        raise InputError(f"--spec {spec}: {exc}") from exc
    fleet = generate_fleet(vms=vms, subscriptions=subscriptions, seed=seed, spec=spec_data)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_fleet(fleet, out)
    kinds: dict[str, int] = {}
    for res in fleet["resources"]:
        kinds[res["type"]] = kinds.get(res["type"], 0) + 1
    typer.echo(f"wrote {out}: {len(fleet['subscriptions'])} subscriptions, "
               + ", ".join(f"{n} {t.rsplit('/', 1)[-1]}" for t, n in sorted(kinds.items())))


@app.command("serve")
def serve(
    fleet: Annotated[Path | None, typer.Option("--fleet", help="Fleet file to serve.",
                                               show_default=False)] = None,
    demo: Annotated[int | None, typer.Option("--demo", help="Serve a generated fleet of N VMs.",
                                             show_default=False)] = None,
    port: Annotated[int, typer.Option("--port", help="Port; 0 picks a free one.")] = 0,
    seed: Annotated[int, typer.Option("--seed", help="Seed for --demo and for faults.")] = 7,
    verbose: Annotated[bool, typer.Option("--verbose", help="Log requests to stderr.")] = False,
    timing: opt.Timing = "fast",
    time_scale: opt.TimeScale = 1.0,
    retry_after: Annotated[int | None, typer.Option(
        "--retry-after", help="Fixed Retry-After (s) on async responses; wins over --timing, "
        "not scaled.", show_default=False)] = None,
    operation_seconds: Annotated[float | None, typer.Option(
        "--operation-seconds", help="Exact duration (s) of async operations and the "
        "ConfigureBackup jobs of a policy edit; wins over --timing, not scaled.",
        show_default=False)] = None,
    arg_quota: Annotated[int, typer.Option("--arg-quota",
                                           help="Resource Graph queries per window.")] = 15,
    latency_ms: Annotated[float, typer.Option("--latency-ms", help="Added latency.")] = 0.0,
    rate_429: Annotated[float, typer.Option("--rate-429", help="Share of 429 answers.")] = 0.0,
    rate_5xx: Annotated[float, typer.Option("--rate-5xx", help="Share of 500/503.")] = 0.0,
    rate_drop: Annotated[float, typer.Option("--rate-drop", help="Share of dropped "
                                             "connections.")] = 0.0,
    stuck_operations: Annotated[bool, typer.Option("--stuck-operations",
                                                   help="Operations never finish.")] = False,
    fail_jobs_for: Annotated[list[str] | None, typer.Option(
        "--fail-jobs-for", help="VM name or id whose jobs fail (repeatable).",
        show_default=False)] = None,
    resource_guard_vault: Annotated[list[str] | None, typer.Option(
        "--resource-guard-vault", help="Vault linked to a default Resource Guard "
        "'{vault}-guard' (multi-user authorization; a shortcut for the fleet file's "
        "backupResourceGuardProxies and resourceGuards resources; repeatable).",
        show_default=False)] = None,
    forbidden_scope: Annotated[list[str] | None, typer.Option(
        "--forbidden-scope", help="ARM id the principal may not read (403), e.g. a "
        "subscription or vault (repeatable).", show_default=False)] = None,
    client_secret: Annotated[str | None, typer.Option(
        "--client-secret", help="Secret of the emulator's service principal.",
        show_default=False)] = None,
    arg_churn: Annotated[float, typer.Option(
        "--arg-churn", help="Share of the fleet's VMs created, deleted or edited between two "
        "Resource Graph pages of one query (seeded), e.g. 0.001.")] = 0.0,
    arg_tenant_subscriptions: Annotated[int, typer.Option(
        "--arg-tenant-subscription-limit", min=1, help="Subscriptions a tenant-scope Resource "
        "Graph query covers (Azure documents 10,000).")] = 10_000,
    arg_mg_subscriptions: Annotated[int, typer.Option(
        "--arg-management-group-subscription-limit", min=1, help="Subscriptions a "
        "management-group Resource Graph query covers (Azure documents 5,000).")] = 5_000,
    provider_write_rate: Annotated[float | None, typer.Option(
        "--provider-write-rate", help="Recovery Services' own throttling: writes per second "
        "per subscription and action (e.g. protected-item PUTs) before it answers 429 "
        "ResourceRequestsThrottled; Microsoft publishes no number. Default: off.",
        show_default=False)] = None,
    provider_write_burst: Annotated[int | None, typer.Option(
        "--provider-write-burst", help="Burst of that bucket (default: one second's worth).",
        show_default=False)] = None,
    provider_retry_after: Annotated[int, typer.Option(
        "--provider-retry-after", min=0, help="Retry-After (s) on ResourceRequestsThrottled "
        "(unverified; not scaled by --time-scale).")] = 60,
) -> None:
    """Serve a fleet over HTTPS; print one JSON line with the connection facts once ready."""
    from emulator.config import Faults
    from emulator.server import Emulator

    from .emulated import demo_fleet, emulator_config, load_fleet_file

    if (fleet is None) == (demo is None):
        raise InputError("give exactly one of --fleet FLEET.json or --demo N")
    rates = {"--rate-429": rate_429, "--rate-5xx": rate_5xx, "--rate-drop": rate_drop}
    for flag, value in rates.items():
        if not 0 <= value <= 1:
            raise InputError(f"{flag} {value}: a share between 0 and 1, e.g. 0.05")
    if not 0 <= arg_churn <= 1:
        raise InputError(f"--arg-churn {arg_churn}: a share of the VMs between 0 and 1, "
                         "e.g. 0.001")
    if provider_write_rate is not None and not provider_write_rate > 0:
        raise InputError(f"--provider-write-rate {provider_write_rate}: writes per second, "
                         "above 0, e.g. 5")
    if provider_write_burst is not None and provider_write_burst < 1:
        raise InputError(f"--provider-write-burst {provider_write_burst}: at least 1 request")
    data = load_fleet_file(fleet) if fleet else demo_fleet(demo or 0, seed)
    config = emulator_config(timing, time_scale, seed=seed, verbose=verbose,
                             retry_after=retry_after, operation_seconds=operation_seconds,
                             job_seconds=operation_seconds, arg_quota=arg_quota,
                             arg_churn=arg_churn,
                             arg_tenant_subscription_limit=arg_tenant_subscriptions,
                             arg_management_group_subscription_limit=arg_mg_subscriptions)
    if client_secret:
        config.client_secret = client_secret
    faults = Faults(latency_ms=latency_ms, rate_429=rate_429, rate_5xx=rate_5xx,
                    rate_drop=rate_drop, stuck_operations=stuck_operations,
                    fail_jobs_for=list(fail_jobs_for or []),
                    resource_guard_vaults=list(resource_guard_vault or []),
                    forbidden_scopes=list(forbidden_scope or []),
                    provider_write_rate=provider_write_rate,
                    provider_write_burst=provider_write_burst,
                    provider_throttle_retry_after=provider_retry_after)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        emu = Emulator(data, port=port, config=config, faults=faults).start()
    except OSError as exc:
        raise InputError(f"--port {port}: cannot listen there ({exc.strerror}); "
                         "use --port 0 for any free port") from exc
    try:
        sys.stderr.write(f"emulator timing: {emu.timing_description()}\n")
        sys.stdout.write(json.dumps(emu.connection_info()) + "\n")
        sys.stdout.flush()
        while not stop.wait(0.5):
            pass
    finally:
        emu.stop()
