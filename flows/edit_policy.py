"""``ccmigrate migrate --mode edit-policy --policy ID``: Option 2, the in-place switch of one
policy (``tasks/migration/edit_policy.py``), journaled as a one-wave plan of its VMs so the
journal, leases, ``rollback`` and the wave report work the same as for Option 1."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from tasks.errors import InputError
from tasks.migration.work import move_config
from tasks.settings import Settings

from .migrate import WaveOutcome

NOT_READY_SHOWN = 20


def _policy_id(value: str) -> str:
    if "/backuppolicies/" not in value.lower() or not value.lower().startswith("/subscriptions/"):
        raise InputError(f"--policy {value!r}: give the policy's ARM id, "
                         "/subscriptions/.../vaults/VAULT/backupPolicies/NAME")
    return value.rstrip("/")


def _vms_on_policy(access: Any, engine: Any, assessment_ref: str, policy_id: str,
                   ) -> tuple[Any, pd.DataFrame]:
    """The policy's items now (ARM), each with its verdict in the assessment; refuses unless
    every one is ``ready``."""
    from tasks.migration.edit_policy import items_on_policy
    from tasks.state.assessments import load_vms, resolve_assessment

    assessment = resolve_assessment(engine, assessment_ref)
    assessed = load_vms(engine, assessment.id).set_index("vm_key")
    items = items_on_policy(access, policy_id)
    if not items:
        raise InputError(f"--policy {policy_id}: no protected VM is on this policy; nothing "
                         "to switch (check the id, or use the reassign mode)")
    rows = []
    for item in items:
        props = item["properties"]
        vm_id = props.get("sourceResourceId") or props.get("virtualMachineId") or ""
        key = vm_id.lower()
        known = key in assessed.index
        rows.append({
            "vm_key": key, "vm_id": vm_id, "vm_name": props.get("friendlyName", ""),
            "item_id": item["id"],
            "readiness": assessed.at[key, "readiness"] if known else "not assessed",
            "blockers": assessed.at[key, "blockers"] if known else "",
            "warnings": assessed.at[key, "warnings"] if known else ""})
    vms = pd.DataFrame(rows)
    not_ready = vms[vms["readiness"] != "ready"]
    if len(not_ready):
        listed = "; ".join(f"{r.vm_name} ({r.readiness}"
                           + (f": {r.blockers or r.warnings}" if r.blockers or r.warnings
                              else "") + ")"
                           for r in not_ready.head(NOT_READY_SHOWN).itertuples())
        more = (f" and {len(not_ready) - NOT_READY_SHOWN} more"
                if len(not_ready) > NOT_READY_SHOWN else "")
        raise InputError(f"--policy {policy_id}: the in-place switch needs every VM on the "
                         f"policy to be ready, and {len(not_ready)} of {len(vms)} are not: "
                         f"{listed}{more}. Use the default mode (re-point the ready VMs to a "
                         "crash-consistent clone) or fix and re-assess these VMs")
    return assessment, vms


def run_edit_policy(settings: Settings, policy: str, *, assessment_ref: str, execute: bool,
                    out_dir: Path) -> WaveOutcome:
    from reports.readiness_csv import write_csv
    from tasks.azure import backup
    from tasks.azure.clients import AzureAccess
    from tasks.state.db import open_store

    policy_id = _policy_id(policy)
    engine = open_store(settings.state_store_url(), synchronous="FULL")
    access = AzureAccess(settings)
    vault = backup.vault_ref(policy_id[:policy_id.lower().index("/backuppolicies/")])
    assessment, vms = _vms_on_policy(access, engine, assessment_ref, policy_id)
    out_dir.mkdir(parents=True, exist_ok=True)
    if not execute:
        actions = vms.assign(action=f"policy {policy_id.rsplit('/', 1)[-1]} becomes "
                                    "crash-consistent; a ConfigureBackup job runs for this VM; "
                                    "any failure reverts the policy")
        path = write_csv(actions[["vm_name", "vm_id", "readiness", "action"]],
                         out_dir / "edit-policy-dry-run.csv")
        return WaveOutcome("", None, False, {"vms": len(vms)}, "dry_run", None,
                           {"edit-policy-dry-run.csv": path}, actions)
    return _execute(settings, engine, access, vault, policy_id, assessment, vms, out_dir)


def _execute(settings: Settings, engine: Any, access: Any, vault: Any, policy_id: str,
             assessment: Any, vms: pd.DataFrame, out_dir: Path) -> WaveOutcome:
    from datetime import UTC, datetime

    from prefect import flow, get_run_logger

    from reports.wave_report import write_wave_report
    from tasks.migration.edit_policy import PolicySwitch
    from tasks.migration.move import VmPlan
    from tasks.state.journal import Journal
    from tasks.state.leases import acquire_wave_lease
    from tasks.state.plans import PlanRecord, save_plan, set_wave_status

    name = policy_id.rsplit("/", 1)[-1]
    vault_id = vault.id
    frame = pd.DataFrame({
        "wave": 1, "vm_id": vms["vm_id"], "vm_name": vms["vm_name"],
        "subscription_id": vault.subscription_id, "vault_id": vault_id, "vault": vault.vault,
        "item_id": vms["item_id"], "source_policy_id": policy_id, "source_policy": name,
        "target_policy": name, "irreversible": False, "rollback_policy": name,
        "readiness": vms["readiness"], "warnings": vms["warnings"]})
    record = PlanRecord.new(assessment.id, {"mode": "edit-policy", "policy_id": policy_id})
    save_plan(engine, record, frame, pd.DataFrame(columns=["vault_id", "policy_name", "kind"]))
    lease = acquire_wave_lease(engine, record.id, 1)
    journal = Journal(engine, record.id, lease=lease)
    started = datetime.now(UTC)
    plans = [VmPlan(vm_key=r.vm_id.lower(), vm_id=r.vm_id, vm_name=r.vm_name,
                    subscription_id=vault.subscription_id, vault_id=vault_id,
                    item_id=r.item_id, source_policy_id=policy_id, target_policy_id=policy_id,
                    rollback_policy_id=policy_id) for r in frame.itertuples(index=False)]

    @flow(name="edit-policy", log_prints=False)
    def edit_flow() -> Any:
        switch = PolicySwitch(access, journal, move_config(settings),
                              log=get_run_logger().info)
        set_wave_status(engine, record.id, 1, "running")
        return switch.run(policy_id, plans)

    try:
        with lease.keep_alive():
            result = edit_flow()
    finally:
        lease.release()
    entries = journal.entries(1)
    counts = {k: int(v) for k, v in entries["status"].value_counts().items()}
    status = "done" if result.outcome in ("switched", "already") else "partial"
    set_wave_status(engine, record.id, 1, status, counts=counts,
                    halted_reason=None if status == "done" else result.message)
    files = write_wave_report(entries, out_dir, plan_id=record.id, wave=1, status=status,
                              halted_reason=None if status == "done" else result.message,
                              started_at=started)
    outcome = WaveOutcome(record.id, 1, True, counts, status,
                          None if status == "done" else f"{result.outcome}: {result.message}",
                          files)
    outcome.actions = pd.DataFrame([{"vm_key": k, "error": v}
                                    for k, v in result.failed_vms.items()])
    return outcome
