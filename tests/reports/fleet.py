"""A small fleet for the report tests, twice: the second run of the same scope has changes
(one VM moved to a crash-consistent policy, one opted out, one with a read/write-cached disk),
and both carry hostile names and tag values that must never become spreadsheet formulas."""

from __future__ import annotations

import copy

from tests.fleets import SUB_A, make_item, make_vm, small_fleet

HOSTILE_TAGS = {"owner": '=HYPERLINK("http://evil.example","click")', "cost": "+1+1",
                "team": "-2-2", "ref": "@SUM(A1:A9)"}
HOSTILE_NAME = "=cmd-calc"


def _find(fleet: dict, kind: str, name: str) -> dict:
    return next(r for r in fleet["resources"]
                if r["type"] == kind and r["name"] == name)


def first_fleet() -> dict:
    fleet = small_fleet(4)
    vault = _find(fleet, "Microsoft.RecoveryServices/vaults", "vault-1111")
    app = _find(fleet, "Microsoft.RecoveryServices/vaults/backupPolicies", "enhanced-daily")
    if app["id"].split("/")[2] != SUB_A:  # the name exists in both subscriptions
        app = next(r for r in fleet["resources"] if r["name"] == "enhanced-daily"
                   and r["id"].split("/")[2] == SUB_A)
    vm, disks = make_vm(SUB_A, "-rg-hostile", HOSTILE_NAME, tags=HOSTILE_TAGS)
    fleet["resources"] += [vm, *disks, make_item(vault, vm, app)]
    return fleet


def second_fleet() -> dict:
    """Same subscriptions (so the same scope), three VMs changed."""
    fleet = copy.deepcopy(first_fleet())
    crash = next(r for r in fleet["resources"] if r["name"] == "enhanced-daily-crash"
                 and r["id"].split("/")[2] == SUB_A)
    for r in fleet["resources"]:
        if r["type"].endswith("/protectedItems") and r["name"].endswith(";vm-1111-0"):
            r["properties"]["policyId"] = crash["id"]
        if r["type"] == "Microsoft.Compute/virtualMachines" and r["name"] == "vm-1111-1":
            r["tags"] = {"backup-consistency": "application"}
        if r["type"] == "Microsoft.Compute/virtualMachines" and r["name"] == "vm-1111-2":
            r["properties"]["storageProfile"]["osDisk"]["caching"] = "ReadWrite"
    return fleet
