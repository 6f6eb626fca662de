"""Which backup policies each (vault, source policy) group of a plan needs, and whether each one
already exists (reuse), exists with other settings (conflict) or must be created.

The planner works from each involved vault's policy list, read once through ARM at plan time
(``vault_reader``): it holds the source policies' bodies (the clones are built from them) and
any policy that already carries a target name. Nothing here writes to Azure; the wave runner
creates what the plan says, through ``tasks.policies.ensure.ensure_policy``, which reuses and
refuses by the same comparison (``settings_differences``).

Per group: the crash-consistent clone of the source (``crash_clone_body``, named by
``rules.target_policy_template``); for a Standard (V1) source, which can't be rolled back to
Standard, also the Enhanced app-consistent rollback copy (``app_clone_body``, named by
``waves.rollback_policy_template``). Groups run in a Python loop: there are as many as distinct
(vault, policy) pairs, never one per VM.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import pandas as pd

from ..azure.guards import GuardLink
from ..policies.bodies import (
    CRASH_CONSISTENT,
    PolicyConversionError,
    app_clone_body,
    conversion_note,
    crash_clone_body,
    describe_policy,
    policy_type,
)
from ..policies.compare import retention_reductions, settings_differences
from ..policies.naming import rollback_policy_name, target_policy_name
from ..rules.eligibility import STANDARD_REASON

CRASH, ROLLBACK = "crash_clone", "app_clone_for_rollback"
CREATE, REUSE, CONFLICT = "create", "reuse", "conflict"
TARGET_SETTING = "rules.target_policy_template"
ROLLBACK_SETTING = "waves.rollback_policy_template"
GROUP_COLUMNS = ["vault_key", "source_key", "vault_id", "vault", "subscription_id",
                 "source_policy_id", "source_policy", "source_type", "irreversible",
                 "target_policy", "rollback_policy", "creates", "reason", "note",
                 "move_reduces", "rollback_reduces"]
POLICY_COLUMNS = ["vault_key", "source_key", "vault_id", "vault", "policy_name", "kind",
                  "source_policy_id", "source_policy", "action", "description", "differences",
                  "body"]


@dataclass
class VaultPolicies:
    """Each involved vault's backup policies as ARM lists them, read once at plan time."""

    policies: dict[str, list[dict]] = field(default_factory=dict)  # lower vault id -> list
    errors: dict[str, str] = field(default_factory=dict)  # lower vault id -> why unreadable
    requests: int = 0
    # Multi-user authorization: lower vault id -> its Resource Guard link (None: not linked),
    # and the vaults whose link could not be read.
    guards: dict[str, GuardLink | None] = field(default_factory=dict)
    guard_errors: dict[str, str] = field(default_factory=dict)

    def count(self, vault_id: str) -> int | None:
        found = self.policies.get(vault_id.lower())
        return None if found is None else len(found)

    def merge(self, other: VaultPolicies) -> VaultPolicies:
        self.policies.update(other.policies)
        self.errors.update(other.errors)
        self.guards.update(other.guards)
        self.guard_errors.update(other.guard_errors)
        self.requests += other.requests
        return self


def _first(differences: list[str]) -> str:
    more = f" and {len(differences) - 1} more" if len(differences) > 1 else ""
    return f"{differences[0]}{more}"


