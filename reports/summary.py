"""``summary.json``: the numbers behind the reports, for people and other tools."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from tasks.inventory.schema import READINESS_VALUES

SEVERITY_COLUMNS = {"blocker": "blockers", "warning": "warnings", "unknown": "unknowns",
                    "info": "infos"}


def _rule_counts(scored: pd.DataFrame, column: str) -> dict[str, int]:
    ids = scored[column].astype("string").fillna("")
    exploded = ids[ids != ""].str.split(";").explode()
    return {str(k): int(v) for k, v in exploded.value_counts().sort_index().items()}


def build_summary(scored: pd.DataFrame, *, assessment_id: str, scope: dict[str, Any],
                  pack: Any, cloud: str, requests: dict[str, int], partial_errors: list[dict],
                  timings: dict[str, float], excluded_vms: int, tool_version: str,
                  created_at: str) -> dict[str, Any]:
    """Counts by readiness, by rule and by subscription, and how the numbers were made."""
    readiness = scored["readiness"].value_counts()
    by_readiness = {r: int(readiness.get(r, 0)) for r in READINESS_VALUES}
    by_sub = (scored.groupby(["subscription_id", "readiness"]).size().unstack(fill_value=0)
              if len(scored) else pd.DataFrame())
    subscriptions = {
        str(sub): {r: int(row.get(r, 0)) for r in READINESS_VALUES} | {"vms": int(row.sum())}
        for sub, row in by_sub.iterrows()
    }
    crash_with_blockers = int(((scored["readiness"] == "already_crash_consistent")
                               & (scored["blockers"] != "")).sum())
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
        "by_rule": {sev: _rule_counts(scored, col) for sev, col in SEVERITY_COLUMNS.items()},
        "by_subscription": subscriptions,
        "crash_consistent_with_blockers": crash_with_blockers,
        "requests": requests,
        "partial_errors": partial_errors,
        "complete": not partial_errors,
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
    }


def write_summary_json(summary: dict[str, Any], path: Path) -> Path:
    path.write_text(json.dumps(summary, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return path
