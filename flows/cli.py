"""``ccmigrate``: one Typer app. Exit codes: 0 ok, 1 the job failed, 2 bad input."""

from __future__ import annotations

import logging
import signal
import sys

import typer

from tasks.errors import CcmigrateError

from . import cli_assess, cli_emulator, cli_migrate, cli_plan, cli_report, demo, discover
from .options import DEFAULT_DEMO_VMS

app = typer.Typer(
    name="ccmigrate",
    help="Assess an Azure fleet for agentless crash-consistent VM backup and move VM backups "
         "to it in throttled, verified, reversible waves.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(cli_emulator.app, name="emulator")
app.command("demo")(demo.demo_command)
app.command("assess")(cli_assess.assess_command)
app.command("discover")(discover.discover_command)
app.command("plan")(cli_plan.plan_command)
app.add_typer(cli_report.app, name="report")
app.command("migrate")(cli_migrate.migrate_command)
app.command("rollback")(cli_migrate.rollback_command)


def _terminate(signum: int, _frame: object) -> None:
    # SIGTERM must unwind like Ctrl-C so context managers stop the emulator and Prefect server.
    raise KeyboardInterrupt


def _demo_default(argv: list[str]) -> list[str]:
    """``--demo`` may stand alone (``--demo [N]``); Click options can't, so add the default."""
    out: list[str] = []
    for i, arg in enumerate(argv):
        out.append(arg)
        if arg == "--demo" and (i + 1 == len(argv) or argv[i + 1].startswith("-")):
            out.append(str(DEFAULT_DEMO_VMS))
    return out


def main() -> None:
    """Console entry point: user-facing errors become one line on stderr and an exit code."""
    signal.signal(signal.SIGTERM, _terminate)
    # azure-identity logs every failed attempt at WARNING; we report the outcome ourselves.
    logging.getLogger("azure").setLevel(logging.ERROR)
    try:
        # Standalone mode: Click answers usage errors (exit 2), --help, and Ctrl-C (exit 1).
        app(args=_demo_default(sys.argv[1:]))
    except CcmigrateError as err:
        typer.secho(f"ccmigrate: error: {err}", err=True, fg=typer.colors.RED)
        sys.exit(err.exit_code)


if __name__ == "__main__":
    main()
