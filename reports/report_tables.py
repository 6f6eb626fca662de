"""The tables the reports show, derived once from the scored inventory, the summary and the rule
pack. Writers (CSV, Excel, artifacts) only lay these out; the arithmetic lives here, vectorized.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from tasks.inventory.schema import READINESS_VALUES, distinct
from tasks.rules.predicates import objects

from .readiness_csv import CONTRACT_COLUMNS, DETAIL_COLUMNS

# After readiness.csv's contract and protection columns: what an engineer filters on next.
DISK_DETAIL_COLUMNS = ["disk_count", "data_disk_count", "provisioned_gb", "os_disk_ephemeral",
                       "is_sql_vm", "vault_location", "schedule_type", "item_count", "tags"]
VM_TABLE_COLUMNS = CONTRACT_COLUMNS + DETAIL_COLUMNS + DISK_DETAIL_COLUMNS
PORTALS = {"public": "https://portal.azure.com", "usgov": "https://portal.azure.us",
           "china": "https://portal.azure.cn"}
BLOCKER_COLUMNS = ["rule_id", "severity", "category", "title", "vms", "share_of_vms",
                   "remediation", "doc_link"]


def portal_base(cloud: str) -> str:
    """The portal of the VM's cloud; a custom ARM endpoint (or the emulator) links to the public
    portal, where the ids still mean something to the reader."""
    return PORTALS.get(cloud, PORTALS["public"])


def portal_links(vm_ids: list[str], cloud: str) -> list[str]:
    base = portal_base(cloud) + "/#resource"
    return [f"{base}{vm_id}/overview" for vm_id in vm_ids]


def tags_text(tags: pd.Series) -> list[str]:
    """``name=value; name=value`` sorted by name: filterable text in a cell (worked out once
    per distinct cell object: ``schema.TagSets``)."""
    codes, cells = distinct(tags.to_numpy(dtype=object))
    texts = np.array(["; ".join(f"{k}={v}" for k, v in sorted(t.items()))
                      if isinstance(t, dict) and t else "" for t in cells] + [""], dtype=object)
    return texts[codes].tolist()


def _disk_stats(scored: pd.DataFrame, disks: pd.DataFrame | None) -> pd.DataFrame:
    index = scored["vm_key"]
    if disks is None or not len(disks):
        zeros = pd.Series(0, index=scored.index, dtype="Int64")
        return pd.DataFrame({"disk_count": zeros, "data_disk_count": zeros})
    keys = pd.Index(objects(index))
    if keys.is_unique:
        # One hash lookup per disk for its VM's row, then two counts per row (a group-by
        # would hash the disks' keys once per count, and map the result back by key again).
        rows = keys.get_indexer(objects(disks["vm_key"]))
        found = rows >= 0
        data = found & (disks["role"] == "data").to_numpy(dtype=bool, na_value=False)
        return pd.DataFrame({
            "disk_count": np.bincount(rows[found], minlength=len(keys)),
            "data_disk_count": np.bincount(rows[data], minlength=len(keys)),
        }, index=scored.index)
    counts = disks.groupby("vm_key").size()
    data = disks[disks["role"] == "data"].groupby("vm_key").size()
    return pd.DataFrame({
        "disk_count": index.map(counts).fillna(0).astype("Int64").to_numpy(),
        "data_disk_count": index.map(data).fillna(0).astype("Int64").to_numpy(),
    }, index=scored.index)


def vm_table(scored: pd.DataFrame, disks: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per VM in readiness.csv's column order: the same table feeds the CSV and the
    VMs sheet, so the two always agree."""
    out = scored.copy(deep=False)
    stats = _disk_stats(scored, disks)
    out["disk_count"] = stats["disk_count"]
    out["data_disk_count"] = stats["data_disk_count"]
    if "provisioned_gb" not in out:
        out["provisioned_gb"] = pd.Series(pd.NA, index=out.index, dtype="Int64")
    out["tags"] = tags_text(scored["tags"]) if "tags" in scored else ""
    for column in VM_TABLE_COLUMNS:
        if column not in out:
            out[column] = ""
    return out[VM_TABLE_COLUMNS]


