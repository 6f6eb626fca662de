"""The ``assess`` flow: scope -> Resource Graph -> inventory -> scored inventory -> files and the
state store.

Prefect tasks are coarse on purpose (prefect-notes: ~3.5 ms and ~34 KB per task): one per
subscription batch for Resource Graph, one per chunk of vaults for policies, one for SKUs, one
each for scoring, writing and recording. Never one per VM.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from tasks.errors import AzureError, CcmigrateError, InputError
from tasks.settings import Settings

from .progress import Progress

VAULT_CHUNK = 100


@dataclass
class AssessmentOutcome:
    assessment_id: str
    out_dir: Path
    files: dict[str, Path]
    summary: dict[str, Any]
    scored: pd.DataFrame = field(repr=False)


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

    from reports.readiness_csv import write_readiness_csv
    from reports.summary import build_summary, write_summary_json
    from tasks.azure.clients import AzureAccess
    from tasks.azure.resource_graph import QuotaGate
    from tasks.discovery.collect import collect_batch
    from tasks.discovery.policies import read_policies
    from tasks.discovery.scope import batches, resolve_scope
    from tasks.discovery.skus import read_skus
    from tasks.inventory.build import build_inventory, sku_pairs, vaults_to_read
    from tasks.rules.engine import RuleContext, load_pack, score
    from tasks.state.assessments import (
        AssessmentRecord,
        new_assessment_id,
        save_assessment,
        scope_key,
    )
    from tasks.state.db import open_store

    progress = progress or Progress(enabled=False)
    opts = {"cache_policy": NO_CACHE}

    def discover_batch(access: AzureAccess, subs: list[str], gate: QuotaGate, n: int,
                       total: int):
        result = collect_batch(access.resource_graph(), subs, gate,
                               page_size=settings.throttles.arg_page_size)
        state = f"error: {result.error}" if result.error else "ok"
        vms = len(result.rows.get("vms", []))
        line = (f"batch {n}/{total}: {len(subs)} subscription(s), {vms} VMs, "
                f"{result.requests} Resource Graph requests ({state})")
        get_run_logger().info(line)
        progress.advance("batches", line)
        return result

    def policies_chunk(access: AzureAccess, vault_ids: list[str]):
        facts = read_policies(access, vault_ids)
        line = (f"policies of {len(vault_ids)} vault(s) read, "
                f"{len(facts.errors)} vault(s) unreadable")
        get_run_logger().info(line)
        progress.advance("vaults", line, len(vault_ids))
        return facts

    discover_task = task(discover_batch, name="discover-batch", **opts)
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
        futures = [discover_task.submit(access, g, gate, i + 1, len(groups))
                   for i, g in enumerate(groups)]
        rows: dict[str, list[dict]] = {}
        partial: list[dict] = []
        arg_requests = scope.requests
        for fut in futures:
            batch = fut.result()
            arg_requests += batch.requests
            if batch.error:
                partial.append({"scope": "subscriptions " + ", ".join(batch.subscriptions),
                                "error": batch.error,
                                "retry": _retry_command(batch.subscriptions)})
                continue
            for name, got in batch.rows.items():
                rows.setdefault(name, []).extend(got)
        timings["discovery"] = time.monotonic() - started
        if partial and not rows.get("vms"):
            raise AzureError("no subscription in scope could be read through Resource Graph: "
                             + partial[0]["error"])

        mark = time.monotonic()
        vault_ids = vaults_to_read(rows.get("protected_items", []))
        chunks = [vault_ids[i:i + VAULT_CHUNK] for i in range(0, len(vault_ids), VAULT_CHUNK)]
        progress.stage("vaults", "Backup policies", len(vault_ids))
        policy_futures = [policies_task.submit(access, c) for c in chunks]
        sku_future = skus_task.submit(access, sku_pairs(rows.get("vms", [])))
        policies: dict[str, dict] = {}
        arm_requests = 0
        for fut in policy_futures:
            facts = fut.result()
            policies.update(facts.policies)
            partial.extend({**e, "retry": "re-run the assessment once the vault is readable"}
                           for e in facts.errors)
            arm_requests += facts.requests
        skus = sku_future.result()
        partial.extend({**e, "retry": "re-run the assessment"} for e in skus.errors)
        arm_requests += skus.requests
        timings["policies_and_skus"] = time.monotonic() - mark

        mark = time.monotonic()
        inventory = build_inventory(rows, policies, skus.frame, settings)
        timings["inventory"] = time.monotonic() - mark
        mark = time.monotonic()
        scored = score(inventory.vms, inventory.disks, pack, ctx,
                       settings.rules.target_policy_template)
        timings["score"] = time.monotonic() - mark

        mark = time.monotonic()
        assessment_id = new_assessment_id(created)
        folder = Path(out_dir)
        folder.mkdir(parents=True, exist_ok=True)
        scope_desc = _scope_description(settings, scope.subscriptions)
        files = {"readiness.csv": write_readiness_csv(scored, folder / "readiness.csv")}
        timings["write"] = time.monotonic() - mark
        timings["total"] = time.monotonic() - started
        summary = build_summary(
            scored, assessment_id=assessment_id, scope=scope_desc, pack=pack,
            cloud=settings.cloud,
            requests={"resource_graph": arg_requests, "resource_graph_429s": gate.throttled,
                      "arm": arm_requests},
            partial_errors=partial, timings=timings, excluded_vms=inventory.excluded,
            tool_version=_tool_version(), created_at=created.isoformat())
        files["summary.json"] = write_summary_json(summary, folder / "summary.json")

        mark = time.monotonic()
        record = AssessmentRecord(
            id=assessment_id, created_at=created, finished_at=datetime.now(UTC),
            scope_key=scope_key(scope_desc), scope=scope_desc, rule_pack=pack.name,
            pack_doc_version=pack.doc_version, overrides=pack.overrides,
            tool_version=_tool_version(), cloud=settings.cloud, vm_count=len(scored),
            counts=summary["by_readiness"], request_count=arg_requests,
            partial_errors=partial, summary=summary)
        save_assessment(engine, record, scored)
        timings["record"] = time.monotonic() - mark
        return {"assessment_id": assessment_id, "files": {k: str(v) for k, v in files.items()},
                "summary": summary, "scored": scored}

    try:
        result = assess(settings, str(out_dir))
    except CcmigrateError:
        raise
    except KeyError as exc:  # pragma: no cover - a discovery bug, not the user's
        raise CcmigrateError(f"internal error while assessing: {exc}") from exc
    return AssessmentOutcome(result["assessment_id"], Path(out_dir),
                             {k: Path(v) for k, v in result["files"].items()},
                             result["summary"], result["scored"])


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
