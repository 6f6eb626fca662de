"""Every typed response the emulator sends carries only keys the SDK's model of it knows.

The REST-example contract (``test_*_examples``) checks that the emulator sends every key Azure's
examples show; this checks the other direction: a key the SDK model has no field for is a key
Azure would not send in this shape (or a newer api-version's key this SDK does not read), and
code that works against the emulator might read something real Azure never gives it.

How: a generated fleet that holds every shape (``coverage_from_vms``: ephemeral OS, confidential,
Trusted Launch, Ultra, Premium SSD v2, data-access auth and shared disks; V1, V2 and crash-
consistent policies; items in every protection state), plus the writes that make jobs and
operations (enable protection, one of them failing its job, a policy edit that fans out
ConfigureBackup jobs, a new policy, on-demand backups running and ended), ARM error envelopes,
Resource Graph pages, and subscriptions and tenants. Every call goes through the real SDK
clients over HTTPS; the JSON each response carried (``Wire``) is walked alongside the model the
client deserialises it into (``sdk_models.unknown_keys``, discriminators resolved: policy
``backupManagementType``, item ``protectedItemType``, job ``jobType``, operation status
``properties.objectType``). GETs go to one resource per distinct key shape, so every shape the
lists show is also fetched singly.

A key the REST spec has but this SDK release's model lacks is not an emulator bug: it is listed
in ``DOCUMENTED`` with the spec path, and the test fails if such an entry is no longer needed.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import unquote, urlsplit

import azure.mgmt.compute.models as compute
import azure.mgmt.recoveryservices.models as vaults
import azure.mgmt.recoveryservicesbackup.models as backup
import pytest
from azure.core.exceptions import HttpResponseError

from emulator.config import EmulatorConfig, Faults
from emulator.generator import generate_fleet
from emulator.server import Emulator
from flows.options import with_emulator_principal
from tasks.azure.clients import AzureAccess
from tasks.settings import load_settings
from tests.contract.fleet_from_examples import Wire
from tests.contract.sdk_models import Unknown, unknown_keys

VM = "Microsoft.Compute/virtualMachines"
DISK = "Microsoft.Compute/disks"
VAULT = "Microsoft.RecoveryServices/vaults"
POLICY = "Microsoft.RecoveryServices/vaults/backupPolicies"
ITEM = "Microsoft.RecoveryServices/vaults/backupFabrics/protectionContainers/protectedItems"
# 220 VMs: above config/demo-fleet.toml's coverage_from_vms (200), so every finding and every
# protection state occurs at least once.
FLEET_VMS, FLEET_SUBS, FLEET_SEED = 220, 2, 7
DEADLINE = 20.0  # seconds an emulator operation (0.1 s here) may take before the test gives up
# Keys of an ARM list page the generated pagers read (``extract_data`` in each package's
# ``operations/_operations.py``: ``deserialized.get("value")``, ``deserialized.get("nextLink")``).
PAGE_KEYS = frozenset({"value", "nextLink"})


# (model class that lacks the key, key) -> why the key is right although this SDK release's model
# lacks it, with the REST spec path that defines it. The test fails when an entry is not needed.
DOCUMENTED: dict[tuple[str, str], str] = {
    ("ResourceSkuZoneDetails", "name"): (
        "specification/compute/resource-manager/Microsoft.Compute/Skus/stable/2021-07-01/"
        "skus.json (definitions.ResourceSkuZoneDetails.properties.name: the zones, an array of "
        "strings; the newest SKU api-version, see rest_examples/compute/INDEX.md) and its "
        "example ListAvailableResourceSkus.json both spell it 'name'; azure-mgmt-compute "
        "39.0.0 reads 'Name' (ResourceSkuZoneDetails.name = rest_field(name=\"Name\")), so "
        "zone_details[].name is None through this SDK. ccmigrate does not read zone details."),
}


@dataclass
class Seen:
    """Every typed response body the SDK calls received: what it is -> (model, request, body)."""

    bodies: dict[str, list[tuple[type, str, Any]]] = field(
        default_factory=lambda: defaultdict(list))

    def record(self, what: str, model: type, wire: Wire) -> list[Any]:
        """Keep each JSON body ``wire`` saw (every page of a list); return them."""
        out = []
        for response in wire.responses:
            if not response.text():
                continue
            body = response.json()
            request = f"{response.request.method} {unquote(urlsplit(response.request.url).path)}"
            self.bodies[what].append((model, request, body))
            out.append(body)
        wire.responses.clear()
        return out


@dataclass
class World:
    emu: Emulator
    access: AzureAccess
    fleet: dict[str, Any]
    seen: Seen = field(default_factory=Seen)
    notes: dict[str, Any] = field(default_factory=dict)

    def of_type(self, rtype: str) -> list[dict[str, Any]]:
        return _of_type(self.fleet, rtype)


# -- the walk -----------------------------------------------------------------------------------

def problems_in(model: type, body: Any) -> list[Unknown]:
    """Unknown keys of one response body: a list page's envelope and items, or one resource."""
    if isinstance(body, dict) and isinstance(body.get("value"), list):
        out = [Unknown(f"$.{key}", "<page>", key) for key in body if key not in PAGE_KEYS]
        for i, item in enumerate(body["value"]):
            out += unknown_keys(model, item, f"$.value[{i}]")
        return out
    return unknown_keys(model, body)


