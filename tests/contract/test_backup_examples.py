"""Recovery Services backup examples: the emulator accepts each example's request, sent through
``RecoveryServicesBackupClient`` from the project's ``AzureAccess`` (the raw SDK operation the
example documents), and answers with every key of the example's response (rules:
``fleet_from_examples``). The fleet keeps the examples' subscription, vaults, policies, containers
and items, so paths and bodies go out as published; what is swapped (operation and job ids the
emulator issued, a job filter's dates) is listed in ``test_rest_examples.NOT_APPLICABLE``.

Writes answer 202 in the emulator (Azure may answer 200 or 202): the 202 must carry the
example's ``Azure-AsyncOperation``/``Location``/``Retry-After`` (absolute emulator URLs of the
example's path shape), and the example's 200 body is compared with what the operation's result
URL (or the LRO's final GET) returns once the operation is done.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest

from emulator.server import Emulator
from tests.contract.fleet_from_examples import (
    NET_ITEM_ID,
    SUB_BACKUP,
    Wire,
    async_header_problems,
    compare,
    contract_fleet,
    example_stems,
    load_example,
    plain,
    request_problems,
    running,
    without,
)

SERVICE = "recoveryservicesbackup"
DEADLINE = 10.0  # seconds an emulator operation (0.05 s) may take before the test gives up


@dataclass
class World:
    emu: Emulator
    access: Any
    backup_job: str = ""  # an InProgress Backup job in NetSDKTestRsVault (jobs world only)

    @property
    def client(self) -> Any:
        return self.access.backup(SUB_BACKUP)


@pytest.fixture(scope="module")
def reads() -> Iterator[World]:
    """The contract fleet, read only."""
    with running() as (emu, access):
        yield World(emu, access)


@pytest.fixture(scope="module")
def jobs() -> Iterator[World]:
    """NetSDKTestRsVault with a Completed ConfigureBackup job (ConfigureProtection.json's request
    on its VM) and an InProgress Backup job (TriggerBackup_Post.json's request on that item)."""
    with running(backup_job_seconds=300) as (emu, access):
        world = World(emu, access)
        configure = load_example(SERVICE, "ConfigureProtection")["parameters"]
        _item_call(world, configure, "begin_create_or_update", configure["parameters"]).result()
        wire = Wire()
        trigger = load_example(SERVICE, "TriggerBackup_Post")["parameters"]
        _item_call(world, configure, "trigger", trigger["parameters"], wire=wire,
                   group="backups")
        status = _wait_item_operation(world, configure, _op_id(wire.first("POST")))
        world.backup_job = status["properties"]["jobId"]
        yield world


# -- SDK calls, addressed the way the examples address them -----------------------------------

def _item_args(p: dict) -> tuple[str, ...]:
    return (p["vaultName"], p["resourceGroupName"], p["fabricName"], p["containerName"],
            p["protectedItemName"])


def _item_call(world: World, p: dict, method: str, *args: Any, wire: Wire | None = None,
               group: str = "protected_items", **kwargs: Any) -> Any:
    """``client.<group>.<method>(vault, rg, fabric, container, item, *args)``."""
    hook = wire.hook if wire else {}
    return getattr(getattr(world.client, group), method)(*_item_args(p), *args, **hook,
                                                         **kwargs)


def _op_id(response: Any) -> str:
    url = response.headers.get("Azure-AsyncOperation") or response.headers.get("Location")
    assert url, f"{response.request.method} answered {response.status_code} without an " \
                "Azure-AsyncOperation or Location header"
    return urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]


def _wait(read: Callable[[], Any]) -> dict:
    deadline = time.monotonic() + DEADLINE
    while True:
        status = dict(read())
        if status.get("status") != "InProgress" or time.monotonic() > deadline:
            return status
        time.sleep(0.02)


def _wait_item_operation(world: World, p: dict, op_id: str) -> dict:
    return _wait(lambda: _item_call(world, p, "get", op_id,
                                    group="protected_item_operation_statuses"))


def _wait_policy_operation(world: World, p: dict, op_id: str) -> dict:
    return _wait(lambda: world.client.protection_policy_operation_statuses.get(
        p["vaultName"], p["resourceGroupName"], p["policyName"], op_id))


def _ended(what: str, status: dict) -> list[str]:
    if status.get("status") == "Succeeded":
        return []
    return [f"{what} ended {status.get('status')}: {status.get('error')}"]


