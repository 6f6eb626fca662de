"""Resume after a crash, step by step: a VM left ``in_progress`` at each journal step, with
Azure in the state that step implies, is finished from what Azure shows, never from what the
journal hoped, and ends ``done`` on the target or ``rolled_back`` on the original."""

from __future__ import annotations

import pytest

from tasks.azure import backup
from tasks.azure.clients import AzureAccess
from tasks.migration.move import Mover, VmPlan
from tasks.migration.work import move_config
from tasks.policies.bodies import crash_clone_body
from tasks.policies.ensure import ensure_policy
from tasks.state.journal import Journal
from tasks.state.plans import load_plan_vms
from tests.migration.test_wave_runner import world  # noqa: F401  (the fixture)

# step the runner reached -> where Azure is -> the expected end
CASES = [
    ("intent", "source", "rolled_back", "source"),
    # killed after the PUT reached Azure but before put_sent was journaled: the change is
    # still being applied (the item names the old policy until it is done)
    ("intent", "in_flight", "done", "target"),
    ("put_sent", "target", "done", "target"),
    ("put_sent", "source", "rolled_back", "source"),
    ("operation_done", "target", "done", "target"),
    ("verified", "target", "done", "target"),
    ("rollback_intent", "target", "rolled_back", "source"),
    ("rollback_put_sent", "source", "rolled_back", "source"),
    ("rollback_verified", "source", "rolled_back", "source"),
]


# what the journal holds when the runner stopped at each step
FORWARD = ["put_sent", "operation_done"]
JOURNALED = {
    "intent": [],
    "put_sent": ["put_sent"],
    "operation_done": FORWARD,
    "verified": [*FORWARD, "verified"],
    "rollback_intent": [*FORWARD, "rollback_intent"],
    "rollback_put_sent": [*FORWARD, "rollback_intent", "rollback_put_sent"],
    "rollback_verified": [*FORWARD, "rollback_intent", "rollback_put_sent",
                          "rollback_operation_done", "rollback_verified"],
}


@pytest.mark.parametrize(("step", "azure", "status", "ends_on"), CASES)
def test_a_vm_stopped_at_each_step_is_finished_from_azure(world, step, azure,  # noqa: F811
                                                          status, ends_on):
    _emu, settings, engine, plan_id, _tmp = world
    access = AzureAccess(settings)
    row = next(load_plan_vms(engine, plan_id, 1).itertuples(index=False))
    vm = VmPlan.from_row(row)
    made = ensure_policy(access, vm.vault_id, row.target_policy,
                         crash_clone_body(backup.get_policy(
                             access.backup(vm.subscription_id), backup.vault_ref(vm.vault_id),
                             row.source_policy)))
    client = access.backup(vm.subscription_id)
    ref = backup.item_ref(vm.item_id)
    journal = Journal(engine, plan_id)
    journal.begin(vm.vm_key, original_policy_id=vm.source_policy_id,
                  target_policy_id=vm.target_policy_id)
    if azure == "target" or step.startswith("rollback"):  # the forward change reached Azure
        backup.set_item_policy(client, ref, vm.vm_id, made.policy["id"]).wait(30)
    if azure == "in_flight":
        backup.set_item_policy(client, ref, vm.vm_id, made.policy["id"])
        assert backup.get_item(client, ref)["properties"]["policyId"].lower() == \
            vm.source_policy_id.lower()
    if step.startswith("rollback") and azure == "source":  # and so did the rollback
        backup.set_item_policy(client, ref, vm.vm_id, vm.source_policy_id).wait(30)
    for reached in JOURNALED[step]:
        journal.step(vm.vm_key, reached)

    outcome = Mover(access, Journal(engine, plan_id), move_config(settings)).reconcile(
        vm, journal.entry(vm.vm_key))
    assert outcome.status == status
    on = backup.get_item(client, ref)["properties"]["policyId"].lower()
    expected = vm.target_policy_id if ends_on == "target" else vm.source_policy_id
    assert on == expected.lower()
    assert journal.entry(vm.vm_key).status == status
