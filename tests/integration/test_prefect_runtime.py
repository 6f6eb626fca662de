"""Prefect in a CLI run: a killed run leaves no server behind and the next run works."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from tasks.settings import default_data_dir
from tests.cli.helpers import REPO, ccmigrate_argv


def _isolated_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["PREFECT_HOME"] = str(home)
    return env


def _seed_database(home: Path) -> None:
    """Copy an already-migrated Prefect database, if the session has one, to skip migrations."""
    source = Path(os.environ.get("PREFECT_HOME") or default_data_dir() / "prefect") / "prefect.db"
    home.mkdir(parents=True, exist_ok=True)
    if source.is_file():
        # The backup API gives a consistent copy even while another server writes to it.
        with sqlite3.connect(source) as src, sqlite3.connect(home / "prefect.db") as dst:
            src.backup(dst)


def _server_children(pid: int) -> list[psutil.Process]:
    try:
        kids = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    return [k for k in kids if "flows.prefect_server" in " ".join(k.cmdline())]


@pytest.mark.slow
def test_killed_cli_run_leaves_no_prefect_server_and_next_run_works(tmp_path):
    home = tmp_path / "prefect-home"
    _seed_database(home)
    env = _isolated_env(home)
    cli = subprocess.Popen([*ccmigrate_argv(), "discover", "--demo", "200"], env=env, cwd=REPO,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    servers: list[psutil.Process] = []
    while time.monotonic() < deadline and not servers:
        servers = _server_children(cli.pid)
        time.sleep(0.2)
    assert servers, "the CLI never started its Prefect server"
    time.sleep(1.0)  # let it get going, as a user's run would
    cli.send_signal(signal.SIGKILL)
    cli.wait(timeout=10)
    _, alive = psutil.wait_procs(servers, timeout=5)
    assert not alive, f"Prefect server outlived the killed CLI: {[p.pid for p in alive]}"

    again = subprocess.run([*ccmigrate_argv(), "discover", "--demo", "200"], env=env, cwd=REPO,
                           capture_output=True, text=True, timeout=240, stdin=subprocess.DEVNULL)
    assert again.returncode == 0, again.stderr
    assert "200 VMs in" in again.stdout
    assert "database is locked" not in again.stderr


@pytest.mark.slow
def test_sigterm_stops_the_run_and_its_server(tmp_path):
    home = tmp_path / "prefect-home"
    _seed_database(home)
    cli = subprocess.Popen([*ccmigrate_argv(), "discover", "--demo", "200"],
                           env=_isolated_env(home), cwd=REPO, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    servers: list[psutil.Process] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not servers:
        servers = _server_children(cli.pid)
        time.sleep(0.2)
    assert servers
    cli.send_signal(signal.SIGTERM)
    assert cli.wait(timeout=30) != 0
    _, alive = psutil.wait_procs(servers, timeout=5)
    assert not alive
