"""Options shared by every command that talks to Azure or the state store, and how they become
validated settings. Environment variables are read by ``tasks.settings`` (one place), so the
flags here carry no ``envvar`` of their own; their help names the variable."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from tasks.settings import Settings, load_settings

Endpoint = Annotated[str | None, typer.Option(
    "--endpoint", help="ARM base URL (env CCMIGRATE_ENDPOINT); default: the cloud's.",
    show_default=False)]
CaBundle = Annotated[Path | None, typer.Option(
    "--ca-bundle", help="PEM file of the CA to trust (env CCMIGRATE_CA_BUNDLE).",
    show_default=False)]
Credential = Annotated[str | None, typer.Option(
    "--credential",
    help="default | cli | managed-identity | emulator (env CCMIGRATE_CREDENTIAL).",
    show_default=False)]
StateStore = Annotated[str | None, typer.Option(
    "--state-store", help="SQLAlchemy URL of the state store (env CCMIGRATE_STATE_STORE); "
    "default: a SQLite file in the user data folder.", show_default=False)]
Config = Annotated[Path | None, typer.Option(
    "--config", help="Settings TOML file (env CCMIGRATE_CONFIG); see "
    "config/ccmigrate.example.toml.", show_default=False)]
Subscriptions = Annotated[list[str] | None, typer.Option(
    "--subscription", help="Subscription id in scope (repeatable); none = all the credential "
    "sees.", show_default=False)]
DEFAULT_DEMO_VMS = 2000
Demo = Annotated[int | None, typer.Option(
    "--demo", help="Run on a generated fleet of N VMs (default 2000) in an in-process emulator: "
    "`--demo` or `--demo N`.", show_default=False, metavar="[N]")]
Fleet = Annotated[Path | None, typer.Option(
    "--fleet", help="Run on this fleet file in an in-process emulator.", show_default=False)]
Timing = Annotated[str, typer.Option(
    "--timing", help="The emulator's service timing: fast (sub-second operations) or azure "
    "(durations and Retry-After as Azure documents them, see emulator/timing.py).")]
TimeScale = Annotated[float, typer.Option(
    "--time-scale", help="Divide the emulator's service durations and async Retry-After by K "
    "(Retry-After rounded up, never below 1 s); ARM and Resource Graph throttles are never "
    "scaled.", metavar="K")]
ManagementGroups = Annotated[list[str] | None, typer.Option(
    "--management-group", help="Management group in scope (repeatable).", show_default=False)]


def build_settings(*, config: Path | None = None, endpoint: str | None = None,
                   ca_bundle: Path | None = None, credential: str | None = None,
                   state_store: str | None = None, subscriptions: list[str] | None = None,
                   management_groups: list[str] | None = None,
                   extra: dict[str, Any] | None = None) -> Settings:
    """Flags over environment over the settings file over defaults; the emulator credential
    gets the emulator's default service principal unless one is configured."""
    flags: dict[str, Any] = {
        "endpoint": endpoint, "ca_bundle": str(ca_bundle) if ca_bundle else None,
        "credential": credential, "state_store": state_store,
        "scope.subscriptions": subscriptions, "scope.management_groups": management_groups,
        **(extra or {}),
    }
    settings = load_settings(config, flags=flags)
    if settings.credential == "emulator":
        settings = with_emulator_principal(settings)
    return settings


def with_emulator_principal(settings: Settings, info: dict[str, str] | None = None) -> Settings:
    """Fill the emulator's service principal (defaults, or a running emulator's ``info``)."""
    from pydantic import SecretStr

    from emulator.config import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_TENANT

    info = info or {}
    secret = info.get("client_secret")
    update = {
        "tenant_id": info.get("tenant_id") or settings.tenant_id or DEFAULT_TENANT,
        "client_id": info.get("client_id") or settings.client_id or DEFAULT_CLIENT_ID,
        "client_secret": SecretStr(secret) if secret else (
            settings.client_secret or SecretStr(DEFAULT_CLIENT_SECRET)),
        "credential": "emulator",
    }
    if info.get("endpoint"):
        update["endpoint"] = info["endpoint"]
    if info.get("ca_bundle"):
        update["ca_bundle"] = Path(info["ca_bundle"])
    return settings.model_copy(update=update)
