"""The target policies a wave's VMs move to, made (or reused) before any VM of their vault
moves (the wave engine makes them side by side, and starts a vault's VMs as soon as its
policies are in place).

A vault whose policy cannot be made (a Resource Guard, a same-named policy with other settings,
Azure's 50 policy writes per vault a day) keeps its VMs where they are, each skipped with the
reason; missing write access is not a vault's problem but the identity's, and stops the wave.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ..azure import backup, error_codes
from ..errors import AzureError
from ..policies.bodies import crash_clone_body
from ..policies.ensure import PolicyConflictError, ensure_policy
from . import throttling
from .move import WaveStop
from .mua import JOURNAL_CODE, is_guard_refusal

# Throttling beyond the SDK's retries is waited out this long, not a reason to keep a whole
# vault's VMs back.
POLICY_PATIENCE_S = 60.0


@dataclass(frozen=True)
class Target:
    """A crash-consistent policy a wave's VMs move to: its vault, name and source."""

    vault_id: str
    source_policy: str
    target_policy: str


def wave_targets(to_move: pd.DataFrame) -> list[Target]:
    """The target policies the VMs of ``to_move`` need, once each."""
    pairs = to_move[["vault_id", "source_policy", "target_policy"]].drop_duplicates()
    return [Target(r.vault_id, r.source_policy, r.target_policy)
            for r in pairs.itertuples(index=False)]


def ensure_target(access: Any, target: Target,
                  log: Callable[[str], None]) -> tuple[str, str] | None:
    """Create (or reuse) one target policy; ``(journal code, reason)`` when its vault's VMs
    must stay where they are, None when it is in place. Raises ``WaveStop`` when the identity
    may not write at all."""
    ref = backup.vault_ref(target.vault_id)
    client = access.backup(ref.subscription_id)
    try:
        source = throttling.patiently(lambda: backup.get_policy(client, ref,
                                                                target.source_policy),
                                      timeout=POLICY_PATIENCE_S)
        result = throttling.patiently(lambda: ensure_policy(
            access, target.vault_id, target.target_policy, crash_clone_body(source)),
            timeout=POLICY_PATIENCE_S)
    except PolicyConflictError as err:
        return "POLICY_CONFLICT", str(err)
    except AzureError as err:
        if err.status == 403 and error_codes.matches(err, "AuthorizationFailed"):
            raise WaveStop(str(err), status=403, code=err.code) from err
        # Creating a policy is not critical under multi-user authorization; should the guard
        # still refuse, it is named and retried, like a refused VM (mua.py).
        code = JOURNAL_CODE if is_guard_refusal(err) else "POLICY_UNAVAILABLE"
        return code, (f"policy {target.target_policy} in vault {ref.vault} could not be made: "
                      f"{err}")
    log(f"policy {target.target_policy} in vault {ref.vault}: {result.outcome}")
    return None
