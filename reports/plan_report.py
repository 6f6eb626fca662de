"""``plan.csv`` and ``plan.xlsx``: a plan as the people who approve and run it read it.

plan.csv is a contract (DESIGN.md): one row per planned VM, the contract columns first in their
fixed order (wave, vm_id, vm_name, vault, source_policy, target_policy, irreversible), then
subscription_id, rollback_policy, warnings and not_before; rows in wave order. ``irreversible``
is ``true``/``false``; ``not_before`` is empty or says which wave's end (+24 h) the wave waits
for, when a vault's policy writes had to be spread over days. Then multi-user authorization:
``resource_guard`` (the vault's Resource Guard, empty when none), ``retention_reduced`` (what
the move, or its rollback, shortens), ``critical`` (``true`` when that happens on a guarded
vault: Azure wants the guard's approval) and ``mua_request`` (the role the operator must hold,
on which guard, before the wave runs).

plan.xlsx: Plan (the same rows), Waves, Policies (create / reuse / conflict / skipped, with
what the clone does), Excluded (every selected VM left out, and why) and Limits (per vault).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from openpyxl import Workbook

from .readiness_csv import write_csv
from .sheet_table import TableLayout, write_table
from .xlsx_style import RED

if TYPE_CHECKING:
    from tasks.planning import Plan

CONTRACT_COLUMNS = ["wave", "vm_id", "vm_name", "vault", "source_policy", "target_policy",
                    "irreversible"]
DETAIL_COLUMNS = ["subscription_id", "rollback_policy", "warnings", "not_before"]
MUA_COLUMNS = ["resource_guard", "retention_reduced", "critical", "mua_request"]
SHEETS = ("Plan", "Waves", "Policies", "Excluded", "Limits")
WRAP_WIDTH = 70


def plan_table(plan: Plan) -> pd.DataFrame:
    """The plan.csv rows: contract columns, then details, then multi-user authorization;
    ``irreversible`` and ``critical`` stay boolean."""
    vms = plan.vms
    for column in MUA_COLUMNS:  # a plan cut before these columns existed
        if column not in vms.columns:
            vms = vms.assign(**{column: False if column == "critical" else ""})
    return vms[CONTRACT_COLUMNS + DETAIL_COLUMNS + MUA_COLUMNS].reset_index(drop=True)


def write_plan_csv(plan: Plan, path: Path) -> Path:
    table = plan_table(plan).copy()
    for column in ("irreversible", "critical"):
        table[column] = table[column].astype(bool).map({True: "true", False: "false"})
    return write_csv(table, path)


def write_plan_workbook(plan: Plan, path: Path, *, plan_id: str = "",
                        assessment_id: str = "") -> Path:
    book = Workbook(write_only=True)
    write_table(book.create_sheet("Plan"), plan_table(plan), TableLayout(
        widths={"vm_id": 50, "warnings": 30, "resource_guard": 40, "retention_reduced": 40,
                "mua_request": WRAP_WIDTH}))

    summary = plan.summary
    heading = f"Plan {plan_id} from assessment {assessment_id}".strip()
    preface: list[tuple[str, Any]] = [(
        f"{heading}: {summary.get('planned', len(plan.vms))} VMs in {len(plan.waves)} waves "
        "(wave 1 is the canary)", None)]
    if summary.get("splits"):
        preface.append(("A wave with 'Not before' waits until 24 h after the named wave ends: "
                        "Azure allows 50 policy creates or edits per vault in 24 hours.", RED))
    preface += summary_guarded(plan)
    write_table(book.create_sheet("Waves"), plan.waves.drop(columns=["after_wave"]),
                TableLayout(headers={"wave": "Wave", "size": "VMs", "vaults": "Vaults",
                                     "subscriptions": "Subscriptions",
                                     "irreversible": "Irreversible VMs",
                                     "new_policies": "Policies created",
                                     "not_before": "Not before"},
                            preface=preface))

    write_table(book.create_sheet("Policies"), plan.policies.drop(columns=["body"]), TableLayout(
        headers={"vault": "Vault", "policy_name": "Policy", "kind": "Kind", "action": "Action",
                 "source_policy": "Source policy", "description": "What it does",
                 "detail": "Conflict or reason", "first_wave": "First wave",
                 "vault_id": "Vault id", "source_policy_id": "Source policy id"},
        widths={"description": WRAP_WIDTH, "detail": WRAP_WIDTH, "vault_id": 40,
                "source_policy_id": 40},
        preface=[("crash_clone: the crash-consistent policy VMs move to. "
                  "app_clone_for_rollback: the Enhanced app-consistent copy a Standard-policy "
                  "VM rolls back to (it can't go back to Standard). Nothing is created until a "
                  "wave runs with --execute.", None)]))

    excluded = plan.excluded
    write_table(book.create_sheet("Excluded"), excluded, TableLayout(
        headers={"vm_id": "VM id", "vm_name": "VM", "subscription_id": "Subscription",
                 "vault": "Vault", "readiness": "Readiness", "reason": "Reason"},
        readiness=["readiness"], widths={"vm_id": 50, "reason": WRAP_WIDTH},
        preface=[(f"{len(excluded)} selected VM(s) are not in the plan.", None)]))

    write_table(book.create_sheet("Limits"), plan.limits, TableLayout(
        headers={"vault": "Vault", "vault_id": "Vault id", "subscription_id": "Subscription",
                 "existing_policies": "Policies today", "new_policies": "New policies",
                 "reused_policies": "Reused policies", "writes_needed": "Policy writes",
                 "room": "Room (200 - today)", "batches": "24 h batches",
                 "vms_planned": "VMs planned", "vms_excluded": "VMs left out",
                 "verdict": "Verdict"},
        widths={"vault_id": 40, "verdict": WRAP_WIDTH},
        preface=[("Azure allows 200 backup policies per vault and 50 policy creates or edits "
                  "per vault in 24 hours. 'Policies today' counts the vault's Azure VM "
                  "policies as ARM lists them; policies of other workloads count toward 200 "
                  "too.", None)]))
    book.save(path)
    return path


def summary_guarded(plan: Plan) -> list[tuple[str, Any]]:
    """The Waves sheet's lines on multi-user authorization: guarded vaults and critical VMs."""
    guarded = plan.summary.get("guarded_vaults") or []
    if not guarded:
        return []
    critical = int(plan.summary.get("critical", 0))
    lines: list[tuple[str, Any]] = [(
        f"{len(guarded)} vault(s) are linked to a Resource Guard; {critical} planned change(s) "
        "shorten retention there (critical = true): before the wave runs, the operator must "
        "hold the role in mua_request on that guard (just in time, e.g. through PIM).",
        RED if critical else None)]
    for g in guarded:
        lines.append((f"{g['vault']}: {g['critical_vms']} of {g['vms']} VM(s) critical; "
                      f"{g['operator_request']}", None))
    return lines


__all__ = ["CONTRACT_COLUMNS", "MUA_COLUMNS", "SHEETS", "plan_table", "summary_guarded",
           "write_plan_csv", "write_plan_workbook"]
