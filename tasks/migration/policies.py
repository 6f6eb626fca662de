"""Target and rollback backup policies (the seed's Option 1, steps 3 to 7).

For each (vault, source policy) the wave moves VMs to a clone of the source with the same
schedule, retention, time zone, instant restore (IR) retention and tiering, plus
``snapshotConsistencyType: OnlyCrashConsistent``. The source is never written: ``ensure_policy``
only ever creates a missing policy; an existing one is reused when its settings match and is a
``PolicyConflictError`` when they don't.

A Standard (V1) source can't be copied (crash consistency needs an Enhanced policy) and a VM
can't go back from Enhanced to Standard, so a V1 source is *converted*, the same way for the
crash-consistent target (``crash_clone_body``) and for the Enhanced app-consistent rollback
policy (``app_clone_body``, no ``snapshotConsistencyType``):

| Standard (V1) source                              | Enhanced (V2) clone                          |
| ------------------------------------------------- | -------------------------------------------- |
| ``policyType`` V1 (or absent)                     | ``policyType`` V2                            |
| ``SimpleSchedulePolicy``                          | ``SimpleSchedulePolicyV2``                   |
| Daily, ``scheduleRunTimes`` T                     | Daily, ``dailySchedule.scheduleRunTimes`` T  |
| Weekly, ``scheduleRunDays`` D,                    | Weekly, ``weeklySchedule.scheduleRunDays``   |
| ``scheduleRunTimes`` T                            | D, ``weeklySchedule.scheduleRunTimes`` T     |
| ``scheduleWeeklyFrequency`` 0 or 1 (every week)   | dropped (V2 has no such field)               |
| another frequency, ``scheduleWeeklyFrequency`` >1 | refused: ``PolicyConversionError``           |
| ``retentionPolicy`` (daily/weekly/monthly/yearly) | unchanged                                    |
| ``timeZone``, ``tieringPolicy``,                  | unchanged                                    |
| ``instantRPDetails``, ``instantAccess*``          |                                              |
| ``instantRpRetentionRangeInDays`` N               | N, kept within 1..30 days and no longer than |
|                                                   | the shortest retention (ENHANCED_IR_* below) |
| ``instantRpRetentionRangeInDays`` absent          | Standard's value (2 days daily, 5 weekly),   |
|                                                   | then the same limits                         |

``conversion_note`` says the same in one line for the plan, e.g.
``Standard daily 02:00 UTC, IR 2 days -> Enhanced daily 02:00 UTC, IR 2 days``.
"""

from __future__ import annotations

import copy
import json
import re
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from ..azure import backup, error_codes
from ..errors import AzureError, CcmigrateError, InputError, SettingsError
from ..rules.engine import target_policy_name, valid_policy_name

CRASH_CONSISTENT = "OnlyCrashConsistent"
V1_SCHEDULE, V2_SCHEDULE = "SimpleSchedulePolicy", "SimpleSchedulePolicyV2"
DEFAULT_TARGET_TEMPLATE = "{source}-crash"
DEFAULT_ROLLBACK_TEMPLATE = "{source}-enh"

# Instant restore (snapshot tier) retention limits, in days.
# - Enhanced: 1 to 30 days, default 7 ("Instant Restore: You can set the retention of a recovery
#   snapshot from 1 to 30 days. The default value is set to 7. Instant restore retention duration
#   cannot exceed vault retention duration.": MicrosoftDocs azure-docs
#   articles/backup/backup-azure-vms-enhanced-policy.md, ms.date 2025-06-11; the same 1-30 range
#   in articles/backup/backup-instant-restore-capability.md, ms.date 2024-04-03; api-notes 1.1).
#   Hourly schedules have lower caps (every 4 h: 17 days, 6 h: 22, 12 h: 30; same article), but
#   only V2 sources can be hourly and those are copied as they are.
# - Standard: 1 to 5 days, default 2; "For weekly policies, the snapshot retention is fixed to
#   five days" (backup-instant-restore-capability.md). Used when a V1 source omits the field, as
#   Microsoft's V1 REST examples do.
ENHANCED_IR_MIN_DAYS, ENHANCED_IR_MAX_DAYS = 1, 30
STANDARD_IR_DEFAULT_DAYS, STANDARD_WEEKLY_IR_DAYS = 2, 5

