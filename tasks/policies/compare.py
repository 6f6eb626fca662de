"""Comparing two backup policies: which settings differ (``settings_differences``: the test
that makes ``ensure_policy`` reuse a policy or refuse it, and the plan's reuse/conflict call),
and which retentions shrink (``retention_reductions``: what makes a change critical under a
Resource Guard, ``tasks/migration/mua.py``, and what the plan reports per group)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from .bodies import READ_ONLY, _props, policy_type

# Always compared, even when the wanted body omits them: an absent snapshotConsistencyType *is*
# the app-consistent setting, and V2 list results may omit policyType.
_ALWAYS_COMPARED = ("policyType", "snapshotConsistencyType")
# Time-of-day fields: only the time matters (the date part is arbitrary), "Z" == "+00:00".
_TIME_KEYS = frozenset({"scheduleRunTimes", "retentionTimes", "scheduleWindowStartTime"})
# A schedule of another kind differs as a whole, not field by field.
_KIND_KEYS = ("schedulePolicyType", "retentionPolicyType", "scheduleRunFrequency")
_TIERS = (("dailySchedule", "daily"), ("weeklySchedule", "weekly"),
          ("monthlySchedule", "monthly"), ("yearlySchedule", "yearly"))
_DAYS = {"days": 1, "weeks": 7, "months": 30, "years": 365}


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


# -- retention -------------------------------------------------------------------------------

def _duration(schedule: Any) -> tuple[float, str] | None:
    if not isinstance(schedule, dict):
        return None
    duration = schedule.get("retentionDuration") or {}
    count = duration.get("count")
    if not isinstance(count, int | float) or isinstance(count, bool):
        return None
    unit = str(duration.get("durationType") or "Days")
    return count * _DAYS.get(unit.lower(), 1), f"{count} {unit.lower()}"


def retention_reductions(old: dict | None, new: dict | None) -> list[str]:
    """How ``new`` keeps recovery points for less time than ``old`` (policies or their
    properties), one phrase each: instant restore days, then each long-term tier (shorter, or
    dropped). Empty when nothing is shorter (what keeps a change non-critical)."""
    if not old or not new:
        return []
    o, n = _props(old), _props(new)
    out = []
    oi, ni = o.get("instantRpRetentionRangeInDays"), n.get("instantRpRetentionRangeInDays")
    if isinstance(oi, int) and (not isinstance(ni, int) or ni < oi):
        out.append(f"instant restore {oi} -> {ni if isinstance(ni, int) else 'none'} days")
    orp, nrp = o.get("retentionPolicy") or {}, n.get("retentionPolicy") or {}
    for key, label in _TIERS:
        before = _duration(orp.get(key))
        if before is None:
            continue
        after = _duration(nrp.get(key))
        if after is None:
            out.append(f"{label} {before[1]} -> none")
        elif after[0] < before[0]:
            out.append(f"{label} {before[1]} -> {after[1]}")
    return out


__all__ = [
    "retention_reductions",
    "settings_differences",
]
