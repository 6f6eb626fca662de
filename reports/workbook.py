"""``readiness.xlsx``: the manager's first sheet and the engineer's filters in one book.

Sheets in this order: Summary, VMs, Blockers, Subscriptions, Vaults and policies, Not assessed,
Rules, Changes (when a previous assessment of the scope exists), Migration (when any of its VMs
was ever in a wave: each VM's latest journal state), Cost. The whole book is
write-only (rows stream to disk through lxml), so 100k VMs cost seconds and little memory;
colours on big sheets come from conditional formats, not per-cell styles.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from openpyxl import Workbook

from .labels import READINESS_LABELS
from .report_tables import (
    blockers_table,
    not_assessed_table,
    portal_links,
    rules_table,
    subscriptions_table,
    vault_policies_table,
)
from .sheet_summary import write_summary_sheet
from .sheet_table import TableLayout, write_table
from .xlsx_fast import save
from .xlsx_style import RED

SHEETS = ("Summary", "VMs", "Blockers", "Subscriptions", "Vaults and policies", "Not assessed",
          "Rules", "Changes", "Migration", "Cost")
VM_LINK = "_portal"
WRAP_WIDTH = 70


@dataclass
class ReadinessReport:
    """What the readiness reports are drawn from (built once by the assess flow)."""

    summary: dict[str, Any]       # summary.json: the numbers on Summary
    vm_table: pd.DataFrame        # report_tables.vm_table: readiness.csv and the VMs sheet
    scored: pd.DataFrame          # the scored inventory, for per-subscription and vault tables
    pack: Any                     # the rule pack used (tasks.rules.engine.RulePack)
    policies: pd.DataFrame | None = None  # existing policies: vault_id, policy_name, consistency
    changes: pd.DataFrame | None = None   # reports.changes.compare, when a previous one exists
    cost: Any = None                      # reports.cost.CostView
    migration: pd.DataFrame | None = None  # report_tables.migration_table, from the journal


def write_readiness_workbook(report: ReadinessReport, path: Path) -> Path:
    book = Workbook(write_only=True)
    summary = report.summary
    write_summary_sheet(book.create_sheet("Summary"), summary,
                        has_changes_sheet=report.changes is not None)

    vms = report.vm_table.copy(deep=False)
    vms[VM_LINK] = portal_links(vms["vm_id"].tolist(), summary["cloud"])
    write_table(book.create_sheet("VMs"), vms, TableLayout(
        links={"vm_name": VM_LINK}, readiness=["readiness"],
        widths={"vm_id": 50, "policy_id": 40, "item_id": 40, "other_items": 30, "tags": 40}))

    write_table(book.create_sheet("Blockers"), blockers_table(summary, report.pack), TableLayout(
        headers={"rule_id": "Rule", "severity": "Severity", "category": "Category",
                 "title": "Title", "vms": "VMs affected", "share_of_vms": "Share of VMs",
                 "remediation": "Remediation", "doc_link": "Learn more"},
        links={"doc_link": "doc_link"}, percent=["share_of_vms"],
        widths={"remediation": WRAP_WIDTH, "doc_link": 50}))

    cost_by_sub = report.cost.by_subscription if report.cost is not None else None
    subs = subscriptions_table(summary, report.scored, cost_by_sub)
    write_table(book.create_sheet("Subscriptions"), subs, TableLayout(
        headers={"subscription_id": "Subscription", "subscription_name": "Name", "vms": "VMs",
                 **READINESS_LABELS, "ready_share": "Can move (ready + with conditions)",
                 "top_blocker": "Top blocker", "top_blocker_vms": "VMs it blocks",
                 "pi_units": "PI units (crash-consistent)", "monthly_cost": "Monthly cost"},
        percent=["ready_share"]))

    vaults = vault_policies_table(report.scored, report.policies)
    write_table(book.create_sheet("Vaults and policies"), vaults, TableLayout(
        headers={"subscription_id": "Subscription", "vault": "Vault", "vault_id": "Vault id",
                 "policy_name": "Source policy", "policy_type": "Policy type",
                 "consistency_type": "Snapshot consistency", "vms": "VMs on it",
                 "ready": "Ready", "ready_with_conditions": "Ready with conditions",
                 "not_ready": "Not ready", "other": "Other",
                 "target_policy": "Crash-consistent policy they move to",
                 "target_exists": "Target policy exists", "note": "Note"},
        widths={"vault_id": 40}))

    errors = not_assessed_table(summary)
    preface = ([(f"{len(errors)} scope(s) could not be read. Their VMs are not in this book; "
                 "retry with the command given.", RED)] if len(errors)
               else [("Every scope in the request was read.", None)])
    write_table(book.create_sheet("Not assessed"), errors, TableLayout(
        headers={"scope": "Scope", "error": "Error", "retry": "Retry with"},
        preface=preface, widths={"error": WRAP_WIDTH, "retry": WRAP_WIDTH}))

    pack = summary["rule_pack"]
    write_table(book.create_sheet("Rules"), rules_table(report.pack, summary), TableLayout(
        headers={"rule_id": "Rule", "severity": "Severity used",
                 "pack_severity": "Pack severity", "enabled": "Enabled",
                 "category": "Category", "title": "Title", "vms": "VMs matched",
                 "rationale": "Rationale", "remediation": "Remediation",
                 "doc_link": "Learn more"},
        links={"doc_link": "doc_link"},
        preface=[(f"Rule pack {pack['name']}: {pack['doc_version']}", None)],
        widths={"rationale": WRAP_WIDTH, "remediation": WRAP_WIDTH, "doc_link": 50}))

    if report.changes is not None:
        changes = summary.get("changes") or {}
        write_table(book.create_sheet("Changes"), report.changes, TableLayout(
            readiness=["readiness_before", "readiness_after"],
            preface=[(f"Changes since assessment {changes.get('previous_id', '')}"
                      f" ({len(report.changes)} VMs)", None)],
            widths={"vm_id": 50}))

    if report.migration is not None:
        counts = report.migration["status"].value_counts()
        line = ", ".join(f"{status} {int(n)}" for status, n in counts.items())
        write_table(book.create_sheet("Migration"), report.migration, TableLayout(
            preface=[(f"Migration of these VMs, from the wave journal: {line}", None)],
            widths={"vm_id": 50, "error_message": 60, "rollback_outcome": 50}))

    if report.cost is not None:
        cost = report.cost
        note = [(cost.note, None if cost.priced else RED)]
        # Unpriced, the sheet shows units only: no empty money column to misread.
        frame = cost.vms if cost.priced else cost.vms.drop(columns=["monthly_cost"])
        write_table(book.create_sheet("Cost"), frame, TableLayout(
            headers={"provisioned_gb": "Provisioned GB", "pi_basis_gb": "PI basis GB",
                     "pi_tier": "PI tier", "pi_units": "PI units",
                     "monthly_cost": f"Monthly cost ({cost.currency or 'not priced'})"},
            readiness=["readiness"], preface=note, widths={"vm_id": 50}))

    save(book, path)
    return path
