"""The real Azure CLI against the emulator: where `az` is, and a logged-in profile of its own.

`az` comes from `.ci/install-azure-cli` (a venv of its own, never a ccmigrate dependency).
Without it these tests skip, naming the script; with ``TESTS_REQUIRE_AZ_CLI=1`` (set by
`.ci/run`) they fail instead, so CI cannot pass without having driven the CLI.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from emulator.server import Emulator
from tests.cli.helpers import REPO

AZ_ENV = "TESTS_AZ_CLI"
EXT_ENV = "TESTS_AZ_EXTENSION_DIR"
REQUIRE_ENV = "TESTS_REQUIRE_AZ_CLI"
CLOUD = "CcmigrateEmulator"


def _missing(reason: str) -> None:
    if os.environ.get(REQUIRE_ENV, "") not in ("", "0"):
        pytest.fail(f"{reason} ({REQUIRE_ENV} is set, so a missing Azure CLI is a failure)",
                    pytrace=False)
    pytest.skip(f"{reason}; run .ci/install-azure-cli to install it (a venv of its own)")


@pytest.fixture(scope="session")
def az_path() -> Path:
    """The `az` to drive: ``$TESTS_AZ_CLI``, else the repository's ``.venv-az``."""
    named = os.environ.get(AZ_ENV)
    path = Path(named) if named else REPO / ".venv-az" / "bin" / "az"
    if not (path.is_file() and os.access(path, os.X_OK)):
        _missing(f"Azure CLI not found at {path}" + ("" if named else f" (set {AZ_ENV})"))
    return path


@pytest.fixture(scope="session")
def az_extension_dir(az_path: Path) -> Path:
    """Where `.ci/install-azure-cli` added the resource-graph extension (``az graph``)."""
    named = os.environ.get(EXT_ENV)
    folder = Path(named) if named else az_path.parent.parent / "cliextensions"
    if not (folder / "resource-graph").is_dir():
        _missing(f"the Azure CLI's resource-graph extension is not in {folder}")
    return folder


@dataclass
class AzCli:
    """One `az` with its own config dir, pointed at one emulator."""

    path: Path
    env: dict[str, str]

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.path), *args], capture_output=True, text=True,
                              env=self.env, timeout=180, stdin=subprocess.DEVNULL)

    def __call__(self, *args: str) -> Any:
        """Run `az ARGS -o json` and return its parsed output; a failure shows az's stderr."""
        proc = self.run(*args, "-o", "json")
        assert proc.returncode == 0, f"az {' '.join(args)} exited {proc.returncode}:\n" + (
            proc.stderr[-4000:])
        return json.loads(proc.stdout) if proc.stdout.strip() else None


def az_logged_in(az_path: Path, ext_dir: Path, emu: Emulator, config_dir: Path) -> AzCli:
    """Register the emulator as a custom cloud (its /metadata/endpoints supplies every
    endpoint), switch instance discovery off (the authority is not a Microsoft host) and log
    in with the emulator's service principal, as a user would against a sovereign cloud."""
    info = emu.connection_info()
    ca = info["ca_bundle"]
    env = {
        **os.environ,
        "AZURE_CONFIG_DIR": str(config_dir),
        "AZURE_EXTENSION_DIR": str(ext_dir),
        # The machine points these at the system bundle; az must trust the emulator's CA.
        "REQUESTS_CA_BUNDLE": ca,
        "SSL_CERT_FILE": ca,
        "CURL_CA_BUNDLE": ca,
        "AZURE_CORE_COLLECT_TELEMETRY": "false",
        "AZURE_CORE_ONLY_SHOW_ERRORS": "true",
        "AZURE_CORE_NO_COLOR": "true",
        "AZURE_CORE_SURVEY_MESSAGE": "false",
        "NO_PROXY": "127.0.0.1,localhost",
    }
    az = AzCli(az_path, env)
    az("cloud", "register", "-n", CLOUD, "--endpoint-resource-manager", info["endpoint"])
    az("cloud", "set", "-n", CLOUD)
    az("config", "set", "core.instance_discovery=false")
    az("login", "--service-principal", "-u", info["client_id"], "-p", info["client_secret"],
       "--tenant", info["tenant_id"])
    return az