# Server-side fields: never sent, never compared (also id, name, type, etag, location, which sit
# outside ``properties``).
READ_ONLY = frozenset({"protectedItemsCount", "resourceGuardOperationRequests"})
# Settings copied from the source as they are (AzureIaaSVMProtectionPolicy, SDK 11.2; api-notes
# section 3). Schedule, retention, IR days, policy type and consistency are set explicitly.
_COPIED = ("timeZone", "instantRPDetails", "tieringPolicy", "instantAccessSnapshotEnabled",
           "instantAccessDurationMinutes")
# Always compared, even when the wanted body omits them: an absent snapshotConsistencyType *is*
# the app-consistent setting, and V2 list results may omit policyType.
_ALWAYS_COMPARED = ("policyType", "snapshotConsistencyType")
# Time-of-day fields: only the time matters (the date part is arbitrary), "Z" == "+00:00".
_TIME_KEYS = frozenset({"scheduleRunTimes", "retentionTimes", "scheduleWindowStartTime"})
# A schedule of another kind differs as a whole, not field by field.
_KIND_KEYS = ("schedulePolicyType", "retentionPolicyType", "scheduleRunFrequency")
_DURATION_DAYS = {"days": 1, "weeks": 7, "months": 28, "years": 365}  # lower bounds, in days
_ROLLBACK_SETTING = "rollback policy template"


class PolicyConflictError(CcmigrateError):
    """A policy with the target name exists in the vault with other settings: the wave stops
    before any VM moves, and nothing is written."""

    exit_code = 1

    def __init__(self, vault: backup.VaultRef, name: str, differences: list[str],
                 protected_items: int | None = None) -> None:
        self.vault, self.name, self.differences = vault, name, list(differences)
        users = (f"; it protects {protected_items} item(s)" if protected_items else "")
        super().__init__(
            f"backup policy '{name}' already exists in vault '{vault.vault}' (resource group "
            f"{vault.resource_group}, subscription {vault.subscription_id}) with different "
            f"settings{users}: {'; '.join(differences)}. Nothing was written: that policy "
            "and the source policy are unchanged. Fix: change the policy name template so the "
            f"clone gets a new name, or delete '{name}' (Azure can't rename a policy) if nothing "
            "needs it, then run again.")


class PolicyConversionError(CcmigrateError):
    """A source policy has a shape the Enhanced clone can't reproduce faithfully."""

    exit_code = 1


class PolicyLimitError(AzureError):
    """A Recovery Services vault limit on policies (Azure Backup FAQ, api-notes section 5):
    50 creates or edits per vault in 24 hours, or 200 policies per vault. ``retry_after_s`` is
    when a write may succeed again, when Azure said so (None: unknown or not time-bound)."""

    def __init__(self, message: str, *, code: str | None, status: int | None,
                 retry_after_s: float | None) -> None:
        super().__init__(message, status=status, code=code)
        self.retry_after_s = retry_after_s


# The limits are documented (Azure Backup FAQ), the service's codes are not: these are the
# emulator's, so tasks/azure/error_codes.py matches them by the documented wording as well.
# Any other refusal still surfaces as an AzureError carrying Azure's own message.
WRITE_LIMIT_CODE = "BMSUserErrorPolicyWriteLimitReached"
COUNT_LIMIT_CODE = "BMSUserErrorPolicyLimitReached"


# -- bodies ------------------------------------------------------------------------------------

def _props(policy: dict) -> dict:
    """``properties`` of a policy resource or PUT body; a bare properties dict as it is."""
    if isinstance(policy.get("properties"), dict):
        return policy["properties"]
    return policy


def _label(policy: dict) -> str:
    return policy.get("name") or policy.get("id") or "(unnamed policy)"


def policy_type(policy: dict) -> str:
    """``V2`` (Enhanced) or ``V1`` (Standard): ARM list results omit ``policyType`` on V2
    policies, so the schedule type decides when it is absent (api-notes rule R1)."""
    props = _props(policy)
    if props.get("policyType") in ("V1", "V2"):
        return props["policyType"]
    schedule = props.get("schedulePolicy") or {}
    return "V2" if schedule.get("schedulePolicyType") == V2_SCHEDULE else "V1"


def crash_clone_body(source: dict) -> dict:
    """The PUT body of the crash-consistent target of ``source`` (a policy as ARM returns it)."""
    body = _enhanced_body(source)
    body["properties"]["snapshotConsistencyType"] = CRASH_CONSISTENT
    return body


