"""A 100k-VM synthetic fleet scores in one vectorized pass, with findings consistent per row."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tasks.inventory import schema
from tasks.rules.engine import RuleContext, evaluate, load_pack, score
from tasks.settings import Rules

SIZES = ["Standard_D4s_v5", "Standard_D4s_v6", "Standard_D4as_v7", "Standard_D4as_v6",
         "Standard_D4_v5", "Standard_E8ds_v5", "Standard_M32ms", "Standard_D4ps_v6"]


def synthetic_fleet(n: int, seed: int = 7) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``n`` VMs with three disks each, facts drawn so that every rule fires somewhere."""
    rng = np.random.default_rng(seed)
    ids = np.char.add(f"/subscriptions/{'0' * 8}-0000-0000-0000-{'0' * 12}/resourceGroups/rg/"
                      "providers/Microsoft.Compute/virtualMachines/vm-",
                      np.arange(n).astype(str))
    protected = rng.random(n) < 0.85
    state = np.where(protected, rng.choice(["Protected", "Protected", "Protected", "IRPending",
                                            "ProtectionError"], n), "")
    readable = protected & (rng.random(n) < 0.97)
    v1 = rng.random(n) < 0.2
    sku_known = rng.random(n) < 0.98
    tags = [{"backup-consistency": "application"} if r < 0.02 else {"env": "prod"}
            for r in rng.random(n)]
    vms = pd.DataFrame({
        "vm_id": ids, "vm_key": np.char.lower(ids), "vm_name": np.char.add("vm-",
                                                                           np.arange(n).astype(str)),
        "subscription_id": "0" * 8 + "-0000-0000-0000-" + "0" * 12, "resource_group": "rg",
        "location": rng.choice(["eastus", "westeurope", "usgovvirginia"], n, p=[.6, .39, .01]),
        "vm_size": rng.choice(SIZES, n),
        "os_type": rng.choice(["Windows", "Linux"], n),
        "image_publisher": rng.choice(["MicrosoftWindowsServer", "Canonical",
                                       "MicrosoftSQLServer", "SUSE"], n, p=[.5, .4, .05, .05]),
        "image_offer": rng.choice(["WindowsServer", "sles-sap-15-sp5", "ubuntu"], n),
        "image_sku": "x",
        "security_type": rng.choice(["TrustedLaunch", "Standard", "ConfidentialVM"], n,
                                    p=[.6, .39, .01]),
        "ultra_ssd_enabled": False, "tags": tags, "is_sql_vm": rng.random(n) < 0.03,
        "sku_known": sku_known,
        "sku_premium_io": pd.array(np.where(sku_known, rng.random(n) < 0.9, False),
                                   dtype="boolean"),
        "protected": protected, "item_id": np.where(protected, "item", ""),
        "item_count": protected.astype(int), "other_items": "", "vault_id": "", "vault": "",
        "protection_state": state, "arg_protection_state": "",
        "last_backup_status": "", "last_backup_time": "",
        "policy_id": "", "policy_name": np.where(protected, rng.choice(["Gold", "Silver"], n), ""),
        "policy_readable": readable, "policy_type": np.where(readable & v1, "V1", "V2"),
        "schedule_type": np.where(readable & v1, "SimpleSchedulePolicy",
                                  "SimpleSchedulePolicyV2"),
        "consistency_type": np.where(protected & (rng.random(n) < 0.1), "OnlyCrashConsistent",
                                     ""),
        "vault_location": "", "os_disk_ephemeral": rng.random(n) < 0.01,
    })
    vms["sku_premium_io"] = vms["sku_premium_io"].mask(~vms["sku_known"])
    m = 3 * n
    disks = pd.DataFrame({
        "vm_key": np.repeat(vms["vm_key"].to_numpy(), 3),
        "role": np.tile(["os", "data", "data"], n),
        "lun": pd.array(np.tile([None, 0, 1], n), dtype="Int64"),
        "disk_name": "d", "disk_key": "k", "managed": True,
        "unmanaged": rng.random(m) < 0.002, "ephemeral": False,
        "storage_type": rng.choice(["Premium_LRS", "StandardSSD_LRS", "UltraSSD_LRS",
                                    "PremiumV2_LRS"], m, p=[.8, .18, .01, .01]),
        "caching": rng.choice(["ReadWrite", "ReadOnly", "None"], m),
        "write_accelerator": rng.random(m) < 0.005,
        "found": rng.random(m) < 0.99, "sku_name": "",
        "max_shares": pd.array(np.where(rng.random(m) < 0.01, 2, 1), dtype="Int64"),
        "data_access_auth_mode": np.where(rng.random(m) < 0.005, "AzureActiveDirectory", ""),
    })
    return schema.conform(vms, schema.VM_COLUMNS), schema.conform(disks, schema.DISK_COLUMNS)


@pytest.mark.slow
def test_hundred_thousand_vms_score_with_consistent_findings():
    vms, disks = synthetic_fleet(100_000)
    pack = load_pack(Rules())
    out = score(vms, disks, pack, RuleContext())
    assert len(out) == 100_000 and out.index.equals(vms.index)
    assert set(out["readiness"]) == set(schema.READINESS_VALUES)

    fired = evaluate(vms, disks, pack, RuleContext())
    assert fired.any().all(), fired.columns[~fired.any()].tolist()  # every rule fires somewhere
    sample = out.sample(2_000, random_state=1).index
    for column, level in (("blockers", "blocker"), ("warnings", "warning"),
                          ("unknowns", "unknown"), ("infos", "info")):
        ids = [r.id for r in pack.enabled() if r.severity == level]
        expected = [";".join(i for i in ids if fired.at[row, i]) for row in sample]
        assert out.loc[sample, column].tolist() == expected, column

    moving = out["readiness"].isin(["ready", "ready_with_conditions"])
    assert (out.loc[moving, "target_policy"] != "").all()
    assert (out.loc[~moving, "target_policy"] == "").all()
    assert (out.loc[out["readiness"] == "not_ready", "blockers"] != "").all()
    clean = out["readiness"] == "ready"
    assert (out.loc[clean, ["blockers", "unknowns", "warnings"]] == "").all().all()
