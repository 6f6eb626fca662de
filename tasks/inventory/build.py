"""Raw discovery rows -> the inventory frames of ``schema.py``.

The VM, item and data-disk rows come laid out page by page (``pages.py``: the one Python pass
over each VM's JSON list of disks runs there, as Resource Graph's pages arrive); every join
after that is a pandas merge or group-by: protected items to VMs, policies to items, disk
facts to disks, SKUs to sizes, disk sizes to each VM's provisioned size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..azure.error_codes import ARG_TO_ARM_STATE
from ..discovery.scope import excluded_mask
from ..settings import Settings
from .pages import VmPages
from .schema import DISK_COLUMNS, VM_COLUMNS, conform

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
        "write_accelerator": _few(raw["osDiskWriteAccelerator"], lower=True, fill="") == "true",
        "profile_gb": raw["osDiskSizeGB"],
    })


def _data_disks(rows: pd.DataFrame) -> pd.DataFrame:
    """Data disk rows in the inventory's shape, from the rows ``pages`` laid out (the one
    Python pass, since each VM lists its data disks as JSON, ran page by page)."""
    frame = rows.copy(deep=False)  # columns added here stay off the pages' frames
    frame.insert(1, "role", "data")
    frame["ephemeral"] = False
    return frame


def _provisioned(vms: pd.DataFrame, raw_keys: pd.Series, vm_row: np.ndarray,
                 sizes: pd.Series) -> pd.Series:
    """Per VM the sum of its disks' known sizes, <NA> when none is known (a group-by sum with
    ``min_count=1``), added up by the disks' VM rows instead of hashing their keys again."""
    known = sizes.notna().to_numpy(bool)
    values = sizes.to_numpy(dtype="float64", na_value=0.0)
    totals = np.bincount(vm_row[known], weights=values[known], minlength=len(raw_keys))
    counted = np.bincount(vm_row[known], minlength=len(raw_keys))
    per_raw = pd.Series(pd.arrays.IntegerArray(totals.round().astype(np.int64), counted == 0),
                        index=raw_keys.to_numpy(dtype=object))
    if len(vms) == len(raw_keys) and np.array_equal(vms["vm_key"].to_numpy(dtype=object),
                                                    per_raw.index.to_numpy(dtype=object)):
        return pd.Series(per_raw.array, index=vms.index)
    return vms["vm_key"].map(per_raw).astype("Int64")


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


# Item columns of few distinct values (states, vaults, policies) over many VMs.
FEW_VALUES = {"protection_state", "arg_protection_state", "last_backup_status", "policy_id",
              "vault_id"}


def _few(values: pd.Series, lower: bool = False, fill: str | None = None) -> pd.Series:
    """A text column of few distinct values (regions, sizes, states, vault and policy ids),
    lower-cased when asked, with every equal value one string object: each row's value was
    its own object as parsed from the rows, and each later pass (scoring, the reports, the
    state store) reads them all; fewer objects are fewer cache misses. Lower-casing happens
    once per distinct value. The same values as ``values`` (``.str.lower()``), missing kept
    or, given ``fill``, filled with it (``.fillna(fill)`` without another pass)."""
    if not pd.api.types.is_string_dtype(values.dtype) or values.dtype == object:
        out = values.str.lower() if lower else values
        return out if fill is None else out.fillna(fill)
    codes, uniques = pd.factorize(values.to_numpy(dtype=object))
    distinct = [u.lower() for u in uniques] if lower else list(uniques)
    missing = np.nan if fill is None else fill
    shared = np.array([*distinct, missing], dtype=object)[codes]  # code -1: missing
    return pd.Series(shared, index=values.index, dtype=values.dtype)


def _fill_with_last_segment(values: pd.Series, ids: pd.Series) -> pd.Series:
    """Missing names fall back to the last segment of the ARM id (only where missing)."""
    missing = values.isna()
    if missing.any():
        values = values.astype(object)  # all-missing columns arrive as float NaN
        values[missing] = [str(i).rsplit("/", 1)[-1] for i in ids[missing]]
    return values