def _put_policy(world: World, ex: dict) -> tuple[list[str], str | None]:
    """The example's policy PUT; problems with the request or its 202, and the operation id."""
    p, wire = ex["parameters"], Wire()
    world.client.protection_policies.create_or_update(
        p["vaultName"], p["resourceGroupName"], p["policyName"], p["parameters"], **wire.hook)
    put = wire.first("PUT")
    problems = request_problems(put, body=p["parameters"], path=(
        p["vaultName"], p["resourceGroupName"], p["policyName"]))
    if put.status_code != 202:
        return [*problems, f"PUT answered {put.status_code}; emulator writes answer 202"], None
    problems += async_header_problems(ex["responses"]["202"]["headers"], put.headers,
                                      world.emu.endpoint)
    op_id = _op_id(put)
    return problems + _ended("the policy operation", _wait_policy_operation(world, p, op_id)), op_id


# -- scenarios ---------------------------------------------------------------------------------

def _list_policies(world: World, ex: dict) -> list[str]:
    p, wire = ex["parameters"], Wire()
    list(world.client.backup_policies.list(p["vaultName"], p["resourceGroupName"],
                                           filter=p["$filter"], **wire.hook))
    return (request_problems(wire.first(), query={"$filter": p["$filter"]},
                             path=(p["vaultName"], p["resourceGroupName"]))
            + compare("list 200", ex["responses"]["200"]["body"], wire.pages()))


def _get_policy(world: World, ex: dict) -> list[str]:
    p, wire = ex["parameters"], Wire()
    world.client.protection_policies.get(p["vaultName"], p["resourceGroupName"],
                                         p["policyName"], **wire.hook)
    return (request_problems(wire.first(), path=(p["vaultName"], p["policyName"]))
            + compare("GET 200", ex["responses"]["200"]["body"], wire.json()))


def _get_item(world: World, ex: dict) -> list[str]:
    p, wire = ex["parameters"], Wire()
    _item_call(world, p, "get", wire=wire)
    return (request_problems(wire.first(), path=_item_args(p))
            + compare("GET 200", ex["responses"]["200"]["body"], wire.json()))


def _list_items(world: World, ex: dict) -> list[str]:
    p, wire = ex["parameters"], Wire()
    list(world.client.backup_protected_items.list(p["vaultName"], p["resourceGroupName"],
                                                  filter=p["$filter"], **wire.hook))
    return (request_problems(wire.first(), query={"$filter": p["$filter"]},
                             path=(p["vaultName"], p["resourceGroupName"]))
            + compare("list 200", ex["responses"]["200"]["body"], wire.pages()))


def _policy_put(_: World | None, ex: dict) -> list[str]:
    """PUT the example's policy; once its operation is done, the policy the operation's result
    URL returns carries the example's 200 body keys."""
    with running() as (emu, access):
        fresh = World(emu, access)
        problems, op_id = _put_policy(fresh, ex)
        if op_id is None:
            return problems
        p, wire = ex["parameters"], Wire()
        fresh.client.protection_policy_operation_results.get(
            p["vaultName"], p["resourceGroupName"], p["policyName"], op_id, **wire.hook)
        return problems + compare("operationResults 200 (the PUT's 200 body)",
                                  ex["responses"]["200"]["body"], wire.json())


def _policy_operation(kind: str) -> Callable[[World | None, dict], list[str]]:
    """Policy operation status/result: the operation id is one the emulator issued for
    ProtectionPolicies_CreateOrUpdate_Simple.json's PUT of the same policy."""

    def check(_: World | None, ex: dict) -> list[str]:
        with running() as (emu, access):
            fresh = World(emu, access)
            put = load_example(SERVICE, "ProtectionPolicies_CreateOrUpdate_Simple")
            p = ex["parameters"]
            assert put["parameters"]["policyName"] == p["policyName"]
            problems, op_id = _put_policy(fresh, put)
            if op_id is None:
                return problems
            wire = Wire()
            getattr(fresh.client, kind).get(p["vaultName"], p["resourceGroupName"],
                                            p["policyName"], op_id, **wire.hook)
            return (problems + request_problems(wire.first(), path=(p["policyName"], op_id))
                    + compare(f"{kind} 200", ex["responses"]["200"]["body"], wire.json()))

    return check


