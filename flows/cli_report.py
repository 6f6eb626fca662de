"""``ccmigrate report``: read assessments back from the state store: show one, list recent
ones, and diff two (what changed between them, written to changes.csv).

Everything here reads the state store only: no Azure call, no Prefect run, so a report is
quick and safe to run beside a migration wave.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tasks.errors import InputError

from . import options as opt
from .cli_assess import print_summary

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy import Engine

    from tasks.state import AssessmentRecord

EXAMPLES = 20

app = typer.Typer(
    name="report",
    help="Stored assessments: show one, list recent ones, or diff two.",
    no_args_is_help=True,
)

Ref = "an id (or its first characters), 'latest' or 'previous'"


@contextmanager
def _store(config: Path | None, state_store: str | None) -> Iterator[Engine]:
    from tasks.state import open_store

    settings = opt.build_settings(config=config, state_store=state_store)
    engine = open_store(settings.state_store_url())
    try:
        yield engine
    finally:
        engine.dispose()


@app.command("show")
def show_command(
    assessment: Annotated[str, typer.Argument(help=f"The assessment: {Ref}.")] = "latest",
    as_json: Annotated[bool, typer.Option("--json", help="Print the stored summary.json "
                                                         "as JSON instead.")] = False,
    state_store: opt.StateStore = None,
    config: opt.Config = None,
) -> None:
    """Print a stored assessment's summary, as `ccmigrate assess` printed it."""
    from tasks.state import resolve_assessment

    with _store(config, state_store) as engine:
        record = resolve_assessment(engine, assessment)
    if as_json:
        typer.echo(json.dumps(record.summary, indent=2))
        return
    print_summary(_printable(record), files={})
    typer.echo(f"  Recorded: {_when(record)} UTC, scope {record.scope_key}"
               + ("" if record.summary.get("complete", not record.partial_errors)
                  else " (partial)"))


def _printable(record: AssessmentRecord) -> dict[str, Any]:
    """The stored summary with every key the printer reads, filled from the record's own
    columns when an older (or foreign) summary lacks it."""
    from reports.labels import READINESS_LABELS

    summary = dict(record.summary)
    summary.setdefault("assessment_id", record.id)
    summary.setdefault("vms", record.vm_count)
    scope = dict(summary.get("scope") or record.scope or {})
    scope.setdefault("subscriptions", [])
    summary["scope"] = scope
    pack = dict(summary.get("rule_pack") or {})
    pack.setdefault("name", record.rule_pack or "unknown")
    summary["rule_pack"] = pack
    stored = summary.get("by_readiness") or record.counts or {}
    summary["by_readiness"] = {**{v: int(stored.get(v, 0)) for v in READINESS_LABELS}, **stored}
    by_rule = dict(summary.get("by_rule") or {})
    by_rule.setdefault("blocker", {})
    summary["by_rule"] = by_rule
    summary.setdefault("partial_errors", record.partial_errors)
    requests = dict(summary.get("requests") or {})
    requests.setdefault("resource_graph", record.request_count)
    summary["requests"] = requests
    return summary


@app.command("list")
def list_command(
    limit: Annotated[int, typer.Option("--limit", min=1, help="How many to show.")] = 20,
    state_store: opt.StateStore = None,
    config: opt.Config = None,
) -> None:
    """List the most recent assessments, newest first: id, when, scope, VMs per readiness."""
    from tasks.state import list_assessments, masked

    with _store(config, state_store) as engine:
        records = list_assessments(engine, limit)
        where = masked(engine.url)
    if not records:
        typer.echo(f"No assessments in the state store {where} yet; run `ccmigrate assess`.")
        return
    headers = ["ID", "When (UTC)", "VMs", "Ready", "Cond.", "Not ready", "Crash-cons.",
               "Not prot.", "Unknown", "Scope"]
    rows = []
    for r in records:
        counts = [str(r.counts.get(v, 0)) for v in ("ready", "ready_with_conditions",
                                                    "not_ready", "already_crash_consistent",
                                                    "not_protected", "unknown")]
        scope = f"{_scope_brief(r)} [{r.scope_key[:8]}]" + (" partial" if r.partial_errors
                                                             else "")
        rows.append([r.id, _when(r), str(r.vm_count), *counts, scope])
    widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(len(headers) - 1)]
    for row in [headers, *rows]:
        cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1]),
                 *(cell.rjust(width) for cell, width in zip(row[2:-1], widths[2:], strict=True)),
                 row[-1]]
        typer.echo("  ".join(cells))


