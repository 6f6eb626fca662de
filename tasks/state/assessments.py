"""The assessment repository: save a scored inventory once, find it again by id, ``latest`` or
``previous``, and load its VMs back as a frame.

Reports (trends, diff) and the wave planner read assessments from here rather than from report
files, so what they compare is exactly what was scored. Assessments are compared within one
*scope* (same cloud, subscriptions, management groups and exclusions): ``scope_key`` names it.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy import Connection, Engine

from ..errors import CcmigrateError, InputError
from ..inventory.schema import distinct
from .db import masked, write_transaction
from .tables import VM_FIELDS, assessment_vms, assessments

CHUNK_ROWS = 5_000
REQUIRED_VM_COLUMNS = ("vm_id", "readiness")
# Scope keys that say where Azure is reached, not what is assessed: the emulator's port or a
# private endpoint must not split one fleet's history in two.
_NOT_SCOPE = {"endpoint", "authority", "ca_bundle", "credential", "tenant_id", "client_id",
              "client_secret"}
# Azure compares these case-insensitively.
_CASELESS = {"subscriptions", "management_groups", "exclude_subscriptions",
             "exclude_resource_groups"}


@dataclass
class AssessmentRecord:
    """One assessment run, as stored (the scored VMs are separate: ``load_vms``)."""

    id: str
    created_at: datetime
    finished_at: datetime | None
    scope_key: str
    scope: dict[str, Any]
    rule_pack: str = ""
    pack_doc_version: str = ""
    overrides: list[Any] = field(default_factory=list)
    tool_version: str = ""
    cloud: str = ""
    vm_count: int = 0
    counts: dict[str, int] = field(default_factory=dict)  # readiness -> number of VMs
    request_count: int = 0
    partial_errors: list[dict[str, Any]] = field(default_factory=list)  # {scope, error}
    summary: dict[str, Any] = field(default_factory=dict)  # the whole summary.json

    @classmethod
    def new(cls, scope: dict[str, Any], *, now: datetime | None = None,
            **fields: Any) -> AssessmentRecord:
        """A record for a run starting ``now``: fresh id, ``scope_key`` and cloud from ``scope``."""
        now = now or datetime.now(UTC)
        fields.setdefault("cloud", str(scope.get("cloud") or "public"))
        return cls(id=new_assessment_id(now), created_at=now, finished_at=None,
                   scope_key=scope_key(scope), scope=scope, **fields)


def new_assessment_id(now: datetime | None = None) -> str:
    """``20261125-223012-3f9a``: UTC start time (sorts, and says when at a glance) plus 16 random
    bits, so runs started in the same second still differ."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{now:%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def normalize_scope(scope: dict[str, Any]) -> dict[str, Any]:
    """The scope reduced to what decides which VMs are assessed: keys in snake_case, endpoint
    and credential keys dropped, empty values dropped (a new empty setting keeps old keys),
    lists de-duplicated and sorted, case-insensitive Azure names lower-cased."""
    out: dict[str, Any] = {}
    for raw_key, value in scope.items():
        key = re.sub(r"(?<!^)(?=[A-Z])", "_", str(raw_key)).lower()
        if key in _NOT_SCOPE or value is None or value == "" or value == [] or value == {}:
            continue
        if isinstance(value, list | tuple | set | frozenset):
            items = {_norm_item(key, v) for v in value}
            items.discard("")
            if not items:
                continue
            value = sorted(items)
        elif isinstance(value, str):
            value = value.strip()
            if key == "cloud":
                value = value.lower().rstrip("/")
        out[key] = value
    out.setdefault("cloud", "public")
    return out


def _norm_item(key: str, value: Any) -> str:
    text = str(value).strip()
    if key in _CASELESS:
        return text.lower()
    if key == "exclude_tags" and "=" in text:  # tag names are case-insensitive, values not
        name, val = text.split("=", 1)
        return f"{name.strip().lower()}={val.strip()}"
    return text


