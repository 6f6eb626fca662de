"""The one place that builds Azure SDK clients.

Every client gets the same base URL (cloud or ``--endpoint``), token scope, CA bundle, a pooled
transport sized for our parallelism, and the SDK's own ``RetryPolicy`` configured once: it retries
408/429/5xx and honours ``Retry-After``. Code above this room retries operation outcomes only,
never HTTP calls again on top. All clients of one ``AzureAccess`` share one ``ArmPacer``, so
every thread's requests wait their turn in the same per-subscription buckets instead of
collecting 429s (``throttles.arm_pacing``).
"""

from __future__ import annotations

import threading
from functools import cached_property
from typing import Any

import requests
from azure.core.credentials import TokenCredential
from azure.core.pipeline.policies import RetryPolicy
from azure.core.pipeline.transport import RequestsTransport

from ..settings import Settings
from .clouds import resolve_cloud
from .credentials import build_credential
from .pacing import ArmPacer

POOL_SIZE = 96


class AzureAccess:
    """Lazily built, cached SDK clients for one settings object; thread-safe."""

    def __init__(self, settings: Settings, credential: TokenCredential | None = None) -> None:
        self.settings = settings
        self.cloud = resolve_cloud(settings.cloud)
        self.base_url = settings.endpoint or self.cloud.arm
        self._credential = credential
        self._clients: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()
        t = settings.throttles
        self.pacer: ArmPacer | None = ArmPacer({
            "reads": (t.arm_read_burst, t.arm_reads_per_s),
            "writes": (t.arm_write_burst, t.arm_writes_per_s),
            "deletes": (t.arm_write_burst, t.arm_writes_per_s),
        }) if t.arm_pacing else None

    @cached_property
    def credential(self) -> TokenCredential:
        return self._credential or build_credential(self.settings, transport=RequestsTransport(
            session=self._session, session_owner=False, connection_verify=self._verify()))

    @cached_property
    def _session(self) -> requests.Session:
        """One connection pool for all clients, as large as the threads that call at once
        (the wave engine's workers and slow paths, the assessment's readers), so none waits for
        a connection. In-flight VMs hold no connection: they are not threads."""
        session = requests.Session()
        size = POOL_SIZE
        adapter = requests.adapters.HTTPAdapter(pool_connections=8, pool_maxsize=size)
        session.mount("https://", adapter)
        return session

    def _common(self) -> dict[str, Any]:
        t = self.settings.throttles
        kwargs: dict[str, Any] = {
            "base_url": self.base_url,
            "credential_scopes": [self.cloud.scope],
            # azure-core caps each kind of retry on its own (status codes, connect, read: 3 by
            # default) below retry_total: http_retries is meant for all of them.
            "retry_policy": RetryPolicy(retry_total=t.http_retries,
                                        retry_status=t.http_retries,
                                        retry_connect=t.http_retries,
                                        retry_read=t.http_retries,
                                        retry_backoff_factor=t.http_backoff,
                                        retry_backoff_max=t.http_max_backoff),
            "transport": RequestsTransport(session=self._session, session_owner=False,
                                           connection_verify=self._verify()),
        }
        if self.pacer is not None:
            # The generated clients run custom_hook_policy after the RetryPolicy and the
            # bearer-token policy: once per HTTP attempt, after any token request.
            kwargs["custom_hook_policy"] = self.pacer
        return kwargs

    def pacing_stats(self) -> dict[str, Any]:
        """What pacing did so far (see ``ArmPacer.stats``); ``{"enabled": False}`` when off."""
        return self.pacer.stats() if self.pacer is not None else {"enabled": False}

    def _verify(self) -> str | bool:
        return str(self.settings.ca_bundle) if self.settings.ca_bundle else True

    def _cached(self, kind: str, key: str, factory) -> Any:
        with self._lock:
            client = self._clients.get((kind, key))
            if client is None:
                client = self._clients[(kind, key)] = factory()
            return client

    def resource_graph(self):
        from azure.mgmt.resourcegraph import ResourceGraphClient

        return self._cached("arg", "", lambda: ResourceGraphClient(self.credential,
                                                                   **self._common()))

    def compute(self, subscription_id: str):
        from azure.mgmt.compute import ComputeManagementClient

        return self._cached("compute", subscription_id, lambda: ComputeManagementClient(
            self.credential, subscription_id, **self._common()))

    def backup(self, subscription_id: str):
        from azure.mgmt.recoveryservicesbackup import RecoveryServicesBackupClient

        polling = self.settings.throttles.polling_interval
        return self._cached("backup", subscription_id, lambda: RecoveryServicesBackupClient(
            self.credential, subscription_id, polling_interval=polling, **self._common()))

    def vaults(self, subscription_id: str):
        from azure.mgmt.recoveryservices import RecoveryServicesClient

        return self._cached("vaults", subscription_id, lambda: RecoveryServicesClient(
            self.credential, subscription_id, **self._common()))

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()
        if "_session" in self.__dict__:
            self._session.close()