def app_clone_body(source: dict) -> dict:
    """The PUT body of an Enhanced *app-consistent* copy of ``source``: the rollback policy of a
    VM that came from a Standard policy (it can't go back to Standard), and the app-consistent
    clone the in-place switch falls back to."""
    return _enhanced_body(source)


def _enhanced_body(source: dict) -> dict:
    props = _props(source)
    where = _label(source)
    kind = str(props.get("backupManagementType", ""))
    if kind.lower() != "azureiaasvm":
        raise PolicyConversionError(
            f"backup policy {where} is a '{kind}' policy, not an Azure VM (AzureIaasVM) policy; "
            "only Azure VM policies have crash-consistent clones")
    schedule = props.get("schedulePolicy")
    retention = props.get("retentionPolicy")
    if not isinstance(schedule, dict) or not isinstance(retention, dict):
        raise PolicyConversionError(
            f"backup policy {where} has no schedulePolicy/retentionPolicy to copy; read it "
            "with a GET of the policy (list results may be partial)")
    out: dict[str, Any] = {"backupManagementType": "AzureIaasVM", "policyType": "V2"}
    if policy_type(source) == "V2":
        out["schedulePolicy"] = copy.deepcopy(schedule)
        out["retentionPolicy"] = copy.deepcopy(retention)
        if props.get("instantRpRetentionRangeInDays") is not None:
            out["instantRpRetentionRangeInDays"] = props["instantRpRetentionRangeInDays"]
    else:
        out["schedulePolicy"] = _v2_schedule(schedule, where)
        out["retentionPolicy"] = copy.deepcopy(retention)
        out["instantRpRetentionRangeInDays"] = _converted_ir(props)[1]
    for key in _COPIED:
        if props.get(key) is not None:
            out[key] = copy.deepcopy(props[key])
    return {"properties": out}


def _v2_schedule(schedule: dict, where: str) -> dict:
    """A V1 ``SimpleSchedulePolicy`` as the ``SimpleSchedulePolicyV2`` with the same runs."""
    if schedule.get("schedulePolicyType") not in (V1_SCHEDULE, None):
        raise PolicyConversionError(
            f"backup policy {where}: schedulePolicyType '{schedule.get('schedulePolicyType')}' "
            f"is neither {V1_SCHEDULE} nor {V2_SCHEDULE}")
    freq = schedule.get("scheduleRunFrequency")
    times = list(schedule.get("scheduleRunTimes") or [])
    every = schedule.get("scheduleWeeklyFrequency")
    if every not in (None, 0, 1):
        raise PolicyConversionError(
            f"backup policy {where}: scheduleWeeklyFrequency {every} (every {every} weeks) has no "
            "Enhanced equivalent; make the Standard policy run every week, or leave its VMs out "
            "of the plan")
    if not times:
        raise PolicyConversionError(f"backup policy {where}: the Standard schedule has no "
                                    "scheduleRunTimes to carry over")
    if freq == "Daily":
        return {"schedulePolicyType": V2_SCHEDULE, "scheduleRunFrequency": "Daily",
                "dailySchedule": {"scheduleRunTimes": times}}
    if freq == "Weekly":
        days = list(schedule.get("scheduleRunDays") or [])
        if not days:
            raise PolicyConversionError(f"backup policy {where}: a weekly Standard schedule "
                                        "without scheduleRunDays can't be converted")
        return {"schedulePolicyType": V2_SCHEDULE, "scheduleRunFrequency": "Weekly",
                "weeklySchedule": {"scheduleRunDays": days, "scheduleRunTimes": times}}
    raise PolicyConversionError(
        f"backup policy {where}: a Standard schedule runs Daily or Weekly, not '{freq}'")


def _shortest_retention_days(retention: dict) -> int | None:
    """The shortest kept tier, in days (lower bound): Enhanced IR can't exceed it."""
    days: list[int] = []
    for tier in ("dailySchedule", "weeklySchedule", "monthlySchedule", "yearlySchedule"):
        duration = ((retention.get(tier) or {}).get("retentionDuration") or {})
        unit = _DURATION_DAYS.get(str(duration.get("durationType", "")).lower())
        count = duration.get("count")
        if unit and isinstance(count, int) and count > 0:
            days.append(count * unit)
    return min(days) if days else None


