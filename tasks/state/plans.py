"""The plan repository: a plan's waves, wave items and needed policies, saved once by the
planner; read back by id or ``latest`` by the wave runner, rollback and reports; each wave's
status kept as it runs.

Saving a plan also creates its ``waves`` rows (``planned``) and one ``pending`` journal row per
VM, so a runner finds every VM it must account for in the journal before it starts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Container, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy import Connection, Engine

from ..errors import CcmigrateError, InputError
from .assessments import _bulk_insert, new_assessment_id  # one COPY-capable bulk path
from .db import masked, write_transaction
from .migrations import _tool_version
from .tables import (
    PLAN_POLICY_FIELDS,
    PLAN_VM_FIELDS,
    UtcDateTime,
    assessments,
    journal,
    plan_policies,
    plan_vms,
    plans,
    waves,
)

WAVE_STATUSES = ("planned", "running", "done", "halted", "partial")
FINISHED_WAVE_STATUSES = ("done", "halted", "partial")
POLICY_KINDS = ("crash_clone", "app_clone_for_rollback")
REQUIRED_VM_COLUMNS = ("vm_id", "wave")
REQUIRED_POLICY_COLUMNS = ("vault_id", "policy_name", "kind")
_INT_FIELDS = {"wave", "position", "first_wave"}
PLAN_FIX = ("run `ccmigrate plan --assessment latest --out DIR` first with the same "
            "--state-store / CCMIGRATE_STATE_STORE")


@dataclass
class PlanRecord:
    """One plan, as stored (its VMs and policies are separate: ``load_plan_vms`` /
    ``load_plan_policies``)."""

    id: str
    created_at: datetime
    assessment_id: str
    # The planner's options: wave size, canary, ramp, allowed warnings, include_standard,
    # template, order; kept so a report can say how the plan was cut.
    options: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    wave_count: int = 0
    vm_count: int = 0
    tool_version: str = ""

    @classmethod
    def new(cls, assessment_id: str, options: dict[str, Any] | None = None, *,
            now: datetime | None = None, **fields: Any) -> PlanRecord:
        """A record for a plan cut ``now``: fresh id, this tool's version."""
        now = now or datetime.now(UTC)
        fields.setdefault("tool_version", _tool_version())
        return cls(id=new_plan_id(now), created_at=now, assessment_id=assessment_id,
                   options=dict(options or {}), **fields)


@dataclass
class WaveRecord:
    """One wave of a plan and where running it got to."""

    plan_id: str
    wave: int
    size: int
    status: str
    started_at: datetime | None
    finished_at: datetime | None
    counts: dict[str, int]
    halted_reason: str | None


def new_plan_id(now: datetime | None = None) -> str:
    """``20261126-013000-ab12``: same shape as assessment ids (UTC time, then 16 random bits)."""
    return new_assessment_id(now)


# -- writing ----------------------------------------------------------------------------------

