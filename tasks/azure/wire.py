"""Single-attempt Recovery Services calls for the wave engine, read and written as plain JSON.

The engine holds thousands of VMs in flight on a few threads, so no call may sleep inside the
SDK: these send one HTTP attempt through the client's own pipeline (token, CA bundle, ARM
pacing; ``retry_total=0`` switches the SDK's RetryPolicy off for the call, azure-core
``RetryPolicy.configure_retries`` reads it from the per-call options) and hand back the answer,
429 and 5xx included. What a throttle or a transient failure means for a VM is decided in one
place, ``tasks/migration/throttling.py``. Plain JSON also spares the SDK's model building
(about three times the CPU of ``json.loads`` for protected items, measured in ``backup.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from azure.core.exceptions import (
    ClientAuthenticationError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.rest import HttpRequest

from ..errors import AzureError
from .backup import ItemRef, VaultRef
from .errors import translate
from .pacing import retry_after_seconds


@dataclass(frozen=True)
class Answer:
    """One HTTP answer: ``status`` 0 when Azure could not be reached at all."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str]
    error: AzureError | None = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def throttled(self) -> bool:
        return self.status == 429

    @property
    def transient(self) -> bool:
        """Worth asking again later: throttled, a server error, or no answer at all."""
        return self.status in (0, 408, 429) or self.status >= 500

    @property
    def code(self) -> str | None:
        return ((self.body.get("error") or {}).get("code") if isinstance(self.body, dict)
                else None)

    @property
    def retry_after(self) -> float | None:
        return retry_after_seconds(self.headers)

    def raise_for_error(self) -> None:
        if self.error is not None:
            raise self.error


def _api_version(client: Any) -> str:
    return client._config.api_version


def send(client: Any, method: str, url: str, what: str, *, params: dict[str, str] | None = None,
         body: dict[str, Any] | None = None) -> Answer:
    """One attempt; never raises for an HTTP status (the answer says), only for a credential
    that cannot get a token (every later call would fail alike)."""
    request = HttpRequest(method, url, params=params or {}, json=body)
    try:
        response = client.send_request(request, retry_total=0)
    except ClientAuthenticationError as exc:
        raise translate(exc, what) from exc
    except (ServiceRequestError, ServiceResponseError) as exc:
        return Answer(0, {}, {}, translate(exc, what))
    headers = dict(response.headers)
    try:
        parsed = response.json() if response.content else {}
    except ValueError:
        parsed = {}
    if not isinstance(parsed, dict):
        parsed = {}
    error = None
    if response.status_code >= 400:
        error_body = parsed.get("error") if isinstance(parsed.get("error"), dict) else {}
        code = error_body.get("code")
        message = str(error_body.get("message") or response.reason or "").splitlines()
        error = AzureError(f"Azure answered {response.status_code} {code or ''} while {what}: "
                           f"{message[0] if message else ''}".replace("  ", " "),
                           status=response.status_code, code=code)
    return Answer(response.status_code, parsed, headers, error)


def operation_id(answer: Answer) -> str | None:
    """The operation a 202 names (``Azure-AsyncOperation``, else ``Location``)."""
    url = answer.headers.get("Azure-AsyncOperation") or answer.headers.get("Location")
    if not url:
        return None
    return urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]


def get_item(client: Any, ref: ItemRef) -> Answer:
    return send(client, "GET", ref.id, f"reading protected item {ref.item}",
                params={"api-version": _api_version(client)})


def put_item_policy(client: Any, ref: ItemRef, vm_id: str, policy_id: str, *,
                    guard_requests: list[str] | tuple[str, ...] = ()) -> Answer:
    """The protected item PUT that re-points the item (``backup.set_item_policy``'s body,
    without the SDK poller: the engine follows the operation itself)."""
    props: dict[str, Any] = {"protectedItemType": "Microsoft.Compute/virtualMachines",
                             "sourceResourceId": vm_id, "policyId": policy_id}
    if guard_requests:
        props["resourceGuardOperationRequests"] = list(guard_requests)
    return send(client, "PUT", ref.id, f"changing the backup policy of {ref.item}",
                params={"api-version": _api_version(client)}, body={"properties": props})


def item_operation(client: Any, ref: ItemRef, op_id: str) -> Answer:
    """``ProtectedItemOperationStatuses_Get``: the status, and ``properties.jobId`` (the
    ConfigureBackup job; specs ProtectedItemOperationStatus.json shows it on a Succeeded
    status; whether a running status carries it is unverified, the engine works either way)."""
    return send(client, "GET", f"{ref.id}/operationsStatus/{op_id}",
                f"reading operation {op_id} on {ref.item}",
                params={"api-version": _api_version(client)})


def trigger_backup(client: Any, ref: ItemRef, expiry_utc: str) -> Answer:
    """An on-demand backup (``Backups_Trigger``); its 202's ``Azure-AsyncOperation`` is the
    item's ``operationsStatus`` (specs TriggerBackup_Post.json), read with ``item_operation``,
    whose ``jobId`` names the Backup job."""
    return send(client, "POST", f"{ref.id}/backup", f"starting an on-demand backup of {ref.item}",
                params={"api-version": _api_version(client)},
                body={"properties": {"objectType": "IaasVMBackupRequest",
                                     "recoveryPointExpiryTimeInUTC": expiry_utc}})


def list_page(client: Any, url: str, what: str, params: dict[str, str] | None) -> Answer:
    """One page of an ARM list; ``url`` is the list's path (with ``params``) or a
    ``nextLink`` (which carries its own query)."""
    return send(client, "GET", url, what, params=params)


def jobs_first_page(client: Any, vault: VaultRef, odata_filter: str) -> tuple[str, dict]:
    """Where a vault's job list starts (``BackupJobs_List``; filter keys per specs
    ListJobsWithAllSupportedFilters.json)."""
    return (f"{vault.id}/backupJobs", {"api-version": _api_version(client),
                                        "$filter": odata_filter})


def items_first_page(client: Any, vault: VaultRef) -> tuple[str, dict]:
    """Where a vault's Azure VM protected items list starts (``BackupProtectedItems_List``)."""
    return (f"{vault.id}/backupProtectedItems", {
        "api-version": _api_version(client),
        "$filter": "backupManagementType eq 'AzureIaasVM' and itemType eq 'VM'"})
