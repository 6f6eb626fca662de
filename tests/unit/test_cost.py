"""The cost view: PI tiers and units as Azure Backup counts them, the pack's billing basis (GA 50%
of provisioned size, preview 0.5 PI), the user's prices, and who is in the estate."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from reports.cost import cost_view
from tasks.rules.engine import Billing, RuleContext, RulePack, load_pack, score
from tasks.settings import Pricing, RegionPrice, Rules
from tests.rules.inventory import disk, frames, vm

GA = load_pack(Rules())
PREVIEW = load_pack(Rules(pack="preview-2024-03"))
FULL = RulePack(name="full", doc_version="", description="", rules=[], billing=Billing())
SUB_1 = "00000000-0000-0000-0000-000000000001"
SUB_2 = "00000000-0000-0000-0000-000000000002"
PRICES = Pricing(currency="EUR", small_instance=5, per_500gb=10)


def scored(*rows: dict) -> pd.DataFrame:
    """A scored frame with only what the cost view reads; each row gives name and size."""
    defaults = {"subscription_id": SUB_1, "location": "eastus", "readiness": "ready"}
    data = [{**defaults, **row} for row in rows]
    for row in data:
        row["vm_id"] = f"/subscriptions/{row['subscription_id']}/resourceGroups/rg/providers/" \
                       f"Microsoft.Compute/virtualMachines/{row['vm_name']}"
    frame = pd.DataFrame(data).astype("string")
    frame["provisioned_gb"] = pd.array([r.get("provisioned_gb") for r in data], dtype="Int64")
    return frame


def by_name(view, column: str) -> dict:
    return dict(zip(view.vms["vm_name"], view.vms[column], strict=True))


def test_tiers_and_units_at_the_edges_of_azure_backups_size_tiers():
    # GA sizes a VM at half its provisioned size: these give bases of 50, 50.5, 500, 501,
    # 1000 and 1001 GB.
    sizes = {"a": 100, "b": 101, "c": 1000, "d": 1002, "e": 2000, "f": 2002}
    view = cost_view(scored(*({"vm_name": n, "provisioned_gb": gb} for n, gb in sizes.items())),
                     GA, None)
    assert by_name(view, "pi_basis_gb") == {"a": 50, "b": 50.5, "c": 500, "d": 501, "e": 1000,
                                            "f": 1001}
    assert by_name(view, "pi_tier") == {"a": "up to 50 GB", "b": "50-500 GB", "c": "50-500 GB",
                                        "d": "over 500 GB", "e": "over 500 GB",
                                        "f": "over 500 GB"}
    assert by_name(view, "pi_units") == {"a": 1, "b": 1, "c": 1, "d": 2, "e": 2, "f": 3}


def test_ga_sizes_a_vm_at_half_its_provisioned_size():
    frame = scored({"vm_name": "big", "provisioned_gb": 800})
    ga = cost_view(frame, GA, None)
    full = cost_view(frame, FULL, None)
    assert (ga.vms.at[0, "pi_basis_gb"], ga.vms.at[0, "pi_tier"], ga.vms.at[0, "pi_units"]) == (
        400, "50-500 GB", 1)
    assert (full.vms.at[0, "pi_basis_gb"], full.vms.at[0, "pi_units"]) == (800, 2)
    assert (ga.to_summary()["basis"]["pi_basis_fraction"], GA.billing.pi_fee_fraction) == (0.5, 1)
    assert "2025-07-25" in ga.to_summary()["basis"]["source"]


def test_preview_charges_half_a_protected_instance_on_the_full_size():
    view = cost_view(scored({"vm_name": "small", "provisioned_gb": 40},
                            {"vm_name": "big", "provisioned_gb": 800}), PREVIEW, PRICES)
    assert by_name(view, "pi_basis_gb") == {"small": 40, "big": 800}
    assert by_name(view, "pi_units") == {"small": 0.5, "big": 1.0}
    assert by_name(view, "monthly_cost") == {"small": 2.5, "big": 10.0}
    assert "0.5 PI" in view.note


def test_prices_turn_units_into_monthly_cost_by_tier():
    view = cost_view(scored({"vm_name": "s", "provisioned_gb": 40},
                            {"vm_name": "m", "provisioned_gb": 400},
                            {"vm_name": "l", "provisioned_gb": 2002}), GA, PRICES)
    assert view.priced and view.currency == "EUR"
    assert by_name(view, "monthly_cost") == {"s": 5.0, "m": 10.0, "l": 30.0}
    assert view.totals["monthly_cost"] == 45.0
    assert "in EUR" in view.note and "storage not included" in view.note


def test_a_region_override_prices_only_the_vms_in_that_region():
    prices = Pricing(currency="EUR", small_instance=5, per_500gb=10,
                     regions={"West Europe": RegionPrice(small_instance=6)})
    view = cost_view(scored({"vm_name": "we-s", "provisioned_gb": 40, "location": "westeurope"},
                            {"vm_name": "we-m", "provisioned_gb": 400, "location": "westeurope"},
                            {"vm_name": "us-s", "provisioned_gb": 40}), GA, prices)
    # The override sets the small price only; the 50-500 GB price comes from the table.
    assert by_name(view, "monthly_cost") == {"we-s": 6.0, "we-m": 10.0, "us-s": 5.0}


@pytest.mark.parametrize("pricing", [None, Pricing()], ids=["no-table", "empty-table"])
def test_without_prices_only_units_are_shown_and_the_note_says_how_to_add_them(pricing):
    view = cost_view(scored({"vm_name": "a", "provisioned_gb": 100}), GA, pricing)
    assert not view.priced and view.currency is None
    assert view.vms["monthly_cost"].isna().all()
    assert view.by_subscription["monthly_cost"].isna().all()
    assert view.totals["monthly_cost"] is None and view.totals["pi_units"] == 1
    assert "no prices are set" in view.note
    assert "[pricing]" in view.note and "small_instance" in view.note
    summary = view.to_summary()
    assert summary["totals"]["monthly_cost"] is None
    assert summary["by_subscription"][SUB_1]["monthly_cost"] is None


def test_a_vm_of_unknown_size_is_listed_counted_and_adds_no_units():
    view = cost_view(scored({"vm_name": "known", "provisioned_gb": 100},
                            {"vm_name": "unknown", "provisioned_gb": None}), GA, PRICES)
    row = view.vms.set_index("vm_name").loc["unknown"]
    assert row["pi_tier"] == "size unknown"
    assert np.isnan(row["pi_units"]) and np.isnan(row["monthly_cost"])
    assert view.totals == {"vms": 2, "provisioned_gb": 100, "pi_basis_gb": 50.0, "pi_units": 1.0,
                           "monthly_cost": 5.0, "size_unknown_vms": 1}
    assert "1 of them has no known disk size and is not counted" in view.note


def test_totals_are_the_sums_of_the_subscriptions():
    rows = [{"vm_name": f"vm-{i}", "subscription_id": SUB_1 if i % 2 else SUB_2,
             "provisioned_gb": None if i % 7 == 0 else 37 * i,
             "location": "westeurope" if i % 3 == 0 else "eastus"}
            for i in range(40)]
    prices = Pricing(currency="USD", small_instance=4.217, per_500gb=8.433,
                     regions={"westeurope": RegionPrice(per_500gb=9.1)})
    view = cost_view(scored(*rows), GA, prices)
    subs = view.by_subscription
    assert subs["subscription_id"].tolist() == [SUB_1, SUB_2]
    for key in ("vms", "provisioned_gb", "pi_basis_gb", "pi_units", "monthly_cost",
                "size_unknown_vms"):
        assert view.totals[key] == pytest.approx(subs[key].sum()), key
    assert view.totals["vms"] == 40 and view.totals["size_unknown_vms"] == 6
    assert view.totals["monthly_cost"] == pytest.approx(view.vms["monthly_cost"].sum())


def test_only_vms_to_migrate_or_already_crash_consistent_are_in_the_estate():
    readiness = ["ready", "ready_with_conditions", "already_crash_consistent", "not_ready",
                 "unknown", "not_protected"]
    view = cost_view(scored(*({"vm_name": r, "readiness": r, "provisioned_gb": 100}
                              for r in readiness)), GA, None)
    assert by_name(view, "status") == {"ready": "to migrate",
                                       "ready_with_conditions": "to migrate",
                                       "already_crash_consistent": "crash-consistent now"}
    assert view.totals["vms"] == 3 and view.totals["pi_units"] == 3


def test_an_empty_estate_gives_zero_totals():
    view = cost_view(scored({"vm_name": "blocked", "readiness": "not_ready",
                             "provisioned_gb": 100}), GA, PRICES)
    assert view.vms.empty and view.by_subscription.empty
    assert view.totals == {"vms": 0, "provisioned_gb": 0, "pi_basis_gb": 0.0, "pi_units": 0.0,
                           "monthly_cost": 0.0, "size_unknown_vms": 0}


def test_summary_is_plain_json_with_the_basis_and_each_subscription():
    view = cost_view(scored({"vm_name": "a", "provisioned_gb": 1002},
                            {"vm_name": "b", "provisioned_gb": 40, "subscription_id": SUB_2}),
                     GA, PRICES)
    summary = json.loads(json.dumps(view.to_summary()))
    assert summary["priced"] is True and summary["currency"] == "EUR"
    assert summary["basis"]["pi_basis_fraction"] == 0.5
    assert summary["totals"] == {"vms": 2, "provisioned_gb": 1042, "pi_basis_gb": 521.0,
                                 "pi_units": 3.0, "monthly_cost": 25.0, "size_unknown_vms": 0}
    assert summary["by_subscription"] == {
        SUB_1: {"vms": 1, "provisioned_gb": 1002, "pi_basis_gb": 501.0, "pi_units": 2.0,
                "monthly_cost": 20.0, "size_unknown_vms": 0},
        SUB_2: {"vms": 1, "provisioned_gb": 40, "pi_basis_gb": 20.0, "pi_units": 1.0,
                "monthly_cost": 5.0, "size_unknown_vms": 0}}


def test_cost_view_reads_what_the_rule_engine_scores():
    v, d = frames([vm("ready-1", provisioned_gb=1200), vm("boost", vm_size="Standard_D4s_v6"),
                   vm("crash", consistency_type="OnlyCrashConsistent", provisioned_gb=None)],
                  [disk("ready-1", size_gb=1000), disk("ready-1", "data", 0, size_gb=200),
                   disk("boost"), disk("crash", size_gb=None)])
    view = cost_view(score(v, d, GA, RuleContext()), GA, None)
    assert by_name(view, "status") == {"ready-1": "to migrate",
                                       "crash": "crash-consistent now"}
    assert by_name(view, "pi_units")["ready-1"] == 2  # 1200 GB counted as 600
    assert view.totals["size_unknown_vms"] == 1
