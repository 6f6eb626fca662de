"""The seed's Option 1 end to end through our Azure access room: clone an Enhanced policy as
crash-consistent, re-point a protected item to it, see the ConfigureBackup job, and read the
change back through Resource Graph."""

from __future__ import annotations

from emulator.config import EmulatorConfig
from emulator.server import Emulator
from flows.options import with_emulator_principal
from tasks.azure import backup
from tasks.azure.clients import AzureAccess
from tasks.azure.resource_graph import query_page
from tasks.settings import load_settings
from tests.fleets import SUB_A, small_fleet

ITEMS_QUERY = """RecoveryServicesResources
| where type endswith '/protectioncontainers/protecteditems'
| where properties.backupManagementType == 'AzureIaasVM'
| project id, vmId = tolower(tostring(properties.sourceResourceId)),
          policyId = tostring(properties.policyId),
          state = tostring(properties.currentProtectionState)
| order by id asc"""


def test_clone_as_crash_consistent_repoint_and_read_back_through_resource_graph():
    with Emulator(small_fleet(), config=EmulatorConfig(operation_seconds=0.2)) as emu:
        settings = with_emulator_principal(load_settings(environ={}), emu.connection_info())
        settings = settings.model_copy(update={"throttles": settings.throttles.model_copy(
            update={"polling_interval": 0.05})})
        access = AzureAccess(settings)
        client = access.backup(SUB_A)
        vault = backup.vault_ref(f"/subscriptions/{SUB_A}/resourceGroups/rg-backup/providers/"
                                 "Microsoft.RecoveryServices/vaults/vault-1111")

        source = backup.get_policy(client, vault, "enhanced-daily")
        assert "snapshotConsistencyType" not in source["properties"]
        clone = {k: v for k, v in source["properties"].items() if k != "protectedItemsCount"}
        clone["snapshotConsistencyType"] = "OnlyCrashConsistent"
        created = backup.put_policy(client, vault, "enhanced-daily-crash2", clone,
                                    poll_interval=0.05)
        assert created["properties"]["snapshotConsistencyType"] == "OnlyCrashConsistent"
        assert created["properties"]["schedulePolicy"] == source["properties"]["schedulePolicy"]

        items = backup.list_items(client, vault)
        item = next(i for i in items if i["properties"]["friendlyName"] == "vm-1111-0")
        ref = backup.item_ref(item["id"])
        op = backup.set_item_policy(client, ref, item["properties"]["sourceResourceId"],
                                    created["id"])
        assert op.operation_id
        # While the operation runs, Azure still shows the old policy.
        during = backup.get_item(client, ref)
        assert during["properties"]["policyId"].lower() == source["id"].lower()
        after = op.wait(timeout=30)
        assert after["properties"]["policyId"].lower() == created["id"].lower()

        status = backup.item_operation_status(client, ref, op.operation_id)
        assert status["status"] == "Succeeded"
        job = backup.get_job(client, vault, status["properties"]["jobId"])
        assert job["properties"]["operation"] == "ConfigureBackup"
        assert job["properties"]["status"] == "Completed"
        assert job["properties"]["entityFriendlyName"].lower() == "vm-1111-0"
        listed = backup.list_jobs(client, vault, "operation eq 'ConfigureBackup'")
        assert any(j["name"] == job["name"] for j in listed)

        rows = query_page(access.resource_graph(), ITEMS_QUERY, subscriptions=[SUB_A]).rows
        moved = next(r for r in rows if r["vmId"].endswith("/vm-1111-0"))
        assert moved["policyId"].lower() == created["id"].lower()
        assert moved["state"] == "ProtectionConfigured"
        others = [r for r in rows if not r["vmId"].endswith("/vm-1111-0")]
        assert all(r["policyId"].lower() == source["id"].lower() for r in others)
