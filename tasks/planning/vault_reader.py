"""The plan's Azure calls: each involved vault's backup policy list and its link to a Resource
Guard, through ARM (read-only).

The policy list gives the source policies' bodies to clone, tells whether a target name is
already taken, and counts the vault's policies against the 200 limit. A vault that can't be
read keeps its VMs out of the plan with the error as their reason; a credential that can't get
a token at all stops the plan (every vault would fail the same way). The guard link
(``backupResourceGuardProxies``, ``tasks/azure/guards.py``) tells which planned changes are
critical under multi-user authorization; a vault whose link can't be read stays in the plan,
marked so (the wave reads the link again before it writes).
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..azure import backup, guards
from ..errors import AuthenticationError, AzureError
from .policy_needs import VaultPolicies


def read_vault_policies(access, vault_ids: Iterable[str], workers: int = 8) -> VaultPolicies:
    """Policies of every vault in ``vault_ids`` (one ARM list per vault, ``workers`` at once),
    keyed by lower-case vault id. The list holds Azure VM (AzureIaasVM) policies only."""
    out = VaultPolicies()

    def one(vault_id: str) -> tuple[str, list[dict] | None, str | None, Any]:
        ref = backup.vault_ref(vault_id)
        try:
            policies = backup.list_policies(access.backup(ref.subscription_id), ref)
        except AuthenticationError:
            raise
        except AzureError as err:
            return vault_id, None, str(err), None
        try:
            link: Any = guards.read_link(access, vault_id)
        except AuthenticationError:
            raise
        except AzureError as err:
            link = err
        return vault_id, policies, None, link

    wanted = sorted({v.lower(): v for v in vault_ids}.values(), key=str.lower)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="plan-policies") as pool:
        for vault_id, policies, error, link in pool.map(one, wanted):
            out.requests += 1
            if error is not None:
                out.errors[vault_id.lower()] = error
                continue
            out.policies[vault_id.lower()] = policies or []
            out.requests += 1
            if isinstance(link, AzureError):
                out.guard_errors[vault_id.lower()] = str(link)
            else:
                out.guards[vault_id.lower()] = link
    return out


__all__ = ["read_vault_policies"]
