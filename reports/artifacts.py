"""Prefect artifacts for an assessment run: the headline numbers where managers and on-call
engineers already look (the Prefect UI), without opening the Excel file.

Keys are stable, so each run adds a version to the same three artifacts and the UI's Artifacts
page shows their history (nightly assessments become a timeline). Artifacts are summaries;
the CSV and Excel files stay the real report and the link artifact points at them.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_table_artifact,
)

from .labels import READINESS_LABELS, percent, readiness_label

SUMMARY_KEY = "ccmigrate-assessment-summary"
BY_SUBSCRIPTION_KEY = "ccmigrate-readiness-by-subscription"
FILES_KEY = "ccmigrate-assessment-files"
TOP_BLOCKERS = 10
ERRORS_SHOWN = 10
ERROR_CHARS = 300  # an ARM error body can be long; the full text is in summary.json


def publish_assessment_artifacts(summary: dict[str, Any], files: dict[str, Path]) -> list[str]:
    """Create the summary (markdown), per-subscription (table) and files (link) artifacts for
    ``summary`` (summary.json's dict) and return their keys. Call it from inside the assess
    flow run (a sync flow or task) so the artifacts belong to that run; with no ``files`` the
    link artifact is left out."""
    about = f"ccmigrate assessment {summary.get('assessment_id', '')} ({_when(summary)})"
    create_markdown_artifact(assessment_markdown(summary, files), key=SUMMARY_KEY,
                             description=about)
    create_table_artifact(subscription_rows(summary), key=BY_SUBSCRIPTION_KEY,
                          description=f"VMs per readiness in each subscription: {about}")
    keys = [SUMMARY_KEY, BY_SUBSCRIPTION_KEY]
    if files:
        folder = output_folder(files)
        names = ", ".join(Path(p).name for p in files.values())
        create_link_artifact(folder.as_uri(), link_text=_link_text(f"{names} in {folder}"),
                             key=FILES_KEY, description=f"Report files: {about}")
        keys.append(FILES_KEY)
    return keys


def assessment_markdown(summary: dict[str, Any], files: dict[str, Path]) -> str:
    """The summary artifact's text: scope, when, rule pack, readiness table, top blockers,
    at-risk VMs, partial errors and files. Tolerates summaries that lack optional keys."""
    vms = int(summary.get("vms") or 0)
    pack = summary.get("rule_pack") or {}
    pack_text = f"**{_text(pack.get('name') or 'unknown')}**"
    if pack.get("doc_version"):
        pack_text += f" (doc {_text(pack['doc_version'])})"
    if pack.get("overrides"):
        pack_text += f", {len(pack['overrides'])} override(s)"
    lines = [
        "# Crash-consistent backup readiness",
        "",
        f"Assessment **{_text(summary.get('assessment_id', ''))}**, {_when(summary)}. "
        f"Rule pack {pack_text}.",
        "",
        f"Scope: {_scope_text(summary)}. **{vms}** VMs assessed"
        + (f", {summary['vms_excluded']} excluded by the scope's exclusions"
           if summary.get("vms_excluded") else "") + ".",
        "",
        "| Readiness | VMs | % |",
        "| --- | ---: | ---: |",
    ]
    for value, count in _readiness_counts(summary).items():
        lines.append(f"| {_text(readiness_label(value))} | {count} | {percent(count, vms)} |")
    lines += [f"| **Total** | **{vms}** | {percent(vms, vms)} |", "", "## Top blockers", ""]

    lines += _blocker_lines(summary)

    risky = int(summary.get("crash_consistent_with_blockers") or 0)
    lines += ["", "## At risk", ""]
    lines.append(f"**{risky}** VM(s) already on a crash-consistent policy have blockers: their "
                 "backups may not be supported. Check them first (readiness "
                 "`already_crash_consistent` with blockers in readiness.csv)." if risky else
                 "No crash-consistent VM has a blocker.")

    changes = summary.get("changes")
    if changes:
        lines += ["", "## Since the previous assessment", ""]
        lines.append(_changes_text(changes))

    errors = summary.get("partial_errors") or []
    lines += ["", "## Partial errors", ""]
    if errors:
        lines.append(f"**{len(errors)}** scope(s) could not be read; the numbers above leave "
                     "their VMs out:")
        lines.append("")
        for err in errors[:ERRORS_SHOWN]:
            err = err if isinstance(err, dict) else {"error": err}
            line = f"- `{_code(err.get('scope', '?'))}`: {_text(err.get('error', ''))}"
            if err.get("retry"):
                line += f" Retry: `{_code(err['retry'])}`"
            lines.append(line)
        if len(errors) > ERRORS_SHOWN:
            lines.append(f"- ... and {len(errors) - ERRORS_SHOWN} more in summary.json")
    else:
        lines.append("None: every scope was read.")

    lines += ["", "## Files", ""]
    lines += ([f"- {_text(name)}: `{_code(path)}`" for name, path in files.items()]
              or ["No files were written."])
    return "\n".join(lines) + "\n"


def subscription_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per subscription: its id (and name when the summary has names), VMs per
    readiness label, total. Biggest first, so the subscriptions that matter most lead."""
    names = summary.get("subscription_names") or {}
    rows = []
    for sub, counts in (summary.get("by_subscription") or {}).items():
        counts = counts or {}
        per = {label: int(counts.get(value) or 0) for value, label in READINESS_LABELS.items()}
        total = counts.get("vms")
        row: dict[str, Any] = {"Subscription": str(sub)}
        if names:
            row["Name"] = str(names.get(sub, ""))
        row.update(per)
        row["Total"] = int(total if total is not None else sum(per.values()))
        rows.append(row)
    return sorted(rows, key=lambda row: (-row["Total"], row["Subscription"]))


def output_folder(files: dict[str, Path]) -> Path:
    """The folder holding the report files (their common folder, absolute)."""
    parents = [str(Path(p).resolve().parent) for p in files.values()]
    return Path(os.path.commonpath(parents))


# -- text helpers -----------------------------------------------------------------------------

def _blocker_lines(summary: dict[str, Any]) -> list[str]:
    """The top blockers table: the summary's ``top_blockers`` (with titles) when it has them,
    else the blocker counts of ``by_rule``."""
    counts = (summary.get("by_rule") or {}).get("blocker") or {}
    top = summary.get("top_blockers")
    if top is None:
        top = [{"rule": rule, "vms": n, "title": ""} for rule, n in
               sorted(counts.items(), key=lambda kv: (-int(kv[1]), str(kv[0])))]
    top = top[:TOP_BLOCKERS]
    if not top:
        return ["No VM has a blocker."]
    titled = any(b.get("title") for b in top)
    lines = ["| Rule | VMs |" + (" What |" if titled else ""),
             "| --- | ---: |" + (" --- |" if titled else "")]
    for b in top:
        line = f"| `{_code(b.get('rule', ''))}` | {int(b.get('vms') or 0)} |"
        lines.append(line + (f" {_text(b.get('title') or '')} |" if titled else ""))
    if len(counts) > len(top):
        lines += ["", f"{len(counts) - len(top)} more blocker rule(s) in summary.json."]
    return lines


def _changes_text(changes: dict[str, Any]) -> str:
    counts = ", ".join(f"{kind.replace('_', ' ')} {int(n)}"
                       for kind, n in (changes.get("by_change") or {}).items() if n)
    text = (f"Compared with **{_text(changes.get('previous_id', ''))}**: "
            f"{int(changes.get('changed_vms') or 0)} VM(s) changed"
            + (f" ({counts})" if counts else "") + ".")
    moves = list((changes.get("readiness_transitions") or {}).items())[:5]
    if moves:
        words = []
        for pair, n in moves:
            was, _, now = str(pair).partition(" -> ")
            words.append(f"{readiness_label(was)} → {readiness_label(now)} {int(n)}")
        text += " Readiness moves: " + _text("; ".join(words)) + "."
    return text


def _readiness_counts(summary: dict[str, Any]) -> dict[str, int]:
    """Every labelled readiness (0 when absent), then any value a newer tool added."""
    stored = summary.get("by_readiness") or {}
    counts = {value: int(stored.get(value) or 0) for value in READINESS_LABELS}
    counts.update({str(k): int(v or 0) for k, v in stored.items() if k not in counts})
    return counts


def _when(summary: dict[str, Any]) -> str:
    raw = summary.get("created_at")
    if not raw:
        return "time unknown"
    try:
        stamp = datetime.fromisoformat(str(raw))
    except ValueError:
        return str(raw)
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return f"{stamp.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def _scope_text(summary: dict[str, Any]) -> str:
    scope = summary.get("scope") or {}
    subs = scope.get("subscriptions") or []
    parts = [f"{_text(summary.get('cloud') or scope.get('cloud') or 'public')} cloud"]
    if subs and len(subs) <= 3:
        parts.append("subscription(s) " + ", ".join(f"`{_code(s)}`" for s in subs))
    else:
        parts.append(f"{len(subs)} subscription(s)")
    groups = scope.get("management_groups") or []
    if groups:
        parts.append("management group(s) " + ", ".join(f"`{_code(g)}`" for g in groups))
    excluded = [f"{len(scope[k])} {what}" for k, what in
                (("exclude_subscriptions", "subscription(s)"),
                 ("exclude_resource_groups", "resource group(s)"),
                 ("exclude_tags", "tag filter(s)")) if scope.get(k)]
    if excluded:
        parts.append("excluding " + ", ".join(excluded))
    return "; ".join(parts)


def _text(value: Any) -> str:
    """Azure-sourced text on one line, without markdown or HTML that could change the page."""
    text = " ".join(str(value).split())
    if len(text) > ERROR_CHARS:
        text = text[:ERROR_CHARS - 3] + "..."
    for char in "\\`*_[]<>|#":
        text = text.replace(char, "\\" + char)
    return text


def _code(value: Any) -> str:
    """Text for an inline code span: one line, no backtick to close it early, no pipe to
    split a table row."""
    return " ".join(str(value).split()).replace("`", "'").replace("|", "\\|")


def _link_text(text: str) -> str:
    return text.replace("[", "\\[").replace("]", "\\]")


__all__ = ["BY_SUBSCRIPTION_KEY", "FILES_KEY", "SUMMARY_KEY", "assessment_markdown",
           "output_folder", "publish_assessment_artifacts", "subscription_rows"]
