"""``ccmigrate assess``: score every VM in scope and write readiness.csv and summary.json."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tasks.errors import AzureError

from . import options as opt


def assess_command(
    out: Annotated[Path, typer.Option("--out", help="Folder for readiness.csv, summary.json "
                                                    "(and readiness.xlsx).")],
    demo: opt.Demo = None,
    fleet: opt.Fleet = None,
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
    from .emulated import azure_target
    from .prefect_runtime import prefect_runtime
    from .progress import Progress

    settings = opt.build_settings(
        config=config, endpoint=endpoint, ca_bundle=ca_bundle, credential=credential,
        state_store=state_store, subscriptions=subscription, management_groups=management_group,
        extra={"rules.pack": rules, "output_dir": str(out)})
    check_out_dir(out)
    load_pack(settings.rules)  # a bad pack or override is bad input: say so before starting
    with (azure_target(settings, demo, fleet) as target, prefect_runtime(),
          Progress() as progress):
        outcome = run_assessment(target, out, progress=progress)
    print_summary(outcome.summary, outcome.files)
    if not outcome.summary["complete"]:
        raise AzureError(f"the assessment is partial: {len(outcome.summary['partial_errors'])} "
                         "scope(s) could not be read; see 'partial_errors' in "
                         f"{outcome.files['summary.json']} for each error and how to retry")


LABELS = {"ready": "Ready", "ready_with_conditions": "Ready with conditions",
          "not_ready": "Not ready", "already_crash_consistent": "Already crash-consistent",
          "not_protected": "Not protected", "unknown": "Unknown"}


def print_summary(summary: dict, files: dict[str, Path]) -> None:
    total = summary["vms"] or 1
    typer.echo(f"Assessment {summary['assessment_id']}: {summary['vms']} VMs in "
               f"{len(summary['scope']['subscriptions'])} subscription(s), rule pack "
               f"{summary['rule_pack']['name']}")
    for key, label in LABELS.items():
        count = summary["by_readiness"][key]
        typer.echo(f"  {label:<26}{count:>8}  {100 * count / total:5.1f}%")
    blockers = sorted(summary["by_rule"]["blocker"].items(), key=lambda kv: -kv[1])[:5]
    if blockers:
        typer.echo("  Top blockers: " + ", ".join(f"{rule} ({n})" for rule, n in blockers))
    risky = summary.get("crash_consistent_with_blockers", 0)
    if risky:
        typer.secho(f"  At risk: {risky} crash-consistent VM(s) have blockers", fg="red")
    if summary["partial_errors"]:
        typer.secho(f"  Not assessed: {len(summary['partial_errors'])} scope(s); see "
                    "summary.json", fg="red")
    typer.echo(f"  Resource Graph requests: {summary['requests']['resource_graph']}")
    for name, path in files.items():
        typer.echo(f"  {name}: {path}")