def _items(frame: pd.DataFrame, vault_names: dict[str, str],
           arm_states: dict[str, str] | None = None) -> pd.DataFrame:
    """The counted protected item per VM (active first, then most recently backed up), from
    the item rows (``pages.ITEM_COLUMNS`` and ``item_key``, the lower id; missing values
    ``""``). ``arm_states`` (lower item id -> ARM protectionState, read per vault) wins over
    the row's."""
    if frame.empty:
        return pd.DataFrame(columns=["vm_key"])
    repeated = frame["id"].duplicated()
    if repeated.any():  # an item read on two pages counts once
        frame = frame[~repeated].reset_index(drop=True)
    if arm_states:
        # ARM's word wins; Resource Graph's own state then decides nothing for that item.
        get = arm_states.get
        from_arm = pd.Series([get(key, "") for key in frame["item_key"].tolist()],
                             index=frame.index, dtype=object).fillna("")
        known = from_arm != ""
        frame["protectionState"] = from_arm.where(known, frame["protectionState"])
        frame["currentProtectionState"] = frame["currentProtectionState"].where(~known, "")
    arm = frame["protectionState"].where(
        frame["protectionState"] != "", frame["currentProtectionState"].map(ARG_TO_ARM_STATE))
    frame["arm_state"] = arm.fillna("")
    active = ~(frame["arm_state"].isin(STOPPED_ARM)
               | frame["currentProtectionState"].isin(STOPPED_ARG)
               | (_few(frame["deferredDelete"], lower=True) == "true")).to_numpy(bool)
    frame["active"] = active
    # Per VM: active first, then the latest backup, then the order read (a stable sort). The
    # keys are integer codes (the VM in order of appearance, the backup time's rank), sorted
    # by one numpy lexsort: sorting the strings themselves was most of this function's time.
    # Only VMs with more than one item need the times ranked.
    vm_codes, _ = pd.factorize(frame["vmKey"].to_numpy(dtype=object))
    several = np.bincount(vm_codes)[vm_codes] > 1
    time_rank = np.zeros(len(frame), dtype=np.int64)
    if several.any():
        time_rank[several] = pd.factorize(
            frame["lastBackupTime"].to_numpy(dtype=object)[several], sort=True)[0]
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
        # The other items of a VM, joined in the order above (a group-by with a Python join
        # per VM cost more than this one pass over the few VMs with several items).
        joined: dict[str, list[str]] = {}
        for key, item in zip(others["vmKey"].tolist(), others["id"].tolist(), strict=True):
            joined.setdefault(key, []).append(item)
        out["other_items"] = pd.Series([";".join(ids) for ids in joined.values()],
                                       index=list(joined), dtype=others["id"].dtype)
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
                    item_states: dict[str, str] | None = None,
                    pages: Sequence[VmPages] | None = None) -> Inventory:
    """Join the rows of every query (``collect.QUERIES``) into the inventory frames.

    The VM and item rows come laid out by ``pages`` (read page by page, batch after batch), or,
    without them, from ``rows`` (``vms``, ``protected_items``, the SQL registrations among
    ``vaults_and_sql``) as one page.

    Disks: with ``disk_check`` rows (and no ``attached_disks``), a managed disk is found unless
    the check says it is absent, sized as the check or else its VM says; with
    ``attached_disks`` rows (the per-disk summary), found when listed there or among the
    special disks."""
    if pages is None:
        pages = [VmPages.from_rows(rows)]
    raw, item_rows, data_disk_rows, per_vm, sql_vms = VmPages.joined(pages)
    kept = np.ones(len(raw), dtype=bool)  # which VM rows stay (their data disks with them)
    repeated = raw["vm_key"].duplicated()
    if repeated.any():  # one row per VM, the first read kept
        raw = raw[~repeated].reset_index(drop=True)
        kept &= ~repeated.to_numpy(bool)
    excluded = excluded_mask(raw, settings)
    if len(raw) and excluded.any():
        raw = raw[~excluded].reset_index(drop=True)
        kept[np.flatnonzero(kept)[excluded.to_numpy(bool)]] = False
    if not kept.all():
        data_disk_rows = data_disk_rows[np.repeat(kept, per_vm)].reset_index(drop=True)
        per_vm = per_vm[kept]

    vault_rows = [r for r in rows.get("vaults_and_sql", [])
                  if r.get("type") == "microsoft.recoveryservices/vaults"]
    vault_names = {r["id"].lower(): r["name"] for r in vault_rows}
    vault_locations = {r["id"].lower(): r["location"] for r in vault_rows}
    sql_vms |= {r.get("vmKey") for r in rows.get("vaults_and_sql", [])
                if r.get("type") == "microsoft.sqlvirtualmachine/sqlvirtualmachines"}

    vms = pd.DataFrame({
        "vm_id": raw["id"], "vm_key": raw["vm_key"], "vm_name": raw["name"],
        "subscription_id": _few(raw["subscriptionId"], lower=True),
        "resource_group": _few(raw["resourceGroup"], lower=True),
        "location": _few(raw["location"], lower=True), "vm_size": _few(raw["vmSize"], fill=""),
        "os_type": _few(raw["osType"], fill=""),
        "image_publisher": _few(raw["imagePublisher"], fill=""),
        "image_offer": _few(raw["imageOffer"], fill=""),
        "image_sku": _few(raw["imageSku"], fill=""),
        "security_type": _few(raw["securityType"], fill=""),
        "ultra_ssd_enabled": _few(raw["ultraSSDEnabled"], lower=True, fill="") == "true",
        "tags": raw["tags"].tolist(),  # tag sets shared as laid out (pages.VmPages)
        "is_sql_vm": raw["vm_key"].isin(sql_vms),
        "os_disk_ephemeral": raw["osDiskPlacement"].fillna("") == "Local",
    })

    # Protection: the counted item, its vault and policy.
    items = _items(item_rows, vault_names, item_states)
    vms = vms.merge(items, on="vm_key", how="left") if len(items.columns) > 1 else vms
    for col in ("item_id", "protection_state", "arg_protection_state", "last_backup_status",
                "last_backup_time", "policy_id", "other_items", "vault_id", "vault"):
        if col not in vms:
            vms[col] = ""
        elif col in FEW_VALUES:
            vms[col] = _few(vms[col], fill="")
        else:
            vms[col] = vms[col].fillna("")
    vms["protected"] = vms["protected"].fillna(False).astype(bool) if "protected" in vms \
        else False
    vms["item_count"] = vms["item_count"].fillna(0) if "item_count" in vms else 0
    facts = pd.DataFrame.from_dict(policies, orient="index")
    policy_key = _few(vms["policy_id"], lower=True)
    for col in ("policy_name", "policy_type", "schedule_type", "consistency_type"):
        mapped = policy_key.map(facts[col]) if col in facts else pd.Series(index=vms.index)
        vms[col] = mapped
    vms["policy_readable"] = vms["policy_type"].notna() & (vms["policy_id"] != "")
    vms["policy_name"] = _fill_with_last_segment(vms["policy_name"], vms["policy_id"])
    for col in ("policy_type", "schedule_type", "consistency_type"):
        vms[col] = vms[col].fillna("")
    vms["vault_location"] = _few(vms["vault_id"], lower=True).map(vault_locations).fillna("")

    # Sizes.
    size = skus.rename(columns={"premium_io": "sku_premium_io"})
    vms["size_key"] = _few(vms["vm_size"], lower=True)
    vms = vms.merge(size, on=["subscription_id", "location", "size_key"], how="left")
    vms["sku_known"] = vms["sku_premium_io"].notna()
    vms["sku_premium_io"] = vms["sku_premium_io"].astype("boolean")
    vms = vms.drop(columns="size_key")

    # Disks: OS disks first, then data disks, one row each.
    raw["vm_key"] = vms["vm_key"]
    disks = pd.concat([_os_disks(raw), _data_disks(data_disk_rows)], ignore_index=True)
    # The row in ``raw`` of each disk's VM: OS disks in the VMs' order, then the data disks.
    vm_row = np.concatenate([np.arange(len(raw)), np.repeat(np.arange(len(raw)), per_vm)])
    checked = "disk_check" in rows and "attached_disks" not in rows
    facts_frame = _disk_facts(rows.get("attached_disks", []), rows.get("special_disks", []))
    # A left join on the disk id (the facts hold each id once): one index lookup per disk.
    at = pd.Index(facts_frame["disk_key"]).get_indexer(disks["disk_key"])
    listed = pd.Series(at >= 0, index=disks.index)
    facts_frame = facts_frame.drop(columns="disk_key").reset_index(drop=True)
    for col in facts_frame.columns:  # -1 is no label: <NA>, upcast as a merge would
        disks[col] = facts_frame[col].reindex(at).to_numpy()
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
    vms["provisioned_gb"] = _provisioned(vms, raw["vm_key"], vm_row, disks["size_gb"])

    return Inventory(conform(vms, VM_COLUMNS), conform(disks, DISK_COLUMNS),
                     int(excluded.sum()) if len(excluded) else 0, int(repeated.sum()))
