"""Seeded generator of realistic demo fleets (DESIGN.md "Fleet file").

The generator decides what each VM is meant to be (which finding it carries, how it is backed up)
from the proportions in `config/demo-fleet.toml`, then builds the ARM objects that make it so:
VMs, disks, vaults, policies, protected items and SQL VM resources, shaped like Microsoft's REST
examples. It never scores anything: what it intended is returned separately by
`generate_fleet_with_truth` (never written into the fleet), so tests can check the project's rule
engine against it.

Same seed and arguments give byte-identical JSON: one `random.Random(seed)`, no global random, no
wall clock (every timestamp is before the spec's fixed `epoch`). 100k VMs take a few seconds.
"""

from __future__ import annotations

import datetime as dt
import gc
import json
import time
import tomllib
from bisect import bisect
from collections.abc import Callable, Sequence
from itertools import accumulate
from pathlib import Path
from random import Random
from typing import Any, NamedTuple

from .arm_types import DISK_TYPE, ITEM_TYPE, POLICY_TYPE, SQLVM_TYPE, VAULT_TYPE, VM_TYPE
from .skus import SIZES, ZONAL_REGIONS, builtin_catalogue

__all__ = [
    "DEFAULT_SPEC_PATH",
    "FINDING_RULES",
    "RULE_SEVERITY",
    "SpecError",
    "VmTruth",
    "generate_fleet",
    "generate_fleet_with_truth",
    "load_spec",
    "write_fleet",
]

DEFAULT_SPEC_PATH = Path(__file__).resolve().parents[1] / "config" / "demo-fleet.toml"

# Severities of the default rule pack (ga-2025-07), as azure/supported-scenarios.md lists them.
# The truth uses them only to say what readiness the generator aimed for.
RULE_SEVERITY: dict[str, str] = {
    "POLICY_STANDARD": "warning",
    "REGION_NOT_SUPPORTED": "blocker",
    "SIZE_NOT_PREMIUM_CAPABLE": "blocker",
    "SIZE_UNKNOWN": "unknown",
    "SIZE_AZURE_BOOST": "blocker",
    "ULTRA_DISK": "blocker",
    "PREMIUM_SSD_V2_DISK": "blocker",
    "EPHEMERAL_OS_DISK": "blocker",
    "SHARED_DISK": "blocker",
    "WRITE_ACCELERATOR": "blocker",
    "UNMANAGED_DISK": "blocker",
    "CONFIDENTIAL_VM": "blocker",
    "DISK_DATA_ACCESS_AUTH": "blocker",
    "DISK_NOT_FOUND": "unknown",
    "HOST_CACHING_READWRITE": "warning",
    "WORKLOAD_DATABASE": "warning",
    "PROTECTION_UNHEALTHY": "warning",
    "PROTECTION_DATA_UNREADABLE": "unknown",
    "OPTED_OUT": "blocker",
    "LINUX_PREPOST_SCRIPTS": "info",
}
# [findings] keys are the rule ids they make fire, in lower case.
FINDING_RULES: dict[str, str] = {
    key.lower(): key
    for key in (
        "REGION_NOT_SUPPORTED", "SIZE_NOT_PREMIUM_CAPABLE", "SIZE_UNKNOWN", "SIZE_AZURE_BOOST",
        "ULTRA_DISK", "PREMIUM_SSD_V2_DISK", "EPHEMERAL_OS_DISK", "SHARED_DISK",
        "WRITE_ACCELERATOR", "UNMANAGED_DISK", "CONFIDENTIAL_VM", "DISK_DATA_ACCESS_AUTH",
        "DISK_NOT_FOUND", "HOST_CACHING_READWRITE", "WORKLOAD_DATABASE", "OPTED_OUT",
    )
}


# Protection labels. ACTIVE ones have an item that counts; NEEDS_VAULT ones need a vault nearby.
ENHANCED, STANDARD, CRASH, DANGLING = "enhanced", "standard_policy", "crash_consistent", \
    "dangling_policy"
UNPROTECTED, STOPPED = "unprotected", "stopped"
ACTIVE = frozenset({ENHANCED, STANDARD, CRASH, DANGLING})
NONE = "none"
# Findings a Standard (V1) policy cannot protect in real Azure: keep them off V1 items.
_NOT_ON_STANDARD = frozenset({"ultra_disk", "premium_ssd_v2_disk", "confidential_vm"})
# Findings that put a disk on a data disk, so the VM needs at least one.
_NEEDS_DATA_DISK = frozenset({"ultra_disk", "premium_ssd_v2_disk", "shared_disk",
                              "write_accelerator", "disk_data_access_auth", "disk_not_found"})
_SIZE_CATEGORY = {
    "size_not_premium_capable": "not_premium_capable", "size_unknown": "unknown",
    "size_azure_boost": "azure_boost", "write_accelerator": "write_accelerator",
    "confidential_vm": "confidential", "ephemeral_os_disk": "ephemeral_os",
    "unmanaged_disk": "unmanaged",
}
# (protection, finding) pairs that make each readiness value occur; guaranteed from
# coverage_from_vms on: ready, already_crash_consistent, not_protected, unknown,
# ready_with_conditions, not_ready.
_COVERAGE = ((ENHANCED, NONE), (CRASH, NONE), (UNPROTECTED, NONE), (DANGLING, NONE),
             (ENHANCED, "host_caching_readwrite"), (ENHANCED, "ultra_disk"))
_GEN2_IMAGE_HINTS = ("gen2", "-g2", "azure-edition", "cvm", "arm64")
_DANGLING_POLICY_NAMES = ("retired-enhanced-2024", "legacy-daily-policy", "DeletedPolicy01")
_REGION_SHORT = {
    "eastus": "eus", "eastus2": "eus2", "westus": "wus", "westus2": "wus2", "westus3": "wus3",
    "centralus": "cus", "northcentralus": "ncus", "southcentralus": "scus", "westeurope": "weu",
    "northeurope": "neu", "uksouth": "uks", "ukwest": "ukw", "francecentral": "frc",
    "germanywestcentral": "gwc", "swedencentral": "sdc", "switzerlandnorth": "chn",
    "southeastasia": "sea", "eastasia": "ea", "japaneast": "jpe", "australiaeast": "aue",
    "canadacentral": "cac", "brazilsouth": "brs", "centralindia": "inc", "koreacentral": "krc",
    "usgovvirginia": "usgv", "usgovarizona": "usga", "usgovtexas": "usgt",
    "chinanorth3": "cnn3", "chinaeast2": "cne2",
}
_TIME_ZONES = {
    "eastus": "Eastern Standard Time", "eastus2": "Eastern Standard Time",
    "centralus": "Central Standard Time", "westus": "Pacific Standard Time",
    "westus2": "Pacific Standard Time", "westeurope": "W. Europe Standard Time",
    "northeurope": "GMT Standard Time", "uksouth": "GMT Standard Time",
    "southeastasia": "Singapore Standard Time", "japaneast": "Tokyo Standard Time",
    "australiaeast": "AUS Eastern Standard Time",
}
# (cap GiB, Premium tier, IOPS, MBps, Standard SSD tier, IOPS, MBps); Standard HDD: 500 IOPS.
_DISK_TIERS = (
    (32, "P4", 120, 25, "E4", 500, 100), (64, "P6", 240, 50, "E6", 500, 100),
    (128, "P10", 500, 100, "E10", 500, 100), (256, "P15", 1100, 125, "E15", 500, 100),
    (512, "P20", 2300, 150, "E20", 500, 100), (1024, "P30", 5000, 200, "E30", 500, 100),
    (2048, "P40", 7500, 250, "E40", 500, 100), (4096, "P50", 7500, 250, "E50", 500, 100),
)


class SpecError(ValueError):
    """Bad demo fleet spec: the message names the file, the [section] key and what is expected."""


class VmTruth(NamedTuple):
    """What the generator built one VM to be (under the default ga-2025-07 rule pack)."""

    readiness: str            # the readiness value the VM was built to have
    rules: frozenset[str]     # every rule id its ARM data makes fire
    protection: str           # [protection] label, "enhanced" for the default
    finding: str              # [findings] key, "none" for a clean VM
    vault_in_region: bool     # its subscription+region has at least one vault
    items: int                # protected items pointing at it (0, 1 or 2)

    @property
    def blockers(self) -> frozenset[str]:
        return frozenset(r for r in self.rules if RULE_SEVERITY[r] == "blocker")


