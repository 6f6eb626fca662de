"""Recovery Services vault examples: the emulator answers each example's request, sent through
``RecoveryServicesClient`` from the project's ``AzureAccess``, with every key of the example's
response (rules: ``fleet_from_examples``). The vaults are the examples' own bodies, in the
examples' own subscription and resource groups, so the requests go out exactly as published.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from emulator.server import Emulator
from tests.contract.fleet_from_examples import (
    SUB_VAULTS,
    Wire,
    compare,
    example_stems,
    load_example,
    request_problems,
)

World = tuple[Emulator, Any]



def _get_vault(world: World, ex: dict) -> list[str]:
    p, wire = ex["parameters"], Wire()
    assert p["subscriptionId"] == SUB_VAULTS
    world[1].vaults(p["subscriptionId"]).vaults.get(p["resourceGroupName"], p["vaultName"],
                                                    **wire.hook)
    return (request_problems(wire.first(), path=(p["subscriptionId"], p["resourceGroupName"],
                                                 p["vaultName"]))
            + compare("GET 200", ex["responses"]["200"]["body"], wire.json()))


def _list_vaults(world: World, ex: dict) -> list[str]:
    p, wire = ex["parameters"], Wire()
    list(world[1].vaults(p["subscriptionId"]).vaults.list_by_subscription_id(**wire.hook))
    return (request_problems(wire.first(), path=(p["subscriptionId"],))
            + compare("list 200", ex["responses"]["200"]["body"], wire.pages()))


SCENARIOS: dict[str, Callable[[World, dict], list[str]]] = {
    "GETVault": _get_vault,
    "ListBySubscriptionIds": _list_vaults,
}


@pytest.mark.parametrize("stem", example_stems("recoveryservices"))
def test_emulator_answers_the_vault_example_request_with_every_example_key(
        stem: str, world: World) -> None:
    """Vault reads (region, redundancy, security settings) must look like Azure's."""
    scenario = SCENARIOS.get(stem)
    assert scenario is not None, f"recoveryservices/{stem}.json has no contract scenario"
    problems = scenario(world, load_example("recoveryservices", stem))
    assert not problems, f"recoveryservices/{stem}.json:\n  " + "\n  ".join(problems)
