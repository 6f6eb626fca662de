"""The cost view's data: what Azure Backup's protected-instance (PI) fee comes to for the VMs that
are, or are about to be, backed up crash-consistently.

Azure Backup charges each protected VM a monthly PI fee by size tier: one small instance up to
50 GB, one instance from 50 to 500 GB, and one instance per started 500 GB above that (backup
storage is billed on top and is not counted here). The rule pack's ``billing`` says how a
crash-consistent VM is sized and charged: at GA the tier is found on the used size, counted as
50% of the provisioned size; in preview a VM paid 0.5 PI. Prices are the user's (``[pricing]``
in settings); without them the view has units only, and says so.

Everything is column arithmetic: it runs on 100k-VM assessments.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # models only; nothing of the engine runs here
    from tasks.rules.engine import Billing, RulePack
    from tasks.settings import Pricing

# Readiness -> status in the cost view; other readiness values are not in the estate.
ESTATE_STATUS = {
    "ready": "to migrate",
    "ready_with_conditions": "to migrate",
    "already_crash_consistent": "crash-consistent now",
}
SMALL_INSTANCE_GB = 50
PI_STEP_GB = 500
TIER_SMALL, TIER_MEDIUM, TIER_LARGE, TIER_UNKNOWN = (
    "up to 50 GB", "50-500 GB", "over 500 GB", "size unknown")
VM_COLUMNS = ["vm_id", "vm_name", "subscription_id", "location", "readiness", "status",
              "provisioned_gb", "pi_basis_gb", "pi_tier", "pi_units", "monthly_cost"]
SUBSCRIPTION_COLUMNS = ["subscription_id", "vms", "provisioned_gb", "pi_basis_gb", "pi_units",
                        "monthly_cost", "size_unknown_vms"]


@dataclass
class CostView:
    """Per-VM and per-subscription PI units (and money when priced) for the estate."""

    vms: pd.DataFrame
    by_subscription: pd.DataFrame
    totals: dict[str, Any]
    priced: bool
    currency: str | None
    note: str
    pi_basis_fraction: float = 1.0
    pi_fee_fraction: float = 1.0
    source: str = ""  # the pack's billing note: which Microsoft text the fractions follow

    def to_summary(self) -> dict[str, Any]:
        """Plain JSON types, numbers rounded to 2 decimals; money is ``None`` when unpriced."""
        rows = self.by_subscription.to_dict("records")
        return {
            "priced": self.priced,
            "currency": self.currency,
            "note": self.note,
            "basis": {"pi_basis_fraction": self.pi_basis_fraction,
                      "pi_fee_fraction": self.pi_fee_fraction, "source": self.source},
            "totals": {k: _plain(v) for k, v in self.totals.items()},
            "by_subscription": {str(r["subscription_id"]): {k: _plain(v) for k, v in r.items()
                                                            if k != "subscription_id"}
                                for r in rows},
        }


def _plain(value: Any) -> Any:
    """numpy/pandas scalars -> int, float (2 decimals) or None."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    number = float(value)
    return None if math.isnan(number) else round(number, 2)


def cost_view(scored: pd.DataFrame, pack: RulePack, pricing: Pricing | None) -> CostView:
    """The cost view of a scored inventory under ``pack``'s billing and the user's prices."""
    billing = pack.billing
    prices = pricing if pricing is not None and pricing.configured else None
    priced = prices is not None
    estate = scored.loc[scored["readiness"].isin(list(ESTATE_STATUS))].reset_index(drop=True)

    if "provisioned_gb" in estate:
        provisioned = estate["provisioned_gb"].astype("Int64")
    else:  # a frame from before sizes were discovered: every size is unknown
        provisioned = pd.Series(pd.NA, index=estate.index, dtype="Int64")
    # Rounded so that a fraction such as 0.1 can't push 500 GB to 500.00000000000006.
    basis = np.round(provisioned.astype("float64").to_numpy() * billing.pi_basis_fraction, 6)
    known = ~np.isnan(basis)
    small = known & (basis <= SMALL_INSTANCE_GB)
    medium = known & (basis > SMALL_INSTANCE_GB) & (basis <= PI_STEP_GB)
    large = known & (basis > PI_STEP_GB)
    with np.errstate(invalid="ignore"):
        steps = np.ceil(basis / PI_STEP_GB)
    units = np.select([small | medium, large], [1.0, steps], default=np.nan)
    units = units * billing.pi_fee_fraction

    location = estate["location"].astype("string").fillna("")
    if prices is not None:
        small_price = _regional(location, prices, "small_instance")
        step_price = _regional(location, prices, "per_500gb")
        cost = units * np.where(small, small_price, step_price)
    else:
        cost = np.full(len(estate), np.nan)

    vms = pd.DataFrame({
        "vm_id": estate["vm_id"],
        "vm_name": estate["vm_name"],
        "subscription_id": estate["subscription_id"],
        "location": location,
        "readiness": estate["readiness"],
        "status": estate["readiness"].map(ESTATE_STATUS).astype("string"),
        "provisioned_gb": provisioned,
        "pi_basis_gb": basis,
        "pi_tier": pd.array(np.select([small, medium, large],
                                      [TIER_SMALL, TIER_MEDIUM, TIER_LARGE],
                                      default=TIER_UNKNOWN), dtype="string"),
        "pi_units": units,
        "monthly_cost": cost,
    }, columns=VM_COLUMNS)

    by_subscription = _by_subscription(vms, priced)
    totals: dict[str, Any] = {
        "vms": int(by_subscription["vms"].sum()),
        "provisioned_gb": int(by_subscription["provisioned_gb"].sum()),
        "pi_basis_gb": float(by_subscription["pi_basis_gb"].sum()),
        "pi_units": float(by_subscription["pi_units"].sum()),
        "monthly_cost": float(by_subscription["monthly_cost"].sum()) if priced else None,
        "size_unknown_vms": int(by_subscription["size_unknown_vms"].sum()),
    }
    currency = prices.currency if prices is not None else None
    return CostView(vms=vms, by_subscription=by_subscription, totals=totals, priced=priced,
                    currency=currency, note=_note(totals, billing, currency),
                    pi_basis_fraction=billing.pi_basis_fraction,
                    pi_fee_fraction=billing.pi_fee_fraction, source=billing.note)


