"""On-demand backups, backup jobs and stuck operations in the emulator, through the real SDK."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from emulator.config import Faults
from tests.emulator.test_backup_routes import (
    RG,
    VAULT,
    client_for,
    error_code,
    get_item,
    headers_of,
    item_names,
    op_id,
    policy_id,
    running,
    start_change,
    wait_until,
)

BACKUP = {"properties": {"objectType": "IaasVMBackupRequest",
                         "recoveryPointExpiryTimeInUTC": "2026-12-25T00:00:00Z"}}


def _trigger(client: Any, vm: str) -> str:
    container, name = item_names(vm)
    captured: dict[str, str] = {}
    assert client.backups.trigger(VAULT, RG, "Azure", container, name, BACKUP,
                                  cls=headers_of(captured)) is None
    assert "/operationsStatus/" in captured["Azure-AsyncOperation"]
    assert "/operationResults/" in captured["Location"]
    return op_id(captured["Azure-AsyncOperation"])


def test_on_demand_backup_runs_a_backup_job_and_updates_the_item() -> None:
    with running(backup_job_seconds=0.3) as emu:
        client = client_for(emu)
        before = get_item(client, "vm-1111-0")["lastBackupTime"]
        op = _trigger(client, "vm-1111-0")
        status = wait_until(lambda: (lambda s: s if s.status == "Succeeded" else None)(
            client.backup_operation_statuses.get(VAULT, RG, op)))
        job_id = status.properties.job_id
        job = client.job_details.get(VAULT, RG, job_id).properties
        assert job.operation == "Backup"
        assert job.entity_friendly_name == "vm-1111-0"
        assert [t.task_id for t in job.extended_info.tasks_list] == [
            "Take Snapshot", "Transfer data to vault"]
        wait_until(lambda: client.job_details.get(VAULT, RG, job_id).properties.status
                   == "Completed")
        item = get_item(client, "vm-1111-0")
        assert item["lastBackupStatus"] == "Completed"
        assert item["lastBackupTime"] != before
        assert item["lastRecoveryPoint"] == item["lastBackupTime"]
        done = client.job_details.get(VAULT, RG, job_id).properties
        assert done.end_time is not None and done.duration.total_seconds() > 0
        assert {t.status for t in done.extended_info.tasks_list} == {"Completed"}


def test_backup_of_an_unsupported_vm_on_a_crash_consistent_policy_fails() -> None:
    with running() as emu:
        client = client_for(emu)
        op = _trigger(client, "vm-ultra-crash")
        container, name = item_names("vm-ultra-crash")
        status = wait_until(lambda: (lambda s: s if s.status != "InProgress" else None)(
            client.protected_item_operation_statuses.get(VAULT, RG, "Azure", container, name,
                                                         op)))
        assert status.status == "Succeeded"  # the trigger succeeded; the job fails
        job_id = status.properties.job_id
        wait_until(lambda: client.job_details.get(VAULT, RG, job_id).properties.status
                   == "Failed")
        job = client.job_details.get(VAULT, RG, job_id).properties
        assert job.error_details[0].error_title == "UserErrorCrashConsistentSnapshotNotSupported"
        assert "Ultra Disk" in job.extended_info.dynamic_error_message
        item = get_item(client, "vm-ultra-crash")
        assert item["lastBackupStatus"] == "Failed"
        assert item["lastBackupTime"] == "2026-11-24T02:10:00Z"  # unchanged


def test_a_malformed_backup_request_is_refused() -> None:
    with running() as emu:
        client = client_for(emu)
        container, name = item_names("vm-1111-0")
        with pytest.raises(HttpResponseError) as info:
            client.backups.trigger(VAULT, RG, "Azure", container, name,
                                   {"properties": {"objectType": "AzureFileShareBackupRequest"}})
        assert error_code(info.value) == "BMSUserErrorInvalidInput"
        with pytest.raises(ResourceNotFoundError):
            client.backups.trigger(VAULT, RG, "Azure", *item_names("vm-new"), BACKUP)


def test_jobs_list_filters_by_operation_status_and_time_and_follows_next_links() -> None:
    with running(list_page_size=2) as emu:
        client = client_for(emu)
        for vm in ("vm-1111-0", "vm-1111-1", "vm-1111-2"):
            start_change(client, vm, policy_id("enhanced-daily-crash")).result()
        _trigger(client, "vm-ultra")
        wait_until(lambda: not list(client.backup_jobs.list(VAULT, RG,
                                                            filter="status eq 'InProgress'")))
        every = list(client.backup_jobs.list(VAULT, RG))
        assert len(every) == 4  # two pages of two
        assert [j.properties.operation for j in every] == ["Backup"] + ["ConfigureBackup"] * 3
        configure = list(client.backup_jobs.list(
            VAULT, RG, filter="operation eq 'ConfigureBackup' and "
                              "backupManagementType eq 'AzureIaasVM' and status eq 'Completed'"))
        assert sorted(j.properties.entity_friendly_name for j in configure) == [
            "vm-1111-0", "vm-1111-1", "vm-1111-2"]
        window = ("startTime eq '2016-01-01 00:00:00 AM' and "
                  "endTime eq '2099-11-29 11:59:59 PM'")
        assert len(list(client.backup_jobs.list(VAULT, RG, filter=window))) == 4
        past = "startTime eq '2016-01-01 00:00:00 AM' and endTime eq '2017-11-29 00:00:00 AM'"
        assert list(client.backup_jobs.list(VAULT, RG, filter=past)) == []
        assert list(client.backup_jobs.list(VAULT, RG, filter="operation eq 'Restore'")) == []
        with pytest.raises(HttpResponseError) as info:
            list(client.backup_jobs.list(VAULT, RG, filter="entityFriendlyName eq 'vm-1111-0'"))
        assert info.value.status_code == 400
        with pytest.raises(ResourceNotFoundError):
            client.job_details.get(VAULT, RG, "00000000-0000-0000-0000-000000000000")


def test_jobs_belong_to_their_vault() -> None:
    with running() as emu:
        client = client_for(emu)
        start_change(client, "vm-1111-0", policy_id("enhanced-daily-crash")).result()
        assert list(client_for(emu, "22222222-2222-4222-8222-222222222222").backup_jobs.list(
            "vault-2222", RG)) == []
        assert len(emu.world.services["jobs"]) == 1


def test_stuck_operations_never_complete_and_leave_the_item_alone() -> None:
    with running(faults=Faults(stuck_operations=True)) as emu:
        client = client_for(emu)
        start_change(client, "vm-1111-0", policy_id("enhanced-daily-crash"), polling=False)
        _, name = item_names("vm-1111-0")
        for _ in range(5):
            jobs = list(client.backup_jobs.list(VAULT, RG))
            assert [j.properties.status for j in jobs] == ["InProgress"]
        assert get_item(client, "vm-1111-0")["policyId"] == policy_id("enhanced-daily")
        # The emulator's state dump runs the scheduler too: still nothing has changed.
        state = requests.get(f"{emu.endpoint}/_emulator/state", verify=str(emu.ca_bundle),
                             timeout=10).json()
        item = next(r for r in state["resources"] if r["name"] == name)
        assert item["properties"]["policyId"] == policy_id("enhanced-daily")
        with pytest.raises(HttpResponseError) as info:  # and the item stays locked
            start_change(client, "vm-1111-0", policy_id("enhanced-daily"))
        assert error_code(info.value) == "BMSUserErrorObjectLocked"


def test_operation_results_answer_202_while_running_then_the_item() -> None:
    with running(operation_seconds=1.0) as emu:
        client = client_for(emu)
        captured: dict[str, str] = {}
        poller = start_change(client, "vm-1111-0", policy_id("enhanced-daily-crash"),
                              raw_response_hook=lambda r: captured.update(r.http_response.headers)
                              if r.http_request.method == "PUT" else None)
        container, name = item_names("vm-1111-0")
        op = op_id(captured["Location"])
        assert client.protected_item_operation_results.get(
            VAULT, RG, "Azure", container, name, op) is None  # 202: no body yet
        poller.result()
        item = client.protected_item_operation_results.get(VAULT, RG, "Azure", container, name,
                                                           op)
        assert item.properties["policyId"] == policy_id("enhanced-daily-crash")


def test_vault_level_operation_routes_know_only_their_vaults_operations() -> None:
    with running() as emu:
        client = client_for(emu)
        op = _trigger(client, "vm-1111-0")
        wait_until(lambda: client.backup_operation_statuses.get(VAULT, RG, op).status
                   == "Succeeded")
        assert client.backup_operation_results.get(VAULT, RG, op) is None  # 204
        with pytest.raises(ResourceNotFoundError):
            client.backup_operation_statuses.get(VAULT, RG, "00000000-0000-0000-0000-000000000000")
        other = client_for(emu, "22222222-2222-4222-8222-222222222222")
        with pytest.raises(ResourceNotFoundError):
            other.backup_operation_statuses.get("vault-2222", RG, op)
        with pytest.raises(ResourceNotFoundError):
            client.protection_policy_operation_statuses.get(VAULT, RG, "enhanced-daily", op)
