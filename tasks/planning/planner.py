"""Cut a plan from an assessment's selected VMs: candidates, wave order, the policies each vault
needs, the vault limits, then waves. Pure: the caller reads the vaults' policy lists
(``vault_reader``) and stores or writes the result.

Steps, each in its own module:
1. ``rules.eligibility.classify``: who may move, and why the others may not;
2. ``waves.order_vms``: the wave order (setting ``waves.order_by``, then vault by vault), with
   a reversible VM as the canary where there is one (``waves.reversible_canary``);
3. ``policy_needs.resolve_groups``: per (vault, source policy) group the crash-consistent clone
   and, for a Standard source, its app-consistent rollback copy: reuse, create or conflict;
4. ``limits``: groups past a vault's 200 policies stay out; groups past a vault's first 50
   policy writes go to later waves that wait 24 h after the wave that used the 50th write;
5. ``waves.assign_waves``: canary, ramp, then ``wave_size``, batch after batch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..azure.guards import UPDATE_PROTECTION
from ..policies.naming import DEFAULT_ROLLBACK_TEMPLATE, DEFAULT_TARGET_TEMPLATE
from ..rules.eligibility import classify
from ..state.tables import PLAN_VM_FIELDS
from .limits import (
    MAX_POLICIES_PER_VAULT,
    MAX_POLICY_WRITES_PER_DAY,
    WRITE_WINDOW_HOURS,
    over_policy_limit,
    write_batches,
)
from .policy_needs import CONFLICT, CREATE, REUSE, VaultPolicies, resolve_groups
from .waves import assign_waves, order_vms, resolve_ramp, reversible_canary

SKIPPED = "skipped"
GROUP_KEY = ["vault_key", "source_key"]
# Multi-user authorization, after the stored fields (plan.csv: after the contract columns):
# the vault's Resource Guard, what the change shortens, whether that makes it critical there,
# and what the operator must hold before the wave runs.
MUA_COLUMNS = ["resource_guard", "retention_reduced", "critical", "mua_request"]
PLAN_COLUMNS = [*PLAN_VM_FIELDS, "not_before", *MUA_COLUMNS]
EXCLUDED_COLUMNS = ["vm_id", "vm_name", "subscription_id", "vault", "readiness", "reason"]
WAVE_COLUMNS = ["wave", "size", "vaults", "subscriptions", "irreversible", "new_policies",
                "not_before", "after_wave"]
POLICY_REPORT_COLUMNS = ["vault", "policy_name", "kind", "action", "source_policy",
                         "description", "detail", "first_wave", "vault_id", "source_policy_id",
                         "body"]
LIMIT_COLUMNS = ["vault", "vault_id", "subscription_id", "existing_policies", "new_policies",
                 "reused_policies", "writes_needed", "room", "batches", "vms_planned",
                 "vms_excluded", "verdict"]
_TEXT = ("vm_id", "vm_key", "vm_name", "subscription_id", "vault", "vault_id", "policy_name",
         "policy_id", "item_id", "readiness", "warnings")


@dataclass(frozen=True)
class PlanOptions:
    """How a plan is cut (settings ``[waves]`` and ``rules.target_policy_template``, with the
    command's flags applied); stored with the plan so a report can say how it was made."""

    wave_size: int = 50
    canary: int = 1
    ramp: tuple[int | str, ...] = (5,)
    allow_warnings: tuple[str, ...] = ()
    include_standard: bool = False
    order_by: str = ""
    target_template: str = DEFAULT_TARGET_TEMPLATE
    rollback_template: str = DEFAULT_ROLLBACK_TEMPLATE

    @classmethod
    def from_settings(cls, settings: Any, *, allow_warnings: tuple[str, ...] = ()
                      ) -> PlanOptions:
        """Options from validated settings; ``allow_warnings`` (the flag) adds to the
        setting's list rather than replacing it."""
        w = settings.waves
        return cls(wave_size=w.wave_size, canary=w.canary, ramp=tuple(w.ramp),
                   allow_warnings=tuple(dict.fromkeys([*w.allow_warnings, *allow_warnings])),
                   include_standard=w.include_standard, order_by=w.order_by,
                   target_template=settings.rules.target_policy_template,
                   rollback_template=w.rollback_policy_template)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["ramp"], out["allow_warnings"] = list(self.ramp), list(self.allow_warnings)
        return out


@dataclass
class Plan:
    """A cut plan. ``vms``: one row per planned VM in (wave, position) order, columns
    ``tables.PLAN_VM_FIELDS`` plus ``not_before``; ``policies``: every policy the candidates'
    groups touch with its ``action`` (create, reuse, conflict, skipped); ``excluded``: the
    selected VMs left out with their reason; ``waves`` and ``limits`` (per vault) for the
    reports; ``summary``: the numbers, stored with the plan."""

    vms: pd.DataFrame
    policies: pd.DataFrame
    excluded: pd.DataFrame
    waves: pd.DataFrame
    limits: pd.DataFrame
    summary: dict[str, Any] = field(default_factory=dict)

    def stored_policies(self) -> pd.DataFrame:
        """The policies the planned waves need (created or reused), as ``save_plan`` takes
        them."""
        used = self.policies[self.policies["action"].isin([CREATE, REUSE])]
        return used[["vault_id", "policy_name", "vault", "kind", "source_policy_id",
                     "source_policy", "first_wave", "body"]].reset_index(drop=True)


def involved_vaults(selected: pd.DataFrame, options: PlanOptions) -> list[str]:
    """The vaults whose policy lists the plan must read: those of the candidates."""
    cls = classify(selected, options.allow_warnings, options.include_standard)
    vaults = selected.loc[cls["candidate"], "vault_id"].astype(str)
    first = vaults[~vaults.str.lower().duplicated()]  # Azure ids are case-insensitive
    return sorted(first.tolist(), key=str.lower)


def not_before_text(after_wave: int) -> str:
    return f"{WRITE_WINDOW_HOURS}h after wave {after_wave} ends" if after_wave else ""


def build_plan(selected: pd.DataFrame, options: PlanOptions,
               vault_policies: VaultPolicies) -> Plan:
    """The plan for ``selected`` (assessment VMs as ``load_vms(..., tags=True)`` returns them,
    already narrowed by ``--select`` / ``--vms``)."""
    selected = selected.copy()
    for column in _TEXT:
        if column in selected.columns:
            selected[column] = selected[column].astype("string").fillna("")
    cls = classify(selected, options.allow_warnings, options.include_standard)

    cand = selected.loc[cls["candidate"]]
    order = reversible_canary(order_vms(cand, options.order_by), cls["irreversible"],
                              options.canary)
    cand = cand.loc[order].copy()
    cand["pos"] = np.arange(len(cand))
    cand["vault_key"] = cand["vault_id"].str.lower()
    cand["source_key"] = cand["policy_id"].str.lower()

    groups, needs = resolve_groups(cand, vault_policies, include_standard=options.include_standard,
                                   target_template=options.target_template,
                                   rollback_template=options.rollback_template)
    first_pos = cand.groupby(GROUP_KEY, sort=False)["pos"].min().rename("first_pos")
    groups = groups.merge(first_pos.reset_index(), on=GROUP_KEY, how="left")
    existing = pd.Series({k: len(v) for k, v in vault_policies.policies.items()}, dtype="int64")
    over_limit = _apply_policy_limit(groups, existing)
    ok = groups["reason"] == ""
    groups["batch"] = 0
    groups.loc[ok, "batch"] = write_batches(groups[ok])

    # Each candidate takes its group's verdict, target and rollback names (the target is named
    # by today's template, which may differ from the one the assessment showed).
    verdicts = groups[[*GROUP_KEY, "reason", "batch", "target_policy", "rollback_policy",
                       "irreversible", "move_reduces", "rollback_reduces"]]
    cand = cand.drop(columns=["target_policy"], errors="ignore").merge(
        verdicts, on=GROUP_KEY, how="left", sort=False)
    planned = cand[cand["reason"] == ""].copy()
    ramp = resolve_ramp(options.ramp, len(planned))
    planned["wave"] = assign_waves(planned["batch"], options.canary, ramp,
                                   options.wave_size).to_numpy()
    first_wave = planned.groupby(GROUP_KEY)["wave"].min().rename("first_wave")
    groups = groups.merge(first_wave.reset_index(), on=GROUP_KEY, how="left")
    planned["after_wave"] = _after_waves(planned, groups)
    wave_after = planned.groupby("wave")["after_wave"].max()
    planned["not_before"] = planned["wave"].map(wave_after).map(not_before_text)
    planned["position"] = planned.groupby("wave").cumcount() + 1

    vms = pd.DataFrame({
        "wave": planned["wave"].astype("int64"), "position": planned["position"],
        "vm_key": planned["vm_key"], "vm_id": planned["vm_id"], "vm_name": planned["vm_name"],
        "subscription_id": planned["subscription_id"], "vault_id": planned["vault_id"],
        "vault": planned["vault"], "item_id": planned["item_id"],
        "source_policy_id": planned["policy_id"], "source_policy": planned["policy_name"],
        "target_policy": planned["target_policy"],
        "irreversible": planned["irreversible"].astype(bool),
        "rollback_policy": planned["rollback_policy"], "readiness": planned["readiness"],
        "warnings": planned["warnings"], "not_before": planned["not_before"],
        **_mua_columns(planned, vault_policies),
    }, columns=PLAN_COLUMNS).reset_index(drop=True)

    policies = _policy_report(needs, groups)
    excluded = _excluded(selected, cls, cand)
    waves = _waves(planned, policies, wave_after)
    limits = _limits(groups, cand, existing, vault_policies)
    summary = _summary(selected, cls, vms, policies, excluded, waves, over_limit,
                       vault_policies)
    summary["splits"] = _splits(planned, groups)
    summary["conflicts"] = _conflicts(policies, cand)
    summary["irreversible_vms"] = vms.loc[vms["irreversible"], "vm_name"].tolist()
    summary["guarded_vaults"] = _guarded_vaults(vms, vault_policies)
    summary["critical"] = int(vms["critical"].sum())
    return Plan(vms=vms, policies=policies, excluded=excluded, waves=waves, limits=limits,
                summary=summary)


# -- steps ------------------------------------------------------------------------------------

def _mua_columns(planned: pd.DataFrame, vault_policies: VaultPolicies) -> dict[str, Any]:
    """Per planned VM: its vault's Resource Guard, what its move (and its rollback, should it
    be needed) shortens, and whether that is critical there (tasks/migration/mua.py). Mapped
    per vault, never computed per VM in Python."""
    keys = planned["vault_key"]
    links = {k: g for k, g in vault_policies.guards.items() if g is not None}
    guard = keys.map({k: g.guard_id for k, g in links.items()})
    unreadable = keys.map({k: f"unknown: links unreadable ({e})"
                           for k, e in vault_policies.guard_errors.items()})
    guards = guard.fillna(unreadable).fillna("")
    covers = keys.map({k: bool(g.request_for(UPDATE_PROTECTION)) for k, g in links.items()})
    covered = covers.fillna(False).astype(bool)
    move = planned["move_reduces"].fillna("").astype(str)
    back = planned["rollback_reduces"].fillna("").astype(str)
    text = ("move: " + move).where(move != "", "")
    text = text.str.cat(("rollback: " + back).where(back != "", ""), sep="; ").str.strip("; ")
    critical = covered & ((move != "") | (back != ""))
    ask = keys.map({k: g.operator_request() for k, g in links.items()}).fillna("")
    when = pd.Series("", index=planned.index).where(move != "", "rollback only: ")
    return {"resource_guard": guards.to_numpy(), "retention_reduced": text.to_numpy(),
            "critical": critical.to_numpy(),
            "mua_request": (when + ask).where(critical, "").to_numpy()}


def _guarded_vaults(vms: pd.DataFrame, vault_policies: VaultPolicies) -> list[dict[str, Any]]:
    """The plan's vaults under multi-user authorization, with their planned and critical VMs."""
    out = []
    keys = vms["vault_id"].str.lower()
    for key, link in sorted(vault_policies.guards.items()):
        if link is None or not (keys == key).any():
            continue
        mine = vms[keys == key]
        out.append({"vault": str(mine["vault"].iloc[0]), "vault_id": link.vault_id,
                    "guard_id": link.guard_id, "vms": len(mine),
                    "critical_vms": int(mine["critical"].sum()),
                    "operator_request": link.operator_request()})
    for key, error in sorted(vault_policies.guard_errors.items()):
        if (keys == key).any():
            out.append({"vault": str(vms.loc[keys == key, "vault"].iloc[0]), "vault_id": key,
                        "guard_id": "", "vms": int((keys == key).sum()), "critical_vms": 0,
                        "operator_request": f"unknown: its Resource Guard links could not be "
                                            f"read ({error})"})
    return out


def _apply_policy_limit(groups: pd.DataFrame, existing: pd.Series) -> pd.DataFrame:
    """Give the groups whose new policies don't fit their vault's 200 their reason; return one
    row per vault over the limit (vault, existing, new wanted)."""
    ok = groups["reason"] == ""
    over = over_policy_limit(groups[ok], existing)
    over_rows = over[over].index
    if not len(over_rows):
        return pd.DataFrame(columns=["vault_key", "vault", "vault_id", "existing", "new"])
    wanted = groups[ok].groupby("vault_key")["creates"].sum()
    vaults = groups.loc[over_rows].drop_duplicates("vault_key")
    table = pd.DataFrame({
        "vault_key": vaults["vault_key"], "vault": vaults["vault"],
        "vault_id": vaults["vault_id"],
        "existing": vaults["vault_key"].map(existing).fillna(0).astype("int64"),
        "new": vaults["vault_key"].map(wanted).astype("int64")})
    text = {r.vault_key: (f"vault '{r.vault}' would pass Azure's {MAX_POLICIES_PER_VAULT} "
                          f"backup policies ({r.existing} existing + {r.new} new); delete "
                          "unused policies there, then plan again")
            for r in table.itertuples()}
    groups.loc[over_rows, "reason"] = groups.loc[over_rows, "vault_key"].map(text)
    return table.reset_index(drop=True)


def _after_waves(planned: pd.DataFrame, groups: pd.DataFrame) -> np.ndarray:
    """Per planned VM: the wave after whose end (plus 24 h) its wave may start, 0 for none.
    A VM of batch b waits for the wave that made its vault's last policy write of batch b-1."""
    writing = groups[(groups["reason"] == "") & (groups["creates"] > 0)]
    last = writing.groupby(["vault_key", "batch"])["first_wave"].max()
    later = planned["batch"].to_numpy() > 0
    out = np.zeros(len(planned), dtype="int64")
    if later.any():
        index = pd.MultiIndex.from_arrays([planned["vault_key"].to_numpy()[later],
                                           planned["batch"].to_numpy()[later] - 1])
        out[later] = last.reindex(index).fillna(0).astype("int64").to_numpy()
    return out


def _policy_report(needs: pd.DataFrame, groups: pd.DataFrame) -> pd.DataFrame:
    """Every needed policy with its action; policies of groups left out for another reason
    are ``skipped`` with that reason."""
    if needs.empty:
        return pd.DataFrame(columns=POLICY_REPORT_COLUMNS)
    merged = needs.merge(groups[[*GROUP_KEY, "reason", "first_wave"]], on=GROUP_KEY, how="left")
    out_of_plan = (merged["reason"] != "") & (merged["action"] != CONFLICT)
    merged.loc[out_of_plan, "action"] = SKIPPED
    merged["detail"] = merged["differences"].where(~out_of_plan, merged["reason"])
    merged["first_wave"] = merged["first_wave"].astype("Int64")
    order = merged["action"].map({CREATE: 0, REUSE: 1, CONFLICT: 2, SKIPPED: 3})
    merged = merged.assign(_o=order).sort_values(
        ["_o", "first_wave", "vault", "policy_name"], kind="stable", na_position="last")
    return merged[POLICY_REPORT_COLUMNS].reset_index(drop=True)


def _excluded(selected: pd.DataFrame, cls: pd.DataFrame, cand: pd.DataFrame) -> pd.DataFrame:
    out = ~cls["candidate"]
    # Values, not a Series: assigning a Series to an empty frame would adopt its index.
    not_candidates = selected.loc[out].assign(reason=cls.loc[out, "reason"].to_numpy())
    left_out = cand[cand["reason"] != ""]
    frame = pd.concat([not_candidates[EXCLUDED_COLUMNS], left_out[EXCLUDED_COLUMNS]],
                      ignore_index=True)
    return frame.sort_values(["reason", "vm_name", "vm_id"], kind="stable",
                             ignore_index=True)


def _waves(planned: pd.DataFrame, policies: pd.DataFrame, after: pd.Series) -> pd.DataFrame:
    if planned.empty:
        return pd.DataFrame(columns=WAVE_COLUMNS)
    by_wave = planned.groupby("wave")
    created = policies[policies["action"] == CREATE].groupby("first_wave").size()
    frame = pd.DataFrame({
        "size": by_wave.size(), "vaults": by_wave["vault_key"].nunique(),
        "subscriptions": by_wave["subscription_id"].nunique(),
        "irreversible": by_wave["irreversible"].sum().astype("int64")})
    frame["new_policies"] = frame.index.map(created).fillna(0).astype("int64")
    frame["after_wave"] = after.reindex(frame.index).fillna(0).astype("int64")
    frame["not_before"] = frame["after_wave"].map(not_before_text)
    return frame.rename_axis("wave").reset_index()[WAVE_COLUMNS]


def _limits(groups: pd.DataFrame, cand: pd.DataFrame, existing: pd.Series,
            vault_policies: VaultPolicies) -> pd.DataFrame:
    """Per candidate vault: policies there today, what the plan adds, and the verdict."""
    if groups.empty:
        return pd.DataFrame(columns=LIMIT_COLUMNS)
    planned = groups[groups["reason"] == ""]
    by_vault = planned.groupby("vault_key")
    vaults = groups.drop_duplicates("vault_key").set_index("vault_key")
    index = vaults.index

    def per_vault(values: pd.Series) -> pd.Series:
        return values.reindex(index).fillna(0).astype("int64")

    # A planned group reuses whatever it does not create: its clone, and for a Standard
    # source also the rollback copy.
    needed = 1 + planned["irreversible"].astype("int64")
    out = pd.DataFrame({"vault": vaults["vault"], "vault_id": vaults["vault_id"],
                        "subscription_id": vaults["subscription_id"]})
    out["existing_policies"] = existing.reindex(index).astype("Int64")
    out["new_policies"] = per_vault(by_vault["creates"].sum())
    out["reused_policies"] = per_vault((needed - planned["creates"])
                                       .groupby(planned["vault_key"]).sum())
    out["writes_needed"] = out["new_policies"]
    out["room"] = (MAX_POLICIES_PER_VAULT - out["existing_policies"]).astype("Int64")
    out["batches"] = per_vault(by_vault["batch"].max() + 1)
    is_planned = (cand["reason"] == "").groupby(cand["vault_key"])
    out["vms_planned"] = per_vault(is_planned.sum())
    out["vms_excluded"] = per_vault(is_planned.size() - is_planned.sum())
    out["verdict"] = [_verdict(key, row, groups, vault_policies) for key, row in out.iterrows()]
    return out.sort_values(["vault", "vault_id"], kind="stable").reset_index(drop=True)[
        LIMIT_COLUMNS]


def _verdict(vault_key: str, row: pd.Series, groups: pd.DataFrame,
             vault_policies: VaultPolicies) -> str:
    """One line per vault (a loop over vaults, not VMs)."""
    if vault_key in vault_policies.errors:
        return "policies unreadable: its VMs are left out"
    mine = groups[groups["vault_key"] == vault_key]
    parts = []
    if mine["reason"].str.contains(f"would pass Azure's {MAX_POLICIES_PER_VAULT}",
                                   regex=False).any():
        parts.append(f"over {MAX_POLICIES_PER_VAULT} policies: {row['vms_excluded']} VM(s) "
                     "left out")
    if row["batches"] > 1:
        parts.append(f"split: {row['writes_needed']} policy writes, Azure allows "
                     f"{MAX_POLICY_WRITES_PER_DAY} per vault per {WRITE_WINDOW_HOURS} h: "
                     f"{row['batches']} batches a day apart")
    if (mine["reason"].str.contains("already exists", regex=False)).any():
        parts.append("policy conflict: see Policies")
    return "; ".join(parts) or "ok"


def _summary(selected: pd.DataFrame, cls: pd.DataFrame, vms: pd.DataFrame,
             policies: pd.DataFrame, excluded: pd.DataFrame, waves: pd.DataFrame,
             over_limit: pd.DataFrame,
             vault_policies: VaultPolicies) -> dict[str, Any]:
    reasons = excluded["reason"].value_counts()
    by_reason = sorted(((str(r), int(n)) for r, n in reasons.items()),
                       key=lambda rn: (-rn[1], rn[0]))
    actions = policies["action"].value_counts()
    return {
        "selected": len(selected),
        "candidates": int(cls["candidate"].sum()),
        "planned": len(vms),
        "irreversible": int(vms["irreversible"].sum()),
        "wave_count": len(waves),
        "waves": [
            {"wave": int(w.wave), "size": int(w.size), "vaults": int(w.vaults),
             "subscriptions": int(w.subscriptions), "irreversible": int(w.irreversible),
             "new_policies": int(w.new_policies),
             "not_before": ({"after_wave": int(w.after_wave), "hours": WRITE_WINDOW_HOURS}
                            if w.after_wave else None)}
            for w in waves.itertuples()],
        "policies": {a: int(actions.get(a, 0)) for a in (CREATE, REUSE, CONFLICT, SKIPPED)},
        "excluded": {"total": len(excluded),
                     "by_reason": [{"reason": r, "vms": n} for r, n in by_reason]},
        "over_limit": [{"vault": r.vault, "vault_id": r.vault_id, "existing": int(r.existing),
                        "new": int(r.new)} for r in over_limit.itertuples()],
        "unreadable_vaults": [{"vault_id": k, "error": e}
                              for k, e in sorted(vault_policies.errors.items())],
        "requests": {"arm": vault_policies.requests},
    }


def _splits(planned: pd.DataFrame, groups: pd.DataFrame) -> list[dict[str, Any]]:
    """One entry per vault whose policy writes didn't fit one 24-hour window: its writes, and
    each later wave with the wave it waits for."""
    later = planned[planned["batch"] > 0]
    if later.empty:
        return []
    writes = groups[groups["reason"] == ""].groupby("vault_key")["creates"].sum()
    names = groups.drop_duplicates("vault_key").set_index("vault_key")
    out = []
    for vault_key, mine in later.groupby("vault_key", sort=True):
        waits = mine.groupby("wave")["after_wave"].max()
        out.append({"vault": names.at[vault_key, "vault"],
                    "vault_id": names.at[vault_key, "vault_id"],
                    "writes": int(writes.get(vault_key, 0)), "limit": MAX_POLICY_WRITES_PER_DAY,
                    "waves": [{"wave": int(w), "after_wave": int(a)} for w, a in waits.items()]})
    return out


def _conflicts(policies: pd.DataFrame, cand: pd.DataFrame) -> list[dict[str, Any]]:
    """Each policy name that is taken by a policy with other settings, with the VMs it keeps
    out: the user must rename (template) or delete before those VMs can move."""
    taken = policies[policies["action"] == CONFLICT]
    if taken.empty:
        return []
    keys = cand["vault_id"].str.lower() + "|" + cand["policy_id"].str.lower()
    users = keys.value_counts()
    return [{"vault": r.vault, "policy": r.policy_name, "kind": r.kind, "detail": r.detail,
             "vms": int(users.get(f"{r.vault_id.lower()}|{r.source_policy_id.lower()}", 0))}
            for r in taken.itertuples()]


def nothing_qualifies(plan: Plan, top: int = 3) -> str:
    """The message of a plan with no VM: how many were left out and the main reasons."""
    excluded = plan.summary["excluded"]
    reasons = "; ".join(f"{r['reason']} ({r['vms']})" for r in excluded["by_reason"][:top])
    return (f"no VM qualifies: {excluded['total']} excluded, top reasons: {reasons or 'none'}. "
            "Widen --select / --vms, accept warnings with --allow-warning RULE, or opt "
            "Standard-policy VMs in with --include-standard")


__all__ = [
    "Plan",
    "PlanOptions",
    "build_plan",
    "involved_vaults",
    "not_before_text",
    "nothing_qualifies",
]
