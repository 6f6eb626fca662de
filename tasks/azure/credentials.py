"""Credentials by kind. Only the Azure access room builds them."""

from __future__ import annotations

import os
from typing import Any

from azure.core.credentials import TokenCredential

from ..errors import SettingsError
from ..settings import Settings
from .clouds import CLOUDS, resolve_cloud


def build_credential(settings: Settings, transport: Any = None) -> TokenCredential:
    """``default``: DefaultAzureCredential (env, workload and managed identity, CLI, ...);
    ``cli``: the ``az login`` session; ``managed-identity``: the host's identity;
    ``emulator``: a service principal whose authority is the emulator itself, so the real
    client-credentials flow runs against loopback. ``transport``: the HTTP transport token
    requests share with the clients (azure-identity otherwise opens a session of its own, whose
    pool of 10 is too small when a wave's workers all ask for their first token at once)."""
    from azure.identity import (
        AzureCliCredential,
        ClientSecretCredential,
        DefaultAzureCredential,
        ManagedIdentityCredential,
    )

    cloud = resolve_cloud(settings.cloud)
    # DefaultAzureCredential's own AZURE_AUTHORITY_HOST is honoured unless settings say otherwise.
    authority = settings.authority or os.environ.get("AZURE_AUTHORITY_HOST") or cloud.authority
    custom_authority = authority not in {c.authority for c in CLOUDS.values()}
    common: dict[str, Any] = {}
    if settings.ca_bundle:
        common["connection_verify"] = str(settings.ca_bundle)
    if transport is not None:
        common["transport"] = transport
    kind = settings.credential
    if kind == "emulator":
        missing = [k for k in ("tenant_id", "client_id", "client_secret")
                   if not getattr(settings, k)]
        if missing or not (settings.authority or settings.endpoint):
            raise SettingsError(
                "credential 'emulator' needs the emulator's endpoint and service principal; "
                "pass --endpoint and --ca-bundle from the JSON line `ccmigrate emulator serve` "
                f"prints (missing: {', '.join(missing) or 'endpoint'})")
        return ClientSecretCredential(
            settings.tenant_id, settings.client_id,  # type: ignore[arg-type]
            settings.client_secret.get_secret_value(),  # type: ignore[union-attr]
            authority=settings.authority or settings.endpoint,
            disable_instance_discovery=True, **common)
    if kind == "cli":
        common.pop("transport", None)  # az does the HTTP
        return AzureCliCredential(tenant_id=settings.tenant_id, **common)
    if kind == "managed-identity":
        return ManagedIdentityCredential(client_id=settings.client_id, **common)
    return DefaultAzureCredential(authority=authority,
                                  disable_instance_discovery=custom_authority or None,
                                  exclude_interactive_browser_credential=True, **common)