def undocumented(world: World, what: str) -> tuple[list[str], set[tuple[str, str]]]:
    """Unknown keys not in ``DOCUMENTED``, one line per (model, key) with how often and the first
    place it was seen; and the ``DOCUMENTED`` entries that were needed."""
    bodies = world.seen.bodies[what]
    assert bodies, f"no {what} response was seen: the test drove nothing"
    found: dict[tuple[str, str], list[str]] = defaultdict(list)
    for model, request, body in bodies:
        for unknown in problems_in(model, body):
            found[(unknown.owner, unknown.key)].append(f"{request} {unknown.path}")
    used = set(found) & set(DOCUMENTED)
    out = [f"{owner}.{key} ({len(where)}x), e.g. {where[0]}"
           for (owner, key), where in sorted(found.items()) if (owner, key) not in DOCUMENTED]
    return out, used


# -- driving the SDK ----------------------------------------------------------------------------

def _signature(value: Any, path: str = "") -> frozenset[str]:
    """A resource's key shape: every key path, list indices folded (``dataDisks[]``)."""
    if isinstance(value, dict):
        out: set[str] = set()
        for k, v in value.items():
            if k == "tags":
                continue
            out.add(f"{path}.{k}")
            out |= _signature(v, f"{path}.{k}")
        return frozenset(out)
    if isinstance(value, list):
        return frozenset(p for v in value for p in _signature(v, f"{path}[]"))
    return frozenset()


def one_per_shape(resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    shapes: dict[frozenset[str], dict[str, Any]] = {}
    for r in resources:
        shapes.setdefault(_signature(r), r)
    return list(shapes.values())


def _parts(resource_id: str) -> dict[str, str]:
    """ARM id segments by lower-case keyword (``subscriptions``, ``vaults``, ...)."""
    parts = resource_id.strip("/").split("/")
    return {parts[i].lower(): parts[i + 1] for i in range(0, len(parts) - 1, 2)}


def _item_args(item_id: str) -> tuple[str, str, str, str, str]:
    p = _parts(item_id)
    return (p["vaults"], p["resourcegroups"], p["backupfabrics"], p["protectioncontainers"],
            p["protecteditems"])


def _op_id(response: Any) -> str:
    url = response.headers.get("Azure-AsyncOperation") or response.headers["Location"]
    return urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]


def _wait(read: Callable[[], Any]) -> None:
    deadline = time.monotonic() + DEADLINE
    while dict(read()).get("status") == "InProgress" and time.monotonic() < deadline:
        time.sleep(0.05)


def _fleet() -> dict[str, Any]:
    return generate_fleet(FLEET_VMS, FLEET_SUBS, FLEET_SEED)


def _access(emu: Emulator) -> AzureAccess:
    """The project's client factory for the emulator's principal; no client-side pacing (the
    emulator's buckets are raised instead: this test reads a few hundred resources)."""
    settings = with_emulator_principal(load_settings(environ={}), emu.connection_info())
    settings = settings.model_copy(update={"throttles": settings.throttles.model_copy(
        update={"polling_interval": 0, "arm_pacing": False})})
    return AzureAccess(settings)


