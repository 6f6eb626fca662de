"""Compute examples (VMs, disks, resource SKUs): the emulator answers each example's request,
sent through ``ComputeManagementClient`` from the project's ``AzureAccess``, with every key of
the example's response. Rules: ``fleet_from_examples``; what is not applicable, and why:
``test_rest_examples.NOT_APPLICABLE``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from emulator.server import Emulator
from tests.contract.fleet_from_examples import (
    SUB_COMPUTE,
    Wire,
    compare,
    create_group,
    example_stems,
    load_example,
    request_problems,
    response_bodies,
)

World = tuple[Emulator, Any]



def _client(world: World) -> Any:
    return world[1].compute(SUB_COMPUTE)


def _vm_get(world: World, ex: dict) -> list[str]:
    p, wire = ex["parameters"], Wire()
    _client(world).virtual_machines.get(p["resourceGroupName"], p["vmName"], expand=p["$expand"],
                                        **wire.hook)
    return (request_problems(wire.first(), query={"$expand": p["$expand"]},
                             path=(p["resourceGroupName"], p["vmName"]))
            + compare("GET 200", ex["responses"]["200"]["body"], wire.json()))


def _instance_view(world: World, ex: dict) -> list[str]:
    p, wire = ex["parameters"], Wire()
    _client(world).virtual_machines.instance_view(p["resourceGroupName"], p["vmName"],
                                                  **wire.hook)
    return (request_problems(wire.first(), path=(p["resourceGroupName"], p["vmName"],
                                                 "instanceView"))
            + compare("GET instanceView 200", ex["responses"]["200"]["body"], wire.json()))


def _list_all(world: World, ex: dict) -> list[str]:
    p, wire = ex["parameters"], Wire()
    query = {k: v for k, v in p.items() if k in ("statusOnly", "$filter")}
    list(_client(world).virtual_machines.list_all(status_only=query.get("statusOnly"),
                                                  filter=query.get("$filter"), **wire.hook))
    return (request_problems(wire.first(), query=query)
            + compare("list 200", ex["responses"]["200"]["body"], wire.pages()))


def _list_vms(world: World, ex: dict) -> list[str]:
    p, wire = ex["parameters"], Wire()
    list(_client(world).virtual_machines.list(p["resourceGroupName"], **wire.hook))
    return (request_problems(wire.first(), path=(p["resourceGroupName"],))
            + compare("list 200", ex["responses"]["200"]["body"], wire.pages()))


def _created(stem: str) -> Callable[[World, dict], list[str]]:
    """A ``*_Create_*`` example: GET the fleet resource loaded from its 200 body and compare
    against every response body the example shows (the create request itself is N/A)."""

    def check(world: World, ex: dict) -> list[str]:
        rg, wire = create_group(stem), Wire()
        if stem.startswith("VirtualMachine_"):
            name = ex["parameters"]["vmName"]
            _client(world).virtual_machines.get(rg, name, **wire.hook)
        else:
            name = ex["parameters"]["diskName"]
            _client(world).disks.get(rg, name, **wire.hook)
        got = wire.json()
        return [problem for code, body in sorted(response_bodies(ex).items())
                for problem in compare(f"GET vs PUT {code}", body, got)]

    return check


def _disk_get(world: World, ex: dict) -> list[str]:
    p, wire = ex["parameters"], Wire()
    _client(world).disks.get(p["resourceGroupName"], p["diskName"], **wire.hook)
    return (request_problems(wire.first(), path=(p["resourceGroupName"], p["diskName"]))
            + compare("GET 200", ex["responses"]["200"]["body"], wire.json()))


def _disks_in_group(world: World, ex: dict) -> list[str]:
    p, wire = ex["parameters"], Wire()
    list(_client(world).disks.list_by_resource_group(p["resourceGroupName"], **wire.hook))
    return (request_problems(wire.first(), path=(p["resourceGroupName"],))
            + compare("list 200", ex["responses"]["200"]["body"], wire.pages()))


def _disks(world: World, ex: dict) -> list[str]:
    wire = Wire()
    list(_client(world).disks.list(**wire.hook))
    return compare("list 200", ex["responses"]["200"]["body"], wire.pages())


def _skus(world: World, ex: dict) -> list[str]:
    p, wire = ex["parameters"], Wire()
    query = {k: v for k, v in p.items() if k in ("$filter", "includeExtendedLocations")}
    list(_client(world).resource_skus.list(
        filter=query.get("$filter"), include_extended_locations=query.get(
            "includeExtendedLocations"), **wire.hook))
    return (request_problems(wire.first(), query=query)
            + compare("list 200", ex["responses"]["200"]["body"], wire.pages()))


SCENARIOS: dict[str, Callable[[World, dict], list[str]]] = {
    "VirtualMachine_Get": _vm_get,
    "VirtualMachine_Get_InstanceViewAutoPlacedOnDedicatedHostGroup": _instance_view,
    "VirtualMachine_ListAll_MaximumSet_Gen": _list_all,
    "VirtualMachine_ListAll_MinimumSet_Gen": _list_all,
    "VirtualMachine_List_MinimumSet_Gen": _list_vms,
    "VirtualMachine_Create_WithADiffOsDisk": _created("VirtualMachine_Create_WithADiffOsDisk"),
    "VirtualMachine_Create_WithSecurityTypeConfidentialVMWithNonPersistedTPM": _created(
        "VirtualMachine_Create_WithSecurityTypeConfidentialVMWithNonPersistedTPM"),
    "VirtualMachine_Create_WithUefiSettings": _created("VirtualMachine_Create_WithUefiSettings"),
    "Disk_Get": _disk_get,
    "Disk_ListByResourceGroup": _disks_in_group,
    "Disk_ListBySubscription": _disks,
    "Disk_Create_WithDataAccessAuthMode": _created("Disk_Create_WithDataAccessAuthMode"),
    "Disk_Create_WithPremiumV2_LRSAccountType": _created(
        "Disk_Create_WithPremiumV2_LRSAccountType"),
    "Disk_Create_WithSecurityProfile": _created("Disk_Create_WithSecurityProfile"),
    "Disk_Create_WithUltraSSD_ReadOnly": _created("Disk_Create_WithUltraSSD_ReadOnly"),
    "ListAvailableResourceSkus": _skus,
    "ListAvailableResourceSkusForARegion": _skus,
    "ListAvailableResourceSkusWithExtendedLocations": _skus,
}


@pytest.mark.parametrize("stem", example_stems("compute"))
def test_emulator_answers_the_compute_example_request_with_every_example_key(
        stem: str, world: World) -> None:
    """A compute call the assessment makes must see the shape Azure documents."""
    scenario = SCENARIOS.get(stem)
    assert scenario is not None, f"compute/{stem}.json has no contract scenario; add one"
    problems = scenario(world, load_example("compute", stem))
    assert not problems, f"compute/{stem}.json:\n  " + "\n  ".join(problems)