def save_plan(engine: Engine, record: PlanRecord, vms: pd.DataFrame,
              policies: pd.DataFrame) -> None:
    """Store ``record``, its wave items and needed policies, a ``planned`` row per wave and a
    ``pending`` journal row per VM, in one transaction (all or nothing).

    ``vms`` needs ``vm_id`` and ``wave`` (integers 1..N without gaps; 1 is the canary); other
    ``tables.PLAN_VM_FIELDS`` default to "" (``vm_key``: lower-cased ``vm_id``; ``position``:
    frame order within the wave; ``irreversible``: False). ``policies`` needs ``vault_id``,
    ``policy_name``, ``kind``; ``body`` (dict) or ``body_json`` (text) is the intended policy
    body. Fills ``record.wave_count`` / ``vm_count`` when left 0.
    """
    vm_rows, wave_sizes = _plan_vm_rows(record.id, vms)
    policy_rows = _policy_rows(record.id, policies, len(wave_sizes))
    for name, found in (("vm_count", len(vm_rows)), ("wave_count", len(wave_sizes))):
        if not getattr(record, name):
            setattr(record, name, found)
        elif getattr(record, name) != found:
            raise ValueError(f"record.{name} is {getattr(record, name)} but the frame has {found}")
    with write_transaction(engine) as conn:
        if conn.execute(sa.select(assessments.c.id)
                        .where(assessments.c.id == record.assessment_id)).first() is None:
            raise CcmigrateError(f"plan {record.id} names assessment {record.assessment_id}, "
                                 f"which is not in the state store {masked(engine.url)}; plan "
                                 "from a stored assessment")
        try:
            conn.execute(sa.insert(plans).values(_record_row(record)))
        except sa.exc.IntegrityError:
            raise CcmigrateError(f"plan {record.id} is already in the state store "
                                 f"{masked(engine.url)}; save it under a new id") from None
        _bulk_insert(conn, plan_vms, ["plan_id", *PLAN_VM_FIELDS], vm_rows)
        if policy_rows:
            _bulk_insert(conn, plan_policies, ["plan_id", *PLAN_POLICY_FIELDS], policy_rows)
        if wave_sizes:
            conn.execute(sa.insert(waves), [
                {"plan_id": record.id, "wave": wave, "size": size, "status": "planned",
                 "started_at": None, "finished_at": None, "counts_json": "{}",
                 "halted_reason": None}
                for wave, size in enumerate(wave_sizes, start=1)])
        # The journal rows are copied server-side from the wave items: no round trip per VM.
        v = plan_vms.c
        conn.execute(sa.insert(journal).from_select(
            ["plan_id", "vm_key", "wave", "status", "step", "job_ids_json", "attempt"],
            sa.select(v.plan_id, v.vm_key, v.wave, sa.literal("pending"), sa.literal(""),
                      sa.literal("[]"), sa.literal(0)).where(v.plan_id == record.id)))


def set_wave_status(engine: Engine, plan_id: str, wave: int, status: str, *,
                    counts: dict[str, int] | None = None,
                    halted_reason: str | None = None) -> WaveRecord:
    """Record that ``wave`` is now ``status``; return the wave as stored.

    ``running`` sets ``started_at`` the first time (a resume keeps it) and clears
    ``finished_at`` and ``halted_reason``; ``done`` / ``halted`` / ``partial`` set ``finished_at``.
    ``counts`` (journal status -> VMs) replaces the stored counts when given.
    """
    if status not in WAVE_STATUSES:
        raise ValueError(f"wave status must be one of {', '.join(WAVE_STATUSES)}, not {status!r}")
    now = datetime.now(UTC)
    values: dict[str, Any] = {"status": status}
    if counts is not None:
        values["counts_json"] = _dumps({str(k): int(n) for k, n in counts.items()})
    if status == "running":
        values.update(started_at=sa.func.coalesce(waves.c.started_at,
                                                  sa.literal(now, UtcDateTime)),
                      finished_at=None, halted_reason=None)
    elif status in FINISHED_WAVE_STATUSES:
        values["finished_at"] = now
    if halted_reason is not None:
        values["halted_reason"] = halted_reason
    with write_transaction(engine) as conn:
        _require_wave(conn, engine, plan_id, wave)
        conn.execute(sa.update(waves).where(waves.c.plan_id == plan_id, waves.c.wave == wave)
                     .values(**values))
        row = conn.execute(sa.select(waves).where(waves.c.plan_id == plan_id,
                                                  waves.c.wave == wave)).one()
    return _wave(row)


