"""Fleet file loading and validation: every bad input gives one message a user can act on."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from emulator.fleet import RESOURCE_TYPES, FleetError, load_fleet, validate_fleet
from emulator.skus import SIZES, builtin_catalogue, catalogue_for_fleet

SUB = "00000000-0000-0000-0000-000000000001"
TENANT = "00000000-0000-0000-0000-0000000000aa"
RG = f"/subscriptions/{SUB}/resourceGroups/rg-app"
VAULT = (f"/subscriptions/{SUB}/resourceGroups/rg-backup/providers/"
         "Microsoft.RecoveryServices/vaults/rsv-1")
VM_ID = f"{RG}/providers/Microsoft.Compute/virtualMachines/vm-7"
DISK_ID = f"{RG}/providers/Microsoft.Compute/disks/vm-7-os"
POLICY_ID = f"{VAULT}/backupPolicies/EnhancedPolicy"
ITEM_NAME = "VM;iaasvmcontainerv2;rg-app;vm-7"
ITEM_ID = (f"{VAULT}/backupFabrics/Azure/protectionContainers/IaasVMContainer;iaasvmcontainerv2;"
           f"rg-app;vm-7/protectedItems/{ITEM_NAME}")


def small_fleet() -> dict:
    """One of each resource type, as ARM returns them (trimmed to what matters)."""
    return {
        "subscriptions": [{"subscriptionId": SUB, "displayName": "contoso-prod-01",
                           "tenantId": TENANT, "state": "Enabled"}],
        "managementGroups": [{"name": "mg-prod", "subscriptions": [SUB]}],
        "resources": [
            {"id": VAULT, "name": "rsv-1", "type": "Microsoft.RecoveryServices/vaults",
             "location": "eastus", "properties": {"provisioningState": "Succeeded"}},
            {"id": POLICY_ID, "name": "EnhancedPolicy",
             "type": "Microsoft.RecoveryServices/vaults/backupPolicies",
             "properties": {"backupManagementType": "AzureIaasVM", "policyType": "V2"}},
            {"id": VM_ID, "name": "vm-7", "type": "Microsoft.Compute/virtualMachines",
             "location": "eastus",
             "properties": {"hardwareProfile": {"vmSize": "Standard_D4s_v5"},
                            "storageProfile": {"osDisk": {"osType": "Linux",
                                                          "managedDisk": {"id": DISK_ID}},
                                               "dataDisks": []}}},
            {"id": DISK_ID, "name": "vm-7-os", "type": "Microsoft.Compute/disks",
             "location": "eastus", "properties": {"diskSizeGB": 30}},
            {"id": ITEM_ID, "name": ITEM_NAME,
             "type": "Microsoft.RecoveryServices/vaults/backupFabrics/protectionContainers/"
                     "protectedItems",
             "properties": {"sourceResourceId": VM_ID, "protectionState": "Protected",
                            "policyId": POLICY_ID}},
            {"id": f"{RG}/providers/Microsoft.SqlVirtualMachine/sqlVirtualMachines/vm-7",
             "name": "vm-7", "type": "Microsoft.SqlVirtualMachine/sqlVirtualMachines",
             "location": "eastus", "properties": {"virtualMachineResourceId": VM_ID}},
        ],
        "resourceSkus": builtin_catalogue(["eastus"])[:2],
    }


def error_for(change: Callable[[dict], object], source: str = "fleets/x.json") -> FleetError:
    fleet = small_fleet()
    change(fleet)
    with pytest.raises(FleetError) as info:
        validate_fleet(fleet, source)
    return info.value


def vm(fleet: dict) -> dict:
    return fleet["resources"][2]


def test_a_valid_fleet_passes_and_loads(tmp_path: Path) -> None:
    fleet = small_fleet()
    validate_fleet(fleet, "fleet.json")
    path = tmp_path / "fleet.json"
    path.write_text(json.dumps(fleet))
    assert load_fleet(path) == fleet
    assert load_fleet(str(path)) == fleet


def test_the_eight_resource_types_are_the_arm_ones() -> None:
    assert len(RESOURCE_TYPES) == 8  # six of the fleet, plus a Resource Guard and its link
    assert "Microsoft.RecoveryServices/vaults/backupFabrics/protectionContainers/protectedItems" \
        in RESOURCE_TYPES


def test_optional_sections_may_be_left_out_and_types_compare_ignoring_case() -> None:
    fleet = small_fleet()
    del fleet["managementGroups"], fleet["resourceSkus"]
    vm(fleet)["type"] = "microsoft.compute/virtualmachines"  # ARG spells types in lower case
    fleet["resources"][0]["id"] = VAULT.replace("/subscriptions/", "/Subscriptions/")
    validate_fleet(fleet)


def test_references_are_not_required_to_exist() -> None:
    """A VM pointing at a missing disk and an item pointing at a missing policy are scenarios
    (DISK_NOT_FOUND, PROTECTION_DATA_UNREADABLE), not broken files."""
    fleet = small_fleet()
    del fleet["resources"][3]  # the disk
    fleet["resources"][3]["properties"]["policyId"] = f"{VAULT}/backupPolicies/gone"
    validate_fleet(fleet)


def test_missing_vm_size_names_file_index_id_field_and_example() -> None:
    err = error_for(lambda f: vm(f)["properties"]["hardwareProfile"].pop("vmSize"))
    assert str(err) == (
        f"fleet file fleets/x.json: resources[2] ({VM_ID}): properties.hardwareProfile.vmSize "
        "is missing; every Microsoft.Compute/virtualMachines needs its size, e.g. "
        '"Standard_D4s_v5"')
    assert err.field == "properties.hardwareProfile.vmSize"
    assert err.source == "fleets/x.json"


def test_vm_size_of_the_wrong_kind_says_what_it_found() -> None:
    err = error_for(lambda f: vm(f)["properties"]["hardwareProfile"].update(vmSize=4))
    assert "properties.hardwareProfile.vmSize is the number 4" in str(err)


def test_missing_os_disk() -> None:
    err = error_for(lambda f: vm(f)["properties"].pop("storageProfile"))
    assert f"resources[2] ({VM_ID}): properties.storageProfile.osDisk is missing" in str(err)
    assert "OS disk object" in str(err)


@pytest.mark.parametrize(("change", "expected"), [
    (lambda f: f.pop("resources"), "resources is missing; a fleet needs a list of ARM resource"),
    (lambda f: f.update(resources={}), "resources is an object;"),
    (lambda f: f.pop("subscriptions"), "subscriptions is missing; a fleet needs a list"),
    (lambda f: f.update(managementGroups="mg"), 'managementGroups is the string "mg"'),
    (lambda f: f.update(resourceSkus={}), "resourceSkus is an object; expected a list"),
])
def test_top_level_shape(change: Callable[[dict], object], expected: str) -> None:
    err = error_for(change)
    assert str(err).startswith("fleet file fleets/x.json: ")
    assert expected in str(err)


def test_top_level_must_be_an_object() -> None:
    with pytest.raises(FleetError, match=r"fleet file f\.json: the top level is a list"):
        validate_fleet([], "f.json")  # type: ignore[arg-type]


@pytest.mark.parametrize(("change", "expected"), [
    (lambda s: s.update(subscriptionId="prod"),
     'subscriptions[0] (prod): subscriptionId is the string "prod"; expected a GUID'),
    (lambda s: s.pop("displayName"), f"subscriptions[0] ({SUB}): displayName is missing"),
    (lambda s: s.update(tenantId=None), "tenantId is null; expected the Entra tenant's GUID"),
    (lambda s: s.update(state="Active"),
     'state is the string "Active"; expected one of Enabled, Disabled, Warned, PastDue, Deleted'),
])
def test_subscription_fields(change: Callable[[dict], object], expected: str) -> None:
    err = error_for(lambda f: change(f["subscriptions"][0]))
    assert expected in str(err)


def test_duplicate_subscription() -> None:
    err = error_for(lambda f: f["subscriptions"].append(
        dict(f["subscriptions"][0], subscriptionId=SUB.upper())))
    assert "subscriptions[1]" in str(err) and "listed twice (first at subscriptions[0])" in str(err)


def test_management_group_must_list_known_subscriptions() -> None:
    other = "00000000-0000-0000-0000-000000000002"
    err = error_for(lambda f: f["managementGroups"][0]["subscriptions"].append(other))
    assert str(err) == (
        f"fleet file fleets/x.json: managementGroups[0] (mg-prod): subscriptions[1] is the string "
        f'"{other}", which is not a subscriptionId listed in `subscriptions`; add that '
        "subscription or remove it from the group")


def test_management_group_needs_a_name() -> None:
    err = error_for(lambda f: f["managementGroups"][0].pop("name"))
    assert "managementGroups[0]: name is missing" in str(err)


def test_resource_without_id_is_named_by_its_name() -> None:
    err = error_for(lambda f: vm(f).pop("id"))
    assert "resources[2] (vm-7): id is missing; every Microsoft.Compute/virtualMachines needs " \
           "its ARM id, e.g. \"/subscriptions/{sub}/resourceGroups/{rg}/providers/" \
           "Microsoft.Compute/virtualMachines/{vm}\"" in str(err)


def test_resource_that_is_not_an_object() -> None:
    err = error_for(lambda f: f["resources"].insert(1, "vm-9"))
    assert 'resources[1]: is the string "vm-9"; each resource is an ARM object' in str(err)


def test_unknown_type_lists_the_six() -> None:
    err = error_for(lambda f: vm(f).update(type="Microsoft.Compute/virtualMachineScaleSets"))
    assert f"resources[2] ({VM_ID}): type is the string " in str(err)
    assert "expected one of Microsoft.Compute/disks, Microsoft.Compute/virtualMachines" in str(err)


def test_id_must_be_an_arm_id() -> None:
    err = error_for(lambda f: vm(f).update(id="vm-7"))
    assert 'resources[2] (vm-7): id is not an ARM resource id; expected "/subscriptions/' \
        in str(err)


def test_id_provider_path_must_match_type() -> None:
    err = error_for(lambda f: vm(f).update(type="Microsoft.Compute/disks"))
    assert "id names a Microsoft.Compute/virtualMachines but type is Microsoft.Compute/disks" \
        in str(err)


def test_id_subscription_must_be_listed() -> None:
    other = "00000000-0000-0000-0000-000000000009"
    err = error_for(lambda f: vm(f).update(id=VM_ID.replace(SUB, other)))
    assert f"id is in subscription {other}, which is not listed in `subscriptions`" in str(err)


def test_duplicate_ids_ignoring_case() -> None:
    err = error_for(lambda f: f["resources"].append(
        dict(copy.deepcopy(vm(f)), id=VM_ID.upper(), name="VM-7")))
    assert f"resources[6] ({VM_ID.upper()}): id duplicates resources[2]" in str(err)


def test_name_must_be_the_last_id_segment() -> None:
    err = error_for(lambda f: vm(f).update(name="vm-8"))
    assert 'name is "vm-8" but the id ends in "vm-7"; name must be the id\'s last segment' \
        in str(err)
    # case differences are fine
    validate_fleet(_with(lambda f: vm(f).update(name="VM-7")))


def test_missing_name_says_which() -> None:
    err = error_for(lambda f: vm(f).pop("name"))
    assert 'name is missing; expected the last segment of the id, "vm-7"' in str(err)


@pytest.mark.parametrize("index", [0, 2, 3, 5])
def test_location_is_required_for_vms_disks_vaults_and_sql_vms(index: int) -> None:
    err = error_for(lambda f: f["resources"][index].pop("location"))
    assert f"resources[{index}] (" in str(err)
    assert 'location is missing; every ' in str(err) and 'needs its region, e.g. "eastus"' \
        in str(err)


def test_policies_and_items_need_no_location() -> None:
    fleet = small_fleet()
    assert "location" not in fleet["resources"][1] and "location" not in fleet["resources"][4]
    validate_fleet(fleet)


def test_properties_must_be_an_object() -> None:
    err = error_for(lambda f: f["resources"][3].update(properties=None))
    assert f"resources[3] ({DISK_ID}): properties is null; every Microsoft.Compute/disks " \
           "needs its ARM properties object" in str(err)


def test_vault_children_need_their_vault_in_the_fleet() -> None:
    err = error_for(lambda f: f["resources"].pop(0))
    assert str(err) == (
        f"fleet file fleets/x.json: resources[0] ({POLICY_ID}): its vault {VAULT} is not in the "
        "fleet; add the Microsoft.RecoveryServices/vaults resource or remove this "
        "Microsoft.RecoveryServices/vaults/backupPolicies")
    other = ITEM_ID.replace("rsv-1", "rsv-2")
    err = error_for(lambda f: f["resources"][4].update(id=other))
    assert f"resources[4] ({other}): its vault {VAULT.replace('rsv-1', 'rsv-2')} is not in" \
        in str(err)
    # the vault may come after its children
    validate_fleet(_with(lambda f: f["resources"].append(f["resources"].pop(0))))


@pytest.mark.parametrize("field", ["sourceResourceId", "protectionState"])
def test_protected_item_required_fields(field: str) -> None:
    err = error_for(lambda f: f["resources"][4]["properties"].pop(field))
    assert f"resources[4] ({ITEM_ID}): properties.{field} is missing; every protected item " \
           "needs it" in str(err)


def test_protected_item_needs_a_policy_unless_stopped() -> None:
    err = error_for(lambda f: f["resources"][4]["properties"].update(policyId=""))
    assert "properties.policyId is an empty string; a protected item in state Protected needs " \
           "the full id of its backup policy" in str(err)
    assert "only ProtectionStopped items may have none" in str(err)

    def stopped(f: dict) -> None:
        f["resources"][4]["properties"].update(protectionState="ProtectionStopped", policyId="")
    validate_fleet(_with(stopped))


@pytest.mark.parametrize(("change", "expected"), [
    (lambda s: s.pop("resourceType"), "resourceSkus[0] (Standard_A1_v2): resourceType is missing"),
    (lambda s: s.update(locations="eastus"),
     'locations is the string "eastus"; expected a list of region names, e.g. ["eastus"]'),
    (lambda s: s.pop("name"), 'resourceSkus[0]: name is missing; expected a string, e.g. '),
])
def test_resource_sku_fields(change: Callable[[dict], object], expected: str) -> None:
    err = error_for(lambda f: change(f["resourceSkus"][0]))
    assert expected in str(err)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.json"
    with pytest.raises(FleetError) as info:
        load_fleet(path)
    assert str(info.value).startswith(f"fleet file {path}: no such file; pass the path of a "
                                      "fleet JSON file")
    assert "ccmigrate emulator generate" in str(info.value)


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(FleetError, match="is a directory"):
        load_fleet(tmp_path)


def test_invalid_json_gives_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{\n  "subscriptions": [],\n  "resources": [,]\n}\n')
    with pytest.raises(FleetError) as info:
        load_fleet(path)
    assert str(info.value) == (f"fleet file {path}: is not valid JSON: Expecting value at "
                               "line 3, column 17")


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.json"
    path.write_bytes(b'{"subscriptions": [], "resources": [], "x": "\xe9"}')
    with pytest.raises(FleetError, match="is not UTF-8 text"):
        load_fleet(path)


def test_load_validates(tmp_path: Path) -> None:
    fleet = _with(lambda f: vm(f)["properties"].pop("hardwareProfile"))
    path = tmp_path / "fleet.json"
    path.write_text(json.dumps(fleet))
    with pytest.raises(FleetError, match=rf"fleet file {path}: resources\[2\] .*vmSize is missing"):
        load_fleet(path)


def test_fleet_error_is_a_value_error() -> None:
    assert issubclass(FleetError, ValueError)


def test_builtin_catalogue_shape_and_premium_io() -> None:
    skus = builtin_catalogue(["eastus", "West Europe", "eastus"])
    assert len(skus) == 2 * len(SIZES)
    sku = next(s for s in skus
               if s["name"] == "Standard_DS3_v2" and s["locations"] == ["westeurope"])
    assert set(sku) == {"resourceType", "name", "tier", "size", "family", "locations",
                        "locationInfo", "capabilities", "restrictions"}
    assert sku["resourceType"] == "virtualMachines" and sku["tier"] == "Standard"
    assert sku["size"] == "DS3_v2" and sku["restrictions"] == []
    assert sku["locationInfo"][0]["location"] == "westeurope"
    assert sku["locationInfo"][0]["zones"] == ["1", "2", "3"]
    caps = {c["name"]: c["value"] for c in sku["capabilities"]}
    assert {"PremiumIO", "vCPUs", "MemoryGB", "MaxDataDiskCount", "HyperVGenerations",
            "EphemeralOSDiskSupported"} <= set(caps)

    def premium(name: str) -> str:
        entry = next(s for s in skus if s["name"] == name)
        return next(c["value"] for c in entry["capabilities"] if c["name"] == "PremiumIO")

    for name in ("Standard_DS3_v2", "Standard_D4s_v5", "Standard_B2s", "Standard_D4as_v6",
                 "Standard_M32ms", "Standard_DC2es_v5", "Standard_D4ps_v6"):
        assert premium(name) == "True", name
    for name in ("Standard_D4_v5", "Standard_A1_v2", "Standard_D2_v3", "Standard_F4"):
        assert premium(name) == "False", name


def test_catalogue_for_fleet_prefers_the_fleets_own_list() -> None:
    fleet = small_fleet()
    assert catalogue_for_fleet(fleet) is fleet["resourceSkus"]
    del fleet["resourceSkus"]
    vm(fleet)["location"] = "usgovvirginia"
    skus = catalogue_for_fleet(fleet)
    assert {s["locations"][0] for s in skus} == {"usgovvirginia"}


def _with(change: Callable[[dict], object]) -> dict:
    fleet = small_fleet()
    change(fleet)
    return fleet
