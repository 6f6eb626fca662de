"""``ccmigrate migrate`` and ``ccmigrate rollback``: run a wave of a plan, or put VMs back.
Both are dry runs unless ``--execute``; on a terminal ``--execute`` asks first unless ``--yes``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from tasks.errors import CcmigrateError, InputError

from . import options as opt

Plan = Annotated[str, typer.Option("--plan", help="Plan id (or a unique start of it) or "
                                                  "'latest'.")]
Execute = Annotated[bool, typer.Option("--execute", help="Change Azure (default: a dry run "
                                                         "that changes nothing).")]
Yes = Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")]
Out = Annotated[Path, typer.Option("--out", help="Folder for the wave's reports.")]


def _confirm(what: str, yes: bool) -> None:
    if yes or not sys.stdin.isatty():
        return
    if not typer.confirm(f"{what} Continue?", default=False):
        raise CcmigrateError("stopped at the confirmation prompt; nothing was changed")


def migrate_command(
    plan: Plan = "latest",
    wave: Annotated[int, typer.Option("--wave", min=1, help="Wave number (1 is the canary).")
                    ] = 1,
    execute: Execute = False,
    yes: Yes = False,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Take over a dead runner's wave and reconcile its VMs in flight "
                         "(a plain re-run does the same).")] = False,
    out: Out = Path("out"),
    max_parallel: Annotated[int | None, typer.Option(
        "--max-parallel", min=1, max=10_000, help="VMs the wave holds in flight at most "
                                                  "(default: setting throttles.max_parallel; "
                                                  "a count, not threads).")] = None,
    per_vault: Annotated[int | None, typer.Option(
        "--per-vault", min=1, max=10_000, help="VMs in flight per vault, at most "
                                               "--max-parallel.")] = None,
    max_failures: Annotated[str | None, typer.Option(
        "--max-failures", help="Halt the wave after more failures than N or P% of it.")] = None,
    cumulative_max_failures: Annotated[str | None, typer.Option(
        "--cumulative-max-failures", help="Halt when failures across the plan's waves exceed "
                                          "N or P% of the VMs started.")] = None,
    verify: Annotated[str | None, typer.Option(
        "--verify", help="job: the ConfigureBackup job succeeded; backup: also an on-demand "
                         "backup.")] = None,
    mode: Annotated[str, typer.Option(
        "--mode", help="reassign: re-point each VM to a crash-consistent clone (Option 1); "
                       "edit-policy: switch one policy in place (Option 2, needs --policy).")
    ] = "reassign",
    policy: Annotated[str | None, typer.Option(
        "--policy", help="With --mode edit-policy: the policy's ARM id.")] = None,
    assessment: Annotated[str, typer.Option(
        "--assessment", help="With --mode edit-policy: the assessment that vouches every VM "
                             "on the policy is ready.")] = "latest",
    config: opt.Config = None,
    endpoint: opt.Endpoint = None,
    ca_bundle: opt.CaBundle = None,
    credential: opt.Credential = None,
    state_store: opt.StateStore = None,
) -> None:
    """Move one wave's VM backups to their crash-consistent policies, journaled per VM, with
    rollback on failure. Running wave K never requires earlier waves to be done."""
    from .migrate import run_wave
    from .prefect_runtime import prefect_runtime
    from .progress import Progress

    if verify not in (None, "job", "backup"):
        raise InputError(f"--verify {verify!r}: use 'job' or 'backup'")
    if mode not in ("reassign", "edit-policy"):
        raise InputError(f"--mode {mode!r}: use 'reassign' or 'edit-policy'")
    if mode == "edit-policy":
        if not policy:
            raise InputError("--mode edit-policy needs --policy with the policy's ARM id")
        settings = opt.build_settings(config=config, endpoint=endpoint, ca_bundle=ca_bundle,
                                      credential=credential, state_store=state_store)
        _edit_policy(settings, policy, assessment, execute=execute, yes=yes, out=out)
        return
    throttles = {"throttles.max_parallel": max_parallel, "throttles.per_vault": per_vault}
    settings = opt.build_settings(config=config, endpoint=endpoint, ca_bundle=ca_bundle,
                                  credential=credential, state_store=state_store,
                                  extra={k: v for k, v in throttles.items() if v is not None})
    if max_failures is not None or cumulative_max_failures is not None:
        from tasks.migration.wave import parse_threshold

        for option, value in (("--max-failures", max_failures),
                              ("--cumulative-max-failures", cumulative_max_failures)):
            if value is not None:
                parse_threshold(value, option=option)
    if not execute:
        outcome = run_wave(settings, plan, wave, execute=False, out_dir=out)
        _print_dry_run(outcome)
        return
    _confirm(f"This changes the backup policy of the VMs in wave {wave} of plan {plan}.", yes)
    if resume:
        typer.echo("Resuming: VMs left in flight are reconciled from what Azure shows.")
    with prefect_runtime(), Progress() as progress:
        outcome = run_wave(settings, plan, wave, execute=True, out_dir=out,
                           max_failures=max_failures,
                           cumulative_max_failures=cumulative_max_failures, verify=verify,
                           progress=progress)
    _print_outcome(outcome)


def _edit_policy(settings, policy: str, assessment: str, *, execute: bool, yes: bool,
                 out: Path) -> None:
    from .edit_policy import run_edit_policy
    from .prefect_runtime import prefect_runtime

    if not execute:
        outcome = run_edit_policy(settings, policy, assessment_ref=assessment, execute=False,
                                  out_dir=out)
        typer.echo(f"Dry run: policy {policy.rsplit('/', 1)[-1]} would become crash-consistent "
                   f"in place; {outcome.counts['vms']} VM(s) on it, all ready; nothing was "
                   "changed.")
        for name, path in outcome.files.items():
            typer.echo(f"  {name}: {path}")
        typer.echo("Run again with --execute to make this change.")
        return
    _confirm(f"This edits policy {policy.rsplit('/', 1)[-1]} in place for every VM on it.", yes)
    with prefect_runtime():
        outcome = run_edit_policy(settings, policy, assessment_ref=assessment, execute=True,
                                  out_dir=out)
    _print_outcome(outcome)


def _print_notes(outcome) -> None:
    for note in outcome.notes:
        typer.secho(f"  Note: {note}", fg="yellow")


def _print_dry_run(outcome) -> None:
    _print_notes(outcome)
    actions = outcome.actions
    vms = actions[actions["what"] == "vm"]
    policies = actions[actions["what"] == "policy"]
    typer.echo(f"Dry run of plan {outcome.plan_id} wave {outcome.wave}: nothing was changed.")
    moving = vms[vms["would"] == "move"]
    skipping = vms[vms["would"] == "skip"]
    typer.echo(f"  Would move {len(moving)} VM(s); skip {len(skipping)} (as they are now); "
               f"{outcome.counts['reconcile']} in flight to reconcile; "
               f"{outcome.counts['finished']} already finished; "
               f"{outcome.counts['attention']} need attention (rollback failed)")
    for row in policies.itertuples(index=False):
        typer.echo(f"  policy {row.target_policy} in vault {row.vault}: {row.action}")
    for row in moving.head(20).itertuples(index=False):
        typer.echo(f"  {row.vm_name}: {row.source_policy} -> {row.target_policy}")
    if len(moving) > 20:
        typer.echo(f"  ... and {len(moving) - 20} more")
    for row in skipping.head(20).itertuples(index=False):
        typer.secho(f"  {row.vm_name}: {row.action}", fg="yellow")
    if len(skipping) > 20:
        typer.echo(f"  ... and {len(skipping) - 20} more skipped")
    for name, path in outcome.files.items():
        typer.echo(f"  {name}: {path}")
    typer.echo("Run again with --execute to make these changes.")


def _print_outcome(outcome) -> None:
    """Print the wave's outcome; exit 1 when it halted or any VM had to be rolled back."""
    print_wave(outcome)
    failed = outcome.counts.get("rollback_failed", 0)
    if outcome.halted_reason or failed or outcome.counts.get("rolled_back", 0):
        report = next(iter(outcome.files.values()), "the wave report")
        raise CcmigrateError(f"wave {outcome.wave} ended {outcome.status}: "
                             f"{outcome.counts.get('rolled_back', 0)} VM(s) rolled back, "
                             f"{failed} rollback(s) failed; see {report}")