def _plan_vm_rows(plan_id: str, vms: pd.DataFrame) -> tuple[list[tuple[Any, ...]], list[int]]:
    """(plan_id, *PLAN_VM_FIELDS) tuples in (wave, position) order, and each wave's size."""
    missing = [c for c in REQUIRED_VM_COLUMNS if c not in vms.columns]
    if missing:
        raise ValueError(f"plan VM frame lacks columns {missing}")
    n = len(vms)
    wave = pd.to_numeric(vms["wave"], errors="coerce")
    if wave.isna().any() or (wave % 1 != 0).any() or (wave < 1).any():
        raise ValueError("plan VM frame: every wave must be an integer >= 1 (1 is the canary)")
    wave = wave.astype("int64")
    numbers = sorted(set(wave.tolist()))
    if numbers != list(range(1, len(numbers) + 1)):
        raise ValueError(f"plan VM frame: waves must be numbered 1, 2, 3, ... without gaps, "
                         f"not {numbers[:20]}")
    data: dict[str, Any] = {"wave": wave.to_numpy()}
    if "position" in vms.columns:
        data["position"] = pd.to_numeric(vms["position"]).astype("int64").to_numpy()
    else:  # frame order within each wave
        data["position"] = wave.groupby(wave).cumcount().to_numpy() + 1
    if "vm_key" in vms.columns:
        data["vm_key"] = vms["vm_key"].astype("string").fillna("").to_numpy(dtype=object)
    else:
        data["vm_key"] = vms["vm_id"].astype("string").str.lower().fillna("") \
            .to_numpy(dtype=object)
    irreversible = (vms["irreversible"].astype("boolean").fillna(False)
                    if "irreversible" in vms.columns else pd.Series([False] * n))
    data["irreversible"] = irreversible.astype(bool).to_numpy()
    for name in PLAN_VM_FIELDS:
        if name in data:
            continue
        data[name] = (vms[name].astype("string").fillna("").to_numpy(dtype=object)
                      if name in vms.columns else [""] * n)
    frame = pd.DataFrame(data, columns=list(PLAN_VM_FIELDS))
    if (frame["vm_key"] == "").any():
        raise ValueError("plan VM frame: every VM needs a vm_id")
    duplicated = frame["vm_key"].duplicated()
    if duplicated.any():
        raise ValueError(f"plan VM frame repeats vm_key {frame['vm_key'][duplicated].iloc[0]!r}; "
                         "a VM is in one wave of a plan")
    if frame.duplicated(["wave", "position"]).any():
        raise ValueError("plan VM frame: positions must be unique within a wave")
    frame = frame.sort_values(["wave", "position"], kind="stable")
    sizes = frame.groupby("wave").size().tolist()
    # tolist() gives plain Python values, which every driver and COPY adapt.
    rows = list(zip([plan_id] * n, *(frame[name].tolist() for name in PLAN_VM_FIELDS),
                    strict=True))
    return rows, sizes


def _policy_rows(plan_id: str, policies: pd.DataFrame, wave_count: int) -> list[tuple[Any, ...]]:
    if policies is None or policies.empty:
        return []
    missing = [c for c in REQUIRED_POLICY_COLUMNS if c not in policies.columns]
    if missing:
        raise ValueError(f"plan policy frame lacks columns {missing}")
    rows: list[tuple[Any, ...]] = []
    seen: set[tuple[str, str]] = set()
    for rec in policies.to_dict("records"):
        kind = _text(rec.get("kind"))
        if kind not in POLICY_KINDS:
            raise ValueError(f"plan policy kind must be one of {', '.join(POLICY_KINDS)}, "
                             f"not {kind!r}")
        vault_id, name = _text(rec.get("vault_id")), _text(rec.get("policy_name"))
        if not vault_id or not name:
            raise ValueError("plan policy frame: every policy needs vault_id and policy_name")
        key = (vault_id.lower(), name.lower())  # Azure compares both case-insensitively
        if key in seen:
            raise ValueError(f"plan policy frame repeats policy {name!r} in vault {vault_id}")
        seen.add(key)
        first_wave = rec.get("first_wave")
        first_wave = 1 if first_wave is None or pd.isna(first_wave) else int(first_wave)
        if not 1 <= first_wave <= max(wave_count, 1):
            raise ValueError(f"plan policy {name!r}: first_wave {first_wave} is not a wave of "
                             f"the plan (1..{wave_count})")
        body = rec.get("body")
        body_json = (_dumps(body) if isinstance(body, dict)
                     else _text(rec.get("body_json")) or "{}")
        rows.append((plan_id, vault_id, name, _text(rec.get("vault")), kind,
                     _text(rec.get("source_policy_id")), _text(rec.get("source_policy")),
                     first_wave, body_json))
    return rows


def _text(value: Any) -> str:
    if value is None or (not isinstance(value, dict | list) and pd.isna(value)):
        return ""
    return str(value)


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _record_row(record: PlanRecord) -> dict[str, Any]:
    return {
        "id": record.id, "created_at": record.created_at, "assessment_id": record.assessment_id,
        "options_json": _dumps(record.options), "summary_json": _dumps(record.summary),
        "wave_count": int(record.wave_count), "vm_count": int(record.vm_count),
        "tool_version": record.tool_version,
    }


# -- reading ----------------------------------------------------------------------------------

_NEWEST_FIRST = (plans.c.created_at.desc(), plans.c.id.desc())


