"""The plan's only Azure call: each involved vault's backup policy list, through ARM (read-only).

It gives the source policies' bodies to clone, tells whether a target name is already taken,
and counts the vault's policies against the 200 limit. A vault that can't be read keeps its VMs
out of the plan with the error as their reason; a credential that can't get a token at all
stops the plan (every vault would fail the same way).
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

from ..azure import backup
from ..errors import AuthenticationError, AzureError
from .policy_needs import VaultPolicies


def read_vault_policies(access, vault_ids: Iterable[str], workers: int = 8) -> VaultPolicies:
    """Policies of every vault in ``vault_ids`` (one ARM list per vault, ``workers`` at once),
    keyed by lower-case vault id. The list holds Azure VM (AzureIaasVM) policies only."""
    out = VaultPolicies()

    def one(vault_id: str) -> tuple[str, list[dict] | None, str | None]:
        ref = backup.vault_ref(vault_id)
        try:
            return vault_id, backup.list_policies(access.backup(ref.subscription_id), ref), None
        except AuthenticationError:
            raise
        except AzureError as err:
            return vault_id, None, str(err)

    wanted = sorted({v.lower(): v for v in vault_ids}.values(), key=str.lower)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="plan-policies") as pool:
        for vault_id, policies, error in pool.map(one, wanted):
            out.requests += 1
            if error is not None:
                out.errors[vault_id.lower()] = error
            else:
                out.policies[vault_id.lower()] = policies or []
    return out


__all__ = ["read_vault_policies"]
