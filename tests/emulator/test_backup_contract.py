"""Emulator responses carry every key Microsoft's published REST examples carry.

The key trees below are read from the examples in ``azure/rest-examples/recoveryservicesbackup``
(kept in this repository: ``tests/contract/rest_examples``); ``test_key_trees_match_the_examples``
re-derives them, so the embedded copies cannot drift.
Responses are fetched raw (``requests``), so the SDK's deserialisation can't hide a gap.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import requests

from tests.emulator.test_backup_routes import (
    RG,
    VAULT,
    VAULT_ID,
    _token,
    client_for,
    item_names,
    policy_id,
    protect_body,
    running,
    wait_until,
)

_V1_SCHEDULE = {"schedulePolicyType": None, "scheduleRunFrequency": None,
                "scheduleRunTimes": None, "scheduleWeeklyFrequency": None}
_RETENTION = {"dailySchedule": {"retentionDuration": {"count": None, "durationType": None},
                                "retentionTimes": None}, "retentionPolicyType": None}
_ITEM_PROPS = dict.fromkeys(
    ["backupManagementType", "containerName", "friendlyName", "healthStatus",
     "lastBackupStatus", "lastBackupTime", "lastRecoveryPoint", "policyId", "policyType",
     "protectedItemDataId", "protectedItemType", "protectionState", "protectionStatus",
     "sourceResourceId", "virtualMachineId", "workloadType"])
_JOB_PROPS = dict.fromkeys(["activityId", "backupManagementType", "duration",
                            "entityFriendlyName", "jobType", "operation", "startTime", "status",
                            "virtualMachineVersion"])
_HEADERS = {"Azure-AsyncOperation": None, "Location": None, "Retry-After": None}

# (example file, JSON path in it, key tree). A None leaf means "the key must be present".
TREES: dict[str, tuple[str, tuple[Any, ...], Any]] = {
    "policy_get_v2": ("v2-Get-Policy.json", ("responses", "200", "body"), {
        "id": None, "name": None, "type": None, "properties": {
            "backupManagementType": None, "instantRpRetentionRangeInDays": None,
            "policyType": None, "protectedItemsCount": None,
            "resourceGuardOperationRequests": None, "retentionPolicy": _RETENTION,
            "schedulePolicy": {"dailySchedule": {"scheduleRunTimes": None},
                               "schedulePolicyType": None, "scheduleRunFrequency": None},
            "snapshotConsistencyType": None, "timeZone": None}}),
    "policy_list_v1": ("v2-List-Policies.json", ("responses", "200", "body", "value", 0), {
        "id": None, "name": None, "type": None, "properties": {
            "backupManagementType": None, "protectedItemsCount": None,
            "retentionPolicy": _RETENTION, "schedulePolicy": _V1_SCHEDULE}}),
    "policy_list_v2": ("v2-List-Policies.json", ("responses", "200", "body", "value", 2), {
        "id": None, "name": None, "type": None, "properties": {
            "backupManagementType": None, "protectedItemsCount": None,
            "retentionPolicy": _RETENTION,
            "schedulePolicy": {"dailySchedule": {"scheduleRunTimes": None},
                               "schedulePolicyType": None, "scheduleRunFrequency": None},
            "timeZone": None}}),
    "policy_op_result_v1": ("ProtectionPolicyOperationResults_Get.json",
                            ("responses", "200", "body"), {
        "id": None, "name": None, "type": None, "properties": {
            "backupManagementType": None, "protectedItemsCount": None,
            "retentionPolicy": _RETENTION, "schedulePolicy": _V1_SCHEDULE, "timeZone": None}}),
    "policy_op_status": ("ProtectionPolicyOperationStatuses_Get.json",
                         ("responses", "200", "body"), {
        "endTime": None, "id": None, "name": None, "startTime": None, "status": None,
        "properties": {"failedJobsError": {}, "jobIds": None, "objectType": None}}),
    "item_get": ("Compute_ProtectedItem_Get.json", ("responses", "200", "body"),
                 {"id": None, "name": None, "type": None, "properties": _ITEM_PROPS}),
    "item_list": ("BackupProtectedItems_List.json", ("responses", "200", "body", "value", 0),
                  {"id": None, "name": None, "type": None, "properties": _ITEM_PROPS}),
    "item_op_result": ("ProtectedItemOperationResults.json", ("responses", "200", "body"), {
        "id": None, "name": None, "type": None,
        "properties": {k: None for k in _ITEM_PROPS if k != "policyType"}}),
    "item_op_status": ("ProtectedItemOperationStatus.json", ("responses", "200", "body"), {
        "endTime": None, "id": None, "name": None, "startTime": None, "status": None,
        "properties": {"jobId": None, "objectType": None}}),
    "item_op_result_202": ("ProtectedItemOperationResults.json",
                           ("responses", "202", "headers"), _HEADERS),
    "item_put_202": ("ConfigureProtection.json", ("responses", "202", "headers"), _HEADERS),
    "trigger_202": ("TriggerBackup_Post.json", ("responses", "202", "headers"), _HEADERS),
    "policy_put_202": ("IaaS_v2_hourly.json", ("responses", "202", "headers"), _HEADERS),
    "job_get": ("GetJobDetails.json", ("responses", "200", "body"), {
        "id": None, "name": None, "type": None, "properties": {
            **_JOB_PROPS, "extendedInfo": {
                "propertyBag": {"VM Name": None},
                "tasksList": [{"duration": None, "status": None, "taskId": None}]}}}),
    "job_list": ("ListJobs.json", ("responses", "200", "body", "value", 0),
                 {"id": None, "name": None, "type": None, "properties": _JOB_PROPS}),
}


def _examples_dir() -> Path:
    """The project's copy of the examples (``tests/contract/rest_examples``)."""
    return Path(__file__).resolve().parents[1] / "contract" / "rest_examples" / \
        "recoveryservicesbackup"


