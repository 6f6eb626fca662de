"""The Azure CLI, a client no one here wrote, sees through the emulator the same estate ccmigrate
reports, and a change it makes shows in ccmigrate's next assessment.

`az` logs in as a user would against a custom cloud (``az cloud register
--endpoint-resource-manager``, ``az login --service-principal``), then reads VMs, disks, vaults,
policies, protected items and jobs, runs a Resource Graph query (the resource-graph extension) and
changes one VM's policy with ``az backup item set-policy``.
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest

from emulator.server import Emulator
from tests.azcli.conftest import az_logged_in
from tests.cli.helpers import run_cli
from tests.fleets import SUB_A, SUB_B, TENANT, make_vm, small_fleet

UNPROTECTED = "vm-2222-unprotected"
VM_QUERY = "Resources | where type =~ 'microsoft.compute/virtualmachines'"


def _fleet() -> dict:
    """``small_fleet`` (two subscriptions, a vault each, every VM on an app-consistent Enhanced
    policy) plus a VM with no backup, so the comparison covers an unprotected VM too."""
    fleet = small_fleet(vms_per_sub=3)
    vm, disks = make_vm(SUB_B, "rg-app", UNPROTECTED, data_disks=2)
    fleet["resources"] += [vm, *disks]
    return fleet


def _assess(emu: Emulator, folder: Path) -> dict[str, dict]:
    """`ccmigrate assess` against the emulator as a user runs it; readiness.csv rows by VM id."""
    info = emu.connection_info()
    proc = run_cli("assess", "--endpoint", info["endpoint"], "--ca-bundle", info["ca_bundle"],
                   "--credential", "emulator", "--out", str(folder / "out"),
                   "--state-store", f"sqlite:///{folder}/state.db")
    assert proc.returncode == 0, proc.stderr
    with (folder / "out" / "readiness.csv").open(encoding="utf-8", newline="") as fh:
        return {row["vm_id"].lower(): row for row in csv.DictReader(fh)}


@pytest.fixture(scope="module")
def estate(az_path, az_extension_dir, prefect_api, tmp_path_factory):
    """One emulator, `az` logged in to it, and ccmigrate's assessment of it (read-only tests)."""
    folder = tmp_path_factory.mktemp("azcli")
    with Emulator(_fleet()) as emu:
        az = az_logged_in(az_path, az_extension_dir, emu, folder / "azure-config")
        yield emu, az, _assess(emu, folder)


def test_az_logs_in_to_the_emulator_and_lists_the_subscriptions_ccmigrate_assessed(estate):
    emu, az, rows = estate
    accounts = az("account", "list")
    assert {a["id"]: a["name"] for a in accounts} == {SUB_A: "contoso-prod",
                                                      SUB_B: "contoso-dev"}
    assert {a["tenantId"] for a in accounts} == {TENANT}
    assert {a["cloudName"] for a in accounts} == {"CcmigrateEmulator"}
    assert {a["id"] for a in accounts} == {r["subscription_id"] for r in rows.values()}
    # The registered cloud's endpoints came from the emulator's /metadata/endpoints.
    cloud = az("cloud", "show")
    assert cloud["endpoints"]["resourceManager"].rstrip("/") == emu.endpoint
    assert cloud["endpoints"]["activeDirectory"].rstrip("/") == emu.endpoint


def test_az_lists_the_vms_and_disks_ccmigrate_assessed(estate):
    _, az, rows = estate
    seen: dict[str, dict] = {}
    disks: Counter[str] = Counter()
    gb: Counter[str] = Counter()
    for sub in (SUB_A, SUB_B):
        for vm in az("vm", "list", "--subscription", sub):
            seen[vm["id"].lower()] = vm
        for disk in az("disk", "list", "-g", "rg-app", "--subscription", sub):
            if disk.get("managedBy"):
                disks[disk["managedBy"].lower()] += 1
                gb[disk["managedBy"].lower()] += disk["diskSizeGB"]
    assert set(seen) == set(rows)
    for key, vm in seen.items():
        row = rows[key]
        assert (vm["name"], vm["location"], vm["hardwareProfile"]["vmSize"]) == (
            row["vm_name"], row["location"], row["vm_size"])
        assert (disks[key], gb[key]) == (int(row["disk_count"]), int(row["provisioned_gb"]))
    shown = az("vm", "show", "-g", "rg-app", "-n", UNPROTECTED, "--subscription", SUB_B)
    assert shown["id"].lower() in rows


