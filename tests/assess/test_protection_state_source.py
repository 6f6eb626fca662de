"""Which protected items count is decided from ARM's ``protectionState`` wherever the vault can
be read: how Resource Graph's ``currentProtectionState`` maps to it is documented nowhere, so
the verdicts must not hinge on that mapping. The emulator is told to word Resource Graph's
states another way (every protected item reported stopped), and the assessment still sees the
truth ARM tells."""

from __future__ import annotations

import csv

from azure.mgmt.resourcegraph.models import QueryRequest

from emulator.config import EmulatorConfig
from flows.assess import run_assessment
from flows.emulated import emulated
from tasks.azure.clients import AzureAccess
from tasks.settings import load_settings
from tests.fleets import small_fleet

ITEMS = ("RecoveryServicesResources | where type =~ "
         "'microsoft.recoveryservices/vaults/backupfabrics/protectioncontainers/protecteditems' "
         "| project id, state = tostring(properties.currentProtectionState)")


def test_a_resource_graph_state_that_disagrees_with_arm_does_not_change_the_verdict(
        prefect_api, tmp_path):
    fleet = small_fleet()
    config = EmulatorConfig(arg_protection_states={"Protected": "ProtectionStopped"})
    settings = load_settings(environ={}, flags={"state_store": f"sqlite:///{tmp_path}/s.db"})
    with emulated(settings, fleet, config) as (_emu, emu_settings):
        graph = AzureAccess(emu_settings).resource_graph()
        said = {r["state"] for r in graph.resources(QueryRequest(query=ITEMS)).data}
        # Resource Graph alone would make every protected VM look unprotected ...
        assert said == {"ProtectionStopped"}
        run_assessment(emu_settings, tmp_path / "out")
    with (tmp_path / "out" / "readiness.csv").open(encoding="utf-8", newline="") as fh:
        readiness = {r["vm_name"]: r["readiness"] for r in csv.DictReader(fh)}
    # ... but ARM says they are protected, and the verdicts follow ARM.
    protected = {r["properties"]["friendlyName"] for r in fleet["resources"]
                 if r["type"].lower().endswith("/protecteditems")
                 and r["properties"].get("protectionState") == "Protected"}
    assert protected
    assert all(readiness[name] != "not_protected" for name in protected), readiness