def _of_type(fleet: dict[str, Any], rtype: str) -> list[dict[str, Any]]:
    return [r for r in fleet["resources"] if r["type"].lower() == rtype.lower()]


def _unprotected_vms(fleet: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """VMs with no protected item and a vault of their subscription in their region, sorted by
    vault, so the first two share a vault."""
    protected = {i["properties"].get("sourceResourceId", "").lower()
                 for i in _of_type(fleet, ITEM)}
    vault_at = {(_parts(v["id"])["subscriptions"].lower(), v["location"]): v
                for v in _of_type(fleet, VAULT)}
    out = []
    for vm in _of_type(fleet, VM):
        vault = vault_at.get((_parts(vm["id"])["subscriptions"].lower(), vm["location"]))
        if vm["id"].lower() not in protected and vault is not None:
            out.append((vm, vault))
    out.sort(key=lambda pair: pair[1]["id"].lower())
    first_vault = out[0][1]["id"]
    same = [pair for pair in out if pair[1]["id"] == first_vault]
    assert len(same) >= 2, "the generated fleet has no two unprotected VMs next to one vault"
    return same[:2]


def _v2_policy(world: World, vault: dict[str, Any]) -> dict[str, Any]:
    return next(p for p in world.of_type(POLICY) if p["id"].lower().startswith(
        vault["id"].lower() + "/") and p["properties"].get("policyType") == "V2")


def read_compute(world: World, sub: str) -> None:
    client, wire, seen = world.access.compute(sub), Wire(), world.seen
    list(client.virtual_machines.list_all(**wire.hook))
    vms = [vm for page in seen.record("virtual machines", compute.VirtualMachine, wire)
           for vm in page["value"]]
    groups = sorted({_parts(vm["id"])["resourcegroups"] for vm in vms})
    list(client.virtual_machines.list(groups[0], **wire.hook))
    seen.record("virtual machines", compute.VirtualMachine, wire)
    for vm in one_per_shape(vms):
        p = _parts(vm["id"])
        client.virtual_machines.get(p["resourcegroups"], p["virtualmachines"], **wire.hook)
        client.virtual_machines.instance_view(p["resourcegroups"], p["virtualmachines"],
                                              **wire.hook)
        instance_view = wire.responses.pop()
        seen.record("virtual machines", compute.VirtualMachine, wire)
        wire.responses.append(instance_view)
        seen.record("VM instance views", compute.VirtualMachineInstanceView, wire)
    vm = vms[0]
    p = _parts(vm["id"])
    client.virtual_machines.get(p["resourcegroups"], p["virtualmachines"], expand="instanceView",
                                **wire.hook)
    seen.record("virtual machines", compute.VirtualMachine, wire)

    list(client.disks.list(**wire.hook))
    disks = [d for page in seen.record("disks", compute.Disk, wire) for d in page["value"]]
    list(client.disks.list_by_resource_group(_parts(disks[0]["id"])["resourcegroups"],
                                             **wire.hook))
    seen.record("disks", compute.Disk, wire)
    for disk in one_per_shape(disks):
        p = _parts(disk["id"])
        client.disks.get(p["resourcegroups"], p["disks"], **wire.hook)
        seen.record("disks", compute.Disk, wire)

    list(client.resource_skus.list(**wire.hook))
    seen.record("resource SKUs", compute.ResourceSku, wire)
    list(client.resource_skus.list(filter=f"location eq '{vms[0]['location']}'", **wire.hook))
    seen.record("resource SKUs", compute.ResourceSku, wire)


def read_backup(world: World, sub: str) -> None:
    """Vaults, policies and items of one subscription: lists, and a GET per shape."""
    seen, wire = world.seen, Wire()
    vault_client = world.access.vaults(sub)
    list(vault_client.vaults.list_by_subscription_id(**wire.hook))
    listed = [v for page in seen.record("vaults", vaults.Vault, wire) for v in page["value"]]
    for vault in listed:
        p = _parts(vault["id"])
        vault_client.vaults.get(p["resourcegroups"], p["vaults"], **wire.hook)
        seen.record("vaults", vaults.Vault, wire)
    list(vault_client.vaults.list_by_resource_group(_parts(listed[0]["id"])["resourcegroups"],
                                                    **wire.hook))
    seen.record("vaults", vaults.Vault, wire)

    client = world.access.backup(sub)
    policies, items = [], []
    for vault in listed:
        p = _parts(vault["id"])
        args = (p["vaults"], p["resourcegroups"])
        list(client.backup_policies.list(*args, filter="backupManagementType eq 'AzureIaasVM'",
                                         **wire.hook))
        policies += [x for page in seen.record("backup policies",
                                               backup.ProtectionPolicyResource, wire)
                     for x in page["value"]]
        list(client.backup_protected_items.list(
            *args, filter="backupManagementType eq 'AzureIaasVM' and itemType eq 'VM'",
            **wire.hook))
        items += [x for page in seen.record("protected items", backup.ProtectedItemResource,
                                            wire) for x in page["value"]]
        proxies = list(client.resource_guard_proxies.get(*args, **wire.hook))
        seen.record("resource guard proxies", backup.ResourceGuardProxyBaseResource, wire)
        for proxy in proxies:
            client.resource_guard_proxy.get(*args, proxy.name, **wire.hook)
            seen.record("resource guard proxies", backup.ResourceGuardProxyBaseResource, wire)
    for policy in one_per_shape(policies):
        p = _parts(policy["id"])
        client.protection_policies.get(p["vaults"], p["resourcegroups"], p["backuppolicies"],
                                       **wire.hook)
        seen.record("backup policies", backup.ProtectionPolicyResource, wire)
    for item in one_per_shape(items):
        client.protected_items.get(*_item_args(item["id"]), **wire.hook)
        seen.record("protected items", backup.ProtectedItemResource, wire)
    world.notes.setdefault("policies", []).extend(policies)
    world.notes.setdefault("items", []).extend(items)


def write_backup(world: World) -> None:
    """Enable protection (a ConfigureBackup job, failed by a fault), edit a policy with items (its
    ConfigureBackup jobs complete), create a policy, and back an item up (its Backup job stays
    InProgress); read every operation's status and result, then the vaults' jobs."""
    seen, wire = world.seen, Wire()
    (vm, vault), (failing_vm, _) = _unprotected_vms(world.fleet)
    sub = _parts(vault["id"])["subscriptions"]
    client = world.access.backup(sub)
    vp = _parts(vault["id"])
    vault_args = (vp["vaults"], vp["resourcegroups"])
    policy = _v2_policy(world, vault)

    # Enable protection on two VMs (the second one's job fails by the fault): each item
    # operation's status, while running and once done, and its result (an ARM error body for the
    # failed one).
    for target in (vm, failing_vm):
        rg, name = _parts(target["id"])["resourcegroups"], target["name"]
        item_args = (*vault_args, "Azure", f"IaasVMContainer;iaasvmcontainerv2;{rg};{name}",
                     f"VM;iaasvmcontainerv2;{rg};{name}")
        body = {"properties": {"protectedItemType": VM, "sourceResourceId": target["id"],
                               "policyId": policy["id"]}}
        client.protected_items.begin_create_or_update(*item_args, body, polling=False,
                                                      **wire.hook)
        op = _op_id(wire.first("PUT"))
        wire.responses.clear()
        status = client.protected_item_operation_statuses
        status.get(*item_args, op, **wire.hook)
        _wait(lambda: status.get(*item_args, op))  # noqa: B023
        status.get(*item_args, op, **wire.hook)
        seen.record("item operation statuses", backup.OperationStatus, wire)
        try:
            client.protected_item_operation_results.get(*item_args, op, **wire.hook)
            seen.record("item operation results", backup.ProtectedItemResource, wire)
            client.protected_items.get(*item_args, **wire.hook)
            seen.record("protected items", backup.ProtectedItemResource, wire)
        except HttpResponseError:
            seen.record("ARM errors", backup.ErrorResponse, wire)

    # A policy edit (same properties) on a policy with items, and a new policy.
    used = max((p for p in world.notes["policies"] if p["id"].lower().startswith(
        vault["id"].lower() + "/")), key=lambda p: p["properties"].get("protectedItemsCount", 0))
    props = {k: v for k, v in used["properties"].items() if k != "protectedItemsCount"}
    for policy_name in (used["name"], "contract-keys-new-policy"):
        client.protection_policies.create_or_update(*vault_args, policy_name,
                                                    {"properties": props}, **wire.hook)
        put = wire.first("PUT")
        wire.responses.clear()
        if put.status_code == 200:  # Azure may answer a policy PUT 200 with the policy
            wire.responses.append(put)
            seen.record("backup policies", backup.ProtectionPolicyResource, wire)
            continue
        op = _op_id(put)
        statuses = client.protection_policy_operation_statuses
        statuses.get(*vault_args, policy_name, op, **wire.hook)
        _wait(lambda: statuses.get(*vault_args, policy_name, op))  # noqa: B023
        statuses.get(*vault_args, policy_name, op, **wire.hook)
        seen.record("policy operation statuses", backup.OperationStatus, wire)
        client.protection_policy_operation_results.get(*vault_args, policy_name, op, **wire.hook)
        seen.record("policy operation results", backup.ProtectionPolicyResource, wire)

    # An on-demand backup of an item that was protected before this test.
    protected = next(i for i in world.notes["items"] if i["id"].lower().startswith(
        vault["id"].lower() + "/") and i["properties"].get("protectionState") == "Protected")
    trigger = {"properties": {"objectType": "IaasVMBackupRequest"}}
    client.backups.trigger(*_item_args(protected["id"]), trigger, **wire.hook)
    op = _op_id(wire.first("POST"))
    wire.responses.clear()
    client.backup_operation_statuses.get(*vault_args, op, **wire.hook)
    _wait(lambda: client.backup_operation_statuses.get(*vault_args, op))
    client.backup_operation_statuses.get(*vault_args, op, **wire.hook)
    seen.record("backup operation statuses", backup.OperationStatus, wire)
    client.backup_operation_results.get(*vault_args, op, **wire.hook)  # 202/204: no body
    seen.record("backup operation statuses", backup.OperationStatus, wire)
    client.protected_item_operation_statuses.get(*_item_args(protected["id"]), op, **wire.hook)
    seen.record("item operation statuses", backup.OperationStatus, wire)

    # The jobs all that made: listed, and each fetched.
    list(client.backup_jobs.list(*vault_args, **wire.hook))
    jobs = [j for page in seen.record("jobs", backup.JobResource, wire) for j in page["value"]]
    for job in jobs:
        client.job_details.get(*vault_args, job["name"], **wire.hook)
        seen.record("jobs", backup.JobResource, wire)
    world.notes["jobs"] = jobs


def read_ended_backup_job(world: World, config: EmulatorConfig) -> None:
    """A Backup job that has ended: the main emulator keeps its Backup job InProgress, so a
    second one over the same fleet runs Backup jobs for 0.1 s."""
    item = next(i for i in world.notes["items"]
                if i["properties"].get("protectionState") == "Protected")
    vault_name, rg = _item_args(item["id"])[:2]
    with Emulator(world.fleet, config=replace(config, backup_job_seconds=0.1)) as emu:
        access = _access(emu)
        try:
            client, wire = access.backup(_parts(item["id"])["subscriptions"]), Wire()
            client.backups.trigger(*_item_args(item["id"]),
                                   {"properties": {"objectType": "IaasVMBackupRequest"}},
                                   **wire.hook)
            op = _op_id(wire.first("POST"))
            wire.responses.clear()
            _wait(lambda: client.backup_operation_statuses.get(vault_name, rg, op))
            job = client.backup_operation_statuses.get(vault_name, rg, op).properties.job_id
            _wait(lambda: {"status": "InProgress" if client.job_details.get(
                vault_name, rg, job).properties.status == "InProgress" else "ended"})
            client.job_details.get(vault_name, rg, job, **wire.hook)
            list(client.backup_jobs.list(vault_name, rg, **wire.hook))
            bodies = world.seen.record("jobs", backup.JobResource, wire)
            world.notes["jobs"] += [j for b in bodies for j in b.get("value") or [b]]
        finally:
            access.close()


def _expect_error(world: World, wire: Wire, model: type, call: Callable[[], Any]) -> None:
    """An ARM error envelope, as the error model the operation's generated code names
    (``_failsafe_deserialize(_models.CloudError|ErrorResponse, response)``)."""
    with pytest.raises(HttpResponseError):
        call()
    world.seen.record("ARM errors", model, wire)


def read_errors(world: World) -> None:
    """404s of a VM, a vault, a policy and a job that do not exist."""
    wire = Wire()
    vault = next(v for v in world.of_type(VAULT))
    p = _parts(vault["id"])
    sub, rg, name = p["subscriptions"], p["resourcegroups"], p["vaults"]
    _expect_error(world, wire, compute.CloudError, lambda: world.access.compute(
        sub).virtual_machines.get(rg, "no-such-vm", **wire.hook))
    _expect_error(world, wire, vaults.CloudError, lambda: world.access.vaults(sub).vaults.get(
        rg, "no-such-vault", **wire.hook))
    client = world.access.backup(sub)
    _expect_error(world, wire, backup.ErrorResponse, lambda: client.protection_policies.get(
        name, rg, "no-such-policy", **wire.hook))
    _expect_error(world, wire, backup.ErrorResponse, lambda: client.job_details.get(
        name, rg, "00000000-0000-0000-0000-00000000dead", **wire.hook))


def read_resource_graph(world: World, subs: list[str]) -> None:
    """A paged query (first and next page) and a ``summarize``: ``QueryResponse`` is an msrest
    model (azure-mgmt-resourcegraph 8), so this also walks the msrest side of ``sdk_models``;
    the rows themselves are free-form (``data: object``)."""
    from azure.mgmt.resourcegraph.models import QueryRequest, QueryRequestOptions, QueryResponse

    client, wire = world.access.resource_graph(), Wire()
    query = "Resources | where type =~ 'microsoft.compute/virtualmachines' | project id, name"
    first = client.resources(QueryRequest(subscriptions=subs, query=query, options=(
        QueryRequestOptions(top=50, result_format="objectArray"))), **wire.hook)
    client.resources(QueryRequest(subscriptions=subs, query=query, options=QueryRequestOptions(
        top=50, skip_token=first.skip_token, result_format="objectArray")), **wire.hook)
    client.resources(QueryRequest(subscriptions=subs, query=(
        "Resources | summarize count() by type"), options=QueryRequestOptions(
        result_format="objectArray")), **wire.hook)
    world.seen.record("resource graph", QueryResponse, wire)


def _subscription_client(world: World) -> Any:
    """azure-mgmt-resource-subscriptions' ``SubscriptionClient`` (the subscription models moved
    out of azure-mgmt-resource, whose 26.0 no longer has them), wired like ``AzureAccess``'s
    clients: the same credential, endpoint, scope and CA bundle."""
    from azure.mgmt.resource.subscriptions import SubscriptionClient

    access = world.access
    return SubscriptionClient(access.credential, base_url=access.base_url,
                              credential_scopes=[access.cloud.scope],
                              connection_verify=str(world.emu.ca_bundle))


def read_subscriptions(world: World) -> None:
    """Subscriptions list and get, tenants list: what ``az login`` and tenant-wide scoping read."""
    from azure.mgmt.resource.subscriptions import models as subs

    seen, wire = world.seen, Wire()
    with _subscription_client(world) as client:
        listed = list(client.subscriptions.list(**wire.hook))
        seen.record("subscriptions", subs.Subscription, wire)
        for sub in listed:
            client.subscriptions.get(sub.subscription_id, **wire.hook)
            seen.record("subscriptions", subs.Subscription, wire)
        list(client.tenants.list(**wire.hook))
        seen.record("tenants", subs.TenantIdDescription, wire)


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    fleet = _fleet()
    config = EmulatorConfig(operation_seconds=0.1, job_seconds=0.1, backup_job_seconds=600,
                            list_page_size=100, read_capacity=100_000, read_refill=10_000.0,
                            write_capacity=1_000, write_refill=100.0)
    subs = [s["subscriptionId"] for s in fleet["subscriptions"]]
    first_vault = next(r for r in fleet["resources"] if r["type"] == VAULT)
    _, (failing_vm, _) = _unprotected_vms(fleet)
    # A guarded vault shows a resource guard proxy; the VM being protected gets a failed job.
    faults = Faults(resource_guard_vaults=[first_vault["name"]], fail_jobs_for=[failing_vm["name"]])
    with Emulator(fleet, config=config, faults=faults) as emu:
        access = _access(emu)
        w = World(emu, access, fleet)
        try:
            for sub in subs:
                read_compute(w, sub)
                read_backup(w, sub)
            write_backup(w)
            read_ended_backup_job(w, config)
            read_errors(w)
            read_resource_graph(w, subs)
            read_subscriptions(w)  # GET /subscriptions, /subscriptions/{id}: emulator/arm_meta.py
            yield w
        finally:
            access.close()


# -- the checks ---------------------------------------------------------------------------------

WHAT = ("virtual machines", "VM instance views", "disks", "resource SKUs", "vaults",
        "backup policies", "protected items", "resource guard proxies", "item operation statuses",
        "item operation results", "policy operation statuses", "policy operation results",
        "backup operation statuses", "jobs", "ARM errors", "resource graph", "subscriptions",
        "tenants")


@pytest.mark.parametrize("what", WHAT)
def test_emulator_sends_no_key_the_sdk_model_does_not_know(world: World, what: str) -> None:
    """A key the SDK cannot read is one Azure does not send: code must not come to rely on it."""
    problems, _ = undocumented(world, what)
    assert not problems, f"{what}: keys the SDK model does not know:\n  " + "\n  ".join(problems)


def test_every_documented_exception_names_its_spec_and_is_still_needed(world: World) -> None:
    """An exception the emulator no longer needs is removed, so the list stays the truth."""
    assert all("specification/" in why for why in DOCUMENTED.values())
    used = set().union(*(undocumented(world, what)[1] for what in WHAT
                         if world.seen.bodies[what]))
    assert used == set(DOCUMENTED), f"not needed any more: {sorted(set(DOCUMENTED) - used)}"


def test_the_fleet_and_the_writes_cover_every_shape(world: World) -> None:
    """The check is only as good as the shapes it saw: every kind the brief names occurred."""
    vms = [b for _, _, body in world.seen.bodies["virtual machines"]
           for b in (body.get("value") or [body])]
    security = {(vm["properties"].get("securityProfile") or {}).get("securityType") for vm in vms}
    assert {"TrustedLaunch", "ConfidentialVM"} <= security
    assert any(vm["properties"]["storageProfile"]["osDisk"].get("diffDiskSettings")
               for vm in vms), "no ephemeral OS disk"
    disks = [b for _, _, body in world.seen.bodies["disks"] for b in (body.get("value") or [body])]
    assert {"UltraSSD_LRS", "PremiumV2_LRS"} <= {d["sku"]["name"] for d in disks}
    assert any(d["properties"].get("maxShares", 1) > 1 for d in disks), "no shared disk"
    assert any(d["properties"].get("dataAccessAuthMode") for d in disks), "no data access auth"
    policies = world.notes["policies"]
    kinds = {(p["properties"].get("policyType"), p["properties"].get("snapshotConsistencyType"))
             for p in policies}
    assert {("V1", None), ("V2", None), ("V2", "OnlyCrashConsistent")} <= kinds
    states = {i["properties"].get("protectionState") for i in world.notes["items"]}
    assert {"Protected", "IRPending", "ProtectionError", "ProtectionStopped",
            "BackupsSuspended"} <= states
    jobs = {(j["properties"]["operation"], j["properties"]["status"])
            for j in world.notes["jobs"]}
    assert {("ConfigureBackup", "Completed"), ("ConfigureBackup", "Failed"),
            ("Backup", "InProgress"), ("Backup", "Completed")} <= jobs, jobs
    objects = {body.get("properties", {}).get("objectType")
               for what in ("item operation statuses", "policy operation statuses",
                            "backup operation statuses")
               for _, _, body in world.seen.bodies[what]}
    assert {"OperationStatusJobExtendedInfo", "OperationStatusJobsExtendedInfo"} <= objects
    assert world.seen.bodies["resource guard proxies"], "no guarded vault's proxy was read"