def _converted_ir(props: dict) -> tuple[int, int, str]:
    """(Standard IR days, Enhanced IR days, why they differ or how the first was found)."""
    weekly = (props.get("schedulePolicy") or {}).get("scheduleRunFrequency") == "Weekly"
    given = props.get("instantRpRetentionRangeInDays")
    why = ""
    if not isinstance(given, int):
        given = STANDARD_WEEKLY_IR_DAYS if weekly else STANDARD_IR_DEFAULT_DAYS
        why = "Standard default"
    days = max(ENHANCED_IR_MIN_DAYS, min(given, ENHANCED_IR_MAX_DAYS))
    cap = _shortest_retention_days(props.get("retentionPolicy") or {})
    if cap is not None and days > cap:
        days = max(ENHANCED_IR_MIN_DAYS, cap)
    return given, days, why


# -- human descriptions ------------------------------------------------------------------------

def _clock(value: Any) -> str:
    """``2018-01-24T02:00:00Z`` -> ``02:00`` (the time of day as the policy stores it)."""
    match = re.search(r"T(\d{2}:\d{2})", str(value))
    return match.group(1) if match else str(value)


def _days(n: Any) -> str:
    return f"{n} day" if n == 1 else f"{n} days"


def _schedule_text(props: dict) -> str:
    schedule = props.get("schedulePolicy") or {}
    zone = props.get("timeZone") or "UTC"
    freq = schedule.get("scheduleRunFrequency")
    if schedule.get("schedulePolicyType") == V2_SCHEDULE:
        if freq == "Hourly":
            hourly = schedule.get("hourlySchedule") or {}
            return (f"every {hourly.get('interval')} h from "
                    f"{_clock(hourly.get('scheduleWindowStartTime'))} for "
                    f"{hourly.get('scheduleWindowDuration')} h {zone}")
        sub = schedule.get("weeklySchedule" if freq == "Weekly" else "dailySchedule") or {}
        times, days = sub.get("scheduleRunTimes") or [], sub.get("scheduleRunDays") or []
    else:
        times, days = schedule.get("scheduleRunTimes") or [], schedule.get("scheduleRunDays") or []
    when = ", ".join(_clock(t) for t in times)
    if freq == "Weekly":
        return f"weekly {', '.join(str(d)[:3] for d in days)} {when} {zone}"
    return f"{str(freq or '?').lower()} {when} {zone}"


def describe_policy(policy: dict) -> str:
    """One line for plans and logs, e.g. ``Enhanced daily 02:00 UTC, IR 7 days,
    crash-consistent``."""
    props = _props(policy)
    kind = "Enhanced" if policy_type(policy) == "V2" else "Standard"
    ir = props.get("instantRpRetentionRangeInDays")
    text = f"{kind} {_schedule_text(props)}, IR {_days(ir) if ir is not None else 'default'}"
    if props.get("snapshotConsistencyType") == CRASH_CONSISTENT:
        text += ", crash-consistent"
    return text


def conversion_note(source: dict) -> str:
    """How a Standard source maps to its Enhanced clones, for the plan; ``""`` for a V2 source
    (copied as it is). Consistency is not part of it: target and rollback share the mapping."""
    if policy_type(source) == "V2":
        return ""
    props = _props(source)
    given, days, why = _converted_ir(props)
    before = f"Standard {_schedule_text(props)}, IR {_days(given)}"
    if why:
        before += f" ({why})"
    after = f"Enhanced {_schedule_text(_props(app_clone_body(source)))}, IR {_days(days)}"
    if days < min(given, ENHANCED_IR_MAX_DAYS):
        after += f" (Enhanced IR can't exceed the {days}-day retention)"
    elif days < given:
        after += f" (Enhanced maximum {ENHANCED_IR_MAX_DAYS} days)"
    return f"{before} -> {after}"


# -- comparing ---------------------------------------------------------------------------------

def _time_of_day(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value.casefold()
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC)
    return parsed.strftime("%H:%M:%S")


