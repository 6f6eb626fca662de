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
import re
from typing import Any

from ..errors import CcmigrateError

CRASH_CONSISTENT = "OnlyCrashConsistent"
V1_SCHEDULE, V2_SCHEDULE = "SimpleSchedulePolicy", "SimpleSchedulePolicyV2"

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
_DURATION_DAYS = {"days": 1, "weeks": 7, "months": 28, "years": 365}  # lower bounds, in days


class PolicyConversionError(CcmigrateError):
    """A source policy has a shape the Enhanced clone can't reproduce faithfully."""

    exit_code = 1


# -- bodies ------------------------------------------------------------------------------------

def _props(policy: dict | None) -> dict:
    """``properties`` of a policy resource or PUT body; a bare properties dict as it is;
    ``{}`` for None."""
    policy = policy or {}
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


def crash_edit_body(policy: dict) -> dict:
    """The PUT body that switches ``policy`` itself to crash-consistent, in place (the how-to
    article's Option 2): its own settings, read-only fields dropped, plus
    ``snapshotConsistencyType: OnlyCrashConsistent``."""
    props = _without_read_only(_props(policy))
    props["snapshotConsistencyType"] = CRASH_CONSISTENT
    return {"properties": props}


def app_edit_body(policy: dict) -> dict:
    """The PUT body that reverts ``policy`` itself to application-consistent: the API has no
    application-consistent value, so it is the policy without ``snapshotConsistencyType``
    (whether Azure accepts that is not documented: api-notes 1.4)."""
    props = _without_read_only(_props(policy))
    props.pop("snapshotConsistencyType", None)
    return {"properties": props}


def _without_read_only(props: dict) -> dict:
    out = copy.deepcopy(props)
    for key in READ_ONLY:
        out.pop(key, None)
    return out


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


__all__ = [
    "CRASH_CONSISTENT",
    "ENHANCED_IR_MAX_DAYS",
    "ENHANCED_IR_MIN_DAYS",
    "READ_ONLY",
    "PolicyConversionError",
    "app_clone_body",
    "app_edit_body",
    "conversion_note",
    "crash_clone_body",
    "crash_edit_body",
    "describe_policy",
    "policy_type",
]
