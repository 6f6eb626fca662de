"""``ccmigrate assess``: score every VM in scope, write the readiness reports, record the run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tasks.errors import AzureError

from . import options as opt


def assess_command(
    out: Annotated[Path, typer.Option("--out", help="Folder for readiness.xlsx, readiness.csv, "
                                                    "blockers.csv, summary.json (and changes.csv "
                                                    "when the scope was assessed before).")],
    demo: opt.Demo = None,
    fleet: opt.Fleet = None,
    timing: opt.Timing = "fast",
    time_scale: opt.TimeScale = 1.0,
    rules: Annotated[str | None, typer.Option(
        "--rules", help="Rule pack: ga-2025-07 (default), preview-2024-03, or a .yaml path.",
        show_default=False)] = None,
    config: opt.Config = None,
    endpoint: opt.Endpoint = None,
    ca_bundle: opt.CaBundle = None,
    credential: opt.Credential = None,
    state_store: opt.StateStore = None,
    subscription: opt.Subscriptions = None,
    management_group: opt.ManagementGroups = None,
) -> None:
    """Discover VMs through Resource Graph, score them against the supported-scenario rules,
    write the reports and record the assessment in the state store."""
    from tasks.rules.engine import load_pack

    from .assess import check_out_dir, run_assessment
    from .emulated import azure_target, emulator_config
    from .prefect_runtime import prefect_runtime
    from .progress import Progress

    settings = opt.build_settings(
        config=config, endpoint=endpoint, ca_bundle=ca_bundle, credential=credential,
        state_store=state_store, subscriptions=subscription, management_groups=management_group,
        extra={"rules.pack": rules, "output_dir": str(out)})
    check_out_dir(out)
    load_pack(settings.rules)  # a bad pack or override is bad input: say so before starting
    emu_config = emulator_config(timing, time_scale)
    with (azure_target(settings, demo, fleet, emu_config) as target, prefect_runtime(),
          Progress() as progress):
        outcome = run_assessment(target, out, progress=progress)
    print_summary(outcome.summary, outcome.files)
    if not outcome.summary["complete"]:
        raise AzureError(f"the assessment is partial: {len(outcome.summary['partial_errors'])} "
                         "scope(s) could not be read; see 'partial_errors' in "
                         f"{outcome.files['summary.json']} for each error and how to retry")


def print_summary(summary: dict, files: dict[str, Path]) -> None:
    """The Summary sheet's headline, drawn from the same summary.json numbers."""
    from reports.labels import READINESS_LABELS, percent

    total = summary["vms"]
    typer.echo(f"Assessment {summary['assessment_id']}: {summary['vms']} VMs in "
               f"{len(summary['scope']['subscriptions'])} subscription(s), rule pack "
               f"{summary['rule_pack']['name']}")
    for key, label in READINESS_LABELS.items():
        count = summary["by_readiness"].get(key, 0)
        typer.echo(f"  {label:<26}{count:>8}  {percent(count, total):>6}")
    blockers = summary.get("top_blockers")
    if blockers is None:  # an assessment stored before top_blockers existed
        blockers = [{"rule": r, "vms": n} for r, n in sorted(
            summary["by_rule"]["blocker"].items(), key=lambda kv: (-kv[1], kv[0]))]
    if blockers:
        typer.echo("  Top blockers: " + ", ".join(f"{b['rule']} ({b['vms']})"
                                                 for b in blockers[:5]))
    risky = summary.get("crash_consistent_with_blockers", 0)
    if risky:
        typer.secho(f"  At risk: {risky} crash-consistent VM(s) have blockers", fg="red")
    cost = summary.get("cost")
    if cost:
        totals = cost["totals"]
        money = (f", {totals['monthly_cost']:,.2f} {cost['currency']} a month" if cost["priced"]
                 else " (no prices configured: units only)")
        typer.echo(f"  Crash-consistent estate: {totals['vms']} VMs, {totals['pi_units']:g} "
                   f"protected-instance units{money}")
    changes = summary.get("changes")
    if changes:
        counts = ", ".join(f"{k.replace('_', ' ')} {n}" for k, n in changes["by_change"].items()
                           if n)
        typer.echo(f"  Since {changes['previous_id']}: {counts or 'no changes'}")
    migration = summary.get("migration")
    if migration:
        typer.echo("  Migration (wave journal): " + ", ".join(
            f"{k.replace('_', ' ')} {n}" for k, n in migration.items()))
    guarded = summary.get("guarded_vaults") or []
    if guarded:
        typer.echo(f"  Multi-user authorization: {len(guarded)} vault(s) linked to a Resource "
                   "Guard (a change that shortens retention needs the guard): "
                   + ", ".join(f"{g['vault']} ({g['guard']})" for g in guarded))
    if summary["partial_errors"]:
        typer.secho(f"  Not assessed: {len(summary['partial_errors'])} scope(s); see "
                    "summary.json", fg="red")
    typer.echo(f"  Resource Graph requests: {summary['requests']['resource_graph']}")
    for name, path in files.items():
        typer.echo(f"  {name}: {path}")