def _item_put(fleet: Callable[[], dict]) -> Callable[[World | None, dict], list[str]]:
    """An item PUT as an LRO: 202 with the example's headers, then the item the poller's final
    GET returns carries the example's 200 body keys."""

    def check(_: World | None, ex: dict) -> list[str]:
        with running(fleet()) as (emu, access):
            fresh = World(emu, access)
            p, wire = ex["parameters"], Wire()
            poller = _item_call(fresh, p, "begin_create_or_update", p["parameters"], wire=wire)
            put = wire.first("PUT")
            problems = request_problems(put, body=p["parameters"], path=_item_args(p))
            problems += async_header_problems(ex["responses"]["202"]["headers"], put.headers,
                                              emu.endpoint)
            item = poller.result(timeout=DEADLINE)
            problems += _ended("the item operation",
                               _wait_item_operation(fresh, p, _op_id(put)))
            return problems + compare("the LRO's final GET (the PUT's 200 body)",
                                      ex["responses"]["200"]["body"], plain(item))

    return check


def _configure_then(world: World, p: dict) -> tuple[list[str], str]:
    """ConfigureProtection.json's request on its item, waited for; its operation id."""
    configure = load_example(SERVICE, "ConfigureProtection")["parameters"]
    assert _item_args(configure) == _item_args(p), "the item examples name different items"
    wire = Wire()
    _item_call(world, configure, "begin_create_or_update", configure["parameters"],
               wire=wire).result(timeout=DEADLINE)
    op_id = _op_id(wire.first("PUT"))
    return _ended("ConfigureProtection", _wait_item_operation(world, p, op_id)), op_id


def _item_status(_: World | None, ex: dict) -> list[str]:
    with running() as (emu, access):
        fresh = World(emu, access)
        p = ex["parameters"]
        problems, op_id = _configure_then(fresh, p)
        wire = Wire()
        _item_call(fresh, p, "get", op_id, wire=wire, group="protected_item_operation_statuses")
        return (problems + request_problems(wire.first(), path=(*_item_args(p), op_id))
                + compare("operationsStatus 200", ex["responses"]["200"]["body"], wire.json()))


def _item_result(_: World | None, ex: dict) -> list[str]:
    """200 with the item once done; 204 once the item is gone (after a delete); 202 with the
    example's async headers while an operation runs (a stuck one)."""
    with running() as (emu, access):
        fresh = World(emu, access)
        p = ex["parameters"]
        problems, op_id = _configure_then(fresh, p)
        wire = Wire()
        _item_call(fresh, p, "get", op_id, wire=wire, group="protected_item_operation_results")
        got = wire.first()
        problems += request_problems(got, path=(*_item_args(p), op_id))
        if got.status_code != 200:
            problems.append(f"operationResults of a finished operation answered "
                            f"{got.status_code}, the example 200")
        problems += compare("operationResults 200", ex["responses"]["200"]["body"], got.json())

        delete = Wire()
        _item_call(fresh, p, "delete", wire=delete)
        deleted = _op_id(delete.first("DELETE"))
        problems += _ended("the delete", _wait_item_operation(fresh, p, deleted))
        wire = Wire()
        _item_call(fresh, p, "get", deleted, wire=wire, group="protected_item_operation_results")
        if wire.first().status_code != 204:
            problems.append(f"operationResults after the item is gone answered "
                            f"{wire.first().status_code}, the example 204")

        emu.world.faults.stuck_operations = True
        put = Wire()
        configure = load_example(SERVICE, "ConfigureProtection")["parameters"]
        _item_call(fresh, p, "begin_create_or_update", configure["parameters"], wire=put,
                   polling=False)
        wire = Wire()
        _item_call(fresh, p, "get", _op_id(put.first("PUT")), wire=wire,
                   group="protected_item_operation_results")
        running_op = wire.first()
        if running_op.status_code != 202:
            return [*problems, f"operationResults of a running operation answered "
                               f"{running_op.status_code}, the example 202"]
        return problems + [f"operationResults 202: {x}" for x in async_header_problems(
            ex["responses"]["202"]["headers"], running_op.headers, emu.endpoint)]


def _trigger(_: World | None, ex: dict) -> list[str]:
    with running() as (emu, access):
        fresh = World(emu, access)
        p, wire = ex["parameters"], Wire()
        _item_call(fresh, p, "trigger", p["parameters"], wire=wire, group="backups")
        post = wire.first("POST")
        problems = request_problems(post, body=p["parameters"], path=(*_item_args(p), "backup"))
        if post.status_code != 202:
            problems.append(f"POST backup answered {post.status_code}, the example 202")
        problems += async_header_problems(ex["responses"]["202"]["headers"], post.headers,
                                          emu.endpoint)
        return problems + _ended("the backup operation",
                                 _wait_item_operation(fresh, p, _op_id(post)))


