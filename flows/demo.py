"""``ccmigrate demo``: the whole story on a generated fleet, no Azure account needed.

A generated fleet is served by the in-process HTTPS emulator (Resource Graph, compute, Recovery
Services and Entra ID), and the real pipeline runs over it through the real SDK clients and
token flow: assess, plan, the canary and a second wave (some VMs made to fail so rollback is
shown), and a second assessment; every report is written under ``--out``.
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
    timing: opt.Timing = "fast",
    time_scale: opt.TimeScale = 1.0,
    config: opt.Config = None,
) -> None:
    """Generate a fleet, serve it on a local HTTPS emulator and run the whole story over it:
    assess, plan, the canary wave, the next wave (with a few VMs set to fail, so rollback is
    shown), and a second assessment that shows what moved."""
    from .assess import check_out_dir, run_assessment
    from .cli_assess import print_summary
    from .cli_migrate import print_wave
    from .cli_plan import print_plan
    from .emulated import demo_fleet, emulated, emulator_config
    from .migrate import run_wave
    from .plan import PlanRequest, prepare_plan, run_plan
    from .prefect_runtime import prefect_runtime
    from .progress import Progress

    check_out_dir(out)
    emu_config = emulator_config(timing, time_scale)
    # The demo keeps its own state store beside its reports: it never mixes with real runs.
    # Under the fast timing the emulator answers in a fraction of a second, so poll it often
    # (Azure's Retry-After, under --timing azure, wins over this interval).
    settings = opt.build_settings(
        config=config, state_store=f"sqlite:///{out.resolve() / 'state.db'}",
        extra={"throttles.polling_interval": 0.1, "waves.canary": 1, "waves.ramp": ["3%"]})
    typer.echo(f"Generating a fleet of {vms} VMs (seed {seed}) ...")
    fleet = demo_fleet(vms, seed)
    with emulated(settings, fleet, emu_config) as (emu, emu_settings):
        typer.echo(f"Emulator (Azure Resource Graph, Compute, Recovery Services, Entra ID) on "
                   f"{emu.endpoint}")
        typer.echo(f"Emulator timing: {emu.timing_description()}")
        typer.echo("Starting Prefect ...")
        with prefect_runtime() as api:
            typer.echo(f"Prefect API: {api}")
            typer.echo("\n1. Assessing ...")
            with Progress() as progress:
                outcome = run_assessment(emu_settings, out / "assessment", progress=progress)
            print_summary(outcome.summary, outcome.files)

            typer.echo("\n2. Planning the waves ...")
            prepared = prepare_plan(emu_settings, PlanRequest())
            try:
                planned = run_plan(emu_settings, prepared, check_out_dir(out / "plan"))
            finally:
                prepared.engine.dispose()
            print_plan(planned.record, planned.plan, planned.files)
            plan_id = planned.record.id

            typer.echo("\n3. Wave 1, the canary ...")
            with Progress() as progress:
                canary = run_wave(emu_settings, plan_id, 1, execute=True,
                                  out_dir=out / "waves", progress=progress)
            print_wave(canary)

            wave2 = planned.plan.vms[planned.plan.vms["wave"] == 2]
            failing = sorted(wave2["vm_name"])[:3]
            emu.world.faults.update({"fail_jobs_for": failing})
            typer.echo(f"\n4. Wave 2 ({len(wave2)} VMs); the emulator fails the "
                       f"ConfigureBackup job of {', '.join(failing)} to show rollback ...")
            with Progress() as progress:
                second = run_wave(emu_settings, plan_id, 2, execute=True,
                                  out_dir=out / "waves", progress=progress,
                                  max_failures=str(len(failing)),
                                  cumulative_max_failures=str(len(failing) + 1))
            print_wave(second)
            emu.world.faults.update({"fail_jobs_for": []})

            typer.echo("\n5. Assessing again: the Changes and Migration sheets show what "
                       "moved ...")
            with Progress() as progress:
                again = run_assessment(emu_settings, out / "assessment-after",
                                       progress=progress)
            print_summary(again.summary, again.files)
    typer.echo(f"\nEverything is in {out}/: assessment/, plan/, waves/, assessment-after/ and "
               "the state store state.db (`ccmigrate report show --state-store "
               f"sqlite:///{out.resolve() / 'state.db'}`).")