@app.command("diff")
def diff_command(
    before: Annotated[str, typer.Argument(
        help=f"The earlier assessment (A): {Ref}.")] = "previous",
    after: Annotated[str, typer.Argument(
        help=f"The later assessment (B): {Ref}.")] = "latest",
    out: Annotated[Path, typer.Option("--out", help="Folder for changes.csv.")] = Path("."),
    state_store: opt.StateStore = None,
    config: opt.Config = None,
) -> None:
    """Compare two assessments VM by VM and write changes.csv.

    A is before, B after: prints VMs per kind of change, the readiness transitions and some
    example VMs; changes.csv has one row per changed VM."""
    from reports.changes import compare, summarize_changes, write_changes_csv
    from tasks.state import load_vms, resolve_assessment

    with _store(config, state_store) as engine:
        a = resolve_assessment(engine, before)
        b = resolve_assessment(engine, after)
        if a.id == b.id:
            raise InputError(f"'{before}' and '{after}' both name assessment {a.id}; name two "
                             "different assessments to compare (for example `ccmigrate report "
                             "diff previous latest`, or two ids from `ccmigrate report list`)")
        folder = _out_dir(out)
        changes = compare(load_vms(engine, a.id), load_vms(engine, b.id))
    if a.scope_key != b.scope_key:
        typer.secho(f"ccmigrate: warning: {a.id} and {b.id} assessed different scopes "
                    f"({_scope_brief(a)} vs {_scope_brief(b)}); VMs in only one of them show "
                    "as added or removed", err=True, fg=typer.colors.YELLOW)
    try:
        path = write_changes_csv(changes, folder / "changes.csv")
    except OSError as err:
        raise InputError(f"--out {out}: cannot write changes.csv there "
                         f"({err.strerror or err}); choose a folder you can write to") from None
    _print_diff(a, b, changes, summarize_changes(changes, a.id, b.id), path)


def _out_dir(out: Path) -> Path:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(f"--out {out}: cannot create that folder ({err.strerror or err}); "
                         "choose a folder you can write to") from None
    return out


def _print_diff(a: AssessmentRecord, b: AssessmentRecord, changes: pd.DataFrame,
                summary: dict[str, Any], path: Path) -> None:
    from reports.labels import readiness_label

    head = (f"Changes from {a.id} ({_when(a)} UTC, {a.vm_count} VM(s)) to {b.id} "
            f"({_when(b)} UTC, {b.vm_count} VM(s))")
    if changes.empty:
        typer.echo(f"{head}: no VM changed")
        typer.echo(f"  changes.csv: {path}")
        return
    typer.echo(f"{head}: {len(changes)} VM(s) changed")
    for kind, count in summary["by_change"].items():
        typer.echo(f"  {kind:<28}{count:>8}")
    moves: dict[str, int] = {}
    for pair, count in summary["readiness_transitions"].items():
        was, _, now = pair.partition(" -> ")
        moves[f"{readiness_label(was)} -> {readiness_label(now)}"] = count
    if moves:
        typer.echo("  Readiness transitions:")
        width = max(len(text) for text in moves)
        for text, count in moves.items():
            typer.echo(f"    {text:<{width}}{count:>8}")
    shown = changes.head(EXAMPLES)
    typer.echo(f"  Examples ({len(shown)} of {len(changes)}, by VM id):")
    names = [_plain(name or vm_id.rsplit("/", 1)[-1])[:40]
             for name, vm_id in zip(shown["vm_name"], shown["vm_id"], strict=True)]
    name_width = max(len(n) for n in names)
    kind_width = max(len(kind) for kind in shown["change"])
    for name, row in zip(names, shown.itertuples(index=False), strict=True):
        typer.echo(f"    {name:<{name_width}}  {row.change:<{kind_width}}  "
                   f"{_detail(row, readiness_label)}")
    typer.echo(f"  changes.csv: {path}")


def _detail(row: Any, label: Any) -> str:
    """One example's readiness move and blocker ids, in words."""
    parts = []
    if row.readiness_before and row.readiness_after:
        if row.readiness_before != row.readiness_after:
            parts.append(f"{label(row.readiness_before)} -> {label(row.readiness_after)}")
    elif row.readiness_after:
        parts.append(f"now {label(row.readiness_after)}")
    else:
        parts.append(f"was {label(row.readiness_before)}")
    if row.new_blockers:
        parts.append(f"new blockers {_plain(row.new_blockers)}")
    if row.resolved_blockers:
        parts.append(f"resolved {_plain(row.resolved_blockers)}")
    return "; ".join(parts)


def _plain(text: str) -> str:
    """Names come from Azure: control characters must not reach the terminal."""
    return "".join(c if c.isprintable() else "?" for c in str(text))


def _when(record: AssessmentRecord) -> str:
    return f"{record.created_at:%Y-%m-%d %H:%M}"


def _scope_brief(record: AssessmentRecord) -> str:
    scope = record.scope or {}
    subs = scope.get("subscriptions") or []
    parts = [str(scope.get("cloud") or record.cloud or "public"), f"{len(subs)} subscription(s)"]
    groups = scope.get("management_groups") or []
    if groups:
        parts.append(f"{len(groups)} management group(s)")
    return ", ".join(parts)
