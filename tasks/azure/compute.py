"""Compute reads the wave runner needs: the VM and its managed disks as ARM has them now (it
re-scores a VM right before moving its backup, since the assessment may be hours or days old)."""

from __future__ import annotations

from ..errors import AzureError
from .backup import _plain
from .errors import azure_call


def _rg_and_name(resource_id: str, kind: str, what: str) -> tuple[str, str]:
    parts = resource_id.strip("/").split("/")
    lower = [p.lower() for p in parts]
    try:
        return parts[lower.index("resourcegroups") + 1], parts[lower.index(kind) + 1]
    except (ValueError, IndexError):
        raise AzureError(f"'{resource_id}' is not a {what} id") from None


def _get(resource_id: str, kind: str, what: str, fetch) -> dict | None:
    """``fetch(rg, name)`` as a plain dict, or None when the resource no longer exists (404)."""
    rg, name = _rg_and_name(resource_id, kind, what)
    try:
        with azure_call(f"reading {what} {name}"):
            return _plain(fetch(rg, name))
    except AzureError as err:
        if err.status == 404:
            return None
        raise


def get_vm(client, vm_id: str) -> dict | None:
    """The VM as ARM returns it, or None when it no longer exists."""
    return _get(vm_id, "virtualmachines", "VM", client.virtual_machines.get)


def get_disk(client, disk_id: str) -> dict | None:
    """The managed disk as ARM returns it (sku, maxShares, dataAccessAuthMode, size), or None
    when it no longer exists."""
    return _get(disk_id, "disks", "disk", client.disks.get)