def _group(key: tuple[str, str], first: dict, listing: list[dict] | None, error: str | None, *,
           include_standard: bool, target_template: str,
           rollback_template: str) -> tuple[dict, list[dict]]:
    """One group's row and the rows of the policies it needs."""
    source_name = str(first["policy_name"])
    row = {"vault_key": key[0], "source_key": key[1], "vault_id": first["vault_id"],
           "vault": first["vault"], "subscription_id": first["subscription_id"],
           "source_policy_id": first["policy_id"], "source_policy": source_name,
           "source_type": "", "irreversible": False, "target_policy": "",
           "rollback_policy": source_name, "creates": 0, "reason": "", "note": "",
           "move_reduces": "", "rollback_reduces": ""}
    vault = first["vault"]
    if listing is None:
        row["reason"] = (f"the backup policies of vault '{vault}' could not be read "
                         f"({error or 'not read'}); fix access and plan again")
        return row, []
    by_id = {str(p.get("id", "")).lower(): p for p in listing}
    by_name = {str(p.get("name", "")).lower(): p for p in listing}
    source = by_id.get(key[1]) or by_name.get(source_name.lower())
    if source is None:
        row["reason"] = (f"source policy '{source_name}' is no longer in vault '{vault}'; "
                         "assess again")
        return row, []
    row["source_type"] = policy_type(source)
    row["irreversible"] = irreversible = row["source_type"] == "V1"
    props = source.get("properties") or {}
    if props.get("snapshotConsistencyType") == CRASH_CONSISTENT:
        row["reason"] = (f"source policy '{source_name}' is crash-consistent now (changed since "
                         "the assessment); assess again")
        return row, []
    if irreversible and not include_standard:
        row["reason"] = STANDARD_REASON
        return row, []
    try:
        row["target_policy"] = target = target_policy_name(source_name, target_template)
        needs = [(CRASH, target, crash_clone_body(source), TARGET_SETTING)]
        if irreversible:
            row["rollback_policy"] = rollback = rollback_policy_name(
                source_name, rollback_template, target_template=target_template,
                setting=ROLLBACK_SETTING)
            needs.append((ROLLBACK, rollback, app_clone_body(source), ROLLBACK_SETTING))
        row["note"] = conversion_note(source)
    except PolicyConversionError as exc:
        row["reason"] = f"source policy can't be cloned: {exc}"
        return row, []
    policies = []
    for kind, name, body, setting in needs:
        existing = by_name.get(name.lower())
        differences = settings_differences(existing, body) if existing is not None else []
        action = CREATE if existing is None else CONFLICT if differences else REUSE
        if action == CONFLICT and not row["reason"]:
            row["reason"] = (f"policy '{name}' already exists in vault '{vault}' with other "
                             f"settings ({_first(differences)}); change {setting} or delete "
                             "that policy")
        policies.append({
            "vault_key": key[0], "source_key": key[1], "vault_id": first["vault_id"],
            "vault": vault, "policy_name": name, "kind": kind,
            "source_policy_id": first["policy_id"], "source_policy": source_name,
            "action": action,
            "description": describe_policy(body) + (f" ({row['note']})" if row["note"] else ""),
            "differences": "; ".join(differences), "body": body})
    row["creates"] = sum(p["action"] == CREATE for p in policies)
    # What shortens retention (critical under multi-user authorization): the move from the
    # source to the crash clone, and the rollback from the clone to the rollback policy. A
    # reused policy has the body's settings (else it is a conflict), so the bodies decide.
    target_body = needs[0][2]
    back_body = needs[1][2] if irreversible else source
    row["move_reduces"] = "; ".join(retention_reductions(source, target_body))
    row["rollback_reduces"] = "; ".join(retention_reductions(target_body, back_body))
    return row, policies


def resolve_groups(candidates: pd.DataFrame, vault_policies: VaultPolicies, *,
                   include_standard: bool, target_template: str,
                   rollback_template: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The (vault, source policy) groups of ``candidates`` (columns ``GROUP_COLUMNS``; a
    non-empty ``reason`` keeps the group's VMs out) and the policies they need
    (``POLICY_COLUMNS``). ``candidates`` needs vault_id, vault, subscription_id, policy_id,
    policy_name. Template errors are ``SettingsError``s (bad input)."""
    if candidates.empty:
        return (pd.DataFrame(columns=GROUP_COLUMNS), pd.DataFrame(columns=POLICY_COLUMNS))
    keys = pd.DataFrame({"vault_key": candidates["vault_id"].astype(str).str.lower(),
                         "source_key": candidates["policy_id"].astype(str).str.lower()})
    firsts = candidates.assign(**keys).drop_duplicates(["vault_key", "source_key"])
    groups, policies = [], []
    for first in firsts.to_dict("records"):
        key = (first["vault_key"], first["source_key"])
        row, needs = _group(key, first, vault_policies.policies.get(key[0]),
                            vault_policies.errors.get(key[0]), include_standard=include_standard,
                            target_template=target_template, rollback_template=rollback_template)
        groups.append(row)
        policies.extend(needs)
    _mark_shared_names(groups, policies)
    return (pd.DataFrame(groups, columns=GROUP_COLUMNS),
            pd.DataFrame(policies, columns=POLICY_COLUMNS))


def _mark_shared_names(groups: list[dict], policies: list[dict]) -> None:
    """Two groups of a vault that would need one policy name (only odd templates can do that):
    neither may move, since one name can hold only one policy's settings."""
    names = Counter((p["vault_key"], p["policy_name"].lower()) for p in policies)
    clashing = {k for k, n in names.items() if n > 1}
    if not clashing:
        return
    hit: dict[tuple[str, str], str] = {}
    for p in policies:
        if (p["vault_key"], p["policy_name"].lower()) in clashing:
            p["action"] = CONFLICT
            p["differences"] = "needed by two source policies of this vault"
            hit[(p["vault_key"], p["source_key"])] = p["policy_name"]
    for g in groups:
        name = hit.get((g["vault_key"], g["source_key"]))
        if name is None:
            continue
        g["creates"] = sum(p["action"] == CREATE for p in policies
                           if (p["vault_key"], p["source_key"]) == (g["vault_key"],
                                                                    g["source_key"]))
        if not g["reason"]:
            g["reason"] = (f"policy name '{name}' would be needed by two source policies of "
                           f"vault '{g['vault']}'; change {TARGET_SETTING} or {ROLLBACK_SETTING}")


__all__ = [
    "CONFLICT",
    "CRASH",
    "CREATE",
    "REUSE",
    "ROLLBACK",
    "VaultPolicies",
    "resolve_groups",
]
