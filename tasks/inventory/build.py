"""Raw discovery rows -> the inventory frames of ``schema.py``.

One Python pass over the VM rows builds the disk rows (each VM lists its disks as JSON); every
join after that is a pandas merge or group-by: protected items to VMs, policies to items, disk
facts to disks, SKUs to sizes, disk sizes to each VM's provisioned size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..azure.error_codes import ARG_TO_ARM_STATE
from ..discovery.scope import excluded_mask
from ..settings import Settings
from .schema import DISK_COLUMNS, VM_COLUMNS, conform, shared_tags

# ARG_TO_ARM_STATE (ARG's currentProtectionState -> ARM's protectionState) is unverified: no
# source documents it (tasks/azure/error_codes.py). It is used only for items whose vault ARM
# could not list; tasks/discovery/policies.py reads ARM's state for every readable vault.
STOPPED_ARM = {"ProtectionStopped", "BackupsSuspended", "ProtectionPaused"}
STOPPED_ARG = {"ProtectionStopped", "SoftDeleted"}


@dataclass
class Inventory:
    vms: pd.DataFrame
    disks: pd.DataFrame
    excluded: int = 0  # VMs dropped by resource-group or tag exclusions
    # VM rows read more than once (Resource Graph pages are separate queries, so a VM can show
    # up on two pages when the estate changes while it is read: MD concepts/paging-results.md)
    repeated: int = 0


def _os_disks(raw: pd.DataFrame) -> pd.DataFrame:
    """OS disk rows, from the columns the VM query flattened (no JSON walking)."""
    ephemeral = raw["osDiskPlacement"].fillna("") == "Local"
    disk_id = raw["osDiskId"].fillna("")
    managed = (disk_id != "") & ~ephemeral
    return pd.DataFrame({
        "vm_key": raw["vm_key"], "role": "os", "lun": None,
        "disk_name": raw["osDiskName"].fillna(""),
        "disk_key": disk_id.where(~ephemeral, ""),
        "managed": managed,
        "unmanaged": (raw["osDiskVhd"].fillna("") != "") & (disk_id == ""),
        "ephemeral": ephemeral,
        "storage_type": raw["osDiskType"].fillna(""),
        "caching": raw["osDiskCaching"].fillna(""),
        "write_accelerator": raw["osDiskWriteAccelerator"].fillna("").str.lower() == "true",
        "profile_gb": raw["osDiskSizeGB"],
    })


def _data_disks(keys: pd.Series, data_disks: pd.Series) -> pd.DataFrame:
    """Data disk rows: the one Python pass, since each VM lists its data disks as JSON."""
    rows: list[tuple] = []
    append = rows.append
    # Plain lists: iterating pandas string arrays element by element is several times slower.
    for key, disks in zip(keys.tolist(), data_disks.tolist(), strict=True):
        if not disks:
            continue
        for disk in disks:
            managed = disk.get("managedDisk") or {}
            disk_id = managed.get("id") or ""
            append((key, disk.get("lun"), disk.get("name") or "", disk_id.lower(),
                    bool(disk_id), bool(disk.get("vhd")) and not disk_id,
                    managed.get("storageAccountType") or "", disk.get("caching") or "",
                    bool(disk.get("writeAcceleratorEnabled")), disk.get("diskSizeGB")))
    frame = pd.DataFrame(rows, columns=["vm_key", "lun", "disk_name", "disk_key", "managed",
                                        "unmanaged", "storage_type", "caching",
                                        "write_accelerator", "profile_gb"])
    frame.insert(1, "role", "data")
    frame["ephemeral"] = False
    return frame


def _disk_facts(attached: list[dict], special: list[dict]) -> pd.DataFrame:
    """Per disk id: sku, maxShares, dataAccessAuthMode and diskSizeGB, from both disk queries."""
    facts = [tuple(entry) for row in attached for entry in (row.get("disks") or [])]
    facts += [(r["id"], r.get("sku"), r.get("maxShares"), r.get("dataAccessAuthMode"),
               r.get("diskSizeGB")) for r in special]
    frame = pd.DataFrame(facts, columns=["disk_key", "sku_name", "max_shares",
                                         "data_access_auth_mode", "resource_gb"])
    return frame.drop_duplicates("disk_key")


def _gb(values: pd.Series) -> pd.Series:
    """Sizes in whole GB as nullable integers; anything that is not a number is unknown."""
    return pd.to_numeric(values, errors="coerce").round().astype("Int64")


def _fill_with_last_segment(values: pd.Series, ids: pd.Series) -> pd.Series:
    """Missing names fall back to the last segment of the ARM id (only where missing)."""
    missing = values.isna()
    if missing.any():
        values = values.astype(object)  # all-missing columns arrive as float NaN
        values[missing] = [str(i).rsplit("/", 1)[-1] for i in ids[missing]]
    return values


def _items(items: list[dict], vault_names: dict[str, str],
           arm_states: dict[str, str] | None = None) -> pd.DataFrame:
    """The counted protected item per VM (active first, then most recently backed up).
    ``arm_states`` (lower item id -> ARM protectionState, read per vault) wins over the row's."""
    cols = ["id", "vaultId", "vmKey", "policyId", "currentProtectionState", "protectionState",
            "lastBackupStatus", "lastBackupTime", "deferredDelete"]
    frame = pd.DataFrame.from_records(items, columns=cols).fillna("")
    if frame.empty:
        return pd.DataFrame(columns=["vm_key"])
    frame = frame.drop_duplicates("id").reset_index(drop=True)  # read on two pages: once
    if arm_states:
        # ARM's word wins; Resource Graph's own state then decides nothing for that item.
        get = arm_states.get
        from_arm = pd.Series([get(i.lower(), "") for i in frame["id"].tolist()],
                             index=frame.index, dtype=object).fillna("")
        known = from_arm != ""
        frame["protectionState"] = from_arm.where(known, frame["protectionState"])
        frame["currentProtectionState"] = frame["currentProtectionState"].where(~known, "")
    arm = frame["protectionState"].where(
        frame["protectionState"] != "", frame["currentProtectionState"].map(ARG_TO_ARM_STATE))
    frame["arm_state"] = arm.fillna("")
    active = ~(frame["arm_state"].isin(STOPPED_ARM)
               | frame["currentProtectionState"].isin(STOPPED_ARG)
               | (frame["deferredDelete"].str.lower() == "true")).to_numpy(bool)
    frame["active"] = active
    # Per VM: active first, then the latest backup, then the order read (a stable sort). The
    # keys are integer codes (the VM in order of appearance, the backup time's rank), sorted
    # by one numpy lexsort: sorting the strings themselves was most of this function's time.
    vm_codes, _ = pd.factorize(frame["vmKey"].to_numpy(dtype=object))
    time_rank, _ = pd.factorize(frame["lastBackupTime"].to_numpy(dtype=object), sort=True)
    order = np.lexsort((-time_rank, ~active, vm_codes))
    grouped = vm_codes[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = grouped[1:] != grouped[:-1]
    counted = frame.take(order[first]).set_index("vmKey")
    others = frame.take(order[~first])
    out = pd.DataFrame({
        "item_id": counted["id"],
        "protected": counted["active"],
        "protection_state": counted["arm_state"],
        "arg_protection_state": counted["currentProtectionState"],
        "last_backup_status": counted["lastBackupStatus"],
        "last_backup_time": counted["lastBackupTime"],
        "policy_id": counted["policyId"],
        "vault_id": counted["vaultId"],
    })
    out["item_count"] = np.bincount(grouped)[grouped[first]]
    if len(others):
        out["other_items"] = others.groupby("vmKey", sort=False)["id"].agg(";".join)
    else:
        out["other_items"] = pd.Series(index=out.index, dtype=object)
    out["vault"] = _fill_with_last_segment(out["vault_id"].map(vault_names), out["vault_id"])
    return out.rename_axis("vm_key").reset_index()


def vaults_to_read(item_rows: list[dict]) -> list[str]:
    """Vaults whose policies discovery must read: every vault holding an item in scope."""
    return sorted({r["vaultId"] for r in item_rows if r.get("vaultId")})


def sku_pairs(vm_rows: list[dict]) -> set[tuple[str, str]]:
    """(subscription, region) pairs whose Resource SKU lists the rules need."""
    return {(r["subscriptionId"].lower(), r["location"].lower()) for r in vm_rows}


def build_inventory(rows: dict[str, list[dict]], policies: dict[str, dict],
                    skus: pd.DataFrame, settings: Settings,
                    item_states: dict[str, str] | None = None) -> Inventory:
    """Join the rows of every query (``collect.QUERIES``) into the inventory frames.

    Disks: with ``disk_check`` rows (and no ``attached_disks``), a managed disk is found unless
    the check says it is absent, sized as the check or else its VM says; with
    ``attached_disks`` rows (the per-disk summary), found when listed there or among the
    special disks."""
    vm_cols = ["id", "name", "subscriptionId", "resourceGroup", "location", "tags", "vmSize",
               "osType", "imagePublisher", "imageOffer", "imageSku", "securityType",
               "ultraSSDEnabled", "osDiskName", "osDiskId", "osDiskType", "osDiskCaching",
               "osDiskWriteAccelerator", "osDiskVhd", "osDiskPlacement", "osDiskSizeGB",
               "dataDisks"]
    raw = pd.DataFrame.from_records(rows.get("vms", []), columns=vm_cols)
    repeated = raw["id"].str.lower().duplicated()
    if repeated.any():  # one row per VM, the first read kept
        raw = raw[~repeated].reset_index(drop=True)
    excluded = excluded_mask(raw, settings)
    raw = raw[~excluded].reset_index(drop=True) if len(raw) else raw
    raw["vm_key"] = raw["id"].str.lower()

    vault_rows = [r for r in rows.get("vaults_and_sql", [])
                  if r.get("type") == "microsoft.recoveryservices/vaults"]
    vault_names = {r["id"].lower(): r["name"] for r in vault_rows}
    vault_locations = {r["id"].lower(): r["location"] for r in vault_rows}
    sql_vms = {r.get("vmKey") for r in rows.get("vaults_and_sql", [])
               if r.get("type") == "microsoft.sqlvirtualmachine/sqlvirtualmachines"}

    vms = pd.DataFrame({
        "vm_id": raw["id"], "vm_key": raw["vm_key"], "vm_name": raw["name"],
        "subscription_id": raw["subscriptionId"].str.lower(),
        "resource_group": raw["resourceGroup"].str.lower(),
        "location": raw["location"].str.lower(), "vm_size": raw["vmSize"].fillna(""),
        "os_type": raw["osType"].fillna(""), "image_publisher": raw["imagePublisher"].fillna(""),
        "image_offer": raw["imageOffer"].fillna(""), "image_sku": raw["imageSku"].fillna(""),
        "security_type": raw["securityType"].fillna(""),
        "ultra_ssd_enabled": raw["ultraSSDEnabled"].fillna("").str.lower() == "true",
        "tags": shared_tags(raw["tags"].tolist()),
        "is_sql_vm": raw["vm_key"].isin(sql_vms),
        "os_disk_ephemeral": raw["osDiskPlacement"].fillna("") == "Local",
    })

    # Protection: the counted item, its vault and policy.
    items = _items(rows.get("protected_items", []), vault_names, item_states)
    vms = vms.merge(items, on="vm_key", how="left") if len(items.columns) > 1 else vms
    for col in ("item_id", "protection_state", "arg_protection_state", "last_backup_status",
                "last_backup_time", "policy_id", "other_items", "vault_id", "vault"):
        vms[col] = vms[col].fillna("") if col in vms else ""
    vms["protected"] = vms["protected"].fillna(False).astype(bool) if "protected" in vms \
        else False
    vms["item_count"] = vms["item_count"].fillna(0) if "item_count" in vms else 0
    facts = pd.DataFrame.from_dict(policies, orient="index")
    policy_key = vms["policy_id"].str.lower()
    for col in ("policy_name", "policy_type", "schedule_type", "consistency_type"):
        mapped = policy_key.map(facts[col]) if col in facts else pd.Series(index=vms.index)
        vms[col] = mapped
    vms["policy_readable"] = vms["policy_type"].notna() & (vms["policy_id"] != "")
    vms["policy_name"] = _fill_with_last_segment(vms["policy_name"], vms["policy_id"])
    for col in ("policy_type", "schedule_type", "consistency_type"):
        vms[col] = vms[col].fillna("")
    vms["vault_location"] = vms["vault_id"].str.lower().map(vault_locations).fillna("")

    # Sizes.
    size = skus.rename(columns={"premium_io": "sku_premium_io"})
    vms["size_key"] = vms["vm_size"].str.lower()
    vms = vms.merge(size, on=["subscription_id", "location", "size_key"], how="left")
    vms["sku_known"] = vms["sku_premium_io"].notna()
    vms["sku_premium_io"] = vms["sku_premium_io"].astype("boolean")
    vms = vms.drop(columns="size_key")

    # Disks: OS disks first, then data disks, one row each.
    raw["vm_key"] = vms["vm_key"]
    disks = pd.concat([_os_disks(raw), _data_disks(raw["vm_key"], raw["dataDisks"])],
                      ignore_index=True)
    checked = "disk_check" in rows and "attached_disks" not in rows
    facts_frame = _disk_facts(rows.get("attached_disks", []), rows.get("special_disks", []))
    disks = disks.merge(facts_frame, on="disk_key", how="left", indicator=True)
    listed = disks["_merge"] == "both"
    disks = disks.drop(columns="_merge")
    if checked:
        # disk_check names the referenced disks that are absent or sized otherwise than the
        # VM lists them; every other managed disk exists as its VM describes it, and its sku is
        # the storage type the VM lists (MD virtual-machines: managedDisk.storageAccountType).
        check = pd.DataFrame.from_records(rows["disk_check"],
                                          columns=["disk", "found", "resourceGB"])
        missing = disks["disk_key"].isin(set(check.loc[~check["found"].astype(bool), "disk"]))
        disks["found"] = listed | ~disks["managed"] | ~missing
        sized = check[check["found"].astype(bool)].set_index("disk")["resourceGB"]
        disks["resource_gb"] = disks["resource_gb"].where(
            disks["resource_gb"].notna(), disks["disk_key"].map(sized))
        disks["sku_name"] = disks["sku_name"].where(
            listed | ~disks["found"] | ~disks["managed"], disks["storage_type"])
    else:
        disks["found"] = listed | ~disks["managed"]
    disks["sku_name"] = disks["sku_name"].fillna("")
    disks["data_access_auth_mode"] = disks["data_access_auth_mode"].fillna("")
    disks["max_shares"] = pd.to_numeric(disks["max_shares"], errors="coerce").astype("Int64")
    disks["lun"] = pd.to_numeric(disks["lun"], errors="coerce").astype("Int64")
    # Size: the disk resource's, else what the VM's profile lists (ephemeral and unmanaged
    # disks have no resource; a disk outside the scope is not found).
    disks["size_gb"] = _gb(disks["resource_gb"]).fillna(_gb(disks["profile_gb"]))
    disks = disks.drop(columns=["resource_gb", "profile_gb"])
    provisioned = disks.groupby("vm_key", sort=False)["size_gb"].sum(min_count=1)
    vms["provisioned_gb"] = vms["vm_key"].map(provisioned).astype("Int64")

    return Inventory(conform(vms, VM_COLUMNS), conform(disks, DISK_COLUMNS),
                     int(excluded.sum()) if len(excluded) else 0, int(repeated.sum()))