# --------------------------------------------------------------------------------------- spec


def _load_toml(path: Path, source: str) -> dict:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise SpecError(f"demo fleet spec {source}: no such file") from None
    except tomllib.TOMLDecodeError as err:
        raise SpecError(f"demo fleet spec {source}: not valid TOML: {err}") from None


_default_cache: dict[str, Any] | None = None


def _default_spec() -> dict:
    global _default_cache
    if _default_cache is None:
        _default_cache = _load_toml(DEFAULT_SPEC_PATH, str(DEFAULT_SPEC_PATH))
    return _default_cache


def load_spec(path: str | Path) -> dict:
    """Read a demo fleet spec, lay it over the packaged default and validate it."""
    return _resolve_spec(_load_toml(Path(path), str(path)), str(path))


# Sections whose keys are names chosen by the user (replaced whole, not merged key by key).
_REPLACED_SECTIONS = frozenset({"regions", "policies"})


def _resolve_spec(user: dict | None, source: str) -> dict:
    """Merge `user` over the default, section by section, and validate the result."""
    default = _default_spec()
    if user is None:
        merged = default
    else:
        merged = {k: (dict(v) if isinstance(v, dict) else v) for k, v in default.items()}
        for section, value in user.items():
            if section not in default:
                raise SpecError(f"demo fleet spec {source}: unknown section [{section}]; known: "
                                f"{', '.join(sorted(default))}")
            if isinstance(default[section], dict) and not isinstance(value, dict):
                raise SpecError(f"demo fleet spec {source}: [{section}] must be a table of "
                                f"keys, not {value!r}")
            if section in _REPLACED_SECTIONS or not isinstance(value, dict):
                merged[section] = value
                continue
            for key in value:
                if key not in default[section]:
                    raise SpecError(f"demo fleet spec {source}: unknown key [{section}] {key}; "
                                    f"known: {', '.join(default[section])}")
            merged[section] = {**default[section], **value}
    _validate_spec(merged, source)
    return merged


def _validate_spec(spec: dict, source: str) -> None:
    def fail(where: str, what: str) -> SpecError:
        return SpecError(f"demo fleet spec {source}: {where} {what}")

    def number(section: str, key: str, lo: float, hi: float | None = None) -> float:
        value = spec.get(section, {}).get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise fail(f"[{section}] {key}", f"is {value!r}; expected a number")
        if value < lo or (hi is not None and value > hi):
            top = "" if hi is None else f" and {hi}"
            raise fail(f"[{section}] {key}", f"is {value}; expected a number between {lo}{top}")
        return value

    def weights(where: str, table: Any, known: dict | None = None) -> None:
        if not isinstance(table, dict) or not table:
            raise fail(where, "must be a non-empty table of name = weight")
        for name, w in table.items():
            if isinstance(w, bool) or not isinstance(w, int | float) or w < 0:
                raise fail(f"{where} {name}", f"is {w!r}; expected a weight >= 0")
            if known is not None and name not in known:
                raise fail(f"{where} {name}", "is not in the built-in SKU catalogue "
                           "(emulator/skus.py); pick a size listed there")
        if not any(table.values()):
            raise fail(where, "has no weight above 0")

    def int_range(section: str, key: str, lo: int) -> None:
        value = spec.get(section, {}).get(key)
        if (not isinstance(value, list) or len(value) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
                or value[0] < lo or value[0] > value[1]):
            raise fail(f"[{section}] {key}", f"is {value!r}; expected [min, max] with "
                       f"{lo} <= min <= max")

    for key in ("unprotected", "stopped", "standard_policy", "crash_consistent",
                "dangling_policy", "stopped_suspended_share", "unprotected_without_vault"):
        number("protection", key, 0, 1)
    if sum(spec["protection"][k] for k in ("unprotected", "stopped", "standard_policy",
                                          "crash_consistent", "dangling_policy")) > 1:
        raise fail("[protection]", "shares add up to more than 1")
    for key in spec["item_state"]:
        number("item_state", key, 0, 1)
    if spec["item_state"]["ir_pending"] + spec["item_state"]["protection_error"] > 1:
        raise fail("[item_state]", "ir_pending + protection_error add up to more than 1")
    for key in FINDING_RULES:
        number("findings", key, 0, 1)
    if sum(spec["findings"].values()) > 1:
        raise fail("[findings]", "shares add up to more than 1")
    for key in spec["extras"]:
        number("extras", key, 0, 1)
    number("shape", "vaultless_region_share", 0, 1)
    number("shape", "zonal_share", 0, 1)
    number("shape", "vaults_per_region", 1, 50)
    number("disks", "data_caching_read_only", 0, 1)
    number("workload_database", "sql_image_with_sql_resource", 0, 1)
    number("fleet", "coverage_from_vms", 0)
    int_range("shape", "regions_per_subscription", 1)
    int_range("shape", "resource_groups_per_region", 1)
    int_range("disks", "shared_max_shares", 2)
    weights("[regions]", spec["regions"])
    weights("[workload_database]", {k: v for k, v in spec["workload_database"].items()
                                    if k != "sql_image_with_sql_resource"})
    dd = spec["shape"]["data_disk_weights"]
    weights("[shape] data_disk_weights", dict(enumerate(dd)) if isinstance(dd, list) else dd)
    weights("[disks] premium_sku_weights", spec["disks"]["premium_sku_weights"])
    weights("[disks] standard_sku_weights", spec["disks"]["standard_sku_weights"])
    sizes_gb = spec["disks"]["data_disk_sizes_gb"]
    if not isinstance(sizes_gb, list) or not sizes_gb or not all(
            isinstance(s, int) and 4 <= s <= 4096 for s in sizes_gb):
        raise fail("[disks] data_disk_sizes_gb", f"is {sizes_gb!r}; expected GiB sizes 4-4096")
    for category, table in spec["sizes"].items():
        if category == "unknown":
            weights("[sizes.unknown]", table)
            for name in table:
                if name in SIZES:
                    raise fail(f"[sizes.unknown] {name}", "is in the built-in catalogue; unknown "
                               "sizes must be in no catalogue")
        else:
            weights(f"[sizes.{category}]", table, SIZES)
    for category, images in spec["images"].items():
        if not isinstance(images, list) or not images:
            raise fail(f"[[images.{category}]]", "must list at least one image")
        for j, image in enumerate(images):
            if not isinstance(image, dict):
                raise fail(f"[[images.{category}]] #{j + 1}", "must be a table")
            for key in ("publisher", "offer", "sku"):
                if not isinstance(image.get(key), str) or not image[key]:
                    raise fail(f"[[images.{category}]] #{j + 1} {key}", "must be a string")
            if image.get("os") not in ("Windows", "Linux"):
                raise fail(f"[[images.{category}]] #{j + 1} os", "must be Windows or Linux")
            w = image.get("weight")
            if isinstance(w, bool) or not isinstance(w, int | float) or w < 0:
                raise fail(f"[[images.{category}]] #{j + 1} weight", "must be a number >= 0")
    for variant, weight in spec["workload_database"].items():
        category = variant.replace("_image", "")
        if weight and variant.endswith("_image") and category not in spec["images"]:
            raise fail(f"[workload_database] {variant}", f"needs [[images.{category}]]")
        if weight and variant.startswith("sap_") and variant not in spec["images"]:
            raise fail(f"[workload_database] {variant}", f"needs [[images.{variant}]]")
    if spec["workload_database"].get("sql_resource_on_windows") and not any(
            img["os"] == "Windows" for img in spec["images"]["general"]):
        raise fail("[workload_database] sql_resource_on_windows", "needs a Windows image in "
                   "[[images.general]]")
    _validate_policies(spec, fail)
    try:
        _Clock(spec["fleet"]["epoch"])
    except (TypeError, ValueError, AttributeError):
        raise fail("[fleet] epoch", f"is {spec['fleet']['epoch']!r}; expected a date-time such "
                   "as 2026-11-01T00:00:00Z") from None
    if not isinstance(spec["opt_out"].get("tag"), str) or not spec["opt_out"]["tag"]:
        raise fail("[opt_out] tag", "must be a tag name")
    if not isinstance(spec["fleet"].get("subscription_envs"), list) or not all(
            isinstance(e, str) and e for e in spec["fleet"]["subscription_envs"]):
        raise fail("[fleet] subscription_envs", "must be a non-empty list of names")
    if not isinstance(spec["shape"].get("apps"), list) or not spec["shape"]["apps"]:
        raise fail("[shape] apps", "must be a non-empty list of names")


