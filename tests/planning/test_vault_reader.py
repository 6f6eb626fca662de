"""The plan's one Azure call, through the real SDK against the emulator over HTTPS: every
involved vault's policy list, with an unreadable vault reported instead of failing the plan, and
nothing written."""

from __future__ import annotations

import json

import requests

from flows.options import with_emulator_principal
from tasks.azure.clients import AzureAccess
from tasks.planning import read_vault_policies
from tasks.settings import load_settings
from tests.fleets import SUB_A, SUB_B, vault_id


def _state(emu) -> str:
    resp = requests.get(f"{emu.endpoint}/_emulator/state", verify=str(emu.ca_bundle), timeout=10)
    resp.raise_for_status()
    return json.dumps(resp.json(), sort_keys=True)


def test_policy_lists_of_each_vault_and_an_unreadable_one(emulator):
    access = AzureAccess(with_emulator_principal(load_settings(environ={}),
                                                 emulator.connection_info()))
    before = _state(emulator)
    a, b = vault_id(SUB_A, "rg-backup", "vault-1111"), vault_id(SUB_B, "rg-backup", "vault-2222")
    missing = vault_id(SUB_A, "rg-backup", "vault-gone")
    try:
        got = read_vault_policies(access, [a, b, a.upper(), missing])
    finally:
        access.close()
    # The same vault twice (any case) is read once: three policy lists, and the Resource Guard
    # links of the two readable vaults (neither is linked).
    assert got.requests == 5
    assert got.guards == {a.lower(): None, b.lower(): None}
    assert sorted(p["name"] for p in got.policies[a.lower()]) == ["enhanced-daily",
                                                                  "enhanced-daily-crash"]
    assert got.count(b) == 2 and got.count(missing) is None
    assert "vault-gone" in got.errors[missing.lower()]
    assert _state(emulator) == before
