"""The emulator's own crash-consistent support table (``emulator.support``)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from emulator.support import crash_consistent_blockers, is_boost_size, premium_by_name
from tests.fleets import SUB_A, make_vm


def _vm(tweak: Callable[[dict, dict[str, dict]], None] | None = None,
        **kw: str) -> tuple[dict, Callable[[str], dict | None]]:
    vm, disks = make_vm(SUB_A, "rg-app", "vm-x", **kw)
    by_id = {d["id"].lower(): d for d in disks}
    if tweak:
        tweak(vm, by_id)
    return vm, lambda rid: by_id.get(rid.lower())


def _reasons(vm: dict, get: Callable[[str], dict | None], **kw: bool) -> list[str]:
    return [r.reason for r in crash_consistent_blockers(vm, get, **kw)]


@pytest.mark.parametrize(("size", "boost"), [
    ("Standard_D4s_v6", True), ("Standard_E8ds_v6", True), ("Standard_D4as_v7", True),
    ("Standard_F4als_v7", True), ("Standard_D4as_v6", False), ("Standard_D4s_v5", False),
    ("Standard_D4ps_v6", False), ("Standard_M32ms", False), ("Standard_DS2_v2", False),
])
def test_azure_boost_sizes_are_intel_v6_and_amd_v7_onwards(size: str, boost: bool) -> None:
    assert is_boost_size(size) is boost


@pytest.mark.parametrize(("size", "premium"), [
    ("Standard_D4s_v5", True), ("Standard_DS2_v2", True), ("Standard_E8-4s_v5", True),
    ("Standard_GS5", True), ("Standard_D4_v5", False), ("Standard_A2_v2", False),
    ("weird", None),
])
def test_premium_storage_by_size_name(size: str, premium: bool | None) -> None:
    assert premium_by_name(size) is premium


def test_a_plain_premium_vm_is_supported() -> None:
    assert _reasons(*_vm()) == []


def test_each_documented_blocker_is_reported() -> None:
    def everything(vm: dict, disks: dict[str, dict]) -> None:
        storage = vm["properties"]["storageProfile"]
        storage["osDisk"]["diffDiskSettings"] = {"option": "Local"}
        storage["osDisk"]["writeAcceleratorEnabled"] = True
        data = disks[storage["dataDisks"][0]["managedDisk"]["id"].lower()]
        data["sku"] = {"name": "UltraSSD_LRS"}
        data["properties"]["maxShares"] = 2
        data["properties"]["dataAccessAuthMode"] = "AzureActiveDirectory"
        storage["dataDisks"].append({"lun": 9, "vhd": {"uri": "https://x/y.vhd"}})
        vm["properties"]["securityProfile"]["securityType"] = "ConfidentialVM"

    vm, get = _vm(everything, location="usgovvirginia", size="Standard_D4s_v6")
    assert set(_reasons(vm, get)) == {
        "region", "confidential_vm", "azure_boost", "ephemeral_os_disk", "write_accelerator",
        "ultra_disk", "shared_disk", "data_access_auth", "unmanaged_disk"}


def test_premium_v2_disk_is_seen_on_the_vm_even_without_the_disk_resource() -> None:
    def v2(vm: dict, disks: dict[str, dict]) -> None:
        vm["properties"]["storageProfile"]["dataDisks"][0]["managedDisk"][
            "storageAccountType"] = "PremiumV2_LRS"
        disks.clear()

    assert _reasons(*_vm(v2)) == ["premium_ssd_v2"]


def test_the_resource_sku_decides_premium_support_when_known() -> None:
    vm, get = _vm(size="Standard_D4_v5")
    assert _reasons(vm, get) == ["size_not_premium"]
    assert _reasons(vm, get, premium_capable=True) == []