def _norm(value: Any, key: str | None = None) -> Any:
    """A comparable form: None/empty dropped, strings case-folded (Azure echoes enum and name
    casing freely), times reduced to UTC time of day, lists order-free."""
    if isinstance(value, dict):
        out = {k: _norm(v, k) for k, v in value.items()}
        return {k: v for k, v in out.items() if v is not None} or None
    if isinstance(value, list):
        items = [_norm(v, key) for v in value]
        items = [v for v in items if v is not None]
        return sorted(items, key=lambda v: json.dumps(v, sort_keys=True)) or None
    if isinstance(value, str):
        return _time_of_day(value) if key in _TIME_KEYS else value.casefold()
    return value


def _show(value: Any) -> str:
    if value is None:
        return "(not set)"
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 120 else text[:117] + "..."


def _diff(path: str, have: Any, want: Any, key: str, out: list[str]) -> None:
    if _norm(have, key) == _norm(want, key):
        return
    kinds_match = all(_norm(have.get(k)) == _norm(want.get(k)) for k in _KIND_KEYS) if (
        isinstance(have, dict) and isinstance(want, dict)) else False
    if kinds_match:
        for sub in sorted(set(have) | set(want)):
            _diff(f"{path}.{sub}", have.get(sub), want.get(sub), sub, out)
        return
    out.append(f"{path}: {_show(have)} in Azure, {_show(want)} wanted")


def settings_differences(existing: dict, wanted: dict) -> list[str]:
    """What differs between a policy as read (``existing``) and a PUT body (``wanted``), one
    ``path: value in Azure, value wanted`` line per leaf. Only what the body sets is compared
    (plus the consistency type, whose absence means app-consistent, and the policy type);
    read-only fields and the resource envelope (id, name, type, etag, location) are ignored."""
    have, want = _props(existing), _props(wanted)
    keys = (set(want) | set(_ALWAYS_COMPARED)) - READ_ONLY
    out: list[str] = []
    for key in sorted(keys):
        if key == "policyType":
            left, right = policy_type(existing), policy_type(wanted)
            if left != right:
                out.append(f"policyType: {_show(left)} in Azure, {_show(right)} wanted")
            continue
        _diff(key, have.get(key), want.get(key), key, out)
    return out


# -- names -------------------------------------------------------------------------------------

def rollback_policy_name(source: str, template: str = DEFAULT_ROLLBACK_TEMPLATE, *,
                         target_template: str = DEFAULT_TARGET_TEMPLATE,
                         setting: str = _ROLLBACK_SETTING) -> str:
    """The Enhanced app-consistent rollback policy's name for Standard source ``source``: the
    same name rules as the target (``target_policy_name``), and never the target's own name
    (Azure compares policy names case-insensitively). ``setting`` names the template's setting
    in error messages."""
    try:
        name = target_policy_name(source, template)
    except SettingsError as exc:
        raise SettingsError(str(exc).replace("rules.target_policy_template", setting).replace(
            f"'{DEFAULT_TARGET_TEMPLATE}'", f"'{DEFAULT_ROLLBACK_TEMPLATE}'")) from None
    if name and name.lower() == target_policy_name(source, target_template).lower():
        raise SettingsError(
            f"invalid setting {setting} = {template!r}: for source policy {source!r} it gives "
            f"{name!r}, the crash-consistent target's own name (template {target_template!r}); "
            f"use a different text, e.g. '{DEFAULT_ROLLBACK_TEMPLATE}'")
    return name


# -- create or reuse ---------------------------------------------------------------------------

@dataclass(frozen=True)
class EnsureResult:
    """``outcome`` is ``created`` (we wrote it now) or ``reused`` (it existed, same settings);
    ``policy`` is the policy as Azure returned it afterwards."""

    outcome: Literal["created", "reused"]
    policy: dict

    @property
    def id(self) -> str:
        return self.policy.get("id", "")

    @property
    def name(self) -> str:
        return self.policy.get("name", "")


# Several VMs of one vault may need the same on-demand rollback policy at once: one creator per
# (vault, name) in this process, the others then find it and reuse it.
_locks: dict[tuple[str, str], threading.Lock] = {}
_locks_guard = threading.Lock()


