"""The ``assess`` flow: scope -> Resource Graph -> inventory -> scored inventory -> files and the
state store.

Prefect tasks are coarse on purpose (prefect-notes: ~3.5 ms and ~34 KB per task): one per
subscription batch for Resource Graph, one per chunk of vaults for policies, one for SKUs, one
each for scoring, writing and recording. Never one per VM.
"""

from __future__ import annotations

import gc
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from tasks.errors import AzureError, InputError
from tasks.settings import Settings

from .progress import Progress

VAULT_CHUNK = 100
VAULT_TYPE = "microsoft.recoveryservices/vaults"


@dataclass
class AssessmentOutcome:
    assessment_id: str
    out_dir: Path
    files: dict[str, Path]
    summary: dict[str, Any]
    scored: pd.DataFrame = field(repr=False)
    report: Any = field(default=None, repr=False)  # reports.workbook.ReadinessReport
    disks: pd.DataFrame | None = field(default=None, repr=False)


def _tool_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ccmigrate")
    except PackageNotFoundError:
        return "0+unknown"


def _scope_description(settings: Settings, subscriptions: list[dict]) -> dict[str, Any]:
    scope = settings.scope
    return {
        "subscriptions": [s["subscriptionId"] for s in subscriptions],
        "requested_subscriptions": scope.subscriptions,
        "management_groups": scope.management_groups,
        "exclude_subscriptions": scope.exclude_subscriptions,
        "exclude_resource_groups": scope.exclude_resource_groups,
        "exclude_tags": scope.exclude_tags,
        "cloud": settings.cloud,
    }


def _retry_command(subscriptions: list[str]) -> str:
    flags = " ".join(f"--subscription {s}" for s in subscriptions[:20])
    more = " ..." if len(subscriptions) > 20 else ""
    return f"ccmigrate assess {flags}{more} --out DIR"