def _job(world: World, ex: dict) -> list[str]:
    p, wire = ex["parameters"], Wire()
    world.client.job_details.get(p["vaultName"], p["resourceGroupName"], world.backup_job,
                                 **wire.hook)
    return (request_problems(wire.first(), path=(p["vaultName"], world.backup_job))
            + compare("GET 200", ex["responses"]["200"]["body"], wire.json()))


def _list_jobs(world: World, ex: dict) -> list[str]:
    p, wire = ex["parameters"], Wire()
    list(world.client.backup_jobs.list(p["vaultName"], p["resourceGroupName"], **wire.hook))
    return (request_problems(wire.first(), path=(p["vaultName"], p["resourceGroupName"]))
            + compare("list 200", ex["responses"]["200"]["body"], wire.pages()))


def _job_filter_now(example_filter: str) -> str:
    """The example's filter with its window (2016-01-01 .. 2017-11-29) moved around now, in the
    same ``'YYYY-MM-DD hh:mm:ss AM'`` format: the emulator's jobs start now."""
    now = datetime.now(UTC)
    fmt = "%Y-%m-%d %I:%M:%S %p"
    since, until = (now - timedelta(days=1)).strftime(fmt), (now + timedelta(days=1)).strftime(fmt)
    return (example_filter.replace("2016-01-01 00:00:00 AM", since)
            .replace("2017-11-29 00:00:00 AM", until))


def _filtered_jobs(world: World, ex: dict) -> list[str]:
    p = ex["parameters"]
    literal = Wire()
    list(world.client.backup_jobs.list(p["vaultName"], p["resourceGroupName"],
                                       filter=p["$filter"], **literal.hook))
    problems = request_problems(literal.first(), query={"$filter": p["$filter"]})
    moved = _job_filter_now(p["$filter"])
    assert moved != p["$filter"], "the example's filter dates changed; update _job_filter_now"
    wire = Wire()
    list(world.client.backup_jobs.list(p["vaultName"], p["resourceGroupName"], filter=moved,
                                       **wire.hook))
    return problems + compare("list 200 (window moved to now)", ex["responses"]["200"]["body"],
                              wire.pages())


def _fleet() -> dict:
    return contract_fleet()


def _fleet_without_net_item() -> dict:
    """ConfigureProtection enables protection: its VM must not be protected yet."""
    return without(contract_fleet(), NET_ITEM_ID)


# stem -> (the module world it reads, or None: it writes, so it starts an emulator of its own)
SCENARIOS: dict[str, tuple[str | None, Callable[[Any, dict], list[str]]]] = {
    "BackupPolicies_List": ("reads", _list_policies),
    "v2-List-Policies": ("reads", _list_policies),
    "ProtectionPolicies_Get": ("reads", _get_policy),
    "v2-Get-Policy": ("reads", _get_policy),
    "Compute_ProtectedItem_Get": ("reads", _get_item),
    "BackupProtectedItems_List": ("reads", _list_items),
    "ProtectionPolicies_CreateOrUpdate_Simple": (None, _policy_put),
    "ProtectionPolicies_CreateOrUpdate_Complex": (None, _policy_put),
    "IaaS_v2_hourly": (None, _policy_put),
    "ProtectionPolicyOperationResults_Get": (
        None, _policy_operation("protection_policy_operation_results")),
    "ProtectionPolicyOperationStatuses_Get": (
        None, _policy_operation("protection_policy_operation_statuses")),
    "ConfigureProtection": (None, _item_put(_fleet_without_net_item)),
    "StopProtection": (None, _item_put(_fleet)),
    "ProtectedItemOperationStatus": (None, _item_status),
    "ProtectedItemOperationResults": (None, _item_result),
    "TriggerBackup_Post": (None, _trigger),
    "GetJobDetails": ("jobs", _job),
    "ListJobs": ("jobs", _list_jobs),
    "ListJobsWithAllSupportedFilters": ("jobs", _filtered_jobs),
}


@pytest.mark.parametrize("stem", example_stems(SERVICE))
def test_emulator_accepts_the_backup_example_request_and_answers_every_example_key(
        stem: str, request: pytest.FixtureRequest) -> None:
    """Migration waves drive these calls; a key the SDK or our code reads must be there."""
    entry = SCENARIOS.get(stem)
    assert entry is not None, f"{SERVICE}/{stem}.json has no contract scenario; add one"
    world_name, scenario = entry
    world = request.getfixturevalue(world_name) if world_name else None
    problems = scenario(world, load_example(SERVICE, stem))
    assert not problems, f"{SERVICE}/{stem}.json:\n  " + "\n  ".join(problems)