def _lock_for(vault: backup.VaultRef, name: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault((vault.id.lower(), name.lower()), threading.Lock())


def ensure_policy(access, vault_id: str, name: str, body: dict) -> EnsureResult:
    """Make sure vault ``vault_id`` holds policy ``name`` with ``body``'s settings.

    Missing: created (one policy write, counted against the vault's 50 per 24 h) and read back.
    Present with the same settings: reused, no write. Present with other settings:
    ``PolicyConflictError`` and no write. An existing policy is never updated, so a source
    policy can't be modified through here. Vault limits raise ``PolicyLimitError``.
    """
    if not valid_policy_name(name):
        raise InputError(f"'{name}' is not a valid backup policy name (3-150 letters, digits and "
                         "hyphens, starting with a letter, not ending with a hyphen)")
    if not isinstance(body.get("properties"), dict):
        raise ValueError("body must be an ARM PUT body: {'properties': {...}}")
    vault = backup.vault_ref(vault_id)
    client = access.backup(vault.subscription_id)
    throttles = access.settings.throttles
    with _lock_for(vault, name):
        existing = _get_if_present(client, vault, name)
        if existing is not None:
            differences = settings_differences(existing, body)
            if differences:
                raise PolicyConflictError(vault, name, differences,
                                          _props(existing).get("protectedItemsCount"))
            return EnsureResult("reused", existing)
        try:
            created = backup.put_policy(client, vault, name, body["properties"],
                                        timeout=throttles.operation_timeout,
                                        poll_interval=throttles.polling_interval)
        except AzureError as exc:
            limit = _limit_error(exc, vault, name)
            if limit is None:
                raise
            raise limit from exc
    differences = settings_differences(created, body)
    if differences:
        raise AzureError(
            f"Azure stored backup policy '{name}' in vault '{vault.vault}' with other settings "
            f"than we sent: {'; '.join(differences)}. No VM uses it yet; check the source "
            "policy's settings, delete the new policy, and run again")
    return EnsureResult("created", created)


def _get_if_present(client, vault: backup.VaultRef, name: str) -> dict | None:
    try:
        return backup.get_policy(client, vault, name)
    except AzureError as exc:
        if exc.status == 404:
            return None
        raise


# "... allowed in about 42 minutes": the emulator's wording. Azure's is unpublished; without a
# number the message says the most it can be (24 h).
_RETRY_IN = re.compile(r"\babout (\d+) (minute|hour)s?\b", re.IGNORECASE)


def _limit_error(exc: AzureError, vault: backup.VaultRef, name: str) -> PolicyLimitError | None:
    """Azure's refusal to create ``name`` because of a vault limit, as a message the user can
    act on; None for any other error."""
    where = (f"vault '{vault.vault}' (resource group {vault.resource_group}, subscription "
             f"{vault.subscription_id})")
    if error_codes.matches(exc, WRITE_LIMIT_CODE):
        match = _RETRY_IN.search(str(exc))
        retry_s = (int(match.group(1)) * (60 if match.group(2).lower() == "minute" else 3600)
                   if match else None)
        if retry_s is None:
            when = "once the oldest policy write of the last 24 hours ages out (at most 24 h)"
        elif retry_s < 7200:
            when = f"in about {max(1, -(-retry_s // 60))} minutes"
        else:
            when = f"in about {-(-retry_s // 3600)} hours"
        return PolicyLimitError(
            f"{where} has reached the limit on backup policy creates and edits (Azure Backup "
            f"allows 50 per vault in 24 hours), so policy '{name}' was not created and no VM "
            f"was moved. Retry {when}. Azure said: {exc}",
            code=exc.code, status=exc.status, retry_after_s=retry_s)
    if error_codes.matches(exc, COUNT_LIMIT_CODE):
        return PolicyLimitError(
            f"{where} already holds the most backup policies Azure allows (200 per vault), so "
            f"policy '{name}' was not created and no VM was moved. Delete unused policies of "
            f"that vault, then run again. Azure said: {exc}",
            code=exc.code, status=exc.status, retry_after_s=None)
    return None


__all__ = [
    "CRASH_CONSISTENT",
    "DEFAULT_ROLLBACK_TEMPLATE",
    "DEFAULT_TARGET_TEMPLATE",
    "ENHANCED_IR_MAX_DAYS",
    "ENHANCED_IR_MIN_DAYS",
    "EnsureResult",
    "PolicyConflictError",
    "PolicyConversionError",
    "PolicyLimitError",
    "app_clone_body",
    "conversion_note",
    "crash_clone_body",
    "describe_policy",
    "ensure_policy",
    "policy_type",
    "rollback_policy_name",
    "settings_differences",
]
