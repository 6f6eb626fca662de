"""Recovery Services backup calls, with the SDK quirks handled once (api-notes section 4.2).

- A policy PUT is not an LRO: the SDK returns ``None`` on 202, so we read the
  ``Azure-AsyncOperation`` header ourselves and poll the policy operation status.
- Protected items deserialise to the base ``ProtectedItem``: read them as plain dicts.
- ``protected_items.begin_create_or_update`` is the LRO for enable/change/stop protection; we also
  capture its operation id so callers can journal it and find the ``ConfigureBackup`` job.
Everything returns plain JSON dicts (ARM's own keys), so callers never touch SDK models.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..errors import AzureError
from .errors import azure_call
from .raw import json_pages

FABRIC = "Azure"


def as_json(model: Any) -> dict[str, Any]:
    """SDK 11.x hybrid models are mappings of the wire JSON; older ones have ``as_dict``."""
    if model is None:
        return {}
    if isinstance(model, dict):
        return model
    try:
        return dict(model) if hasattr(model, "keys") else model.as_dict()
    except TypeError:
        return model.as_dict()


def _plain(value: Any) -> Any:
    """Deep-convert SDK mappings into builtin dicts/lists (safe to JSON-dump and compare)."""
    if hasattr(value, "keys"):
        return {k: _plain(value[k]) for k in value}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


@dataclass(frozen=True)
class VaultRef:
    subscription_id: str
    resource_group: str
    vault: str

    @property
    def id(self) -> str:
        return (f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
                f"/providers/Microsoft.RecoveryServices/vaults/{self.vault}")


@dataclass(frozen=True)
class ItemRef:
    """A protected item addressed the way the SDK wants it."""

    vault: VaultRef
    fabric: str
    container: str
    item: str

    @property
    def id(self) -> str:
        return (f"{self.vault.id}/backupFabrics/{self.fabric}/protectionContainers/"
                f"{self.container}/protectedItems/{self.item}")


def _segments(resource_id: str) -> dict[str, str]:
    parts = resource_id.strip("/").split("/")
    return {k.lower(): v for k, v in zip(parts[0::2], parts[1::2], strict=False)}


def vault_ref(resource_id: str) -> VaultRef:
    seg = _segments(resource_id)
    try:
        return VaultRef(seg["subscriptions"], seg["resourcegroups"], seg["vaults"])
    except KeyError as exc:
        raise AzureError(f"not a Recovery Services id: {resource_id}") from exc


def item_ref(item_id: str) -> ItemRef:
    seg = _segments(item_id)
    try:
        return ItemRef(vault_ref(item_id), seg["backupfabrics"], seg["protectioncontainers"],
                       seg["protecteditems"])
    except KeyError as exc:
        raise AzureError(f"not a protected item id: {item_id}") from exc


def item_ref_for_vm(vault: VaultRef, vm_id: str) -> ItemRef:
    """The container and item names Azure uses for an Azure VM (ConfigureProtection example)."""
    seg = _segments(vm_id)
    rg, name = seg["resourcegroups"], seg["virtualmachines"]
    return ItemRef(vault, FABRIC, f"IaasVMContainer;iaasvmcontainerv2;{rg};{name}",
                   f"VM;iaasvmcontainerv2;{rg};{name}")


def _operation_id(url: str | None) -> str | None:
    if not url:
        return None
    return urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]


# -- policies --------------------------------------------------------------------------------

def list_policies(client, vault: VaultRef) -> list[dict]:
    with azure_call(f"listing backup policies of vault {vault.vault}"):
        return [_plain(p) for p in client.backup_policies.list(
            vault.vault, vault.resource_group, filter="backupManagementType eq 'AzureIaasVM'")]


def get_policy(client, vault: VaultRef, name: str) -> dict:
    with azure_call(f"reading backup policy {name} in vault {vault.vault}"):
        return _plain(client.protection_policies.get(vault.vault, vault.resource_group, name))


def put_policy(client, vault: VaultRef, name: str, properties: dict, *,
               timeout: float = 600, poll_interval: float = 5) -> dict:
    """Create or update a policy and wait until Azure has applied it; return the stored policy."""
    return put_policy_with_status(client, vault, name, properties, timeout=timeout,
                                  poll_interval=poll_interval)[0]


def put_policy_with_status(client, vault: VaultRef, name: str, properties: dict, *,
                           timeout: float = 600, poll_interval: float = 5,
                           ) -> tuple[dict, dict]:
    """``put_policy``, also returning the final operation status: for an edit of a policy that
    protects items, its ``properties.jobIds`` are the ConfigureBackup jobs (one per item) and
    ``properties.failedJobsError`` maps the failed ones to their error."""
    headers: dict[str, str] = {}
    status: dict = {}

    def keep(pipeline_response, deserialized, _h):
        headers.update(pipeline_response.http_response.headers)
        return deserialized

    what = f"writing backup policy {name} in vault {vault.vault}"
    with azure_call(what):
        result = client.protection_policies.create_or_update(
            vault.vault, vault.resource_group, name, {"properties": properties}, cls=keep)
    if result is not None:
        return _plain(result), status
    op_id = _operation_id(headers.get("Azure-AsyncOperation") or headers.get("Location"))
    if op_id:
        status = wait_policy_operation(client, vault, name, op_id, timeout=timeout,
                                       poll_interval=poll_interval,
                                       first_delay=_retry_after(headers))
        if status.get("status") != "Succeeded":
            error = status.get("error") or {}
            raise PolicyOperationFailed(
                f"{what}: the operation ended {status.get('status')}: "
                f"{error.get('code', '')} {error.get('message', '')}".strip(),
                code=error.get("code"), operation=status)
    return get_policy(client, vault, name), status


class PolicyOperationFailed(AzureError):
    """Azure accepted a policy write and its operation then failed. What such an operation
    leaves behind is documented nowhere (ProtectionPolicyResource.tsp only declares the
    responses): part of it may have applied, so the
    caller reads the policy back; ``operation`` is the final status (its ``jobIds``)."""

    def __init__(self, message: str, *, code: str | None, operation: dict) -> None:
        super().__init__(message, code=code)
        self.operation = operation


def wait_policy_operation(client, vault: VaultRef, name: str, op_id: str, *,
                          timeout: float, poll_interval: float,
                          first_delay: float = 0) -> dict:
    deadline = time.monotonic() + timeout
    delay = first_delay
    while True:
        if delay:
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        with azure_call(f"following the operation on policy {name}"):
            status = _plain(client.protection_policy_operation_statuses.get(
                vault.vault, vault.resource_group, name, op_id))
        if status.get("status") not in ("InProgress", None):
            return status
        if time.monotonic() >= deadline:
            raise AzureError(f"the operation on policy {name} in vault {vault.vault} did not "
                             f"finish within {timeout:.0f} s (operation {op_id})")
        delay = poll_interval


def _retry_after(headers: dict[str, str]) -> float:
    try:
        return float(headers.get("Retry-After") or 0)
    except ValueError:
        return 0.0


# -- multi-user authorization ----------------------------------------------------------------

def list_guard_proxies(client, vault: VaultRef) -> list[dict]:
    """The vault's links to a Resource Guard (``ResourceGuardProxies_Get``: GET
    ``.../backupResourceGuardProxies``; empty when the vault has none). azure-cli reads the
    same list before a critical command (custom_help.has_resource_guard_mapping)."""
    with azure_call(f"reading the Resource Guard links of vault {vault.vault}"):
        return [_plain(p) for p in client.resource_guard_proxies.get(vault.vault,
                                                                      vault.resource_group)]


# -- protected items -------------------------------------------------------------------------

def get_item(client, ref: ItemRef) -> dict:
    with azure_call(f"reading protected item {ref.item}"):
        return _plain(client.protected_items.get(ref.vault.vault, ref.vault.resource_group,
                                                 ref.fabric, ref.container, ref.item))


def list_items(client, vault: VaultRef) -> list[dict]:
    with azure_call(f"listing protected items of vault {vault.vault}"):
        return [_plain(i) for i in client.backup_protected_items.list(
            vault.vault, vault.resource_group,
            filter="backupManagementType eq 'AzureIaasVM' and itemType eq 'VM'")]


def item_states(client, vault: VaultRef) -> dict[str, str]:
    """ARM ``protectionState`` of every Azure VM item in the vault: lower item id -> state.

    The same list as ``list_items``, read as plain JSON through the client's own pipeline
    (token, retries, pacing): the assessment needs two fields of each item, and building the
    SDK's models costs about three times the CPU (measured: 1.4 s against 0.5 s for 5,400
    items), which at 100k VMs would slow the Resource Graph work running beside it."""
    from azure.core.rest import HttpRequest

    request = HttpRequest("GET", f"{vault.id}/backupProtectedItems", params={
        "api-version": client._config.api_version,
        "$filter": "backupManagementType eq 'AzureIaasVM' and itemType eq 'VM'"})
    out: dict[str, str] = {}
    with azure_call(f"listing protected items of vault {vault.vault}"):
        for body in json_pages(client.send_request, request):
            for item in body.get("value") or []:
                out[str(item.get("id", "")).lower()] = str(
                    (item.get("properties") or {}).get("protectionState") or "")
    return out


@dataclass
class ItemOperation:
    """A started enable/change-policy operation: journal ``operation_id`` before waiting."""

    ref: ItemRef
    operation_id: str | None
    poller: Any

    def wait(self, timeout: float) -> dict:
        """Block until Azure finishes; return the item as it is afterwards."""
        with azure_call(f"waiting for the change on {self.ref.item}"):
            self.poller.wait(timeout)
            if not self.poller.done():
                raise AzureError(f"the change on {self.ref.item} did not finish within "
                                 f"{timeout:.0f} s (operation {self.operation_id})")
            return _plain(self.poller.result())


def set_item_policy(client, ref: ItemRef, vm_id: str, policy_id: str, *,
                    guard_requests: list[str] | None = None) -> ItemOperation:
    """Enable protection or move an item to ``policy_id`` (the seed's Option 1, step 10).

    ``guard_requests``: on a vault under multi-user authorization, a change that reduces
    retention is critical and names the Resource Guard's request in
    ``properties.resourceGuardOperationRequests`` (as azure-cli's ``update_policy_for_item``
    does; tasks/migration/mua.py)."""
    captured: dict[str, str] = {}

    def hook(response) -> None:
        if not captured and response.http_request.method == "PUT":
            captured.update(response.http_response.headers)

    body: dict[str, Any] = {"properties": {
        "protectedItemType": "Microsoft.Compute/virtualMachines", "sourceResourceId": vm_id,
        "policyId": policy_id}}
    if guard_requests:
        body["properties"]["resourceGuardOperationRequests"] = list(guard_requests)
    with azure_call(f"changing the backup policy of {ref.item}"):
        poller = client.protected_items.begin_create_or_update(
            ref.vault.vault, ref.vault.resource_group, ref.fabric, ref.container, ref.item,
            body, raw_response_hook=hook)
    op_id = _operation_id(captured.get("Azure-AsyncOperation") or captured.get("Location"))
    return ItemOperation(ref, op_id, poller)


def item_operation_status(client, ref: ItemRef, op_id: str) -> dict:
    with azure_call(f"reading operation {op_id} on {ref.item}"):
        return _plain(client.protected_item_operation_statuses.get(
            ref.vault.vault, ref.vault.resource_group, ref.fabric, ref.container, ref.item,
            op_id))


def trigger_backup(client, ref: ItemRef, expiry_utc: str) -> str | None:
    """Start an on-demand backup; return its operation id (the Backup job follows from it)."""
    headers: dict[str, str] = {}

    def keep(pipeline_response, deserialized, _h):
        headers.update(pipeline_response.http_response.headers)

    body = {"properties": {"objectType": "IaasVMBackupRequest",
                           "recoveryPointExpiryTimeInUTC": expiry_utc}}
    with azure_call(f"starting an on-demand backup of {ref.item}"):
        client.backups.trigger(ref.vault.vault, ref.vault.resource_group, ref.fabric,
                               ref.container, ref.item, body, cls=keep)
    return _operation_id(headers.get("Azure-AsyncOperation") or headers.get("Location"))


def backup_operation_status(client, vault: VaultRef, op_id: str) -> dict:
    """The status of an on-demand backup's operation; once it succeeded, its
    ``properties.jobId`` names the Backup job (backup-azure-arm-userestapi-backupazurevms.md,
    "Track the job")."""
    with azure_call(f"reading backup operation {op_id} in vault {vault.vault}"):
        return _plain(client.backup_operation_statuses.get(vault.vault, vault.resource_group,
                                                           op_id))


# -- jobs ------------------------------------------------------------------------------------

def get_job(client, vault: VaultRef, job_id: str) -> dict:
    with azure_call(f"reading backup job {job_id}"):
        return _plain(client.job_details.get(vault.vault, vault.resource_group, job_id))


def list_jobs(client, vault: VaultRef, odata_filter: str | None = None) -> list[dict]:
    with azure_call(f"listing backup jobs of vault {vault.vault}"):
        return [_plain(j) for j in client.backup_jobs.list(vault.vault, vault.resource_group,
                                                           filter=odata_filter)]
