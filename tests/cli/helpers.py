"""Run the installed ``ccmigrate`` console script as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def ccmigrate_argv() -> list[str]:
    script = Path(sys.executable).parent / "ccmigrate"
    return [str(script)] if script.exists() else [sys.executable, "-m", "flows.cli"]


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 240,
            cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([*ccmigrate_argv(), *args], capture_output=True, text=True,
                          timeout=timeout, env=full_env, cwd=cwd or REPO, stdin=subprocess.DEVNULL)


def no_traceback(proc: subprocess.CompletedProcess[str]) -> bool:
    return "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
