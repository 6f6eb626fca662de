"""Who may move: ``ready`` VMs, and ``ready_with_conditions`` VMs whose every warning the user
accepted by rule id. A VM on a Standard (V1) policy moves only with ``--include-standard``,
because its move to Enhanced can't be undone. Every other VM gets a reason saying why it stays
out and, where a flag would change that, which flag.

It lives with the rules, not in the planner: it reads only what the rule engine wrote
(readiness and rule ids), and two rooms ask the same question of it, the planner when it cuts a
plan and the wave runner when it re-scores a VM just before moving it
(``tasks/migration/rescore.py``). Kept here, neither of those imports the other.

Reasons are built once per distinct combination of rule ids (tens of them), then mapped onto
the VMs, so 100k VMs cost a few column operations.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from ..errors import InputError

STANDARD_RULE = "POLICY_STANDARD"
READY, WITH_CONDITIONS = "ready", "ready_with_conditions"
STANDARD_REASON = ("Standard (V1) policy: its move to Enhanced can't be undone "
                   "(--include-standard)")
_OTHER_REASONS = {
    "already_crash_consistent": "already crash-consistent",
    "not_protected": "not protected: no backup policy to move from",
}
# Without these the runner can't address the VM's backup: never plan such a row.
_NEEDED = ("vault_id", "policy_id", "item_id")


def normalize_rule_ids(values: Iterable[str], *, where: str) -> list[str]:
    """Rule ids upper-cased, each once; an id no check defines is an ``InputError`` naming
    ``where`` (the flag or setting) and the ids that exist."""
    from .checks import CHECKS

    out = list(dict.fromkeys(str(v).strip().upper() for v in values if str(v).strip()))
    unknown = [v for v in out if v not in CHECKS]
    if unknown:
        raise InputError(f"{where}: {', '.join(unknown)} is not a rule id; rule ids: "
                         f"{', '.join(sorted(CHECKS))}")
    return out


def _ids(text: str) -> list[str]:
    return [r for r in text.split(";") if r]


def _warning_reason(combo: str, allowed: frozenset[str], include_standard: bool) -> str:
    rules = _ids(combo)
    other = [r for r in rules if r != STANDARD_RULE and r not in allowed]
    parts = []
    if other:
        flags = " ".join(f"--allow-warning {r}" for r in other)
        noun = "warnings" if len(other) > 1 else "warning"
        parts.append(f"{noun} {', '.join(other)} not allowed ({flags})")
    if STANDARD_RULE in rules and not include_standard:
        parts.append(STANDARD_REASON)
    return "; ".join(parts)


def _listed(prefix: str, combo: str) -> str:
    rules = _ids(combo)
    return f"{prefix}: {', '.join(rules)}" if rules else prefix


def _text(vms: pd.DataFrame, column: str) -> pd.Series:
    if column not in vms.columns:
        return pd.Series("", index=vms.index, dtype="string")
    return vms[column].astype("string").fillna("")


def _has_rule(ids: pd.Series, rule: str) -> pd.Series:
    return (";" + ids + ";").str.contains(f";{rule};", regex=False).astype(bool)


def classify(vms: pd.DataFrame, allow_warnings: Iterable[str] = (),
             include_standard: bool = False) -> pd.DataFrame:
    """One row per VM (``vms``' index): ``candidate`` (bool), ``irreversible`` (bool: its
    policy is Standard, by the assessment's POLICY_STANDARD) and ``reason`` ("" for
    candidates, else why it stays out)."""
    allowed = frozenset(r.upper() for r in allow_warnings)
    readiness = _text(vms, "readiness")
    warnings = _text(vms, "warnings")
    standard = _has_rule(warnings, STANDARD_RULE) | _has_rule(_text(vms, "infos"), STANDARD_RULE)
    reason = pd.Series("", index=vms.index, dtype=object)

    conditional = readiness == WITH_CONDITIONS
    combos = warnings[conditional]
    lookup = {c: _warning_reason(c, allowed, include_standard) for c in combos.unique()}
    reason[conditional] = combos.map(lookup)
    # A rule-pack override may have made POLICY_STANDARD info: still irreversible.
    hidden_standard = (readiness == READY) & standard & (not include_standard)
    reason[hidden_standard] = STANDARD_REASON

    for value, prefix, column in (("not_ready", "not ready", "blockers"),
                                  ("unknown", "readiness unknown", "unknowns")):
        rows = readiness == value
        combos = _text(vms, column)[rows]
        reason[rows] = combos.map({c: _listed(prefix, c) for c in combos.unique()})
    for value, text in _OTHER_REASONS.items():
        reason[readiness == value] = text
    unexpected = ~readiness.isin([READY, WITH_CONDITIONS, "not_ready", "unknown",
                                  *_OTHER_REASONS])
    reason[unexpected] = "readiness '" + readiness[unexpected].astype(str) + "' is never planned"

    missing = pd.Series(False, index=vms.index)
    for column in _NEEDED:
        missing |= _text(vms, column).str.strip() == ""
    open_ = reason == ""
    reason[open_ & missing] = ("the assessment recorded no backup item or policy for it; "
                               "assess again")
    candidate = (reason == "").astype(bool)
    return pd.DataFrame({"candidate": candidate, "irreversible": standard & candidate,
                         "reason": reason.astype(str)}, index=vms.index)


__all__ = ["STANDARD_REASON", "STANDARD_RULE", "classify", "normalize_rule_ids"]