def _validate_policies(spec: dict, fail: Any) -> None:
    policies = spec["policies"]
    if not isinstance(policies, list) or not policies:
        raise fail("[[policies]]", "must list at least one policy template")
    names: set[str] = set()
    kinds: set[str] = set()
    for j, pol in enumerate(policies):
        where = f"[[policies]] #{j + 1}"
        if not isinstance(pol, dict):
            raise fail(where, "must be a table")
        name = pol.get("name")
        if not isinstance(name, str) or not name or "/" in name:
            raise fail(f"{where} name", "must be a policy name without '/'")
        if name.lower() in names:
            raise fail(f"{where} name", f"{name!r} is used twice")
        names.add(name.lower())
        kind = pol.get("kind")
        if kind not in ("standard-daily", "enhanced-daily", "enhanced-hourly"):
            raise fail(f"{where} kind", "must be standard-daily, enhanced-daily or "
                       "enhanced-hourly")
        crash = pol.get("crash_consistent", False)
        if crash and kind == "standard-daily":
            raise fail(f"{where} crash_consistent", "needs an enhanced-* kind (only Enhanced "
                       "policies can be crash-consistent)")
        kinds.add("standard" if kind == "standard-daily" else "crash" if crash else "enhanced")
        t = pol.get("time")
        if not isinstance(t, str) or len(t) != 5 or t[2] != ":":
            raise fail(f"{where} time", "must be HH:MM")
        for key in ("instant_rp_days", "daily_retention_days", "weekly_retention_weeks",
                    "monthly_retention_months", "yearly_retention_years", "weight"):
            v = pol.get(key)
            if isinstance(v, bool) or not isinstance(v, int | float) or v < 0:
                raise fail(f"{where} {key}", "must be a number >= 0")
        if kind == "enhanced-hourly" and pol.get("hourly_interval") not in (4, 6, 8, 12):
            raise fail(f"{where} hourly_interval", "must be 4, 6, 8 or 12")
    missing = {"standard", "enhanced", "crash"} - kinds
    if missing:
        raise fail("[[policies]]", f"needs at least one template of each kind; missing: "
                   f"{', '.join(sorted(missing))}")


# ----------------------------------------------------------------------------------- helpers

_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}
_HHMM = [f"{m // 60:02d}:{m % 60:02d}" for m in range(1440)]
_SS = [f"{s:02d}" for s in range(60)]


class _Picker:
    """Weighted choice from a name -> weight table (entries of weight 0 never picked)."""

    __slots__ = ("cum", "items", "total")

    def __init__(self, table: dict[Any, float] | list[tuple[Any, float]]) -> None:
        pairs = [(k, w) for k, w in (table.items() if isinstance(table, dict) else table) if w > 0]
        self.items = [k for k, _ in pairs]
        self.cum = list(accumulate(w for _, w in pairs))
        self.total = self.cum[-1]

    def pick(self, rnd: Callable[[], float]) -> Any:
        return self.items[bisect(self.cum, rnd() * self.total)]


def _guid(bits: Callable[[int], int]) -> str:
    """A version-4 GUID from the seeded stream (uuid.UUID is 10x slower for the same string)."""
    h = f"{bits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


def _quota(n: int, share: float, at_least_one: bool) -> int:
    k = round(share * n)
    return max(k, 1) if at_least_one and share > 0 else k


def _labels(rng: Random, n: int, shares: dict[str, float], rest: str,
            at_least_one: bool) -> list[str]:
    """n labels, each share a fixed count, shuffled: exact proportions, seed-placed."""
    out: list[str] = []
    for label, share in shares.items():
        out.extend([label] * _quota(n, share, at_least_one))
    if len(out) > n:  # tiny fleets: keep a random subset
        rng.shuffle(out)
        del out[n:]
    out.extend([rest] * (n - len(out)))
    rng.shuffle(out)
    return out


class _Clock:
    """Timestamps a fixed number of seconds before the spec's epoch (never the wall clock)."""

    def __init__(self, epoch: Any) -> None:
        if isinstance(epoch, str):
            epoch = dt.datetime.fromisoformat(epoch.replace("Z", "+00:00"))
        if isinstance(epoch, dt.date) and not isinstance(epoch, dt.datetime):
            epoch = dt.datetime(epoch.year, epoch.month, epoch.day)
        if epoch.tzinfo is None:
            epoch = epoch.replace(tzinfo=dt.UTC)
        self.epoch = int(epoch.timestamp())
        self.date = time.strftime("%Y-%m-%d", time.gmtime(self.epoch))
        self._days: dict[int, str] = {}

    def stamp(self, seconds_before: int) -> str:
        """2026-10-31T22:31:05 (table lookups: strftime is slow at a million calls)."""
        day, rem = divmod(self.epoch - seconds_before, 86400)
        date = self._days.get(day)
        if date is None:
            date = self._days[day] = time.strftime("%Y-%m-%d", time.gmtime(day * 86400))
        minute, sec = divmod(rem, 60)
        return f"{date}T{_HHMM[minute]}:{_SS[sec]}"

    def iso(self, seconds_before: int, frac: int = 0) -> str:
        """Compute's style: 2026-10-31T22:31:05.1234567+00:00."""
        return f"{self.stamp(seconds_before)}.{frac:07d}+00:00"

    def z(self, seconds_before: int, frac: int = 0) -> str:
        """Backup's style: 2026-10-31T22:31:05.123456Z."""
        return f"{self.stamp(seconds_before)}.{frac:06d}Z"


def _disk_tier(size_gb: int) -> tuple:
    for row in _DISK_TIERS:
        if size_gb <= row[0]:
            return row
    return _DISK_TIERS[-1]


# ----------------------------------------------------------------------------------- policies


def _retention(pol: dict, t: str) -> dict:
    out: dict[str, Any] = {}
    if pol["daily_retention_days"]:
        out["dailySchedule"] = {
            "retentionDuration": {"count": pol["daily_retention_days"], "durationType": "Days"},
            "retentionTimes": [t],
        }
    if pol["monthly_retention_months"]:
        out["monthlySchedule"] = {
            "retentionDuration": {"count": pol["monthly_retention_months"],
                                  "durationType": "Months"},
            "retentionScheduleDaily": None,
            "retentionScheduleFormatType": "Weekly",
            "retentionScheduleWeekly": {"daysOfTheWeek": ["Sunday"], "weeksOfTheMonth": ["First"]},
            "retentionTimes": [t],
        }
    out["retentionPolicyType"] = "LongTermRetentionPolicy"
    if pol["weekly_retention_weeks"]:
        out["weeklySchedule"] = {
            "daysOfTheWeek": ["Sunday"],
            "retentionDuration": {"count": pol["weekly_retention_weeks"], "durationType": "Weeks"},
            "retentionTimes": [t],
        }
    if pol["yearly_retention_years"]:
        out["yearlySchedule"] = {
            "monthsOfYear": ["January"],
            "retentionDuration": {"count": pol["yearly_retention_years"], "durationType": "Years"},
            "retentionScheduleDaily": None,
            "retentionScheduleFormatType": "Weekly",
            "retentionScheduleWeekly": {"daysOfTheWeek": ["Sunday"], "weeksOfTheMonth": ["First"]},
            "retentionTimes": [t],
        }
    return out


