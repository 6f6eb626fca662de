"""Create or reuse a backup policy, never change one (the seed's Option 1, steps 3 to 7).

``ensure_policy`` only ever creates a missing policy; an existing one is reused when its
settings match (``compare.settings_differences``) and is a ``PolicyConflictError`` when they
don't, so a source policy is never written. Vault limits on policies surface as
``PolicyLimitError`` with a message the user can act on.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Literal

from ..azure import backup, error_codes
from ..errors import AzureError, CcmigrateError, InputError
from .bodies import _props
from .compare import settings_differences
from .naming import valid_policy_name


class PolicyConflictError(CcmigrateError):
    """A policy with the target name exists in the vault with other settings: the wave stops
    before any VM moves, and nothing is written."""

    exit_code = 1

    def __init__(self, vault: backup.VaultRef, name: str, differences: list[str],
                 protected_items: int | None = None) -> None:
        self.vault, self.name, self.differences = vault, name, list(differences)
        users = (f"; it protects {protected_items} item(s)" if protected_items else "")
        super().__init__(
            f"backup policy '{name}' already exists in vault '{vault.vault}' (resource group "
            f"{vault.resource_group}, subscription {vault.subscription_id}) with different "
            f"settings{users}: {'; '.join(differences)}. Nothing was written: that policy "
            "and the source policy are unchanged. Fix: change the policy name template so the "
            f"clone gets a new name, or delete '{name}' (Azure can't rename a policy) if nothing "
            "needs it, then run again.")


class PolicyLimitError(AzureError):
    """A Recovery Services vault limit on policies (Azure Backup FAQ, api-notes section 5):
    50 creates or edits per vault in 24 hours, or 200 policies per vault. ``retry_after_s`` is
    when a write may succeed again, when Azure said so (None: unknown or not time-bound)."""

    def __init__(self, message: str, *, code: str | None, status: int | None,
                 retry_after_s: float | None) -> None:
        super().__init__(message, status=status, code=code)
        self.retry_after_s = retry_after_s


# The limits are documented (Azure Backup FAQ), the service's codes are not: these are the
# emulator's, so tasks/azure/error_codes.py matches them by the documented wording as well.
# Any other refusal still surfaces as an AzureError carrying Azure's own message.
WRITE_LIMIT_CODE = "BMSUserErrorPolicyWriteLimitReached"
COUNT_LIMIT_CODE = "BMSUserErrorPolicyLimitReached"


# -- create or reuse ---------------------------------------------------------------------------

@dataclass(frozen=True)
class EnsureResult:
    """``outcome`` is ``created`` (we wrote it now) or ``reused`` (it existed, same settings);
    ``policy`` is the policy as Azure returned it afterwards."""

    outcome: Literal["created", "reused"]
    policy: dict

    @property
    def id(self) -> str:
        return self.policy.get("id", "")

    @property
    def name(self) -> str:
        return self.policy.get("name", "")


# Several VMs of one vault may need the same on-demand rollback policy at once: one creator per
# (vault, name) in this process, the others then find it and reuse it.
_locks: dict[tuple[str, str], threading.Lock] = {}
_locks_guard = threading.Lock()


def _lock_for(vault: backup.VaultRef, name: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault((vault.id.lower(), name.lower()), threading.Lock())


def ensure_policy(access, vault_id: str, name: str, body: dict) -> EnsureResult:
    """Make sure vault ``vault_id`` holds policy ``name`` with ``body``'s settings.

    Missing: created (one policy write, counted against the vault's 50 per 24 h) and read back.
    Present with the same settings: reused, no write. Present with other settings:
    ``PolicyConflictError`` and no write. An existing policy is never updated, so a source
    policy can't be modified through here. Vault limits raise ``PolicyLimitError``.
    """
    if not valid_policy_name(name):
        raise InputError(f"'{name}' is not a valid backup policy name (3-150 letters, digits and "
                         "hyphens, starting with a letter, not ending with a hyphen)")
    if not isinstance(body.get("properties"), dict):
        raise ValueError("body must be an ARM PUT body: {'properties': {...}}")
    vault = backup.vault_ref(vault_id)
    client = access.backup(vault.subscription_id)
    throttles = access.settings.throttles
    with _lock_for(vault, name):
        existing = _get_if_present(client, vault, name)
        if existing is not None:
            differences = settings_differences(existing, body)
            if differences:
                raise PolicyConflictError(vault, name, differences,
                                          _props(existing).get("protectedItemsCount"))
            return EnsureResult("reused", existing)
        try:
            created = backup.put_policy(client, vault, name, body["properties"],
                                        timeout=throttles.operation_timeout,
                                        poll_interval=throttles.polling_interval)
        except AzureError as exc:
            limit = _limit_error(exc, vault, name)
            if limit is None:
                raise
            raise limit from exc
    differences = settings_differences(created, body)
    if differences:
        raise AzureError(
            f"Azure stored backup policy '{name}' in vault '{vault.vault}' with other settings "
            f"than we sent: {'; '.join(differences)}. No VM uses it yet; check the source "
            "policy's settings, delete the new policy, and run again")
    return EnsureResult("created", created)


def _get_if_present(client, vault: backup.VaultRef, name: str) -> dict | None:
    try:
        return backup.get_policy(client, vault, name)
    except AzureError as exc:
        if exc.status == 404:
            return None
        raise


# "... allowed in about 42 minutes": the emulator's wording. Azure's is unpublished; without a
# number the message says the most it can be (24 h).
_RETRY_IN = re.compile(r"\babout (\d+) (minute|hour)s?\b", re.IGNORECASE)


def _limit_error(exc: AzureError, vault: backup.VaultRef, name: str) -> PolicyLimitError | None:
    """Azure's refusal to create ``name`` because of a vault limit, as a message the user can
    act on; None for any other error."""
    where = (f"vault '{vault.vault}' (resource group {vault.resource_group}, subscription "
             f"{vault.subscription_id})")
    if error_codes.matches(exc, WRITE_LIMIT_CODE):
        match = _RETRY_IN.search(str(exc))
        retry_s = (int(match.group(1)) * (60 if match.group(2).lower() == "minute" else 3600)
                   if match else None)
        if retry_s is None:
            when = "once the oldest policy write of the last 24 hours ages out (at most 24 h)"
        elif retry_s < 7200:
            when = f"in about {max(1, -(-retry_s // 60))} minutes"
        else:
            when = f"in about {-(-retry_s // 3600)} hours"
        return PolicyLimitError(
            f"{where} has reached the limit on backup policy creates and edits (Azure Backup "
            f"allows 50 per vault in 24 hours), so policy '{name}' was not created and no VM "
            f"was moved. Retry {when}. Azure said: {exc}",
            code=exc.code, status=exc.status, retry_after_s=retry_s)
    if error_codes.matches(exc, COUNT_LIMIT_CODE):
        return PolicyLimitError(
            f"{where} already holds the most backup policies Azure allows (200 per vault), so "
            f"policy '{name}' was not created and no VM was moved. Delete unused policies of "
            f"that vault, then run again. Azure said: {exc}",
            code=exc.code, status=exc.status, retry_after_s=None)
    return None


__all__ = [
    "COUNT_LIMIT_CODE",
    "WRITE_LIMIT_CODE",
    "EnsureResult",
    "PolicyConflictError",
    "PolicyLimitError",
    "ensure_policy",
]
