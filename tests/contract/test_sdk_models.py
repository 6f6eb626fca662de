"""The model walk itself (``sdk_models.unknown_keys``): it finds a key anywhere, resolves
discriminators the way the service means them, reads msrest models too, and on Microsoft's own
published response bodies finds only the SDK gaps ``test_sdk_model_keys.DOCUMENTED`` lists (plus
one quirk of a generated example, below)."""

from __future__ import annotations

import copy

import azure.mgmt.compute.models as compute
import azure.mgmt.recoveryservicesbackup.models as backup
import azure.mgmt.resourcegraph.models as graph
import pytest

from tests.contract.fleet_from_examples import load_example, response_bodies
from tests.contract.sdk_models import Unknown, resolve, unknown_keys
from tests.contract.test_rest_examples import _ALL, DESERIALISE
from tests.contract.test_sdk_model_keys import DOCUMENTED, problems_in

# Keys of Microsoft's examples that this SDK release's models lack and that the emulator never
# generates, so they are not in DOCUMENTED: (example, model class, key) -> why.
EXAMPLE_ONLY = {
    ("VirtualMachine_ListAll_MaximumSet_Gen", "VMDiskSecurityProfile", "securityType"): (
        "a generated 'MaximumSet' example puts securityType (a VM securityProfile key) into "
        "osDisk.managedDisk.securityProfile; azure-mgmt-compute 39's VMDiskSecurityProfile has "
        "securityEncryptionType and diskEncryptionSet only (unverified against the spec)"),
}


def _example(service: str, stem: str) -> dict:
    return load_example(service, stem)["responses"]["200"]["body"]


def test_a_key_the_model_lacks_is_found_deep_inside_with_its_path_and_owner() -> None:
    vm = copy.deepcopy(_example("compute", "VirtualMachine_Get"))
    vm["properties"]["storageProfile"]["dataDisks"][1]["managedDisk"]["madeUp"] = 1
    vm["madeUpTop"] = {"nested": True}
    assert unknown_keys(compute.VirtualMachine, vm) == [
        Unknown("$.properties.storageProfile.dataDisks[1].managedDisk.madeUp",
                "ManagedDiskParameters", "madeUp"),
        Unknown("$.madeUpTop", "VirtualMachine", "madeUpTop"),
    ]


def test_an_azure_vm_item_is_walked_as_the_compute_vm_item_not_the_sdk_base_class() -> None:
    """The SDK's own deserialiser stops at ``ProtectedItem`` for
    ``protectedItemType: Microsoft.Compute/virtualMachines`` (its first-level mapping is keyed
    by class names); the walk goes down the tree to the class that models the VM fields."""
    item = _example("recoveryservicesbackup", "Compute_ProtectedItem_Get")
    assert type(backup.ProtectedItemResource(item).properties) is backup.ProtectedItem
    cls, problems = resolve(backup.ProtectedItem, item["properties"])
    assert (cls, problems) == (backup.AzureIaaSComputeVMProtectedItem, [])
    assert unknown_keys(backup.ProtectedItemResource, item) == []


@pytest.mark.parametrize(("model", "body", "expected"), [
    (backup.JobResource, {"properties": {"jobType": "NoSuchJob", "x": 1}},
     [Unknown("$.properties.jobType", "Job", "<jobType=NoSuchJob>"),
      Unknown("$.properties.x", "Job", "x")]),
    (backup.OperationStatus, {"properties": {"objectType": "OperationStatusJobsExtendedInfo",
                                             "jobIds": [], "jobId": "1"}},
     [Unknown("$.properties.jobId", "OperationStatusJobsExtendedInfo", "jobId")]),
    (backup.ProtectionPolicyResource, {"properties": {
        "backupManagementType": "AzureIaasVM",
        "schedulePolicy": {"schedulePolicyType": "SimpleSchedulePolicy",
                           "dailySchedule": {"scheduleRunTimes": []}}}},
     [Unknown("$.properties.schedulePolicy.dailySchedule", "SimpleSchedulePolicy",
              "dailySchedule")]),
])
def test_discriminators_pick_the_subclass_whose_fields_are_checked(model, body, expected) -> None:
    """Job ``jobType``, operation status ``objectType``, policy ``backupManagementType`` and
    schedule ``schedulePolicyType``: a V1 schedule has no ``dailySchedule`` (V2's has)."""
    assert unknown_keys(model, body) == expected


def test_msrest_models_are_walked_with_their_subtypes() -> None:
    body = copy.deepcopy(_example("resourcegraph", "ResourcesBasicQuery"))
    body["facets"] = [{"resultType": "FacetResult", "expression": "type", "totalRecords": 1,
                       "count": 1, "data": [], "extra": 1}]
    body["extraTop"] = 2
    body["data"] = [{"anything": {"goes": "in rows"}}]
    assert unknown_keys(graph.QueryResponse, body) == [
        Unknown("$.facets[0].extra", "FacetResult", "extra"),
        Unknown("$.extraTop", "QueryResponse", "extraTop"),
    ]


@pytest.mark.parametrize(("service", "stem"), _ALL, ids=[stem for _, stem in _ALL])
def test_microsofts_example_bodies_only_show_the_documented_sdk_gaps(service: str,
                                                                     stem: str) -> None:
    model = DESERIALISE[stem][0]
    found = {(u.owner, u.key) for body in response_bodies(load_example(service, stem)).values()
             for u in problems_in(model, body)}
    allowed = set(DOCUMENTED) | {(owner, key) for (ex, owner, key) in EXAMPLE_ONLY if ex == stem}
    assert found <= allowed, f"{stem}: keys the SDK model lacks: {sorted(found - allowed)}"