def _record(row: sa.Row[Any]) -> PlanRecord:
    m = row._mapping
    return PlanRecord(id=m["id"], created_at=m["created_at"], assessment_id=m["assessment_id"],
                      options=json.loads(m["options_json"]),
                      summary=json.loads(m["summary_json"]), wave_count=m["wave_count"],
                      vm_count=m["vm_count"], tool_version=m["tool_version"])


def _wave(row: sa.Row[Any]) -> WaveRecord:
    m = row._mapping
    return WaveRecord(plan_id=m["plan_id"], wave=m["wave"], size=m["size"], status=m["status"],
                      started_at=m["started_at"], finished_at=m["finished_at"],
                      counts=json.loads(m["counts_json"]), halted_reason=m["halted_reason"])


def list_plans(engine: Engine, limit: int = 20, *,
               assessment_id: str | None = None) -> list[PlanRecord]:
    """The newest ``limit`` plans (cut from one assessment when ``assessment_id`` is given),
    newest first."""
    query = sa.select(plans).order_by(*_NEWEST_FIRST).limit(limit)
    if assessment_id is not None:
        query = query.where(plans.c.assessment_id == assessment_id)
    with engine.connect() as conn:
        return [_record(row) for row in conn.execute(query)]


def resolve_plan(engine: Engine, ref: str) -> PlanRecord:
    """The plan ``ref`` names: an id (or an unambiguous start of one) or ``latest``."""
    wanted = ref.strip().lower()
    if wanted == "latest":
        newest = list_plans(engine, 1)
        if not newest:
            raise InputError(_none_yet(engine, ref))
        return newest[0]
    with engine.connect() as conn:
        found = _by_id(conn, wanted)
    if len(found) == 1:
        return found[0]
    if found:
        ids = ", ".join(r.id for r in found[:10])
        raise InputError(f"plan '{ref}' is ambiguous: it starts {len(found)} ids ({ids}); give "
                         "more of the id")
    if not list_plans(engine, 1):
        raise InputError(_none_yet(engine, ref))
    raise InputError(f"no plan '{ref}' in the state store {masked(engine.url)}; name one by id "
                     f"or use 'latest' ({_recent_ids(engine)}), or make one with "
                     "`ccmigrate plan --assessment ID|latest --out DIR`")


def _by_id(conn: Connection, wanted: str) -> list[PlanRecord]:
    exact = conn.execute(sa.select(plans).where(plans.c.id == wanted)).first()
    if exact is not None:
        return [_record(exact)]
    if len(wanted) < 4 or not re.fullmatch(r"[0-9a-f-]+", wanted):
        return []
    rows = conn.execute(sa.select(plans).where(plans.c.id.startswith(wanted))
                        .order_by(*_NEWEST_FIRST).limit(50))
    return [_record(row) for row in rows]


def _none_yet(engine: Engine, ref: str) -> str:
    return (f"no plan in the state store {masked(engine.url)} yet, so '{ref}' names nothing; "
            + PLAN_FIX)


def _recent_ids(engine: Engine, n: int = 5) -> str:
    recent = list_plans(engine, n)
    shown = "; ".join(f"{r.id} ({r.created_at:%Y-%m-%d %H:%M} UTC, {r.vm_count} VMs in "
                      f"{r.wave_count} waves, from assessment {r.assessment_id})"
                      for r in recent)
    return f"most recent: {shown}" if recent else "none stored yet"


def _require_plan(conn: Connection, engine: Engine, plan_id: str) -> None:
    if conn.execute(sa.select(plans.c.id).where(plans.c.id == plan_id)).first() is None:
        raise InputError(f"no plan '{plan_id}' in the state store {masked(engine.url)} "
                         f"({_recent_ids(engine)})")


def _wave_numbers(conn: Connection, plan_id: str) -> list[int]:
    return list(conn.execute(sa.select(waves.c.wave).where(waves.c.plan_id == plan_id)
                             .order_by(waves.c.wave)).scalars())