def _policy(vault_id: str, pol: dict, location: str, date: str) -> dict:
    """One backup policy resource, shaped like ProtectionPolicies_Get / v2-Get-Policy."""
    t = f"{date}T{pol['time']}:00Z"
    kind = pol["kind"]
    props: dict[str, Any] = {
        "backupManagementType": "AzureIaasVM",
        "instantRpRetentionRangeInDays": pol["instant_rp_days"],
        "policyType": "V1" if kind == "standard-daily" else "V2",
        "protectedItemsCount": 0,  # set once every item exists
    }
    if kind != "standard-daily":
        props["resourceGuardOperationRequests"] = None
    props["retentionPolicy"] = _retention(pol, t)
    if kind == "standard-daily":
        props["schedulePolicy"] = {"schedulePolicyType": "SimpleSchedulePolicy",
                                   "scheduleRunFrequency": "Daily", "scheduleRunTimes": [t],
                                   "scheduleWeeklyFrequency": 0}
    elif kind == "enhanced-daily":
        props["schedulePolicy"] = {"dailySchedule": {"scheduleRunTimes": [t]},
                                   "schedulePolicyType": "SimpleSchedulePolicyV2",
                                   "scheduleRunFrequency": "Daily"}
    else:
        props["schedulePolicy"] = {
            "hourlySchedule": {"interval": pol["hourly_interval"],
                               "scheduleWindowDuration": pol.get("hourly_window_hours", 24),
                               "scheduleWindowStartTime": t},
            "schedulePolicyType": "SimpleSchedulePolicyV2",
            "scheduleRunFrequency": "Hourly",
        }
    if pol["crash_consistent"]:
        props["snapshotConsistencyType"] = "OnlyCrashConsistent"
    props["timeZone"] = _TIME_ZONES.get(location, "UTC")
    name = pol["name"]
    return {"name": name, "type": POLICY_TYPE, "id": f"{vault_id}/backupPolicies/{name}",
            "properties": props}


# ----------------------------------------------------------------------------------- the fleet


def generate_fleet(vms: int, subscriptions: int, seed: int, spec: dict | None = None) -> dict:
    """A fleet of `vms` VMs over `subscriptions` subscriptions; `spec` defaults to the packaged
    config/demo-fleet.toml (a partial dict is laid over it)."""
    return generate_fleet_with_truth(vms, subscriptions, seed, spec)[0]


def generate_fleet_with_truth(vms: int, subscriptions: int, seed: int,
                              spec: dict | None = None) -> tuple[dict, dict[str, VmTruth]]:
    """The fleet plus, separately, what each VM was built to be (VM id -> VmTruth)."""
    if isinstance(vms, bool) or not isinstance(vms, int) or vms < 0:
        raise ValueError(f"vms must be a whole number >= 0, not {vms!r}")
    if isinstance(subscriptions, bool) or not isinstance(subscriptions, int) or subscriptions < 1:
        raise ValueError(f"subscriptions must be a whole number >= 1, not {subscriptions!r}")
    builder = _Builder(vms, subscriptions, seed, _resolve_spec(spec, "<spec>"))
    # Hundreds of thousands of new dicts make the cyclic GC rescan a growing heap again and
    # again; none of them form cycles, so pause it for the build.
    paused = gc.isenabled()
    gc.disable()
    try:
        return builder.build()
    finally:
        if paused:
            gc.enable()


def _encoder() -> Callable[[Any], bytes]:
    """Compact UTF-8 JSON as bytes: orjson (installed with Prefect) when present, else the
    stdlib; both give the same bytes for fleets (strings, ints, bools, null)."""
    try:
        import orjson
    except ImportError:  # pragma: no cover - orjson ships with prefect
        enc = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
        return lambda value: enc(value).encode("utf-8")
    return orjson.dumps


def write_fleet(fleet: dict, path: str | Path) -> None:
    """Write compact JSON, resource by resource, so a 100k-VM fleet (~600 MB) never needs a second
    copy as one string. Bytes equal json.dumps(fleet, separators=(",", ":"),
    ensure_ascii=False).encode()."""
    enc = _encoder()
    with Path(path).open("wb") as fh:
        fh.write(b"{")
        for n, (key, value) in enumerate(fleet.items()):
            if n:
                fh.write(b",")
            fh.write(enc(key) + b":")
            if key == "resources" and isinstance(value, list):
                fh.write(b"[")
                for start in range(0, len(value), 2000):
                    chunk = b",".join(enc(r) for r in value[start:start + 2000])
                    fh.write((b"," if start else b"") + chunk)
                fh.write(b"]")
            else:
                fh.write(enc(value))
        fh.write(b"}")


