"""``ccmigrate demo``: the whole story on a generated fleet, no Azure account needed.

Today it runs what exists: a generated fleet served by the in-process HTTPS emulator, and the
discovery flow over it through the real SDK clients and token flow. Assessment, plans, waves and
reports join as their issues land.
"""

from __future__ import annotations

from typing import Annotated

import typer

from . import options as opt


def demo_command(
    vms: Annotated[int, typer.Option("--vms", min=1, help="VMs in the generated fleet.")] = 2000,
    seed: Annotated[int, typer.Option("--seed", help="Fleet generator seed.")] = 7,
    config: opt.Config = None,
) -> None:
    """Generate a fleet, serve it on a local HTTPS emulator and run the pipeline over it."""
    from .discover import print_census, run_discovery
    from .emulated import demo_fleet, emulated
    from .prefect_runtime import prefect_runtime

    settings = opt.build_settings(config=config)
    typer.echo(f"Generating a fleet of {vms} VMs (seed {seed}) ...")
    fleet = demo_fleet(vms, seed)
    with emulated(settings, fleet) as (emu, emu_settings):
        typer.echo(f"Emulator listening on {emu.endpoint} (CA {emu.ca_bundle})")
        typer.echo("Starting Prefect ...")
        with prefect_runtime() as api:
            typer.echo(f"Prefect API: {api}")
            typer.echo("Discovery through Resource Graph:")
            print_census(run_discovery(emu_settings))