def _require_wave(conn: Connection, engine: Engine, plan_id: str, wave: int) -> None:
    """An ``InputError`` naming the plan's waves unless ``wave`` is one of them."""
    exists = conn.execute(sa.select(waves.c.wave).where(waves.c.plan_id == plan_id,
                                                        waves.c.wave == wave)).first()
    if exists is not None:
        return
    _require_plan(conn, engine, plan_id)
    numbers = _wave_numbers(conn, plan_id)
    have = (f"its waves are {describe_waves(numbers)} (1 is the canary)" if numbers
            else "it has no waves (no VM was selected)")
    raise InputError(f"plan {plan_id} has no wave {wave}; {have}; choose one with --wave")


def describe_waves(numbers: list[int]) -> str:
    """``1-3, 5``: wave numbers as short ranges, for messages."""
    parts: list[list[int]] = []
    for n in sorted(numbers):
        if parts and parts[-1][1] == n - 1:
            parts[-1][1] = n
        else:
            parts.append([n, n])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in parts)


def wave_numbers(engine: Engine, plan_id: str) -> list[int]:
    """The plan's wave numbers, ascending (1..wave_count)."""
    with engine.connect() as conn:
        _require_plan(conn, engine, plan_id)
        return _wave_numbers(conn, plan_id)


def get_wave(engine: Engine, plan_id: str, wave: int) -> WaveRecord:
    """One wave of a plan; an unknown wave is an ``InputError`` listing the plan's waves."""
    with engine.connect() as conn:
        _require_wave(conn, engine, plan_id, wave)
        return _wave(conn.execute(sa.select(waves).where(waves.c.plan_id == plan_id,
                                                         waves.c.wave == wave)).one())


def list_waves(engine: Engine, plan_id: str) -> list[WaveRecord]:
    """Every wave of a plan, in wave order."""
    with engine.connect() as conn:
        _require_plan(conn, engine, plan_id)
        rows = conn.execute(sa.select(waves).where(waves.c.plan_id == plan_id)
                            .order_by(waves.c.wave))
        return [_wave(row) for row in rows]


def load_plan_vms(engine: Engine, plan_id: str, wave: int | None = None) -> pd.DataFrame:
    """The plan's wave items (of one wave when given): columns ``tables.PLAN_VM_FIELDS`` in that
    order (``wave``/``position`` Int64, ``irreversible`` boolean, the rest string), rows in
    (wave, position) order."""
    query = (sa.select(*(plan_vms.c[name] for name in PLAN_VM_FIELDS))
             .where(plan_vms.c.plan_id == plan_id)
             .order_by(plan_vms.c.wave, plan_vms.c.position))
    with engine.connect() as conn:
        if wave is None:
            _require_plan(conn, engine, plan_id)
        else:
            _require_wave(conn, engine, plan_id, wave)
            query = query.where(plan_vms.c.wave == wave)
        rows = conn.execute(query).all()
    return _frame(PLAN_VM_FIELDS, rows, ints=_INT_FIELDS, bools={"irreversible"})


def load_plan_policies(engine: Engine, plan_id: str) -> pd.DataFrame:
    """The policies the plan needs: ``vault_id``, ``policy_name``, ``vault``, ``kind``,
    ``source_policy_id``, ``source_policy``, ``first_wave`` (Int64) and ``body`` (the intended
    policy body, a dict; ``{}`` when the planner left it to the runner), ordered by first wave,
    vault and name."""
    c = plan_policies.c
    query = (sa.select(*(c[name] for name in PLAN_POLICY_FIELDS)).where(c.plan_id == plan_id)
             .order_by(c.first_wave, c.vault_id, c.policy_name))
    with engine.connect() as conn:
        _require_plan(conn, engine, plan_id)
        rows = conn.execute(query).all()
    frame = _frame(PLAN_POLICY_FIELDS, rows, ints=_INT_FIELDS, objects={"body_json"})
    frame["body_json"] = [json.loads(text) for text in frame["body_json"]]
    return frame.rename(columns={"body_json": "body"})


def _frame(names: tuple[str, ...], rows: Sequence[Any], *, ints: Container[str] = (),
           bools: Container[str] = (), objects: Container[str] = ()) -> pd.DataFrame:
    """Rows as a frame with nullable dtypes (Int64, boolean, string) so <NA> stays visible."""
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    data: dict[str, Any] = {}
    for name, values in zip(names, columns, strict=True):
        dtype = ("Int64" if name in ints else "boolean" if name in bools
                 else object if name in objects else "string")
        data[name] = pd.array(list(values), dtype=dtype)
    return pd.DataFrame(data, columns=list(names))
