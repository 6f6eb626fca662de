"""The ``plan`` flow: a stored assessment -> selection -> candidates -> each involved vault's
policy list (ARM, read-only) -> waves and policies -> the state store, plan.csv and plan.xlsx.

Two halves, so bad input costs nothing: ``prepare_plan`` reads only the state store and the
user's files and raises every ``InputError`` (unknown assessment, bad filter, unknown VM ids,
empty selection, nothing that qualifies) before an emulator, Prefect or Azure is touched;
``run_plan`` then reads the vaults under Prefect (one task per chunk of vaults, never one per
VM), cuts the plan and records it. A plan never writes to Azure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tasks.errors import InputError
from tasks.settings import Settings

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy import Engine

    from tasks.planning import Filter, Plan, PlanOptions
    from tasks.state import AssessmentRecord, PlanRecord

VAULT_CHUNK = 100


@dataclass
class PlanRequest:
    """What the user asked for beyond settings: which assessment and which VMs."""

    assessment: str = "latest"
    select: list[str] = field(default_factory=list)
    vms_file: Path | None = None
    allow_warnings: list[str] = field(default_factory=list)  # --allow-warning, added to settings


@dataclass
class PreparedPlan:
    """Everything checked and loaded before Azure is read."""

    engine: Engine
    assessment: AssessmentRecord
    selected: pd.DataFrame
    options: PlanOptions
    vaults: list[str]
    filters: list[Filter]
    assessment_vms: int
    request: PlanRequest


@dataclass
class PlanOutcome:
    record: PlanRecord
    plan: Plan
    files: dict[str, Path]


def _check_templates(options: PlanOptions) -> None:
    """Template settings are bad input: find out now, not halfway through the vaults."""
    from tasks.planning.policy_needs import ROLLBACK_SETTING
    from tasks.policies.naming import check_template, rollback_policy_name

    check_template(options.target_template)
    rollback_policy_name("policy", options.rollback_template,
                         target_template=options.target_template, setting=ROLLBACK_SETTING)


def prepare_plan(settings: Settings, request: PlanRequest) -> PreparedPlan:
    """Resolve the assessment, select its VMs and find the vaults to read; every problem with
    the input is an ``InputError`` here. The caller disposes ``engine`` when done."""
    from tasks.planning import (
        PlanOptions,
        VaultPolicies,
        build_plan,
        describe_filters,
        involved_vaults,
        listed_mask,
        normalize_rule_ids,
        nothing_qualifies,
        parse_filters,
        read_vm_ids,
        select_mask,
    )
    from tasks.state import load_vms, open_store, resolve_assessment

    filters = parse_filters(request.select)
    ids = read_vm_ids(request.vms_file) if request.vms_file else None
    normalize_rule_ids(settings.waves.allow_warnings, where="setting waves.allow_warnings")
    allowed = normalize_rule_ids(request.allow_warnings, where="--allow-warning")
    options = PlanOptions.from_settings(settings, allow_warnings=tuple(allowed))
    _check_templates(options)

    engine = open_store(settings.state_store_url())
    try:
        assessment = resolve_assessment(engine, request.assessment)
        vms = load_vms(engine, assessment.id, tags=True)
        mask = select_mask(vms, filters)
        if ids is not None:
            mask &= listed_mask(vms, ids, source=str(request.vms_file),
                                assessment_id=assessment.id)
        selected = vms[mask]
        if selected.empty:
            given = " ".join(filter(None, [describe_filters(filters), request.vms_file and
                                           f"--vms {request.vms_file}"]))
            raise InputError(
                f"{given or 'the selection'} matched none of the {len(vms)} VMs of assessment "
                f"{assessment.id}; check the patterns (globs such as vault=prod-*, matched "
                "case-insensitively against the whole value; keys: subscription, "
                "resource_group, location, vault, policy, vm, tag:NAME)")
        vaults = involved_vaults(selected, options)
        if not vaults:
            raise InputError(nothing_qualifies(build_plan(selected, options, VaultPolicies())))
    except BaseException:
        engine.dispose()
        raise
    return PreparedPlan(engine=engine, assessment=assessment, selected=selected,
                        options=options, vaults=vaults, filters=filters,
                        assessment_vms=len(vms), request=request)


def run_plan(settings: Settings, prepared: PreparedPlan, out_dir: Path) -> PlanOutcome:
    """Read the vaults, cut the plan, record it and write plan.csv / plan.xlsx. Runs under
    Prefect (the caller provides the runtime) against wherever ``settings`` point."""
    from prefect import flow, get_run_logger, task
    from prefect.cache_policies import NO_CACHE

    from reports.plan_report import write_plan_csv, write_plan_workbook
    from tasks.azure.clients import AzureAccess
    from tasks.planning import VaultPolicies, build_plan, nothing_qualifies, read_vault_policies
    from tasks.state import PlanRecord, save_plan

    def read_chunk(access: AzureAccess, vault_ids: list[str]) -> VaultPolicies:
        got = read_vault_policies(access, vault_ids)
        get_run_logger().info(f"policies of {len(vault_ids)} vault(s) read, "
                              f"{len(got.errors)} unreadable")
        return got

    read_task = task(read_chunk, name="read-vault-policies", cache_policy=NO_CACHE)

    @flow(name="plan", log_prints=False)
    def plan_flow(settings: Settings) -> dict[str, Any]:
        access = AzureAccess(settings)
        try:
            vaults = prepared.vaults
            futures = [read_task.submit(access, vaults[i:i + VAULT_CHUNK])
                       for i in range(0, len(vaults), VAULT_CHUNK)]
            vault_policies = VaultPolicies()
            for future in futures:
                vault_policies.merge(future.result())
        finally:
            access.close()
        plan = build_plan(prepared.selected, prepared.options, vault_policies)
        if plan.vms.empty:  # the caller reports it; nothing is stored or written
            return {"plan": plan, "record": None, "files": {}}
        record = PlanRecord.new(prepared.assessment.id, _options(prepared))
        record.summary = {**plan.summary, "plan_id": record.id,
                          "assessment_id": prepared.assessment.id,
                          "created_at": record.created_at.isoformat(),
                          "assessment_vms": prepared.assessment_vms}
        save_plan(prepared.engine, record, plan.vms, plan.stored_policies())
        files = {"plan.csv": write_plan_csv(plan, out_dir / "plan.csv"),
                 "plan.xlsx": write_plan_workbook(plan, out_dir / "plan.xlsx",
                                                  plan_id=record.id,
                                                  assessment_id=prepared.assessment.id)}
        get_run_logger().info(f"plan {record.id}: {len(plan.vms)} VMs in {record.wave_count} "
                              f"waves; files: {', '.join(str(p) for p in files.values())}")
        return {"plan": plan, "record": record, "files": files}

    result = plan_flow(settings)
    if result["record"] is None:
        raise InputError(nothing_qualifies(result["plan"]))
    return PlanOutcome(record=result["record"], plan=result["plan"], files=result["files"])


def _options(prepared: PreparedPlan) -> dict[str, Any]:
    """The options stored with the plan: how it was cut and from which VMs."""
    request = prepared.request
    return {**prepared.options.as_dict(), "assessment": request.assessment,
            "select": list(request.select),
            "vms_file": str(request.vms_file) if request.vms_file else None}