def _regional(location: pd.Series, pricing: Pricing, key: str) -> np.ndarray:
    """The price ``key`` per VM: its region's override where one is set, else the table's."""
    overrides = {region: getattr(price, key) for region, price in pricing.regions.items()
                 if getattr(price, key) is not None}
    base = float(getattr(pricing, key))
    if not overrides:
        return np.full(len(location), base)
    return location.map(overrides).astype("float64").fillna(base).to_numpy()


def _by_subscription(vms: pd.DataFrame, priced: bool) -> pd.DataFrame:
    """One row per subscription, sorted by id; unknown sizes add no GB, units or money."""
    frame = vms.assign(size_unknown=vms["pi_tier"].eq(TIER_UNKNOWN),
                       provisioned=vms["provisioned_gb"].fillna(0).astype("int64"))
    grouped = frame.groupby(frame["subscription_id"].astype("string"), sort=True, dropna=False)
    out = pd.DataFrame({
        "vms": grouped.size(),
        "provisioned_gb": grouped["provisioned"].sum(),
        "pi_basis_gb": grouped["pi_basis_gb"].sum(),
        "pi_units": grouped["pi_units"].sum(),
        "monthly_cost": grouped["monthly_cost"].sum() if priced else np.nan,
        "size_unknown_vms": grouped["size_unknown"].sum(),
    })
    out = out.rename_axis("subscription_id").reset_index()
    out = out.astype({"vms": "int64", "provisioned_gb": "int64", "pi_basis_gb": "float64",
                      "pi_units": "float64", "monthly_cost": "float64",
                      "size_unknown_vms": "int64"})
    return out[SUBSCRIPTION_COLUMNS]


def _note(totals: dict[str, Any], billing: Billing, currency: str | None) -> str:
    """One sentence a manager can read: what is counted, on what basis, and what is missing."""
    basis = []
    if billing.pi_basis_fraction != 1:
        basis.append(f"each VM sized at {billing.pi_basis_fraction:.0%} of its provisioned "
                     "disk size")
    if billing.pi_fee_fraction != 1:
        basis.append(f"each instance charged at {billing.pi_fee_fraction:g} PI")
    how = f" ({' and '.join(basis)}, as the rule pack's billing text says)" if basis else ""
    vms = f"{totals['vms']} VM{'s' if totals['vms'] != 1 else ''}"
    unknown = totals["size_unknown_vms"]
    missing = ("" if not unknown else
               "; 1 of them has no known disk size and is not counted" if unknown == 1 else
               f"; {unknown} of them have no known disk size and are not counted")
    if currency is not None:
        return (f"Monthly Azure Backup protected-instance fees in {currency} for the {vms} to "
                f"migrate or already crash-consistent{how}, at the prices of your settings' "
                f"[pricing] table, backup storage not included{missing}.")
    return (f"Azure Backup protected-instance (PI) units for the {vms} to migrate or already "
            f"crash-consistent{how}{missing}; no prices are set, so no money is shown: add "
            "currency, small_instance and per_500gb from the Azure Backup pricing page to the "
            "[pricing] table of your settings file.")
