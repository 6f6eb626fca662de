"""``summary.json``: the numbers behind the Summary sheet and the terminal summary, for people
and other tools. The workbook's Summary sheet and ``ccmigrate assess``'s printout are drawn
from this dict only, so the three can never disagree."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from tasks.inventory.schema import READINESS_VALUES

SEVERITY_COLUMNS = {"blocker": "blockers", "warning": "warnings", "unknown": "unknowns",
                    "info": "infos"}
TOP_BLOCKERS = 10
AT_RISK_EXAMPLES = 50


def _rule_counts(scored: pd.DataFrame, column: str) -> dict[str, int]:
    ids = scored[column].astype("string").fillna("")
    exploded = ids[ids != ""].str.split(";").explode()
    return {str(k): int(v) for k, v in exploded.value_counts().sort_index().items()}


def _readiness_by(scored: pd.DataFrame, column: str) -> dict[str, dict[str, int]]:
    """``{value: {readiness: n, ..., "vms": n}}`` for every value of ``column``, sorted."""
    if not len(scored):
        return {}
    table = scored.groupby([column, "readiness"]).size().unstack(fill_value=0)
    return {str(key): {r: int(row.get(r, 0)) for r in READINESS_VALUES} | {"vms": int(row.sum())}
            for key, row in table.sort_index().iterrows()}


def _fired_rules(by_rule: dict[str, dict[str, int]], pack: Any) -> list[dict[str, Any]]:
    """Every rule that fired: severity order (blockers first), then most VMs first."""
    out = []
    for order, (severity, counts) in enumerate(by_rule.items()):
        for rule_id, vms in counts.items():
            rule = _rule_or_none(pack, rule_id)
            out.append({"rule": rule_id, "severity": severity, "vms": vms,
                        "title": rule.title if rule else "", "_order": order})
    out.sort(key=lambda r: (r["_order"], -r["vms"], r["rule"]))
    for row in out:
        del row["_order"]
    return out


def _rule_or_none(pack: Any, rule_id: str) -> Any:
    try:
        return pack.rule(rule_id)
    except KeyError:
        return None


def _at_risk(scored: pd.DataFrame) -> dict[str, Any]:
    """Crash-consistent VMs that have blockers: they are backed up in a way the support table
    says does not work for them, which is the one finding a manager must not miss."""
    risky = scored[(scored["readiness"] == "already_crash_consistent")
                   & (scored["blockers"] != "")]
    examples = risky.head(AT_RISK_EXAMPLES)
    return {"vms": len(risky), "examples": [
        {"vm_id": str(r.vm_id), "vm_name": str(r.vm_name),
         "subscription_id": str(r.subscription_id), "vault": str(r.vault),
         "blockers": str(r.blockers)}
        for r in examples[["vm_id", "vm_name", "subscription_id", "vault", "blockers"]]
        .itertuples(index=False)]}


def _guarded(scored: pd.DataFrame, guarded: dict[str, dict]) -> list[dict[str, Any]]:
    """Vaults linked to a Resource Guard (multi-user authorization), with their VMs in scope:
    there a change that reduces any retention needs the guard's approval (the operator holds
    Backup MUA Operator on the guard); a same-retention re-point does not."""
    if not guarded:
        return []
    counts = (scored["vault_id"].astype("string").str.lower().value_counts()
              if "vault_id" in scored.columns and len(scored) else pd.Series(dtype="int64"))
    return [{"vault": g["vault"], "vault_id": g["vault_id"], "guard": g["guard"],
             "guard_id": g["guard_id"], "vms": int(counts.get(key, 0)),
             "critical_item_change": bool(g.get("critical_item_change")),
             "operator_request": g.get("operator_request", "")}
            for key, g in sorted(guarded.items())]


def build_summary(scored: pd.DataFrame, *, assessment_id: str, scope: dict[str, Any],
                  pack: Any, cloud: str, requests: dict[str, int], partial_errors: list[dict],
                  timings: dict[str, float], excluded_vms: int, tool_version: str,
                  created_at: str, subscription_names: dict[str, str] | None = None,
                  cost: dict[str, Any] | None = None,
                  changes: dict[str, Any] | None = None,
                  migration: dict[str, int] | None = None,
                  guarded_vaults: dict[str, dict] | None = None) -> dict[str, Any]:
    """Counts by readiness, rule, subscription and region, the at-risk VMs, the cost view and
    the changes since the previous assessment, and how the numbers were made."""
    readiness = scored["readiness"].value_counts()
    by_readiness = {r: int(readiness.get(r, 0)) for r in READINESS_VALUES}
    by_rule = {sev: _rule_counts(scored, col) for sev, col in SEVERITY_COLUMNS.items()}
    fired = _fired_rules(by_rule, pack)
    at_risk = _at_risk(scored)
    return {
        "assessment_id": assessment_id,
        "created_at": created_at,
        "tool_version": tool_version,
        "cloud": cloud,
        "scope": scope,
        "rule_pack": {"name": pack.name, "doc_version": pack.doc_version,
                      "overrides": pack.overrides},
        "vms": len(scored),
        "vms_excluded": excluded_vms,
        "by_readiness": by_readiness,
        "by_rule": by_rule,
        "rules_fired": fired,
        "top_blockers": [r for r in fired if r["severity"] == "blocker"][:TOP_BLOCKERS],
        "by_subscription": _readiness_by(scored, "subscription_id"),
        "subscription_names": dict(sorted((subscription_names or {}).items())),
        "by_region": _readiness_by(scored, "location"),
        "crash_consistent_with_blockers": at_risk["vms"],
        "at_risk": at_risk,
        "cost": cost,
        "changes": changes,
        "migration": migration,
        "guarded_vaults": _guarded(scored, guarded_vaults or {}),
        "requests": requests,
        "partial_errors": partial_errors,
        "complete": not partial_errors,
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
    }


def write_summary_json(summary: dict[str, Any], path: Path) -> Path:
    path.write_text(json.dumps(summary, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return path
