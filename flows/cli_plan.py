"""``ccmigrate plan``: cut a stored assessment's movable VMs into waves, work out the policies
each vault needs against Azure's limits, record the plan and write plan.csv / plan.xlsx.
Reads Azure (each involved vault's policy list), never writes to it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from . import options as opt

if TYPE_CHECKING:
    from tasks.planning import Plan
    from tasks.state import PlanRecord

SHOWN_REASONS = 5
SHOWN_WAVES = 12


def plan_command(
    assessment: Annotated[str, typer.Option(
        "--assessment", help="The assessment to plan from: an id (or its first characters) or "
        "'latest'.")] = "latest",
    select: Annotated[list[str] | None, typer.Option(
        "--select", help="Only VMs matching key=glob (repeatable; the same key ORs, different "
        "keys AND). Keys: subscription, resource_group, location, vault, policy, vm, tag:NAME.",
        show_default=False)] = None,
    vms: Annotated[Path | None, typer.Option(
        "--vms", help="Only the VMs listed in this .csv/.xlsx (a vm_id column, else the first "
        "column).", show_default=False)] = None,
    wave_size: Annotated[int | None, typer.Option(
        "--wave-size", help="VMs per wave after the ramp (setting waves.wave_size, default "
        "50).", show_default=False)] = None,
    canary: Annotated[int | None, typer.Option(
        "--canary", help="VMs in wave 1, the canary (setting waves.canary, default 1).",
        show_default=False)] = None,
    ramp: Annotated[str | None, typer.Option(
        "--ramp", help="Wave sizes after the canary, counts or percentages of the plan's VMs, "
        "e.g. 1,5,25% (setting waves.ramp, default 5).", show_default=False)] = None,
    allow_warning: Annotated[list[str] | None, typer.Option(
        "--allow-warning", help="Accept this warning rule id (repeatable; adds to setting "
        "waves.allow_warnings), e.g. HOST_CACHING_READWRITE.", show_default=False)] = None,
    include_standard: Annotated[bool, typer.Option(
        "--include-standard", help="Plan Standard (V1) policy VMs too; their move to Enhanced "
        "can't be undone.")] = False,
    order_by: Annotated[str | None, typer.Option(
        "--order-by", help="Wave order: 'tag:NAME' (that tag's value, lowest first) or '' "
        "(subscription, vault, name; setting waves.order_by).", show_default=False)] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", help="Folder for plan.csv and plan.xlsx (default: setting output_dir).",
        show_default=False)] = None,
    demo: opt.Demo = None,
    fleet: opt.Fleet = None,
    timing: opt.Timing = "fast",
    time_scale: opt.TimeScale = 1.0,
    config: opt.Config = None,
    endpoint: opt.Endpoint = None,
    ca_bundle: opt.CaBundle = None,
    credential: opt.Credential = None,
    state_store: opt.StateStore = None,
) -> None:
    """Cut a stored assessment's movable VMs into waves (wave 1 is the canary), check each
    vault's policies against Azure's limits, and record the plan. Nothing is written to Azure."""
    from .assess import check_out_dir
    from .emulated import azure_target, emulator_config
    from .plan import PlanRequest, prepare_plan, run_plan
    from .prefect_runtime import prefect_runtime

    settings = opt.build_settings(
        config=config, endpoint=endpoint, ca_bundle=ca_bundle, credential=credential,
        state_store=state_store,
        extra={"waves.wave_size": wave_size, "waves.canary": canary, "waves.ramp": ramp,
               "waves.include_standard": True if include_standard else None,
               "waves.order_by": order_by, "output_dir": str(out) if out else None})
    request = PlanRequest(assessment=assessment, select=list(select or []), vms_file=vms,
                          allow_warnings=list(allow_warning or []))
    prepared = prepare_plan(settings, request)  # all bad input fails here, before any write
    try:
        folder = check_out_dir(out or settings.output_dir)
        emu_config = emulator_config(timing, time_scale)
        with azure_target(settings, demo, fleet, emu_config) as target, prefect_runtime():
            outcome = run_plan(target, prepared, folder)
    finally:
        prepared.engine.dispose()
    print_plan(outcome.record, outcome.plan, outcome.files)


def print_plan(record: PlanRecord, plan: Plan, files: dict[str, Path]) -> None:
    """A short account: what moves, in which waves, which policies, what stays out and why."""
    summary = plan.summary
    typer.echo(f"Plan {record.id} from assessment {record.assessment_id}: "
               f"{summary['planned']} VMs in {record.wave_count} waves")
    typer.echo(f"  Candidates: {summary['candidates']} of {summary['selected']} selected VMs; "
               f"{summary['planned']} planned")
    waves = summary["waves"]
    shown = ", ".join(f"{w['wave']}: {w['size']}" for w in waves[:SHOWN_WAVES])
    more = f", ... ({len(waves) - SHOWN_WAVES} more)" if len(waves) > SHOWN_WAVES else ""
    typer.echo(f"  Waves (VMs): {shown}{more}  (wave 1 is the canary)")
    policies = summary["policies"]
    line = f"  Policies: {policies['create']} to create, {policies['reuse']} to reuse"
    if policies["conflict"]:
        line += f", {policies['conflict']} in conflict (their VMs are left out; see Policies)"
    typer.echo(line)
    for conflict in summary.get("conflicts", [])[:SHOWN_REASONS]:
        typer.secho(f"  Conflict: policy '{conflict['policy']}' in vault {conflict['vault']} "
                    f"exists with other settings ({conflict['detail']}); {conflict['vms']} VM(s) "
                    "left out. Change the name template or delete that policy", fg="red")
    if summary["irreversible"]:
        names = summary.get("irreversible_vms", [])
        shown = ", ".join(names[:SHOWN_REASONS]) + (", ..." if len(names) > SHOWN_REASONS
                                                    else "")
        typer.secho(f"  Irreversible: {summary['irreversible']} VM(s) on a Standard policy move "
                    "to Enhanced for good; they roll back to an Enhanced app-consistent copy"
                    + (f": {shown}" if shown else ""), fg="yellow")
    for guarded in summary.get("guarded_vaults", []):
        critical = guarded["critical_vms"]
        typer.secho(f"  Multi-user authorization: vault {guarded['vault']} is linked to a "
                    f"Resource Guard; {critical} of its {guarded['vms']} planned VM(s) shorten "
                    "retention (critical)" + (f": before the wave, hold the "
                                              f"{guarded['operator_request']}" if critical
                                              else ": no approval needed"),
                    fg="yellow" if critical else None)
    for split in summary["splits"]:
        waits = ", ".join(f"wave {w['wave']} after wave {w['after_wave']} ends + 24 h"
                          for w in split["waves"])
        typer.secho(f"  Split: vault {split['vault']} needs {split['writes']} policy writes; "
                    f"Azure allows {split['limit']} per vault in 24 h, so the plan spreads them "
                    f"over days: {waits}", fg="yellow")
    for over in summary["over_limit"]:
        typer.secho(f"  Over the limit: vault {over['vault']} has {over['existing']} policies and "
                    f"would need {over['new']} more (Azure allows 200); VMs past it are left out",
                    fg="red")
    excluded = summary["excluded"]
    if excluded["total"]:
        typer.echo(f"  Excluded: {excluded['total']} VM(s)")
        for entry in excluded["by_reason"][:SHOWN_REASONS]:
            typer.echo(f"    {entry['vms']:>6}  {entry['reason']}")
        rest = len(excluded["by_reason"]) - SHOWN_REASONS
        if rest > 0:
            typer.echo(f"    ... {rest} more reason(s): see the Excluded sheet")
    for name, path in files.items():
        typer.echo(f"  {name}: {path}")
