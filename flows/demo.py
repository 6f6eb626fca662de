"""``ccmigrate demo``: the whole story on a generated fleet, no Azure account needed.

A generated fleet is served by the in-process HTTPS emulator (Resource Graph, compute, Recovery
Services and Entra ID), and the real pipeline runs over it through the real SDK clients and
token flow: today the assessment and its reports (readiness.xlsx, readiness.csv, blockers.csv,
summary.json, the state store); plans and waves join as their issue lands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from . import options as opt


def demo_command(
    vms: Annotated[int, typer.Option("--vms", min=1, help="VMs in the generated fleet.")] = 2000,
    seed: Annotated[int, typer.Option("--seed", help="Fleet generator seed.")] = 7,
    out: Annotated[Path, typer.Option("--out", help="Folder for the reports and the demo's own "
                                                    "state store.")] = Path("ccmigrate-demo"),
    config: opt.Config = None,
) -> None:
    """Generate a fleet, serve it on a local HTTPS emulator and run the pipeline over it."""
    from .assess import check_out_dir, run_assessment
    from .cli_assess import print_summary
    from .emulated import demo_fleet, emulated
    from .prefect_runtime import prefect_runtime
    from .progress import Progress

    check_out_dir(out)
    # The demo keeps its own state store beside its reports: it never mixes with real runs.
    settings = opt.build_settings(config=config,
                                  state_store=f"sqlite:///{out.resolve() / 'state.db'}")
    typer.echo(f"Generating a fleet of {vms} VMs (seed {seed}) ...")
    fleet = demo_fleet(vms, seed)
    with emulated(settings, fleet) as (emu, emu_settings):
        typer.echo(f"Emulator (Azure Resource Graph, Compute, Recovery Services, Entra ID) on "
                   f"{emu.endpoint}")
        typer.echo("Starting Prefect ...")
        with prefect_runtime() as api:
            typer.echo(f"Prefect API: {api}")
            typer.echo("Assessing ...")
            with Progress() as progress:
                outcome = run_assessment(emu_settings, out, progress=progress)
    print_summary(outcome.summary, outcome.files)
