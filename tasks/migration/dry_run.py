"""What ``--execute`` would do, per policy and per VM, from read-only calls: each VM gets the
same chunk look a real run gives it, so a VM changed since the plan shows as skipped, with
the reason, before anything runs."""

from __future__ import annotations

from typing import Any

import pandas as pd

from ..azure import backup
from ..errors import AzureError
from .look import ChunkLook
from .work import vm_plans

COLUMNS = ["what", "vault", "vm_name", "vm_id", "source_policy", "target_policy", "would",
           "action"]
CHUNK = 1000


def dry_run_actions(access: Any, vms: pd.DataFrame, looker: ChunkLook | None = None,
                    ) -> pd.DataFrame:
    rows = []
    for (vault_id, name), group in vms.groupby(["vault_id", "target_policy"], sort=True):
        ref = backup.vault_ref(vault_id)
        try:
            backup.get_policy(access.backup(ref.subscription_id), ref, name)
            action = "reuse the existing policy (checked for identical settings first)"
        except AzureError as err:
            if err.status != 404:
                raise
            action = "create it (a crash-consistent clone of " \
                     f"{', '.join(sorted(set(group['source_policy'])))})"
        rows.append({"what": "policy", "vault": ref.vault, "vm_name": "", "vm_id": "",
                     "source_policy": ", ".join(sorted(set(group["source_policy"]))),
                     "target_policy": name, "action": action, "would": "write"})
    plans = vm_plans(vms)
    seen: dict[str, Any] = {}
    if looker is not None:
        for start in range(0, len(plans), CHUNK):
            seen.update(looker(plans[start:start + CHUNK])[0])
    for row, plan in zip(vms.itertuples(index=False), plans, strict=True):
        found = seen.get(plan.vm_key)
        note = " (irreversible: Standard -> Enhanced)" if bool(row.irreversible) else ""
        would, action = "move", (f"re-point its protected item{note}, follow ConfigureBackup, "
                                 "verify; roll back on failure")
        if found is not None and found.skip:
            would, action = "skip", f"leave it where it is ({found.skip[0]}): {found.skip[1]}"
        elif found is not None and found.on_target:
            would, action = "keep", "already on the target policy: journal it done"
        elif found is not None and found.guard_requests:
            action += ("; critical under multi-user authorization (it shortens retention): "
                       "sends the Resource Guard's request, so hold the Backup MUA Operator "
                       f"role on it first ({', '.join(found.guard_requests)})")
        rows.append({"what": "vm", "vault": row.vault, "vm_name": row.vm_name,
                     "vm_id": row.vm_id, "source_policy": row.source_policy,
                     "target_policy": row.target_policy, "action": action, "would": would})
    return pd.DataFrame(rows, columns=COLUMNS)