def blockers_table(summary: dict[str, Any], pack: Any) -> pd.DataFrame:
    """One row per rule that fired, blockers first, most VMs first (summary's order)."""
    total = summary["vms"] or 1
    rows = []
    for fired in summary["rules_fired"]:
        try:
            rule = pack.rule(fired["rule"])
            meta = (rule.category, rule.title, rule.remediation, rule.doc_link)
        except KeyError:  # a rule of another pack (a stored assessment read back)
            meta = ("", fired.get("title", ""), "", "")
        rows.append((fired["rule"], fired["severity"], meta[0], meta[1], fired["vms"],
                     fired["vms"] / total, meta[2], meta[3]))
    return pd.DataFrame(rows, columns=BLOCKER_COLUMNS)


def rules_table(pack: Any, summary: dict[str, Any]) -> pd.DataFrame:
    """The pack as used, rule by rule, with the user's overrides and how often each fired."""
    fired: dict[str, int] = {}
    for counts in summary["by_rule"].values():
        for rule_id, n in counts.items():
            fired[rule_id] = fired.get(rule_id, 0) + n
    rows = [(r.id, r.severity, r.default_severity, "yes" if r.enabled else "no (disabled)",
             r.category, r.title, fired.get(r.id, 0), r.rationale, r.remediation, r.doc_link)
            for r in pack.rules]
    return pd.DataFrame(rows, columns=["rule_id", "severity", "pack_severity", "enabled",
                                       "category", "title", "vms", "rationale", "remediation",
                                       "doc_link"])


def _top_blocker(scored: pd.DataFrame, by: str) -> pd.DataFrame:
    """Per value of ``by``: the blocker that stops most VMs, and how many."""
    blocked = scored.loc[scored["blockers"] != "", [by, "blockers"]]
    if not len(blocked):
        return pd.DataFrame(columns=["top_blocker", "top_blocker_vms"])
    exploded = blocked.assign(rule=blocked["blockers"].str.split(";")).explode("rule")
    counts = exploded.groupby([by, "rule"]).size().rename("n").reset_index()
    counts = counts.sort_values([by, "n", "rule"], ascending=[True, False, True])
    top = counts.drop_duplicates(by).set_index(by)
    return top.rename(columns={"rule": "top_blocker", "n": "top_blocker_vms"})