def _tree(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _tree(v) for k, v in value.items()}
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return [_tree(value[0])]
    return None


def missing(expected: Any, actual: Any, path: str = "") -> list[str]:
    """Paths of keys in ``expected`` that ``actual`` lacks (lists: every element checked)."""
    out: list[str] = []
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [path or "."]
        for key, sub in expected.items():
            if key not in actual:
                out.append(f"{path}.{key}")
            elif sub:
                out += missing(sub, actual[key], f"{path}.{key}")
    elif isinstance(expected, list) and expected:
        if not isinstance(actual, list) or not actual:
            return [f"{path}[]"]
        for i, element in enumerate(actual):
            out += missing(expected[0], element, f"{path}[{i}]")
    return out


def test_key_trees_match_the_examples() -> None:
    folder = _examples_dir()
    for name, (example, path, tree) in TREES.items():
        node: Any = json.loads((folder / example).read_text())
        for step in path:
            node = node[step]
        assert _tree(node) == tree, name


def _get(emu: Any, url: str, token: str) -> requests.Response:
    if not url.startswith("http"):
        url = f"{emu.endpoint}{url}{'&' if '?' in url else '?'}api-version=2026-10-01"
    return requests.get(url, headers={"Authorization": f"Bearer {token}"},
                        verify=str(emu.ca_bundle), timeout=10)


def _send(emu: Any, method: str, url: str, token: str, body: dict) -> requests.Response:
    return requests.request(method, f"{emu.endpoint}{url}?api-version=2026-10-01", json=body,
                            headers={"Authorization": f"Bearer {token}"},
                            verify=str(emu.ca_bundle), timeout=10)


def _check(name: str, actual: Any) -> None:
    assert missing(TREES[name][2], actual) == [], name