def _print_attention(vms, limit: int = 10) -> None:
    """The VMs that did not end done, each with its reason (the report has them all)."""
    if vms is None or not len(vms):
        return
    for row in vms.head(limit).itertuples(index=False):
        colour = "red" if row.status == "rollback_failed" else "yellow"
        why = f"{row.error_code}: {row.error_message}" if row.error_code else row.error_message
        typer.secho(f"  {row.vm_name}: {row.status} ({why})", fg=colour)
    if len(vms) > limit:
        typer.echo(f"  ... and {len(vms) - limit} more in the wave report")


def print_wave(outcome) -> None:
    _print_notes(outcome)
    counts = ", ".join(f"{k} {v}" for k, v in sorted(outcome.counts.items()))
    typer.echo(f"Plan {outcome.plan_id} wave {outcome.wave}: {outcome.status} ({counts})")
    if outcome.halted_reason:
        typer.secho(f"  Halted: {outcome.halted_reason}", fg="red")
    _print_attention(outcome.attention)
    for name, path in outcome.files.items():
        typer.echo(f"  {name}: {path}")
    failed = outcome.counts.get("rollback_failed", 0)
    if failed:
        typer.secho(f"  {failed} VM(s) could not be rolled back: see the report; each is "
                    "still protected by the policy the report names", fg="red")


