"""Resource Graph examples: the emulator answers each example's query, sent as the example's
own JSON through ``ResourceGraphClient.resources`` from the project's ``AzureAccess``, with
every key of the example's response (rules: ``fleet_from_examples``). The fleet keeps the
examples' subscription and management group names, so the requests go out as published; only
``ResourcesNextPageQuery.json``'s skip token is swapped (see ``test_rest_examples``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError

from emulator.server import Emulator
from tests.contract.fleet_from_examples import (
    Wire,
    compare,
    example_stems,
    load_example,
    request_problems,
)

World = tuple[Emulator, Any]



def _query(world: World, request: dict) -> tuple[Wire, list[str]]:
    wire = Wire()
    world[1].resource_graph().resources(request, **wire.hook)
    return wire, request_problems(wire.first(), body=request)


def _plain(world: World, ex: dict) -> list[str]:
    wire, problems = _query(world, ex["parameters"]["query"])
    return problems + compare("POST 200", ex["responses"]["200"]["body"], wire.json())


def _next_page(world: World, ex: dict) -> list[str]:
    """The example's token was issued by Azure, not by the emulator: ARG answers 400 for it.
    A token the emulator issued (for the first-page example's request: same query and scope,
    ``$top`` 3) must give a page with the example's keys, its own ``$skipToken`` included."""
    request = ex["parameters"]["query"]
    problems: list[str] = []
    try:
        world[1].resource_graph().resources(request)
        problems.append("the example's literal $skipToken (not issued here) was accepted")
    except HttpResponseError as err:
        code = (err.response.json().get("error") or {}).get("code") if err.response else None
        if err.status_code != 400 or code != "BadRequest":
            problems.append(f"the example's literal $skipToken got {err.status_code} {code}, "
                            "not ARG's 400 BadRequest")
    first = load_example("resourcegraph", "ResourcesFirstPageQuery")["parameters"]["query"]
    assert first["query"] == request["query"] and first["subscriptions"] == request[
        "subscriptions"], "the paging examples no longer share query and scope"
    wire, _ = _query(world, first)
    token = wire.json().get("$skipToken")
    if not token:
        return [*problems, "the first page (ResourcesFirstPageQuery's request) has no $skipToken"]
    swapped = {**request, "options": {**request["options"], "$skipToken": token}}
    wire, sent = _query(world, swapped)
    return problems + sent + compare("next page POST 200", ex["responses"]["200"]["body"],
                                     wire.json())


SCENARIOS: dict[str, Callable[[World, dict], list[str]]] = {
    "ResourcesBasicQuery": _plain,
    "ResourcesFirstPageQuery": _plain,
    "ResourcesMgBasicQuery": _plain,
    "ResourcesTenantBasicQuery": _plain,
    "ResourcesNextPageQuery": _next_page,
}


@pytest.mark.parametrize("stem", example_stems("resourcegraph"))
def test_emulator_answers_the_resource_graph_example_query_with_every_example_key(
        stem: str, world: World) -> None:
    """Discovery pages through ARG exactly as the examples document it."""
    scenario = SCENARIOS.get(stem)
    assert scenario is not None, f"resourcegraph/{stem}.json has no contract scenario"
    problems = scenario(world, load_example("resourcegraph", stem))
    assert not problems, f"resourcegraph/{stem}.json:\n  " + "\n  ".join(problems)