def test_every_backup_response_carries_the_example_keys() -> None:
    with running() as emu:
        token = _token(emu)
        client = client_for(emu)
        get = lambda url: _get(emu, url, token)  # noqa: E731

        # Policies: single GET (V2 crash-consistent), list (V1 and V2 entries).
        _check("policy_get_v2", get(f"{policy_id('enhanced-daily-crash')}").json())
        listed = {p["name"]: p for p in get(f"{VAULT_ID}/backupPolicies").json()["value"]}
        _check("policy_list_v1", listed["standard-daily"])
        _check("policy_list_v2", listed["enhanced-daily"])

        # A V1 policy edit: 202 headers, then the operation status and result.
        body = {"properties": get(policy_id("standard-daily")).json()["properties"]}
        put = _send(emu, "PUT", policy_id("standard-daily"), token, body)
        assert put.status_code == 202
        _check("policy_put_202", dict(put.headers))
        wait_until(lambda: get(put.headers["Azure-AsyncOperation"]).json()["status"]
                   == "Succeeded")
        _check("policy_op_status", get(put.headers["Azure-AsyncOperation"]).json())
        _check("policy_op_result_v1", get(put.headers["Location"]).json())

        # Protected items: single GET, list, then enabling protection for a new VM.
        container, item = item_names("vm-1111-0")
        item_url = (f"{VAULT_ID}/backupFabrics/Azure/protectionContainers/{container}"
                    f"/protectedItems/{item}")
        _check("item_get", get(item_url).json())
        for entry in get(f"{VAULT_ID}/backupProtectedItems").json()["value"]:
            _check("item_list", entry)
        new_container, new_item = item_names("vm-new")
        new_url = (f"{VAULT_ID}/backupFabrics/Azure/protectionContainers/{new_container}"
                   f"/protectedItems/{new_item}")
        put = _send(emu, "PUT", new_url, token,
                    protect_body("vm-new", policy_id("enhanced-daily-crash")))
        assert put.status_code == 202
        _check("item_put_202", dict(put.headers))
        wait_until(lambda: get(put.headers["Azure-AsyncOperation"]).json()["status"]
                   == "Succeeded")
        status = get(put.headers["Azure-AsyncOperation"]).json()
        _check("item_op_status", status)
        _check("item_op_result", get(put.headers["Location"]).json())
        _check("item_get", get(new_url).json())

        # On-demand backup and the jobs it leaves.
        trigger = requests.post(
            f"{emu.endpoint}{item_url}/backup?api-version=2026-10-01",
            json={"properties": {"objectType": "IaasVMBackupRequest"}},
            headers={"Authorization": f"Bearer {token}"}, verify=str(emu.ca_bundle), timeout=10)
        assert trigger.status_code == 202
        _check("trigger_202", dict(trigger.headers))
        wait_until(lambda: not list(client.backup_jobs.list(VAULT, RG,
                                                            filter="status eq 'InProgress'")))
        jobs = get(f"{VAULT_ID}/backupJobs").json()["value"]
        assert {j["properties"]["operation"] for j in jobs} == {"ConfigureBackup", "Backup"}
        for job in jobs:
            _check("job_list", job)
            _check("job_get", get(job["id"]).json())
        assert status["properties"]["jobId"] in {j["name"] for j in jobs}

        # And the SDK deserialises them into the documented models.
        assert type(client.protection_policies.get(VAULT, RG, "standard-daily").properties
                    ).__name__ == "AzureIaaSVMProtectionPolicy"
        assert {type(j.properties).__name__ for j in client.backup_jobs.list(VAULT, RG)} == {
            "AzureIaaSVMJob"}
        for job in jobs:
            details = client.job_details.get(VAULT, RG, job["name"]).properties
            assert details.extended_info.tasks_list and details.duration is not None


def test_operation_results_of_a_running_change_carry_the_example_headers() -> None:
    with running(operation_seconds=1.0) as emu:
        token = _token(emu)
        container, item = item_names("vm-1111-0")
        url = (f"{VAULT_ID}/backupFabrics/Azure/protectionContainers/{container}"
               f"/protectedItems/{item}")
        put = _send(emu, "PUT", url, token,
                    protect_body("vm-1111-0", policy_id("enhanced-daily-crash")))
        result = _get(emu, put.headers["Location"], token)
        assert result.status_code == 202
        _check("item_op_result_202", dict(result.headers))
        assert result.headers["Azure-AsyncOperation"] == put.headers["Azure-AsyncOperation"]
