"""The emulator's built-in Resource SKU catalogue (GET .../providers/Microsoft.Compute/skus).

A fleet file may carry its own `resourceSkus`; when it does not, the emulator answers with this
catalogue for the regions the fleet's VMs use. Entries have exactly the shape of the items in
Microsoft's ListAvailableResourceSkus example (api-version 2021-07-01), one entry per (size,
region). The facts are the published ones for each size, rounded where Azure's own numbers vary by
region; what matters to the tool is `PremiumIO` and that the size exists at all.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["SIZES", "ZONAL_REGIONS", "builtin_catalogue", "catalogue_for_fleet"]

# Regions with availability zones (public and US Gov); zone lists come back empty elsewhere.
ZONAL_REGIONS: frozenset[str] = frozenset({
    "eastus", "eastus2", "centralus", "southcentralus", "westus2", "westus3", "canadacentral",
    "brazilsouth", "westeurope", "northeurope", "uksouth", "francecentral", "germanywestcentral",
    "swedencentral", "switzerlandnorth", "norwayeast", "italynorth", "polandcentral",
    "southeastasia", "eastasia", "japaneast", "koreacentral", "australiaeast", "centralindia",
    "southafricanorth", "uaenorth", "qatarcentral", "israelcentral", "usgovvirginia",
})

# name, family, vCPUs, MemoryGB, PremiumIO, MaxDataDiskCount, HyperVGenerations,
# temp (resource) disk GiB, ACUs, CPU architecture, vCPUs per core, extra capabilities
_Row = tuple[str, str, int, float, bool, int, str, int, int, str, int, dict[str, str]]
_TABLE: tuple[_Row, ...] = (
    ("Standard_A1_v2", "standardAv2Family", 1, 2, False, 2, "V1,V2", 10, 100, "x64", 1, {}),
    ("Standard_A2_v2", "standardAv2Family", 2, 4, False, 4, "V1,V2", 20, 100, "x64", 1, {}),
    ("Standard_B2s", "standardBSFamily", 2, 4, True, 4, "V1,V2", 8, 160, "x64", 1, {}),
    ("Standard_B2ms", "standardBSFamily", 2, 8, True, 4, "V1,V2", 16, 160, "x64", 1, {}),
    ("Standard_B4ms", "standardBSFamily", 4, 16, True, 8, "V1,V2", 32, 160, "x64", 1, {}),
    ("Standard_D2_v3", "standardDv3Family", 2, 8, False, 4, "V1,V2", 50, 160, "x64", 2, {}),
    ("Standard_D4_v3", "standardDv3Family", 4, 16, False, 8, "V1,V2", 100, 160, "x64", 2, {}),
    ("Standard_D2s_v3", "standardDSv3Family", 2, 8, True, 4, "V1,V2", 16, 160, "x64", 2, {}),
    ("Standard_D4s_v3", "standardDSv3Family", 4, 16, True, 8, "V1,V2", 32, 160, "x64", 2, {}),
    ("Standard_D8s_v3", "standardDSv3Family", 8, 32, True, 16, "V1,V2", 64, 160, "x64", 2, {}),
    ("Standard_D4_v4", "standardDv4Family", 4, 16, False, 8, "V1,V2", 0, 195, "x64", 2, {}),
    ("Standard_D4s_v4", "standardDSv4Family", 4, 16, True, 8, "V1,V2", 0, 195, "x64", 2, {}),
    ("Standard_D4_v5", "standardDv5Family", 4, 16, False, 8, "V1,V2", 0, 195, "x64", 2, {}),
    ("Standard_D2s_v5", "standardDSv5Family", 2, 8, True, 4, "V1,V2", 0, 195, "x64", 2, {}),
    ("Standard_D4s_v5", "standardDSv5Family", 4, 16, True, 8, "V1,V2", 0, 195, "x64", 2, {}),
    ("Standard_D8s_v5", "standardDSv5Family", 8, 32, True, 16, "V1,V2", 0, 195, "x64", 2, {}),
    ("Standard_D16s_v5", "standardDSv5Family", 16, 64, True, 32, "V1,V2", 0, 195, "x64", 2, {}),
    ("Standard_D2ds_v5", "standardDDSv5Family", 2, 8, True, 4, "V1,V2", 75, 195, "x64", 2, {}),
    ("Standard_D4ds_v5", "standardDDSv5Family", 4, 16, True, 8, "V1,V2", 150, 195, "x64", 2, {}),
    ("Standard_D8ds_v5", "standardDDSv5Family", 8, 32, True, 16, "V1,V2", 300, 195, "x64", 2, {}),
    ("Standard_D2as_v5", "standardDASv5Family", 2, 8, True, 4, "V1,V2", 0, 230, "x64", 2, {}),
    ("Standard_D4as_v5", "standardDASv5Family", 4, 16, True, 8, "V1,V2", 0, 230, "x64", 2, {}),
    ("Standard_D2as_v6", "standardDasv6Family", 2, 8, True, 4, "V2", 0, 230, "x64", 2, {}),
    ("Standard_D4as_v6", "standardDasv6Family", 4, 16, True, 8, "V2", 0, 230, "x64", 2, {}),
    ("Standard_D4s_v6", "standardDsv6Family", 4, 16, True, 8, "V2", 0, 230, "x64", 2, {}),
    ("Standard_D8s_v6", "standardDsv6Family", 8, 32, True, 16, "V2", 0, 230, "x64", 2, {}),
    ("Standard_E8ds_v6", "standardEdsv6Family", 8, 64, True, 16, "V2", 440, 230, "x64", 2, {}),
    ("Standard_D4as_v7", "standardDasv7Family", 4, 16, True, 8, "V2", 0, 260, "x64", 1, {}),
    ("Standard_D4ads_v7", "standardDadsv7Family", 4, 16, True, 8, "V2", 220, 260, "x64", 1, {}),
    ("Standard_D4ps_v6", "standardDpsv6Family", 4, 16, True, 8, "V2", 0, 220, "Arm64", 1, {}),
    ("Standard_E2s_v5", "standardESv5Family", 2, 16, True, 4, "V1,V2", 0, 195, "x64", 2, {}),
    ("Standard_E4s_v5", "standardESv5Family", 4, 32, True, 8, "V1,V2", 0, 195, "x64", 2, {}),
    ("Standard_E8s_v5", "standardESv5Family", 8, 64, True, 16, "V1,V2", 0, 195, "x64", 2, {}),
    ("Standard_E16s_v5", "standardESv5Family", 16, 128, True, 32, "V1,V2", 0, 195, "x64", 2, {}),
    ("Standard_E4ds_v5", "standardEDSv5Family", 4, 32, True, 8, "V1,V2", 150, 195, "x64", 2, {}),
    ("Standard_F4", "standardFFamily", 4, 8, False, 16, "V1", 64, 210, "x64", 1, {}),
    ("Standard_F4s_v2", "standardFSv2Family", 4, 8, True, 8, "V1,V2", 32, 195, "x64", 2, {}),
    ("Standard_F8s_v2", "standardFSv2Family", 8, 16, True, 16, "V1,V2", 64, 195, "x64", 2, {}),
    ("Standard_M32ms", "standardMSFamily", 32, 875, True, 32, "V1,V2", 1000, 160, "x64", 2,
     {"MaxWriteAcceleratorDisksAllowed": "8"}),
    ("Standard_M64s", "standardMSFamily", 64, 1024, True, 64, "V1,V2", 2048, 160, "x64", 2,
     {"MaxWriteAcceleratorDisksAllowed": "16"}),
    ("Standard_DS2_v2", "standardDSv2Family", 2, 7, True, 8, "V1,V2", 14, 210, "x64", 1, {}),
    ("Standard_DS3_v2", "standardDSv2Family", 4, 14, True, 16, "V1,V2", 28, 210, "x64", 1, {}),
    ("Standard_L8s_v3", "standardLSv3Family", 8, 64, True, 16, "V1,V2", 80, 195, "x64", 2,
     {"NvmeDiskSizeInMiB": "1831424"}),
    ("Standard_DC2es_v5", "standardDCESv5Family", 2, 8, True, 4, "V2", 0, 195, "x64", 2,
     {"ConfidentialComputingType": "TDX"}),
    ("Standard_NC6s_v3", "standardNCSv3Family", 6, 112, True, 12, "V1,V2", 736, 100, "x64", 1,
     {"GPUs": "1"}),
)


def _facts(row: _Row) -> dict[str, Any]:
    _name, family, vcpus, mem, premium, disks, hyperv, temp_gb, acus, arch, per_core, extra = row
    return {
        "family": family,
        "vcpus": vcpus,
        "memory_gb": mem,
        "premium_io": premium,
        "max_data_disks": disks,
        "hyperv_generations": hyperv,
        "temp_disk_gb": temp_gb,
        "acus": acus,
        "arch": arch,
        "vcpus_per_core": per_core,
        # Ephemeral OS disks live on the cache/temp disk of premium-capable sizes.
        "ephemeral_os_disk": premium and temp_gb > 0,
        "write_accelerator": "MaxWriteAcceleratorDisksAllowed" in extra,
        "confidential": "ConfidentialComputingType" in extra,
        "extra": extra,
    }


# Per-size facts the generator uses to build plausible VMs (sizes, disk counts, disk types).
SIZES: dict[str, dict[str, Any]] = {row[0]: _facts(row) for row in _TABLE}


def _num(value: float) -> str:
    return f"{value:g}"


def _capabilities(facts: dict[str, Any]) -> list[dict[str, str]]:
    vcpus = facts["vcpus"]
    caps = [
        ("MaxResourceVolumeMB", str(facts["temp_disk_gb"] * 1024)),
        ("OSVhdSizeMB", "1047552"),
        ("vCPUs", str(vcpus)),
        ("MemoryPreservingMaintenanceSupported", "True"),
        ("HyperVGenerations", facts["hyperv_generations"]),
        ("MemoryGB", _num(facts["memory_gb"])),
        ("MaxDataDiskCount", str(facts["max_data_disks"])),
        ("CpuArchitectureType", facts["arch"]),
        ("LowPriorityCapable", "True"),
        ("PremiumIO", "True" if facts["premium_io"] else "False"),
        ("VMDeploymentTypes", "IaaS"),
        ("vCPUsAvailable", str(vcpus)),
        ("ACUs", str(facts["acus"])),
        ("vCPUsPerCore", str(facts["vcpus_per_core"])),
        ("EphemeralOSDiskSupported", "True" if facts["ephemeral_os_disk"] else "False"),
        ("EncryptionAtHostSupported", "True" if facts["premium_io"] else "False"),
        ("CapacityReservationSupported", "True"),
        ("AcceleratedNetworkingEnabled", "True" if vcpus >= 2 else "False"),
        ("RdmaEnabled", "False"),
        ("MaxNetworkInterfaces", str(max(2, min(8, vcpus)))),
    ]
    caps.extend(facts["extra"].items())
    return [{"name": n, "value": v} for n, v in caps]


def _normalise(location: str) -> str:
    """ARM lists SKU locations as lower-case names without spaces ("West US" -> "westus")."""
    return location.replace(" ", "").lower()


def builtin_catalogue(locations: Iterable[str]) -> list[dict]:
    """Resource SKU objects for every built-in size in each of `locations` (fresh dicts)."""
    locs: list[str] = []
    for loc in locations:
        norm = _normalise(loc)
        if norm and norm not in locs:
            locs.append(norm)
    out: list[dict] = []
    for name, facts in SIZES.items():
        for loc in locs:
            zonal = loc in ZONAL_REGIONS
            zone_details = []
            if zonal and facts["premium_io"]:
                zone_details = [{"name": ["1", "2", "3"],
                                 "capabilities": [{"name": "UltraSSDAvailable", "value": "True"}]}]
            out.append({
                "resourceType": "virtualMachines",
                "name": name,
                "tier": "Standard",
                "size": name.split("_", 1)[1],
                "family": facts["family"],
                "locations": [loc],
                "locationInfo": [{
                    "location": loc,
                    "zones": ["1", "2", "3"] if zonal else [],
                    "zoneDetails": zone_details,
                }],
                "capabilities": _capabilities(facts),
                "restrictions": [],
            })
    return out


def catalogue_for_fleet(fleet: dict) -> list[dict]:
    """The fleet's own `resourceSkus` when present, else the built-in catalogue for the regions its
    VMs use (so a VM in any region, even a sovereign one, finds its size)."""
    if isinstance(fleet.get("resourceSkus"), list):
        return fleet["resourceSkus"]
    vm_type = "microsoft.compute/virtualmachines"
    locations = sorted({
        _normalise(r["location"])
        for r in fleet.get("resources", [])
        if isinstance(r, dict) and str(r.get("type", "")).lower() == vm_type
        and isinstance(r.get("location"), str) and r["location"]
    })
    return builtin_catalogue(locations)