def scope_key(scope: dict[str, Any]) -> str:
    """Stable 16-hex-digit hash of ``normalize_scope(scope)``."""
    canonical = json.dumps(normalize_scope(scope), sort_keys=True, separators=(",", ":"),
                           default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


# -- writing ----------------------------------------------------------------------------------

def save_assessment(engine: Engine, record: AssessmentRecord, scored: pd.DataFrame, *,
                    defer_checkpoint: bool = False) -> None:
    """Store ``record`` and one row per VM of ``scored``, in one transaction (all or nothing).
    ``defer_checkpoint``: see ``db.write_transaction`` (the caller then runs
    ``db.checkpoint``).

    Takes the columns of ``assessment_vms`` from the frame; optional ones it lacks are stored as
    "" (``vm_key`` defaults to the lower-cased ``vm_id``). Fills ``record.vm_count`` and
    ``record.counts`` from the frame when they were left empty.
    """
    rows = _vm_rows(record.id, scored)
    if not record.vm_count:
        record.vm_count = len(scored)
    elif record.vm_count != len(scored):
        raise ValueError(f"record.vm_count is {record.vm_count} but the frame has "
                         f"{len(scored)} VMs")
    if not record.counts:
        record.counts = {str(k): int(v) for k, v in
                         scored["readiness"].astype("string").fillna("").value_counts()
                         .sort_index().items()}
    with write_transaction(engine, defer_checkpoint=defer_checkpoint) as conn:
        try:
            conn.execute(sa.insert(assessments).values(_record_row(record)))
        except sa.exc.IntegrityError:
            raise CcmigrateError(f"assessment {record.id} is already in the state store "
                                 f"{masked(engine.url)}; save it under a new id") from None
        _bulk_insert(conn, assessment_vms, ["assessment_id", *VM_FIELDS, "tags_json"], rows)


def _tags_json(scored: pd.DataFrame) -> list[str]:
    """The ``tags`` column (dicts) as JSON text, ``{}`` for a VM without tags: one encoding per
    distinct cell object (``schema.TagSets`` makes equal tag sets one object)."""
    if "tags" not in scored.columns:
        return ["{}"] * len(scored)
    dumps = _tag_encoder()
    codes, cells = distinct(scored["tags"].to_numpy(dtype=object))  # schema.TagSets
    texts = np.array([dumps(t) if isinstance(t, dict) and t else "{}" for t in cells] + ["{}"],
                     dtype=object)
    return texts[codes].tolist()


def _tag_encoder() -> Any:
    """``json.dumps(tags, ensure_ascii=False, default=str)`` for a dict, the same text.

    ``JSONEncoder.encode`` builds a new C encoder (``c_make_encoder``) on every call, which is
    most of its cost for a small dict; this builds it once, with the arguments ``iterencode``
    passes it (no circular check: tags are flat). Without the C accelerator, one encoder
    object's ``encode``."""
    from json import encoder

    make = getattr(encoder, "c_make_encoder", None)
    if make is None:
        return json.JSONEncoder(ensure_ascii=False, default=str).encode
    iterencode = make(None, str, encoder.encode_basestring, None, ": ", ", ", False, False,
                      True)
    join = "".join
    return lambda tags: join(iterencode(tags, 0))


def _vm_rows(assessment_id: str, scored: pd.DataFrame) -> list[tuple[str, ...]]:
    """(assessment_id, *VM_FIELDS, tags_json) tuples sorted by vm_key: B-tree inserts in key
    order touch few pages (about twice as fast as frame order into the text-keyed indexes)."""
    missing = [c for c in REQUIRED_VM_COLUMNS if c not in scored.columns]
    if missing:
        raise ValueError(f"scored frame lacks columns {missing}; score the inventory first")
    n = len(scored)
    columns: list[Any] = []
    for name in VM_FIELDS:
        if name in scored.columns:
            series = scored[name]
        elif name == "vm_key":
            series = scored["vm_id"].astype("string").str.lower()
        else:
            columns.append([""] * n)
            continue
        columns.append(series.astype("string").fillna("").to_numpy(dtype=object))
    keys = pd.Series(columns[VM_FIELDS.index("vm_key")])
    duplicated = keys.duplicated()
    if duplicated.any():
        raise ValueError(f"scored frame repeats vm_key {keys[duplicated].iloc[0]!r}; one row "
                         "per VM expected")
    columns.append(np.array(_tags_json(scored), dtype=object))
    order = keys.argsort(kind="stable").to_numpy()
    ordered = [col[order] if not isinstance(col, list) else col for col in columns]
    return list(zip([assessment_id] * n, *ordered, strict=True))


def _bulk_insert(conn: Connection, table: sa.Table, names: list[str],
                 rows: list[tuple[Any, ...]]) -> None:
    """Insert many rows without per-row round trips or per-row SQLAlchemy work.

    PostgreSQL with psycopg: ``COPY ... FROM STDIN`` (one stream, several times faster than any
    INSERT). Positional-parameter drivers (sqlite3): the Core INSERT compiled once, then the
    driver's ``executemany`` with plain tuples, in chunks. Others: Core ``executemany`` with dicts.
    """
    if conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg":
        quote = conn.dialect.identifier_preparer.quote
        sql = f"COPY {quote(table.name)} ({', '.join(quote(n) for n in names)}) FROM STDIN"
        cursor = conn.connection.driver_connection.cursor()
        try:
            with cursor.copy(sql) as copy:
                for row in rows:
                    copy.write_row(row)
        finally:
            cursor.close()
        return
    compiled = sa.insert(table).compile(dialect=conn.dialect, column_keys=names)
    if compiled.positional and list(compiled.positiontup or ()) == names:
        for start in range(0, len(rows), CHUNK_ROWS):
            conn.exec_driver_sql(str(compiled), rows[start:start + CHUNK_ROWS])
        return
    for start in range(0, len(rows), CHUNK_ROWS):
        conn.execute(sa.insert(table),
                     [dict(zip(names, row, strict=True)) for row in rows[start:start + CHUNK_ROWS]])


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _record_row(record: AssessmentRecord) -> dict[str, Any]:
    return {
        "id": record.id, "created_at": record.created_at, "finished_at": record.finished_at,
        "scope_key": record.scope_key, "scope_json": _dumps(record.scope),
        "rule_pack": record.rule_pack, "pack_doc_version": record.pack_doc_version,
        "overrides_json": _dumps(record.overrides), "tool_version": record.tool_version,
        "cloud": record.cloud, "vm_count": int(record.vm_count),
        "counts_json": _dumps(record.counts), "request_count": int(record.request_count),
        "partial_errors_json": _dumps(record.partial_errors),
        "summary_json": _dumps(record.summary),
    }


# -- reading ----------------------------------------------------------------------------------

_NEWEST_FIRST = (assessments.c.created_at.desc(), assessments.c.id.desc())


def _record(row: sa.Row[Any]) -> AssessmentRecord:
    m = row._mapping
    return AssessmentRecord(
        id=m["id"], created_at=m["created_at"], finished_at=m["finished_at"],
        scope_key=m["scope_key"], scope=json.loads(m["scope_json"]), rule_pack=m["rule_pack"],
        pack_doc_version=m["pack_doc_version"], overrides=json.loads(m["overrides_json"]),
        tool_version=m["tool_version"], cloud=m["cloud"], vm_count=m["vm_count"],
        counts=json.loads(m["counts_json"]), request_count=m["request_count"],
        partial_errors=json.loads(m["partial_errors_json"]),
        summary=json.loads(m["summary_json"]))


def list_assessments(engine: Engine, limit: int = 20, *,
                     scope_key: str | None = None) -> list[AssessmentRecord]:
    """The newest ``limit`` assessments (of one scope when ``scope_key`` is given), newest
    first."""
    query = sa.select(assessments).order_by(*_NEWEST_FIRST).limit(limit)
    if scope_key is not None:
        query = query.where(assessments.c.scope_key == scope_key)
    with engine.connect() as conn:
        return [_record(row) for row in conn.execute(query)]


def previous_of(engine: Engine, record: AssessmentRecord) -> AssessmentRecord | None:
    """The newest assessment of the same scope older than ``record``: what a trend or diff
    compares it with."""
    a = assessments.c
    query = (sa.select(assessments)
             .where(a.scope_key == record.scope_key,
                    sa.or_(a.created_at < record.created_at,
                           sa.and_(a.created_at == record.created_at, a.id < record.id)))
             .order_by(*_NEWEST_FIRST).limit(1))
    with engine.connect() as conn:
        row = conn.execute(query).first()
    return _record(row) if row else None


def resolve_assessment(engine: Engine, ref: str, *,
                       scope_key: str | None = None) -> AssessmentRecord:
    """The assessment ``ref`` names: an id (or an unambiguous start of one), ``latest``, or
    ``previous`` (the one before the latest of the same scope). ``scope_key`` limits
    ``latest``/``previous`` to one scope; an explicit id is taken whatever its scope."""
    wanted = ref.strip().lower()
    if wanted in ("latest", "previous"):
        newest = list_assessments(engine, 1, scope_key=scope_key)
        if not newest:
            raise InputError(_none_yet(engine, ref, scope_key))
        if wanted == "latest":
            return newest[0]
        before = previous_of(engine, newest[0])
        if before is None:
            raise InputError(
                f"there is no assessment before the latest ({newest[0].id}) for the same scope "
                f"in the state store {masked(engine.url)}, so '{ref}' names nothing; run "
                "`ccmigrate assess` again with the same scope, or name an assessment by id "
                f"({_recent_ids(engine)})")
        return before
    with engine.connect() as conn:
        found = _by_id(conn, wanted)
    if len(found) == 1:
        return found[0]
    if found:
        ids = ", ".join(r.id for r in found[:10])
        raise InputError(f"assessment '{ref}' is ambiguous: it starts {len(found)} ids ({ids}); "
                         "give more of the id")
    if not list_assessments(engine, 1):
        raise InputError(_none_yet(engine, ref, None))
    raise InputError(f"no assessment '{ref}' in the state store {masked(engine.url)}; name one "
                     f"by id or use 'latest' / 'previous' ({_recent_ids(engine)})")


def _by_id(conn: Connection, wanted: str) -> list[AssessmentRecord]:
    exact = conn.execute(sa.select(assessments).where(assessments.c.id == wanted)).first()
    if exact is not None:
        return [_record(exact)]
    if len(wanted) < 4 or not re.fullmatch(r"[0-9a-f-]+", wanted):
        return []
    rows = conn.execute(sa.select(assessments).where(assessments.c.id.startswith(wanted))
                        .order_by(*_NEWEST_FIRST).limit(50))
    return [_record(row) for row in rows]


def _none_yet(engine: Engine, ref: str, scope_key: str | None) -> str:
    where = " for this scope" if scope_key is not None else ""
    return (f"no assessment{where} in the state store {masked(engine.url)} yet, so '{ref}' names "
            "nothing; run `ccmigrate assess` first with the same --state-store / "
            "CCMIGRATE_STATE_STORE")


def _recent_ids(engine: Engine, n: int = 5) -> str:
    recent = list_assessments(engine, n)
    shown = "; ".join(f"{r.id} ({r.created_at:%Y-%m-%d %H:%M} UTC, {r.vm_count} VMs)"
                      for r in recent)
    return f"most recent: {shown}" if recent else "none stored yet"


def load_vms(engine: Engine, assessment_id: str, *, tags: bool = False) -> pd.DataFrame:
    """The assessment's scored VMs: columns ``tables.VM_FIELDS`` in that order, string dtype,
    rows ordered by ``vm_key``. ``tags=True`` adds a ``tags`` column of dicts (``{}`` for rows
    stored before tags were kept); off by default so diffs and trends don't parse JSON they
    never read."""
    names = [*VM_FIELDS, "tags_json"] if tags else list(VM_FIELDS)
    query = (sa.select(*(assessment_vms.c[name] for name in names))
             .where(assessment_vms.c.assessment_id == assessment_id)
             .order_by(assessment_vms.c.vm_key))
    with engine.connect() as conn:
        exists = conn.execute(sa.select(assessments.c.id)
                              .where(assessments.c.id == assessment_id)).first()
        if exists is None:
            raise InputError(f"no assessment '{assessment_id}' in the state store "
                             f"{masked(engine.url)} ({_recent_ids(engine)})")
        rows = conn.execute(query).all()
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    frame = pd.DataFrame({name: pd.array(list(values), dtype="string")
                          for name, values in zip(VM_FIELDS, columns, strict=False)})
    if tags:
        loads = json.loads
        frame["tags"] = pd.Series([{} if text == "{}" else loads(text) for text in columns[-1]],
                                  dtype=object)
    return frame