def run_assessment(settings: Settings, out_dir: Path, *, progress: Progress | None = None,
                   ) -> AssessmentOutcome:
    """Run the assess flow under Prefect (the caller provides the Prefect runtime)."""
    from prefect import flow, get_run_logger, task
    from prefect.cache_policies import NO_CACHE

    from reports.artifacts import publish_assessment_artifacts
    from reports.changes import compare, summarize_changes
    from reports.cost import cost_view
    from reports.report_tables import migration_table, vm_table
    from reports.summary import build_summary, write_summary_json
    from reports.workbook import ReadinessReport
    from tasks.azure.clients import AzureAccess
    from tasks.azure.resource_graph import QuotaGate
    from tasks.discovery.collect import STAGES, collect_queries
    from tasks.discovery.policies import PolicyFacts, read_policies
    from tasks.discovery.scope import batches, resolve_scope
    from tasks.discovery.skus import SkuFacts, read_skus
    from tasks.inventory.build import build_inventory
    from tasks.inventory.pages import VmPages
    from tasks.rules.engine import RuleContext, load_pack, score
    from tasks.state.assessments import (
        AssessmentRecord,
        load_vms,
        new_assessment_id,
        previous_of,
        save_assessment,
        scope_key,
    )
    from tasks.state.db import checkpoint, open_store
    from tasks.state.journal import latest_by_vm

    progress = progress or Progress(enabled=False)
    opts = {"cache_policy": NO_CACHE}

    def discover_stage(access: AzureAccess, subs: list[str], names: tuple[str, ...],
                       gate: QuotaGate, pages: VmPages):
        return collect_queries(access.resource_graph(), subs, names, gate,
                               page_size=settings.throttles.arg_page_size, sink=pages)

    def policies_chunk(access: AzureAccess, vault_ids: list[str]):
        facts = read_policies(access, vault_ids)
        line = (f"policies of {len(vault_ids)} vault(s) read, "
                f"{len(facts.errors)} vault(s) unreadable")
        get_run_logger().info(line)
        for warning in facts.warnings:
            get_run_logger().warning(f"{warning['scope']}: {warning['error']}; its VMs' "
                                     "protection state comes from Resource Graph")
        progress.advance("vaults", line, len(vault_ids))
        return facts

    stage_task = task(discover_stage, name="resource-graph", **opts)
    policies_task = task(policies_chunk, name="read-policies", **opts)
    skus_task = task(read_skus, name="read-skus", **opts)

    @flow(name="assess", log_prints=False)
    def assess(settings: Settings, out_dir: str) -> dict[str, Any]:
        timings: dict[str, float] = {}
        started = time.monotonic()
        created = datetime.now(UTC)
        pack = load_pack(settings.rules)  # bad rule settings stop us before any Azure call
        engine = open_store(settings.state_store_url())
        ctx = RuleContext.from_settings(settings)
        access = AzureAccess(settings)
        gate = QuotaGate()

        scope = resolve_scope(settings, access.resource_graph(), gate)
        groups = batches(scope.ids, settings.throttles.arg_batch_size)
        progress.stage("batches", "Resource Graph", len(groups))
        # One chain of stages per batch; batches run side by side under the shared quota gate.
        # Each batch's VM and item rows are laid into columns page by page as they arrive
        # (``VmPages``), while the next page waits for the quota.
        chains = []
        batch_pages = VmPages.share(len(groups))
        for group, pages in zip(groups, batch_pages, strict=True):
            chain = []
            for names in STAGES:
                chain.append(stage_task.submit(access, group, names, gate, pages,
                                               wait_for=chain[-1:]))
            chains.append(chain)
        # The stages whose rows hold the vaults, and the VMs with their protected items.
        vaults_stage = next(i for i, names in enumerate(STAGES)
                            if "vaults_and_special_disks" in names)
        vms_stage = next(i for i, names in enumerate(STAGES) if "vms_with_items" in names)

        # ARM reads start as soon as a batch's vaults are known, so they overlap the VM pages:
        # every vault's policies (a vault that holds no VM in scope is read for nothing, and its
        # facts are dropped below) and the VM sizes of the vaults' regions. Once the VMs are
        # known, whatever vault or region is still missing.
        arm_futures = []
        seen_vaults: set[str] = set()
        seen_pairs: set[tuple[str, str]] = set()

        def read_arm(vaults: list[str], pairs: set[tuple[str, str]]) -> None:
            vaults = sorted(set(vaults) - seen_vaults)
            seen_vaults.update(vaults)
            arm_futures.extend(policies_task.submit(access, vaults[i:i + VAULT_CHUNK])
                               for i in range(0, len(vaults), VAULT_CHUNK))
            pairs = pairs - seen_pairs
            seen_pairs.update(pairs)
            if pairs:
                arm_futures.append(skus_task.submit(access, pairs))

        for chain in chains:
            got = chain[vaults_stage].result().rows.get("vaults_and_sql", [])
            vault_rows = [r for r in got if r.get("type") == VAULT_TYPE]
            read_arm([r["id"].lower() for r in vault_rows],
                     {(r["subscriptionId"].lower(), r["location"].lower()) for r in vault_rows})
        for chain, pages in zip(chains, batch_pages, strict=True):
            chain[vms_stage].result()
            read_arm(sorted(pages.vault_ids), pages.regions)

        rows: dict[str, list[dict]] = {}
        read: list[VmPages] = []  # the VM and item rows of every batch read whole
        partial: list[dict] = []
        arg_requests = scope.requests
        for n, (group, chain, pages) in enumerate(zip(groups, chains, batch_pages, strict=True),
                                                  start=1):
            results = [f.result() for f in chain]
            arg_requests += sum(r.requests for r in results)
            error = next((r.error for r in results if r.error), None)
            vms_found = pages.vm_count
            line = (f"batch {n}/{len(groups)}: {len(group)} subscription(s), {vms_found} VMs, "
                    f"{sum(r.requests for r in results)} Resource Graph requests "
                    f"({'error: ' + error if error else 'ok'})")
            get_run_logger().info(line)
            progress.advance("batches", line)
            if error:
                # Honest partial results: none of this batch's rows are scored.
                partial.append({"scope": "subscriptions " + ", ".join(group), "error": error,
                                "retry": _retry_command(group)})
                continue
            for result in results:
                for name, got in result.rows.items():
                    rows.setdefault(name, []).extend(got)
                result.rows.clear()  # the rows live on in ``rows`` only
            read.append(pages)
        timings["discovery"] = time.monotonic() - started
        if partial and not sum(pages.vm_count for pages in read):
            raise AzureError("no subscription in scope could be read through Resource Graph: "
                             + partial[0]["error"])

        mark = time.monotonic()
        policies: dict[str, dict] = {}
        guarded: dict[str, dict] = {}  # vaults under multi-user authorization
        item_states: dict[str, str] = {}  # ARM's protectionState of every listed item
        frames = []
        arm_requests = 0
        # Only the vaults and regions of the VMs in scope count (more were read ahead).
        needed_vaults = set().union(*(pages.vault_ids for pages in read))
        needed_skus = {f"/subscriptions/{sub} ({location} VM sizes)"
                       for pages in read for sub, location in pages.regions}
        for fut in arm_futures:
            facts = fut.result()
            arm_requests += facts.requests
            if isinstance(facts, PolicyFacts):
                policies.update({k: v for k, v in facts.policies.items()
                                 if k.rsplit("/backuppolicies/", 1)[0] in needed_vaults})
                guarded.update({k: v for k, v in facts.guards.items() if k in needed_vaults})
                item_states.update(facts.item_states)
                partial.extend({**e, "retry": "re-run the assessment once the vault is "
                                "readable"} for e in facts.errors if e["scope"] in needed_vaults)
            else:
                frames.append(facts.frame)
                partial.extend({**e, "retry": "re-run the assessment"} for e in facts.errors
                               if e["scope"] in needed_skus)
        sku_frame = (pd.concat(frames, ignore_index=True) if frames
                     else SkuFacts().frame)
        timings["policies_and_skus_wait"] = time.monotonic() - mark

        # Everything alive now (the raw rows, Prefect, the imports: millions of objects at 100k
        # VMs) leaves the cyclic collector's view until the flow ends: the local work below
        # allocates enough to set off full collections, each of which would walk all of it.
        # Objects still die by their reference counts; ``run_assessment`` unfreezes.
        gc.freeze()
        mark = time.monotonic()
        inventory = build_inventory(rows, policies, sku_frame, settings, item_states,
                                    pages=read)
        rows.clear()  # the raw rows and the pages' frames are not read again
        for pages in batch_pages:
            pages.clear()
        timings["inventory"] = time.monotonic() - mark
        mark = time.monotonic()
        scored = score(inventory.vms, inventory.disks, pack, ctx,
                       settings.rules.target_policy_template)
        timings["score"] = time.monotonic() - mark

        assessment_id = new_assessment_id(created)
        folder = Path(out_dir)
        folder.mkdir(parents=True, exist_ok=True)
        scope_desc = _scope_description(settings, scope.subscriptions)
        requests = {"resource_graph": arg_requests, "resource_graph_429s": gate.throttled,
                    "arm": arm_requests}
        record = AssessmentRecord(
            id=assessment_id, created_at=created, finished_at=None,
            scope_key=scope_key(scope_desc), scope=scope_desc, rule_pack=pack.name,
            pack_doc_version=pack.doc_version, overrides=pack.overrides,
            tool_version=_tool_version(), cloud=settings.cloud, vm_count=len(scored),
            request_count=arg_requests, partial_errors=partial)

        # What changed since the previous assessment of the same scope, from the state store.
        mark = time.monotonic()
        previous = previous_of(engine, record)
        changes = changes_summary = None
        if previous is not None:
            changes = compare(load_vms(engine, previous.id), scored)
            changes_summary = summarize_changes(changes, previous.id, assessment_id)
        cost = cost_view(scored, pack, settings.pricing)
        migration = migration_table(latest_by_vm(engine), scored)
        timings["changes_and_cost"] = time.monotonic() - mark

        timings["total"] = time.monotonic() - started
        summary = build_summary(
            scored, assessment_id=assessment_id, scope=scope_desc, pack=pack,
            cloud=settings.cloud, requests=requests, partial_errors=partial, timings=timings,
            excluded_vms=inventory.excluded, tool_version=_tool_version(),
            created_at=created.isoformat(),
            subscription_names={s["subscriptionId"]: s.get("name") or ""
                                for s in scope.subscriptions},
            cost=cost.to_summary(), changes=changes_summary, guarded_vaults=guarded,
            migration=({k: int(v) for k, v in migration["status"].value_counts().items()}
                       if migration is not None else None))

        def save(summary: dict[str, Any]) -> None:
            record.finished_at = datetime.now(UTC)
            record.counts = summary["by_readiness"]
            record.summary = summary
            save_assessment(engine, record, scored, defer_checkpoint=True)

        # Each part timed alone, one after another: the state-store record, the report tables
        # and the CSV files (local work), then the workbook. The record's commit leaves SQLite's
        # checkpoint (copying the log into the database file: about half a second at 100k VMs,
        # all in C without the GIL) to a thread that runs beside the tables and the CSV files;
        # it is waited for before the workbook, so the local work still holds it.
        mark = time.monotonic()
        save(summary)  # the stored copy's timings stop here; the file's cover the writing
        timings["record"] = time.monotonic() - mark
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkpoint") as pool:
            checkpointing = pool.submit(checkpoint, engine)
            mark = time.monotonic()
            report = ReadinessReport(summary=summary, vm_table=vm_table(scored, inventory.disks),
                                     scored=scored, pack=pack,
                                     policies=policy_catalogue(policies), changes=changes,
                                     cost=cost, migration=migration)
            timings["tables"] = time.monotonic() - mark
            mark = time.monotonic()
            files = write_csv_reports(report, folder)
            timings["csv"] = time.monotonic() - mark
            mark = time.monotonic()
            checkpointing.result()
            timings["checkpoint_wait"] = time.monotonic() - mark
        mark = time.monotonic()
        files["readiness.xlsx"] = write_workbook(report, folder)
        timings["workbook"] = time.monotonic() - mark
        timings["total"] = time.monotonic() - started
        summary = {**summary, "timings_s": {k: round(v, 3) for k, v in timings.items()}}
        files["summary.json"] = write_summary_json(summary, folder / "summary.json")
        get_run_logger().info("reports written: " + ", ".join(str(p) for p in files.values()))
        publish_assessment_artifacts(summary, files)
        return {"assessment_id": assessment_id, "files": {k: str(v) for k, v in files.items()},
                "summary": summary, "scored": scored, "report": report,
                "disks": inventory.disks}

    try:
        result = assess(settings, str(out_dir))
    finally:
        gc.unfreeze()  # frozen once the Azure reads were in: the collector sees them again
    return AssessmentOutcome(result["assessment_id"], Path(out_dir),
                             {k: Path(v) for k, v in result["files"].items()},
                             result["summary"], result["scored"], result["report"],
                             result["disks"])