def rollback_command(
    plan: Plan = "latest",
    wave: Annotated[int | None, typer.Option("--wave", min=1, help="Roll back a wave.")] = None,
    vm: Annotated[list[str] | None, typer.Option("--vm", help="Roll back this VM (ARM id; "
                                                              "repeatable).")] = None,
    execute: Execute = False,
    yes: Yes = False,
    out: Out = Path("out"),
    config: opt.Config = None,
    endpoint: opt.Endpoint = None,
    ca_bundle: opt.CaBundle = None,
    credential: opt.Credential = None,
    state_store: opt.StateStore = None,
) -> None:
    """Put VMs back on their journaled original policy (a Standard-policy VM goes to the
    Enhanced app-consistent policy with its schedule and retention), verified per VM."""
    from .migrate import run_rollback
    from .prefect_runtime import prefect_runtime
    from .progress import Progress

    if wave is None and not vm:
        raise InputError("say what to roll back: --wave K or --vm ID (repeatable)")
    settings = opt.build_settings(config=config, endpoint=endpoint, ca_bundle=ca_bundle,
                                  credential=credential, state_store=state_store)
    if not execute:
        outcome = run_rollback(settings, plan, wave=wave, vm_ids=vm or [], execute=False,
                               out_dir=out)
        typer.echo(f"Dry run: would roll back {outcome.counts['would_roll_back']} VM(s) of plan "
                   f"{outcome.plan_id}; nothing was changed.")
        for row in outcome.actions.head(20).itertuples(index=False):
            typer.echo(f"  {row.vm_name}: {row.from_policy} -> {row.back_to_policy}")
        for name, path in outcome.files.items():
            typer.echo(f"  {name}: {path}")
        typer.echo("Run again with --execute to make these changes.")
        return
    _confirm("This puts the VMs back on their original backup policy.", yes)
    with prefect_runtime(), Progress() as progress:
        outcome = run_rollback(settings, plan, wave=wave, vm_ids=vm or [], execute=True,
                               out_dir=out, progress=progress)
    counts = ", ".join(f"{k} {v}" for k, v in sorted(outcome.counts.items()))
    typer.echo(f"Rollback of plan {outcome.plan_id}: {outcome.status} ({counts})")
    for name, path in outcome.files.items():
        typer.echo(f"  {name}: {path}")
    if outcome.status != "done":
        raise CcmigrateError("some VMs could not be rolled back; see the report")
