"""Compute reads the wave runner needs: the VM as ARM has it now (it re-checks a VM right before
moving its backup, since the assessment may be hours or days old)."""

from __future__ import annotations

from ..errors import AzureError
from .backup import _plain
from .errors import azure_call


def get_vm(client, vm_id: str) -> dict | None:
    """The VM as ARM returns it, or None when it no longer exists (404)."""
    parts = vm_id.strip("/").split("/")
    lower = [p.lower() for p in parts]
    try:
        rg = parts[lower.index("resourcegroups") + 1]
        name = parts[lower.index("virtualmachines") + 1]
    except (ValueError, IndexError):
        raise AzureError(f"'{vm_id}' is not a virtual machine id") from None
    try:
        with azure_call(f"reading VM {name}"):
            return _plain(client.virtual_machines.get(rg, name))
    except AzureError as err:
        if err.status == 404:
            return None
        raise