class _Builder:
    """One generation run: labels first (exact counts), then placement, then ARM objects."""

    def __init__(self, n: int, n_subs: int, seed: int, spec: dict) -> None:
        self.n = n
        self.n_subs = n_subs
        self.spec = spec
        self.rng = Random(seed)
        self.rnd = self.rng.random
        self.bits = self.rng.getrandbits
        self.clock = _Clock(spec["fleet"]["epoch"])
        self.org = spec["fleet"]["organisation"]
        self.coverage = n >= spec["fleet"]["coverage_from_vms"]
        self.vaults: list[dict] = []
        self.policies: list[dict] = []
        self.vm_list: list[dict] = []
        self.disks: list[dict] = []
        self.items: list[dict] = []
        self.sqlvms: list[dict] = []
        self.truth: dict[str, VmTruth] = {}
        self.policy_count: dict[str, int] = {}
        self.vault_policies: dict[str, dict[str, dict]] = {}
        self.size_pickers = {cat: _Picker(table) for cat, table in spec["sizes"].items()}
        self.image_pickers = {
            cat: _Picker([(img, img["weight"]) for img in imgs])
            for cat, imgs in spec["images"].items()
        }
        windows = [(img, img["weight"]) for img in spec["images"]["general"]
                   if img["os"] == "Windows"]
        self.windows_picker = _Picker(windows or [(spec["images"]["sql"][0], 1)])
        wd = dict(spec["workload_database"])
        self.sql_resource_share = wd.pop("sql_image_with_sql_resource")
        self.db_picker = _Picker(wd)
        self.dd_picker = _Picker(dict(enumerate(spec["shape"]["data_disk_weights"])))
        self.premium_disk = _Picker(spec["disks"]["premium_sku_weights"])
        self.standard_disk = _Picker(spec["disks"]["standard_sku_weights"])
        self.data_sizes = list(spec["disks"]["data_disk_sizes_gb"])
        self.read_only_share = spec["disks"]["data_caching_read_only"]
        self.shared_range = tuple(spec["disks"]["shared_max_shares"])
        self.zonal_share = spec["shape"]["zonal_share"]
        self.x = dict(spec["extras"])  # per-VM lookups of [extras]
        self.opt_tag, self.opt_value = spec["opt_out"]["tag"], spec["opt_out"]["value"]
        self.suspended_share = spec["protection"]["stopped_suspended_share"]
        self.region_weights = {r: w for r, w in spec["regions"].items() if w > 0}
        pols = spec["policies"]
        self.templates = {
            "standard": _Picker([(p, p["weight"]) for p in pols if p["kind"] == "standard-daily"]),
            "enhanced": _Picker([(p, p["weight"]) for p in pols
                                 if p["kind"] != "standard-daily" and not p["crash_consistent"]]),
            "crash": _Picker([(p, p["weight"]) for p in pols if p["crash_consistent"]]),
        }
        taken = {p["name"].lower() for p in pols}
        self.dangling_names = [nm for nm in _DANGLING_POLICY_NAMES if nm.lower() not in taken]
        if not self.dangling_names:  # the templates use every name: make one up
            self.dangling_names = ["deleted-" + "-".join(sorted(taken))]

    def _int(self, lo: int, hi: int) -> int:
        """Uniform integer in [lo, hi] (random.randint's job, at a fraction of its cost)."""
        return lo + int(self.rnd() * (hi - lo + 1))

    def _choice(self, seq: Sequence[Any]) -> Any:
        return seq[int(self.rnd() * len(seq))]

    # -- labels ------------------------------------------------------------------------------
    def _assign_labels(self) -> tuple[list[str], list[str], list[str], list[bool]]:
        rng, n, spec = self.rng, self.n, self.spec
        prot_shares = {k: spec["protection"][k] for k in
                       (UNPROTECTED, STOPPED, STANDARD, CRASH, DANGLING)}
        prot = _labels(rng, n, prot_shares, ENHANCED, self.coverage)
        finding = _labels(rng, n, dict(spec["findings"]), NONE, self.coverage)
        anchors: set[int] = set()
        if self.coverage:
            self._anchor(prot, finding, anchors, prot_shares)
        self._resolve_conflicts(prot, finding, anchors)
        # Item states among VMs whose item counts; anchors stay healthy so `ready` occurs.
        active = [i for i in range(n) if prot[i] in ACTIVE and i not in anchors]
        st = spec["item_state"]
        states = _labels(rng, len(active), {"IRPending": st["ir_pending"],
                                            "ProtectionError": st["protection_error"]},
                         "Protected", self.coverage)
        state = [""] * n
        for i, s in zip(active, states, strict=True):
            state[i] = s
        for i in anchors:
            if prot[i] in ACTIVE:
                state[i] = "Protected"
        second = [False] * n
        if spec["shape"]["vaults_per_region"] >= 2:
            active_all = [i for i in range(n) if prot[i] in ACTIVE]
            flags = _labels(rng, len(active_all), {"y": st["second_stopped_item"]}, "n",
                            self.coverage)
            for i, flag in zip(active_all, flags, strict=True):
                second[i] = flag == "y"
        return prot, finding, state, second

    def _anchor(self, prot: list[str], finding: list[str], anchors: set[int],
                prot_shares: dict[str, float]) -> None:
        """Make sure each (protection, finding) pair in _COVERAGE exists, by swapping labels."""
        n = self.n
        for p, f in _COVERAGE:
            if p != ENHANCED and not prot_shares.get(p):
                continue
            if f != NONE and not self.spec["findings"].get(f):
                continue
            hit = next((i for i in range(n) if prot[i] == p and finding[i] == f
                        and i not in anchors), None)
            if hit is None:
                # j carries the finding; k has the protection; swap their protections.
                j = next((i for i in range(n) if finding[i] == f and i not in anchors), None)
                k = next((i for i in range(n) if prot[i] == p and finding[i] == NONE
                          and i not in anchors and i != j), None)
                if k is None:
                    k = next((i for i in range(n) if prot[i] == p and i not in anchors
                              and i != j), None)
                if j is None or k is None:
                    continue
                prot[j], prot[k] = prot[k], prot[j]
                hit = j
            anchors.add(hit)

    def _resolve_conflicts(self, prot: list[str], finding: list[str], anchors: set[int]) -> None:
        """Sovereign VMs are unprotected; Ultra/PremiumV2/confidential VMs are not on V1."""
        pools: dict[str, list[int]] = {}
        for i in range(self.n - 1, -1, -1):
            if finding[i] == NONE and i not in anchors:
                pools.setdefault(prot[i], []).append(i)
        for i in range(self.n):
            f = finding[i]
            if i in anchors:
                continue
            if f == "region_not_supported" and prot[i] != UNPROTECTED:
                wanted: tuple[str, ...] = (UNPROTECTED,)
            elif f in _NOT_ON_STANDARD and prot[i] == STANDARD:
                wanted = (ENHANCED, UNPROTECTED, CRASH)
            else:
                continue
            for label in wanted:
                if pools.get(label):
                    k = pools[label].pop()
                    prot[i], prot[k] = prot[k], prot[i]
                    pools.setdefault(prot[k], []).append(k)
                    break
            else:
                prot[i] = UNPROTECTED

    # -- estate: subscriptions, regions, resource groups, vaults -------------------------------
    def _estate(self) -> None:
        rng, spec = self.rng, self.spec
        envs = spec["fleet"]["subscription_envs"]
        tenant = _guid(self.bits)
        self.subs: list[dict] = []
        env_counts: dict[str, int] = {}
        lo, hi = spec["shape"]["regions_per_subscription"]
        rg_lo, rg_hi = spec["shape"]["resource_groups_per_region"]
        apps = spec["shape"]["apps"]
        self.rgs: dict[tuple[int, str], list[tuple[str, str]]] = {}
        self.region_vaults: dict[tuple[int, str], list[str]] = {}
        # Per subscription: regions with vaults, and regions without (None when it has none).
        self.sub_pickers: list[tuple[_Picker, _Picker | None]] = []
        vaultless = spec["shape"]["vaultless_region_share"]
        per_region = int(spec["shape"]["vaults_per_region"])
        for s in range(self.n_subs):
            env = envs[s % len(envs)]
            env_counts[env] = env_counts.get(env, 0) + 1
            self.subs.append({"subscriptionId": _guid(self.bits),
                              "displayName": f"{self.org}-{env}-{env_counts[env]:02d}",
                              "tenantId": tenant, "state": "Enabled", "_env": env,
                              "_num": env_counts[env]})
            pool = dict(self.region_weights)
            chosen: list[str] = []
            for _ in range(min(len(pool), rng.randint(lo, hi))):
                chosen.append(_Picker(pool).pick(self.rnd))
                del pool[chosen[-1]]
            # The primary region always has vaults; others may have none.
            vaulted = [r for idx, r in enumerate(chosen) if idx == 0 or self.rnd() >= vaultless]
            for r in chosen:
                short = _REGION_SHORT.get(r, r[:4])
                picked = rng.sample(apps, min(len(apps), rng.randint(rg_lo, rg_hi)))
                self.rgs[(s, r)] = [(f"rg-{a}-{env}-{short}", a) for a in picked]
            for r in vaulted:
                self._make_vaults(s, r, per_region)
            bare = [r for r in chosen if r not in vaulted]
            self.sub_pickers.append((
                _Picker({r: self.region_weights[r] for r in vaulted}),
                _Picker({r: self.region_weights[r] for r in bare}) if bare else None))

    def _make_vaults(self, s: int, region: str, count: int) -> None:
        """`count` vaults in one subscription+region, shaped like GETVault, each with every
        policy template."""
        sub = self.subs[s]
        env, num = sub["_env"], sub["_num"]
        short = _REGION_SHORT.get(region, region[:4])
        rg = f"rg-backup-{env}-{short}"
        made: list[str] = []
        for v in range(count):
            name = f"rsv-{env}{num:02d}-{short}-{v + 1:02d}"
            vid = (f"/subscriptions/{sub['subscriptionId']}/resourceGroups/{rg}/providers/"
                   f"Microsoft.RecoveryServices/vaults/{name}")
            stamp = self.clock.z(self._int(86400, 400 * 86400), self._int(0, 999) * 1000)
            stamp = stamp[:23].replace(":", "%3A") + "Z"
            redundancy = self._choice(("GeoRedundant", "GeoRedundant", "ZoneRedundant",
                                       "LocallyRedundant"))
            crr = redundancy == "GeoRedundant" and self.rnd() < 0.3
            self.vaults.append({
                "name": name,
                "type": VAULT_TYPE,
                "etag": f"W/\"datetime'{stamp}'\"",
                "id": vid,
                "location": region,
                "properties": {
                    "privateEndpointStateForBackup": "None",
                    "privateEndpointStateForSiteRecovery": "None",
                    "provisioningState": "Succeeded",
                    "publicNetworkAccess": "Enabled",
                    "redundancySettings": {
                        "crossRegionRestore": "Enabled" if crr else "Disabled",
                        "standardTierStorageRedundancy": redundancy,
                    },
                    "secureScore": "None",
                    "securitySettings": {
                        "immutabilitySettings": {"state": "Disabled"},
                        "softDeleteSettings": {"enhancedSecurityState": "Enabled",
                                               "softDeleteRetentionPeriodInDays": 14,
                                               "softDeleteState": "Enabled"},
                    },
                },
                "sku": {"name": "RS0", "tier": "Standard"},
                "tags": {"env": env, "owner": f"backup-admins@{self.org}.com",
                         "purpose": "backup"},
            })
            pols: dict[str, dict] = {}
            for tpl in self.spec["policies"]:
                pol = _policy(vid, tpl, region, self.clock.date)
                self.policies.append(pol)
                pols[tpl["name"]] = pol
            self.vault_policies[vid] = pols
            made.append(vid)
        self.region_vaults[(s, region)] = made

    # -- build -------------------------------------------------------------------------------
    def build(self) -> tuple[dict, dict[str, VmTruth]]:
        self._estate()
        prot, finding, state, second = self._assign_labels()
        # Exactly this many unprotected VMs live where their subscription has no vault (if it
        # has such a region); every other VM lives in a region with vaults.
        unprotected = [i for i in range(self.n) if prot[i] == UNPROTECTED]
        bare_flags = _labels(self.rng, len(unprotected),
                             {"y": self.spec["protection"]["unprotected_without_vault"]}, "n",
                             False)
        no_vault = dict(zip(unprotected, bare_flags, strict=True))
        width = max(5, len(str(self.n)))
        sovereign = self.spec["shape"]["sovereign_region"]
        for i in range(self.n):
            p, f = prot[i], finding[i]
            s = int(self.rnd() * self.n_subs)
            if f == "region_not_supported":
                region = sovereign
                rg = f"rg-govpilot-{self.subs[s]['_env']}-{_REGION_SHORT.get(region, region[:4])}"
                app = "govpilot"
            else:
                with_vault, without = self.sub_pickers[s]
                picker = without if without and no_vault.get(i) == "y" else with_vault
                region = picker.pick(self.rnd)
                rg, app = self._choice(self.rgs[(s, region)])
            self._vm(i, s, region, rg, app, p, f, state[i], second[i], width)
        for pol in self.policies:
            pol["properties"]["protectedItemsCount"] = self.policy_count.get(pol["id"], 0)
        fleet: dict[str, Any] = {
            "subscriptions": [{k: v for k, v in sub.items() if not k.startswith("_")}
                              for sub in self.subs],
            "managementGroups": self._management_groups(),
            "resources": (self.vaults + self.policies + self.vm_list + self.disks + self.items
                          + self.sqlvms),
        }
        if self.spec["fleet"]["include_resource_skus"]:
            fleet["resourceSkus"] = builtin_catalogue(sorted({vm["location"]
                                                              for vm in self.vm_list}))
        return fleet, self.truth

    def _management_groups(self) -> list[dict]:
        """A root group with every subscription, then prod / nonprod / platform below it."""
        groups = [{"name": f"mg-{self.org}",
                   "subscriptions": [s["subscriptionId"] for s in self.subs]}]
        for name, envs in (("mg-prod", ("prod",)), ("mg-nonprod", ("dev", "test")),
                           ("mg-platform", ("shared",))):
            ids = [s["subscriptionId"] for s in self.subs if s["_env"] in envs]
            if ids:
                groups.append({"name": name, "subscriptions": ids})
        others = [s["subscriptionId"] for s in self.subs
                  if s["_env"] not in ("prod", "dev", "test", "shared")]
        if others:
            groups.append({"name": "mg-other", "subscriptions": others})
        return groups

    # -- one VM ------------------------------------------------------------------------------
    def _image_and_size(self, f: str) -> tuple[dict, str, bool]:
        """The VM's marketplace image and size, as its finding needs; and whether it gets a
        SQL VM resource."""
        rnd, x = self.rnd, self.x
        sql_resource = False
        general = False
        if f == "workload_database":
            variant = self.db_picker.pick(rnd)
            if variant == "sql_resource_on_windows":
                image = self.windows_picker.pick(rnd)
                sql_resource = True
            else:
                image = self.image_pickers[variant.replace("_image", "")].pick(rnd)
                sql_resource = variant == "sql_image" and rnd() < self.sql_resource_share
        elif f == "confidential_vm":
            image = self.image_pickers["confidential"].pick(rnd)
        else:
            image = self.image_pickers["general"].pick(rnd)
            general = True
        category = _SIZE_CATEGORY.get(f, "general")
        if (f == NONE and general and image["os"] == "Linux" and "arm" in self.size_pickers
                and "arm" in self.image_pickers and rnd() < x["arm_share_of_linux"]):
            category = "arm"
            image = self.image_pickers["arm"].pick(rnd)
        return image, self.size_pickers[category].pick(rnd), sql_resource

    def _vm(self, i: int, s: int, region: str, rg: str, app: str, p: str, f: str, state: str,
            second: bool, width: int) -> None:
        rnd, x = self.rnd, self.x
        sub = self.subs[s]
        sid, env = sub["subscriptionId"], sub["_env"]
        short = _REGION_SHORT.get(region, region[:4])
        name = f"{app}-{env}-{short}-{i + 1:0{width}d}"
        vm_id = f"/subscriptions/{sid}/resourceGroups/{rg}/providers/{VM_TYPE}/{name}"
        rules: set[str] = {FINDING_RULES[f]} if f != NONE else set()

        image, size, sql_resource = self._image_and_size(f)
        facts = SIZES.get(size)
        linux = image["os"] == "Linux"
        if linux:
            rules.add("LINUX_PREPOST_SCRIPTS")
        if facts and facts["hyperv_generations"] == "V1":
            hyperv = "V1"
        elif (facts and facts["hyperv_generations"] == "V2") or any(
                t in image["sku"] for t in _GEN2_IMAGE_HINTS):
            hyperv = "V2"
        else:
            hyperv = "V2" if rnd() < 0.5 else "V1"
        security = "Standard"
        if f == "confidential_vm":
            security, hyperv = "ConfidentialVM", "V2"
        elif (p != STANDARD and hyperv == "V2" and f != "unmanaged_disk"
              and rnd() < x["trusted_launch"]):
            security = "TrustedLaunch"
        zone = None
        if region in ZONAL_REGIONS and (f in ("ultra_disk", "premium_ssd_v2_disk")
                                        or rnd() < self.zonal_share):
            zone = str(self._int(1, 3))
        created = self.clock.stamp(self._int(30 * 86400, 1500 * 86400))

        storage, read_write = self._storage(
            name, sid, rg, region, zone, vm_id, image, facts, f, hyperv, security, created, short)
        if read_write:
            rules.add("HOST_CACHING_READWRITE")

        tags = {"env": env, "owner": f"{app}-team@{self.org}.com", "app": app,
                "criticality": self._choice(_CRITICALITY_PROD if env == "prod"
                                            else _CRITICALITY_OTHER)}
        if f == "opted_out":
            tags[self.opt_tag] = self.opt_value
        elif f == NONE and rnd() < x["opt_out_tag_other_value"]:
            tags[self.opt_tag] = "crash"

        computer = name if linux else f"{app[:6]}{env[0]}{i + 1:0{width}d}"[:15]
        if linux:
            os_profile = {"computerName": computer, "adminUsername": "azureuser",
                          "linuxConfiguration": {"disablePasswordAuthentication": True,
                                                 "provisionVMAgent": True},
                          "secrets": [], "allowExtensionOperations": True}
        else:
            os_profile = {"computerName": computer, "adminUsername": "azureadmin",
                          "windowsConfiguration": {"provisionVMAgent": True,
                                                   "enableAutomaticUpdates": True},
                          "secrets": [], "allowExtensionOperations": True}
        props: dict[str, Any] = {"vmId": _guid(self.bits), "hardwareProfile": {"vmSize": size}}
        if f == "ultra_disk" or (f == NONE and rnd() < x["ultra_enabled_without_ultra_disk"]):
            props["additionalCapabilities"] = {"ultraSSDEnabled": True}
        props["storageProfile"] = storage
        props["osProfile"] = os_profile
        if security != "Standard":
            props["securityProfile"] = {"uefiSettings": {"secureBootEnabled": True,
                                                         "vTpmEnabled": True},
                                        "securityType": security}
        elif rnd() >= x["omit_security_profile"]:
            props["securityProfile"] = {"securityType": "Standard"}
        props["networkProfile"] = {"networkInterfaces": [{
            "id": f"/subscriptions/{sid}/resourceGroups/{rg}/providers/"
                  f"Microsoft.Network/networkInterfaces/{name}-nic01"}]}
        props["diagnosticsProfile"] = {"bootDiagnostics": {"enabled": True}}
        props["provisioningState"] = "Succeeded"
        props["timeCreated"] = f"{created}.{int(rnd() * 10_000_000):07d}+00:00"
        vm: dict[str, Any] = {"name": name, "id": vm_id, "type": VM_TYPE, "location": region,
                              "tags": tags}
        if zone:
            vm["zones"] = [zone]
        vm["etag"] = f"\"{self._int(1, 12)}\""
        vm["properties"] = props
        self.vm_list.append(vm)

        if sql_resource:
            rules.add("WORKLOAD_DATABASE")
            self.sqlvms.append(self._sqlvm(sid, rg, name, region, vm_id, image))

        vaults = self.region_vaults.get((s, region), [])
        n_items = self._protect(p, state, second, vaults, rg, name, vm_id, rules)
        if not n_items:
            p = UNPROTECTED  # no vault to protect it in (placement avoids this)
        self.truth[vm_id] = VmTruth(
            readiness=_intended_readiness(p, rules), rules=frozenset(rules), protection=p,
            finding=f, vault_in_region=bool(vaults), items=n_items)

    def _storage(self, name: str, sid: str, rg: str, region: str, zone: str | None, vm_id: str,
                 image: dict, facts: dict | None, f: str, hyperv: str, security: str,
                 created: str, short: str) -> tuple[dict, bool]:
        """storageProfile plus the disk resources behind it; True if any caching is ReadWrite."""
        rnd, x = self.rnd, self.x
        premium = facts["premium_io"] if facts else True
        disk_picker = self.premium_disk if premium else self.standard_disk
        os_rw = f == "host_caching_readwrite" or (
            f not in (NONE, "ephemeral_os_disk") and rnd() < x["readwrite_os_caching_on_flagged"])
        n_dd = min(self.dd_picker.pick(rnd), facts["max_data_disks"] if facts else 8)
        if f in _NEEDS_DATA_DISK or f == "host_caching_readwrite":
            n_dd = max(n_dd, 1)
        special = int(rnd() * n_dd) if n_dd else -1  # the data disk a finding lives on
        disk_base = f"/subscriptions/{sid}/resourceGroups/{rg}/providers/{DISK_TYPE}/"
        ref_base = disk_base
        if rnd() < x["disk_id_case_mismatch"]:
            ref_base = f"/subscriptions/{sid}/resourceGroups/{rg.upper()}/providers/{DISK_TYPE}/"
        blob = ""
        if f == "unmanaged_disk":
            account = "".join(c for c in f"{self.org}{short}".lower() if c.isalnum())[:16]
            blob = f"https://{account}{self.bits(32):08x}.blob.core.windows.net"

        os_name = f"{name}_OsDisk_1_{self.bits(128):032x}"
        os_size = 30 if image["os"] == "Linux" else 127
        os_disk: dict[str, Any] = {"osType": image["os"], "name": os_name,
                                   "createOption": "FromImage",
                                   "caching": "ReadWrite" if os_rw else "ReadOnly"}
        if f == "ephemeral_os_disk":
            os_disk["diffDiskSettings"] = {"option": "Local", "placement": "CacheDisk"}
            os_disk["managedDisk"] = {"storageAccountType": "Standard_LRS"}
        elif f == "unmanaged_disk":
            os_disk["vhd"] = {"uri": f"{blob}/vhds/{name}-osdisk.vhd"}
        else:
            os_sku = disk_picker.pick(rnd)
            md: dict[str, Any] = {"storageAccountType": os_sku, "id": ref_base + os_name}
            if security == "ConfidentialVM":
                md["securityProfile"] = {"securityEncryptionType": "VMGuestStateOnly"}
            os_disk["managedDisk"] = md
            self._disk(os_name, disk_base, region, zone, vm_id, os_sku, os_size, created,
                       os_type=image["os"], hyperv=hyperv, image=image, sid=sid,
                       security=security)
        os_disk["diskSizeGB"] = os_size
        if facts and facts["write_accelerator"]:
            os_disk["writeAcceleratorEnabled"] = False
        os_disk["deleteOption"] = "Detach" if f == "unmanaged_disk" else "Delete"

        data_disks: list[dict] = []
        decoy_shares = f == NONE and n_dd and rnd() < x["explicit_max_shares_one"]
        decoy_daa = f == NONE and n_dd and rnd() < x["data_access_auth_none"]
        for lun in range(n_dd):
            dname = f"{name}-data-{lun:02d}"
            size_gb = self._choice(self.data_sizes)
            caching = "ReadOnly" if rnd() < self.read_only_share else "None"
            sku = disk_picker.pick(rnd)
            wa, max_shares, daa, exists = False, None, None, True
            if lun == special:
                if f == "ultra_disk":
                    sku, caching = "UltraSSD_LRS", "None"
                elif f == "premium_ssd_v2_disk":
                    sku, caching = "PremiumV2_LRS", "None"
                elif f == "shared_disk":
                    sku, caching = "Premium_LRS", "None"
                    max_shares = self._int(*self.shared_range)
                elif f == "write_accelerator":
                    sku, caching, wa = "Premium_LRS", "None", True
                elif f == "disk_data_access_auth":
                    daa = "AzureActiveDirectory"
                elif f == "disk_not_found":
                    exists = False
                elif f == "host_caching_readwrite":
                    caching = "ReadWrite"
                elif decoy_shares:
                    max_shares = 1
                elif decoy_daa:
                    daa = "None"
            entry: dict[str, Any] = {"lun": lun, "name": dname,
                                     "createOption": "Empty" if lun % 3 else "Attach",
                                     "caching": caching}
            if f == "unmanaged_disk":
                entry["vhd"] = {"uri": f"{blob}/vhds/{dname}.vhd"}
            else:
                entry["managedDisk"] = {"storageAccountType": sku, "id": ref_base + dname}
            entry["diskSizeGB"] = size_gb
            entry["toBeDetached"] = False
            entry["writeAcceleratorEnabled"] = wa
            entry["deleteOption"] = "Detach"
            data_disks.append(entry)
            if f != "unmanaged_disk" and exists:
                self._disk(dname, disk_base, region, zone, vm_id, sku, size_gb, created,
                           max_shares=max_shares, daa=daa)
        image_ref = {"publisher": image["publisher"], "offer": image["offer"],
                     "sku": image["sku"], "version": "latest"}
        profile = {"imageReference": image_ref, "osDisk": os_disk, "dataDisks": data_disks,
                   "diskControllerType": "SCSI"}
        return profile, os_rw

    def _disk(self, name: str, base: str, region: str, zone: str | None, vm_id: str, sku: str,
              size_gb: int, created: str, *, os_type: str | None = None, hyperv: str = "V2",
              image: dict | None = None, sid: str = "", security: str = "Standard",
              max_shares: int | None = None, daa: str | None = None) -> None:
        """One managed disk resource, shaped like Disk_Get, attached to (managedBy) the VM."""
        rnd = self.rnd
        _cap, p_tier, p_iops, p_mbps, e_tier, e_iops, e_mbps = _disk_tier(size_gb)
        if sku.startswith("Premium_"):
            iops, mbps, tier = p_iops, p_mbps, p_tier
        elif sku.startswith("StandardSSD"):
            iops, mbps, tier = e_iops, e_mbps, e_tier
        elif sku in ("UltraSSD_LRS", "PremiumV2_LRS"):
            iops, mbps, tier = self._choice((3000, 5000, 10000, 20000)), 125 * self._int(1, 4), ""
        else:
            iops, mbps, tier = 500, 60, ""
        if os_type and image:
            props: dict[str, Any] = {
                "osType": os_type,
                "hyperVGeneration": hyperv,
                "creationData": {"createOption": "FromImage", "imageReference": {"id": (
                    f"/Subscriptions/{sid}/Providers/Microsoft.Compute/Locations/{region}/"
                    f"Publishers/{image['publisher']}/ArtifactTypes/VMImage/Offers/"
                    f"{image['offer']}/Skus/{image['sku']}/Versions/latest")}},
            }
            if security == "TrustedLaunch":
                props["securityProfile"] = {"securityType": "TrustedLaunch"}
            elif security == "ConfidentialVM":
                props["securityProfile"] = {
                    "securityType": "ConfidentialVM_VMGuestStateOnlyEncryptedWithPlatformKey"}
        else:
            props = {"creationData": {"createOption": "Empty"}}
        props.update({
            "diskSizeGB": size_gb,
            "diskIOPSReadWrite": iops,
            "diskMBpsReadWrite": mbps,
            "encryption": {"type": "EncryptionAtRestWithPlatformKey"},
            "networkAccessPolicy": "AllowAll",
            "publicNetworkAccess": "Enabled",
            "timeCreated": f"{created}.{int(rnd() * 10_000_000):07d}+00:00",
            "provisioningState": "Succeeded",
            "diskState": "Attached",
            "diskSizeBytes": size_gb * 1073741824,
            "uniqueId": _guid(self.bits),
        })
        if tier:
            props["tier"] = tier
        if max_shares is not None:
            props["maxShares"] = max_shares
        if daa is not None:
            props["dataAccessAuthMode"] = daa
        disk: dict[str, Any] = {"name": name, "id": base + name, "type": DISK_TYPE,
                                "location": region}
        if zone and not sku.endswith("_ZRS"):
            disk["zones"] = [zone]
        disk["managedBy"] = vm_id
        disk["sku"] = {"name": sku, "tier": _SKU_TIER.get(sku, "Standard")}
        disk["properties"] = props
        self.disks.append(disk)

    def _sqlvm(self, sid: str, rg: str, name: str, region: str, vm_id: str,
               image: dict) -> dict:
        """A Microsoft.SqlVirtualMachine resource registering SQL Server on the VM."""
        from_image = image["publisher"] == "MicrosoftSQLServer"
        return {
            "id": (f"/subscriptions/{sid}/resourceGroups/{rg}/providers/"
                   f"{SQLVM_TYPE}/{name}"),
            "name": name,
            "type": SQLVM_TYPE,
            "location": region,
            "properties": {
                "virtualMachineResourceId": vm_id,
                "provisioningState": "Succeeded",
                "sqlImageOffer": image["offer"].upper() if from_image else "SQL2019-WS2019",
                "sqlServerLicenseType": self._choice(("PAYG", "AHUB")),
                "sqlManagement": "Full" if from_image else "LightWeight",
                "leastPrivilegeMode": "Enabled",
                "sqlImageSku": (image["sku"].split("-")[0].capitalize() if from_image
                                else "Standard"),
            },
        }

    # -- protection --------------------------------------------------------------------------
    def _protect(self, p: str, state: str, second: bool, vaults: list[str], rg: str, vm: str,
                 vm_id: str, rules: set[str]) -> int:
        """Create the VM's protected item(s) as its protection label says; returns how many."""
        if p == UNPROTECTED or not vaults:
            return 0
        vi = int(self.rnd() * len(vaults))
        vault_id = vaults[vi]
        if p == STOPPED:
            # Stopped items keep their (Enhanced, app-consistent) policy, as ARM shows them
            # after "stop backup, retain data": no reading of them can make a rule fire.
            stopped = "BackupsSuspended" if self.rnd() < self.suspended_share \
                else "ProtectionStopped"
            self._item(vault_id, rg, vm, vm_id, stopped, self._pick_policy(vault_id, "enhanced"))
            return 1
        if p == DANGLING:
            name = self._choice(self.dangling_names)
            policy = {"id": f"{vault_id}/backupPolicies/{name}", "name": name, "v": "V2"}
            rules.add("PROTECTION_DATA_UNREADABLE")
        else:
            policy = self._pick_policy(vault_id, _TEMPLATE_KIND[p])
            if p == STANDARD:
                rules.add("POLICY_STANDARD")
        if state in ("IRPending", "ProtectionError"):
            rules.add("PROTECTION_UNHEALTHY")
        self._item(vault_id, rg, vm, vm_id, state, policy)
        if second and len(vaults) > 1:
            other = (vi + 1 + int(self.rnd() * (len(vaults) - 1))) % len(vaults)
            self._item(vaults[other], rg, vm, vm_id, "ProtectionStopped",
                       self._pick_policy(vaults[other], "enhanced"))
            return 2
        return 1

    def _pick_policy(self, vault_id: str, kind: str) -> dict:
        tpl = self.templates[kind].pick(self.rnd)
        pol = self.vault_policies[vault_id][tpl["name"]]
        return {"id": pol["id"], "name": pol["name"], "v": pol["properties"]["policyType"]}

    def _item(self, vault_id: str, rg: str, vm: str, vm_id: str, state: str,
              policy: dict) -> None:
        """One protected item, shaped like Compute_ProtectedItem_Get."""
        clock = self.clock
        container = f"iaasvmcontainerv2;{rg.lower()};{vm.lower()}"
        item_name = f"VM;{container}"
        props: dict[str, Any] = {"backupManagementType": "AzureIaasVM",
                                 "containerName": container, "friendlyName": vm}
        hour, day = 3600, 86400
        last: int | None
        if state == "Protected":
            health, status, last_status = "Passed", "Healthy", "Completed"
            last = self._int(hour, 26 * hour)
        elif state == "ProtectionError":
            health, status, last_status = "ActionRequired", "Unhealthy", "Failed"
            last = self._int(2 * day, 10 * day)
        elif state == "IRPending":  # no backup yet: ARM leaves the backup fields out
            health, status, last_status, last = "Passed", "Healthy", "", None
        elif state == "BackupsSuspended":
            health, status, last_status = "ActionRequired", "Unhealthy", "Completed"
            last = self._int(7 * day, 60 * day)
        else:  # ProtectionStopped, data retained
            health, status, last_status = "Passed", "Healthy", "Completed"
            last = self._int(30 * day, 400 * day)
        props["healthStatus"] = health
        if last is not None:
            props["lastBackupStatus"] = last_status
            props["lastBackupTime"] = clock.z(last, self._int(0, 999_999))
            props["lastRecoveryPoint"] = clock.z(last + self._int(60, 900),
                                                 self._int(0, 999_999))
        props["policyId"] = policy["id"]
        props["policyName"] = policy["name"]
        props["policyType"] = policy["v"]
        if state != "ProtectionStopped":  # a stopped item no longer counts for its policy
            self.policy_count[policy["id"]] = self.policy_count.get(policy["id"], 0) + 1
        props["protectedItemDataId"] = str(self._int(10 ** 17, 10 ** 18 - 1))
        props["protectedItemType"] = VM_TYPE
        props["protectionState"] = state
        props["protectionStatus"] = status
        props["sourceResourceId"] = vm_id
        props["virtualMachineId"] = vm_id
        props["workloadType"] = "VM"
        props["isScheduledForDeferredDelete"] = False
        if last is not None:
            count = self._int(5, 60)
            props["extendedInfo"] = {"oldestRecoveryPoint": clock.z(last + count * day),
                                     "recoveryPointCount": count, "policyInconsistent": False}
        else:
            props["extendedInfo"] = {"recoveryPointCount": 0, "policyInconsistent": False}
        self.items.append({
            "name": item_name,
            "type": ITEM_TYPE,
            "id": (f"{vault_id}/backupFabrics/Azure/protectionContainers/IaasVMContainer;"
                   f"{container}/protectedItems/{item_name}"),
            "properties": props,
        })


_TEMPLATE_KIND = {ENHANCED: "enhanced", STANDARD: "standard", CRASH: "crash"}
_CRITICALITY_PROD = ("low", "medium", "medium", "high", "mission-critical")
_CRITICALITY_OTHER = ("low", "low", "medium")
_SKU_TIER = {"Premium_LRS": "Premium", "Premium_ZRS": "Premium", "PremiumV2_LRS": "Premium",
             "UltraSSD_LRS": "Ultra", "StandardSSD_LRS": "StandardSSD",
             "StandardSSD_ZRS": "StandardSSD", "Standard_LRS": "Standard"}


def _intended_readiness(protection: str, rules: set[str]) -> str:
    """The readiness the generator aimed for: the documented order applied to its own labels
    (what it built), not an evaluation of ARM data."""
    if protection in (UNPROTECTED, STOPPED):
        return "not_protected"
    if protection == CRASH:
        return "already_crash_consistent"
    severities = {RULE_SEVERITY[r] for r in rules}
    for severity, readiness in (("blocker", "not_ready"), ("unknown", "unknown"),
                                ("warning", "ready_with_conditions")):
        if severity in severities:
            return readiness
    return "ready"