def subscriptions_table(summary: dict[str, Any], scored: pd.DataFrame,
                        cost: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per subscription: readiness counts, the share that can move, the top blocker, PI units."""
    names = summary.get("subscription_names") or {}
    rows = []
    for sub, counts in summary["by_subscription"].items():
        movable = counts["ready"] + counts["ready_with_conditions"]
        rows.append({"subscription_id": sub, "subscription_name": names.get(sub, ""),
                     "vms": counts["vms"], **{r: counts[r] for r in READINESS_VALUES},
                     "ready_share": movable / counts["vms"] if counts["vms"] else 0.0})
    frame = pd.DataFrame(rows, columns=["subscription_id", "subscription_name", "vms",
                                        *READINESS_VALUES, "ready_share"])
    frame = frame.join(_top_blocker(scored, "subscription_id"), on="subscription_id")
    frame["top_blocker"] = frame["top_blocker"].fillna("")
    frame["top_blocker_vms"] = frame["top_blocker_vms"].fillna(0).astype(int)
    if cost is not None and len(cost):
        units = cost.set_index("subscription_id")
        frame["pi_units"] = frame["subscription_id"].map(units["pi_units"]).fillna(0.0)
        if units["monthly_cost"].notna().any():
            frame["monthly_cost"] = frame["subscription_id"].map(units["monthly_cost"])
    return frame


def vault_policies_table(scored: pd.DataFrame, policies: pd.DataFrame | None) -> pd.DataFrame:
    """Per vault and source policy: how many VMs it protects, how many can move, the
    crash-consistent policy they would move to, and whether that policy is already there."""
    protected = scored[(scored["vault_id"] != "") & (scored["policy_name"] != "")]
    keys = ["subscription_id", "vault", "vault_id", "policy_name", "policy_type",
            "consistency_type"]
    columns = [*keys, "vms", "ready", "ready_with_conditions", "not_ready", "other",
               "target_policy", "target_exists", "note"]
    if not len(protected):
        return pd.DataFrame(columns=columns)
    onehot = pd.get_dummies(protected["readiness"]).reindex(columns=list(READINESS_VALUES),
                                                             fill_value=False)
    grouped = pd.concat([protected[keys], onehot.astype(int),
                         protected["target_policy"]], axis=1).groupby(keys, sort=True)
    table = grouped[list(READINESS_VALUES)].sum()
    table["target_policy"] = grouped["target_policy"].max()
    table = table.reset_index()
    table["vms"] = table[list(READINESS_VALUES)].sum(axis=1)
    table["other"] = table["vms"] - table[["ready", "ready_with_conditions", "not_ready"]].sum(
        axis=1)
    table["target_exists"] = _target_exists(table, policies)
    table["note"] = np.where(
        table["policy_type"] == "V1",
        "Standard policy: the clone is an Enhanced policy; moving is irreversible", "")
    table["note"] = np.where(table["consistency_type"] == "OnlyCrashConsistent",
                             "already crash-consistent", table["note"])
    return table[columns]


def _target_exists(table: pd.DataFrame, policies: pd.DataFrame | None) -> pd.Series:
    """``yes`` (crash-consistent), ``yes, but app-consistent`` (the name is taken by a policy a
    wave must not reuse), ``no (created by the wave)``, or blank when no VM would move."""
    wanted = table["target_policy"].fillna("")
    out = pd.Series(np.where(wanted != "", "no (created by the wave)", ""), index=table.index,
                    dtype=object)
    if policies is None or not len(policies) or not (wanted != "").any():
        return out
    catalogue = policies.assign(
        key=policies["vault_id"].str.lower() + "|" + policies["policy_name"].str.lower())
    consistency = catalogue.drop_duplicates("key").set_index("key")["consistency_type"]
    lookup = (table["vault_id"].str.lower() + "|" + wanted.str.lower()).map(consistency)
    out[lookup.notna() & (wanted != "")] = "yes, but app-consistent: rename the target"
    out[(lookup == "OnlyCrashConsistent") & (wanted != "")] = "yes"
    return out


def not_assessed_table(summary: dict[str, Any]) -> pd.DataFrame:
    return pd.DataFrame([(e.get("scope", ""), e.get("error", ""), e.get("retry", ""))
                         for e in summary["partial_errors"]],
                        columns=["scope", "error", "retry"])


def migration_table(latest: pd.DataFrame, scored: pd.DataFrame) -> pd.DataFrame | None:
    """The assessed VMs' migration state from the journal (each VM's latest plan), or None when
    none of them was ever in a wave: the Migration sheet beside the readiness."""
    if latest is None or not len(latest):
        return None
    names = scored[["vm_key", "vm_id", "vm_name", "subscription_id", "vault"]]
    table = names.merge(latest, on="vm_key", how="inner")
    if not len(table):
        return None
    stamp = pd.to_datetime(table["updated_at"], utc=True)
    table["updated_at"] = stamp.dt.strftime("%Y-%m-%dT%H:%M:%SZ").where(stamp.notna(), "")
    return table[["vm_id", "vm_name", "subscription_id", "vault", "plan_id", "wave", "status",
                  "step", "target_policy", "error_code", "error_message", "rollback_outcome",
                  "updated_at"]].sort_values(["plan_id", "wave", "vm_name"]).reset_index(
        drop=True)
