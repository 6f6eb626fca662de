"""The target policies a wave's VMs move to, made (or reused) before any VM moves.

A vault whose policy cannot be made (a Resource Guard, a same-named policy with other settings,
Azure's 50 policy writes per vault a day) keeps its VMs where they are, each skipped with the
reason; missing write access is not a vault's problem but the identity's, and stops the wave.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pandas as pd

from ..azure import backup, error_codes
from ..errors import AzureError
from ..policies.bodies import crash_clone_body
from ..policies.ensure import PolicyConflictError, ensure_policy
from . import throttling
from .move import WaveStop
from .mua import JOURNAL_CODE, is_guard_refusal

POLICY_WORKERS = 8
# Throttling beyond the SDK's retries is waited out this long, not a reason to keep a whole
# vault's VMs back.
POLICY_PATIENCE_S = 60.0


def ensure_targets(access: Any, to_move: pd.DataFrame,
                   log: Callable[[str], None]) -> dict[str, tuple[str, str]]:
    """Create (or reuse) each crash-consistent policy the wave's VMs move to; return the
    vaults (lower-case id) where that failed, with a journal code and the reason."""
    pairs = to_move[["vault_id", "source_policy", "target_policy"]].drop_duplicates()

    def ensure(row: Any, ref: Any) -> Any:
        source = throttling.patiently(lambda: backup.get_policy(
            access.backup(ref.subscription_id), ref, row.source_policy),
            timeout=POLICY_PATIENCE_S)
        return throttling.patiently(lambda: ensure_policy(
            access, row.vault_id, row.target_policy, crash_clone_body(source)),
            timeout=POLICY_PATIENCE_S)

    def one(row: Any) -> tuple[str, tuple[str, str] | None]:
        ref = backup.vault_ref(row.vault_id)
        try:
            result = ensure(row, ref)
        except PolicyConflictError as err:
            return row.vault_id.lower(), ("POLICY_CONFLICT", str(err))
        except AzureError as err:
            if err.status == 403 and error_codes.matches(err, "AuthorizationFailed"):
                raise WaveStop(str(err), status=403, code=err.code) from err
            # Creating a policy is not critical under multi-user authorization; should the
            # guard still refuse, it is named and retried, like a refused VM (mua.py).
            code = JOURNAL_CODE if is_guard_refusal(err) else "POLICY_UNAVAILABLE"
            return row.vault_id.lower(), (code, f"policy {row.target_policy} in vault "
                                                f"{ref.vault} could not be made: {err}")
        log(f"policy {row.target_policy} in vault {ref.vault}: {result.outcome}")
        return row.vault_id.lower(), None

    # Vaults side by side: each policy write waits for its operation.
    failed: dict[str, tuple[str, str]] = {}
    rows = list(pairs.itertuples(index=False))
    with ThreadPoolExecutor(max_workers=POLICY_WORKERS, thread_name_prefix="policy") as pool:
        for vault_key, problem in pool.map(
                lambda r: contextvars.copy_context().run(one, r), rows):
            if problem and vault_key not in failed:
                failed[vault_key] = problem
                log(problem[1])
    return failed