def test_az_backup_items_name_the_vault_and_policy_ccmigrate_reports(estate):
    _, az, rows = estate
    protected: dict[str, tuple[str, str, str]] = {}
    policy_types: dict[str, str] = {}
    for sub in (SUB_A, SUB_B):
        for vault in az("backup", "vault", "list", "--subscription", sub):
            where = ["-g", vault["resourceGroup"], "-v", vault["name"], "--subscription", sub]
            for policy in az("backup", "policy", "list", *where):
                policy_types[policy["id"].lower()] = policy["properties"]["policyType"]
            for item in az("backup", "item", "list", *where,
                           "--backup-management-type", "AzureIaasVM", "--workload-type", "VM"):
                props = item["properties"]
                protected[props["sourceResourceId"].lower()] = (
                    vault["name"], props["policyId"].rsplit("/", 1)[-1],
                    props["protectionState"])
    reported = {key: (r["vault"], r["policy_name"], r["protection_state"])
                for key, r in rows.items() if r["vault"]}
    assert protected == reported
    for key in protected:
        assert policy_types[rows[key]["policy_id"].lower()] == rows[key]["policy_type"]
    unprotected = [r for r in rows.values() if r["vm_name"] == UNPROTECTED]
    assert [r["readiness"] for r in unprotected] == ["not_protected"]


def test_az_graph_query_finds_the_vms_ccmigrate_assessed(estate):
    _, az, rows = estate
    found = az("graph", "query", "-q", f"{VM_QUERY} | project id", "--first", "1000")
    assert {d["id"].lower() for d in found["data"]} == set(rows)
    counted = az("graph", "query", "-q", f"{VM_QUERY} | count")
    assert counted["data"][0]["Count"] == len(rows)


def test_a_policy_change_made_with_az_shows_in_the_next_assessment(
        az_path, az_extension_dir, prefect_api, tmp_path):
    vm = "vm-1111-1"
    with Emulator(_fleet()) as emu:
        az = az_logged_in(az_path, az_extension_dir, emu, tmp_path / "azure-config")
        before = next(r for r in _assess(emu, tmp_path / "before").values()
                      if r["vm_name"] == vm)
        assert (before["policy_name"], before["readiness"]) == ("enhanced-daily", "ready")
        assert before["target_policy"] == "enhanced-daily-crash"

        where = ["-g", "rg-backup", "-v", "vault-1111", "--subscription", SUB_A]
        item = ["-c", vm, "-n", vm, "--backup-management-type", "AzureIaasVM"]
        job = az("backup", "item", "set-policy", *where, *item, "-p", "enhanced-daily-crash")
        assert (job["properties"]["operation"], job["properties"]["status"],
                job["properties"]["entityFriendlyName"]) == ("ConfigureBackup", "Completed", vm)
        assert az("backup", "job", "show", *where, "-n", job["name"])["properties"][
            "status"] == "Completed"
        shown = az("backup", "item", "show", *where, *item)
        assert shown["properties"]["policyId"].endswith("/backupPolicies/enhanced-daily-crash")

        after = next(r for r in _assess(emu, tmp_path / "after").values()
                     if r["vm_name"] == vm)
    assert after["policy_name"] == "enhanced-daily-crash"
    assert after["consistency_type"] == "OnlyCrashConsistent"
    assert after["readiness"] == "already_crash_consistent"
    assert after["item_id"] == before["item_id"]  # the same item, its policy changed