def policy_catalogue(policies: dict[str, dict]) -> pd.DataFrame:
    """The policies read from each vault, as a frame: the reports check whether a VM's target
    crash-consistent policy already exists (and is crash-consistent)."""
    rows = [(pid.rsplit("/backuppolicies/", 1)[0], facts["policy_name"],
             facts["consistency_type"]) for pid, facts in policies.items()]
    return pd.DataFrame(rows, columns=["vault_id", "policy_name", "consistency_type"])


def write_reports(report: Any, folder: Path) -> dict[str, Path]:
    """readiness.csv, blockers.csv, changes.csv (when there is a previous assessment) and
    readiness.xlsx; summary.json is written last, once the timings are known."""
    files = write_csv_reports(report, folder)
    files["readiness.xlsx"] = write_workbook(report, folder)
    return files


def write_csv_reports(report: Any, folder: Path) -> dict[str, Path]:
    """readiness.csv, blockers.csv and changes.csv (when there is a previous assessment)."""
    from reports.changes import write_changes_csv
    from reports.readiness_csv import write_csv, write_readiness_csv
    from reports.report_tables import blockers_table

    files = {"readiness.csv": write_readiness_csv(report.vm_table, folder / "readiness.csv"),
             "blockers.csv": write_csv(blockers_table(report.summary, report.pack),
                                       folder / "blockers.csv")}
    if report.changes is not None:
        files["changes.csv"] = write_changes_csv(report.changes, folder / "changes.csv")
    return files


def write_workbook(report: Any, folder: Path) -> Path:
    """readiness.xlsx."""
    from reports.workbook import write_readiness_workbook

    return write_readiness_workbook(report, folder / "readiness.xlsx")


def check_out_dir(out: Path) -> Path:
    """The output folder must be creatable and writable; fail before touching Azure."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".ccmigrate-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise InputError(f"--out {out}: cannot write there ({exc.strerror}); choose a folder "
                         "you can write to") from exc
    return out
