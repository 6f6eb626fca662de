"""The per-VM journal of a plan: where every VM is, written before every change in Azure.

One ``journal`` row per VM of the plan (created ``pending`` with the plan) says which policy
protects it; ``journal_events`` keeps every change, append-only, so an auditor can replay a
wave. Every ``Journal`` write is one transaction, committed before the method returns: the wave
runner calls it *before* each PUT, so after a crash the journal never claims less than Azure
did. ``Journal.batch()`` groups many VMs' writes into one transaction (the wave engine commits
the intents of all the changes it is about to send, then sends them): the same checks, one
commit, and a write the VM's state refuses is reported for that VM without holding back the
others. For SQLite, open the engine with ``open_store(url, synchronous="FULL")`` so a commit also
survives a power cut.

A VM's life (status / step)::

    pending --begin--> in_progress/intent --step--> put_sent -> operation_done -> verified
        [-> backup_verified] --finish--> done
    in_progress --step rollback_intent (or begin_rollback)--> rollback_put_sent -> ...
        -> rollback_verified --finish--> rolled_back
    in_progress/intent (nothing reached Azure) --finish--> rolled_back
    in_progress (any step) --finish--> rollback_failed
    done | rollback_failed --begin_rollback--> in_progress/rollback_intent   (ccmigrate rollback)
    pending | skipped | rolled_back --begin--> in_progress (a new attempt)
    pending | skipped | rolled_back | in_progress/intent --skip--> skipped

``intent`` means a PUT may be on its way: the live runner finishes ``rolled_back`` from it only
when Azure refused the PUT; a resume reads Azure for every ``in_progress`` VM, ``intent``
included, before deciding.

Anything else (a done VM begun again, a step after the VM finished, ``done`` before
``verified``, a migration step after rollback began) is refused with ``JournalTransitionError``:
such a call is a runner bug or a second runner, and must not reach Azure.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy import Connection, Engine

from ..errors import CcmigrateError, InputError
from .db import masked, write_transaction
from .leases import this_runner
from .plans import _frame, _require_plan, _require_wave
from .tables import journal, journal_events, plan_vms

if TYPE_CHECKING:
    from .leases import WaveLease

STATUSES = ("pending", "in_progress", "done", "rolled_back", "skipped", "rollback_failed")
FINISH_STATUSES = ("done", "rolled_back", "rollback_failed")
FORWARD_STEPS = ("intent", "put_sent", "operation_done", "verified", "backup_verified")
ROLLBACK_STEPS = ("rollback_intent", "rollback_put_sent", "rollback_operation_done",
                  "rollback_verified")
STEPS = FORWARD_STEPS + ROLLBACK_STEPS
_RANK = {step: i for i, step in enumerate(STEPS)}
_BEGIN_FROM = ("pending", "skipped", "rolled_back")
_ROLLBACK_FROM = ("in_progress", "done", "rollback_failed")
_SKIP_FROM = ("pending", "skipped", "rolled_back")

# entries(): the journal joined with the plan's identity columns, in this order.
ENTRY_COLUMNS: tuple[str, ...] = (
    "wave", "position", "vm_key", "vm_id", "vm_name", "subscription_id", "vault", "vault_id",
    "item_id", "status", "step", "original_policy_id", "target_policy_id", "operation_id",
    "job_ids", "error_code", "error_message", "rollback_outcome", "attempt", "started_at",
    "updated_at", "finished_at", "runner",
)
EVENT_COLUMNS: tuple[str, ...] = ("id", "vm_key", "at", "status", "step", "runner", "detail")
_TIMES = {"started_at", "updated_at", "finished_at", "at"}


class JournalTransitionError(CcmigrateError):
    """A journal change that the VM's current status or step does not allow."""


@dataclass(frozen=True)
class JournalEntry:
    """One VM's journal row, as committed."""

    plan_id: str
    vm_key: str
    wave: int
    status: str
    step: str
    original_policy_id: str | None
    target_policy_id: str | None
    operation_id: str | None
    job_ids: tuple[str, ...]
    error_code: str | None
    error_message: str | None
    rollback_outcome: str | None
    attempt: int
    started_at: datetime | None
    updated_at: datetime | None
    finished_at: datetime | None
    runner: str | None


class Journal:
    """The journal of one plan as written by one runner (``host:pid`` by default).

    With ``lease``, every write first checks in the same transaction that the lease is still
    held and that the VM is in the lease's wave, so a runner that lost its wave to another
    cannot journal (and therefore cannot change Azure) any further.
    """

    def __init__(self, engine: Engine, plan_id: str, runner: str | None = None, *,
                 lease: WaveLease | None = None):
        if lease is not None and lease.plan_id != plan_id:
            raise ValueError(f"lease is for plan {lease.plan_id}, not {plan_id}")
        self.engine, self.plan_id = engine, plan_id
        self.runner = runner or this_runner()
        self.lease = lease
        with engine.connect() as conn:
            _require_plan(conn, engine, plan_id)

    def batch(self) -> JournalBatch:
        """A batch of writes (the same methods as here, returning None), committed together by
        ``JournalBatch.commit``."""
        return JournalBatch(self)

    # -- writes: one committed transaction each ----------------------------------------------

    def begin(self, vm_key: str, *, original_policy_id: str | None,
              target_policy_id: str | None) -> JournalEntry:
        """Intent to move the VM: ``in_progress`` / ``intent``, attempt + 1, with the policy it
        is on now (None when unprotected) and the one it moves to. Call before the PUT."""
        def change(row: dict[str, Any], now: datetime) -> dict[str, Any]:
            if row["status"] not in _BEGIN_FROM:
                raise self._refused(row, "begin migrating it", _BEGIN_HINT.get(row["status"], ""))
            return {"status": "in_progress", "step": "intent", "attempt": row["attempt"] + 1,
                    "original_policy_id": original_policy_id,
                    "target_policy_id": target_policy_id, "operation_id": None,
                    "job_ids_json": "[]", "error_code": None, "error_message": None,
                    "rollback_outcome": None, "started_at": now, "finished_at": None}

        return self._write(vm_key, change, {"original_policy_id": original_policy_id,
                                             "target_policy_id": target_policy_id})

    def begin_rollback(self, vm_key: str, *, reason: str | None = None) -> JournalEntry:
        """Intent to put the VM back on its journaled original (or rollback) policy:
        ``in_progress`` / ``rollback_intent``. From ``in_progress`` this switches a failing
        migration to its rollback; from ``done`` or ``rollback_failed`` it starts a new attempt
        (``ccmigrate rollback``, or retrying a failed rollback)."""
        def change(row: dict[str, Any], now: datetime) -> dict[str, Any]:
            if row["status"] not in _ROLLBACK_FROM:
                raise self._refused(row, "roll it back",
                                    "it was never moved from its original policy"
                                    if row["status"] != "rolled_back" else
                                    "it is already back on its original policy")
            if row["status"] == "in_progress":
                _check_step_order(self, row, "rollback_intent")
                return {"step": "rollback_intent"}
            return {"status": "in_progress", "step": "rollback_intent",
                    "attempt": row["attempt"] + 1, "operation_id": None, "error_code": None,
                    "error_message": None, "rollback_outcome": None, "started_at": now,
                    "finished_at": None}

        return self._write(vm_key, change, {"reason": reason} if reason else {})

    def step(self, vm_key: str, step: str, *, operation_id: str | None = None,
             job_id: str | None = None, error_code: str | None = None,
             error_message: str | None = None,
             detail: dict[str, Any] | None = None) -> JournalEntry:
        """The VM reached ``step`` (one of ``STEPS``; never backwards, never from rollback back
        to migration). ``operation_id`` replaces the stored one, ``job_id`` is appended to the
        job ids, ``error_*`` note a problem met on the way; ``detail`` goes to the history."""
        if step not in _RANK:
            raise ValueError(f"unknown journal step {step!r}; one of {', '.join(STEPS)}")

        def change(row: dict[str, Any], now: datetime) -> dict[str, Any]:
            if row["status"] != "in_progress":
                raise self._refused(row, f"record step {step}",
                                    "only a VM in progress moves through steps")
            _check_step_order(self, row, step)
            values: dict[str, Any] = {"step": step}
            if operation_id is not None:
                values["operation_id"] = operation_id
            if job_id is not None:
                job_ids = json.loads(row["job_ids_json"])
                if job_id not in job_ids:
                    values["job_ids_json"] = json.dumps([*job_ids, job_id])
            if error_code is not None:
                values["error_code"] = error_code
            if error_message is not None:
                values["error_message"] = error_message
            return values

        given = {"operation_id": operation_id, "job_id": job_id, "error_code": error_code,
                 "error_message": error_message}
        return self._write(vm_key, change,
                           {**{k: v for k, v in given.items() if v is not None}, **(detail or {})})

    def finish(self, vm_key: str, status: str, *, error_code: str | None = None,
               error_message: str | None = None,
               rollback_outcome: str | None = None) -> JournalEntry:
        """The VM's outcome: ``done`` (only after ``verified``), ``rolled_back`` (back on its
        original policy: after ``rollback_verified``, or at ``intent`` when nothing reached
        Azure, e.g. the PUT was refused) or ``rollback_failed`` (needs a person: the error says
        why)."""
        if status not in FINISH_STATUSES:
            raise ValueError(f"a VM finishes {', '.join(FINISH_STATUSES)}, not {status!r} "
                             "(skip() skips)")

        def change(row: dict[str, Any], now: datetime) -> dict[str, Any]:
            if row["status"] != "in_progress":
                raise self._refused(row, f"finish it as {status}",
                                    "only a VM in progress can finish")
            current = row["step"]
            if status == "done" and current not in ("verified", "backup_verified"):
                raise self._refused(row, "finish it as done",
                                    "a VM is done only after its new policy was verified")
            if status == "rolled_back" and current not in ("intent", "rollback_verified"):
                raise self._refused(row, "finish it as rolled_back",
                                    "once a request may have reached Azure, the VM counts as "
                                    "rolled back only after its original policy was verified "
                                    "(step rollback_verified)")
            values: dict[str, Any] = {"status": status, "finished_at": now}
            if error_code is not None:
                values["error_code"] = error_code
            if error_message is not None:
                values["error_message"] = error_message
            if rollback_outcome is not None:
                values["rollback_outcome"] = rollback_outcome
            return values

        given = {"error_code": error_code, "error_message": error_message,
                 "rollback_outcome": rollback_outcome}
        return self._write(vm_key, change, {k: v for k, v in given.items() if v is not None})

    def skip(self, vm_key: str, reason: str, *, code: str | None = None) -> JournalEntry:
        """Leave the VM as it is, with the reason (stored as ``error_message``, ``code`` as
        ``error_code``): no longer ready, an operation or backup running on it, ... Allowed
        before anything was sent to Azure in this attempt (``intent`` at most)."""
        def change(row: dict[str, Any], now: datetime) -> dict[str, Any]:
            at_intent = row["status"] == "in_progress" and row["step"] == "intent"
            if row["status"] not in _SKIP_FROM and not at_intent:
                raise self._refused(row, "skip it",
                                    "a request may already be in Azure; finish or roll it back"
                                    if row["status"] == "in_progress"
                                    else "it already has an outcome")
            return {"status": "skipped", "error_code": code, "error_message": reason,
                    "finished_at": now}

        return self._write(vm_key, change, {"reason": reason, **({"code": code} if code else {})})

    # -- reads -----------------------------------------------------------------------------

    def entry(self, vm_key: str) -> JournalEntry:
        """One VM's journal row; an ``InputError`` if the VM is not in the plan."""
        with self.engine.connect() as conn:
            return _entry(self._row(conn, vm_key.lower()))

    def entries(self, wave: int | None = None) -> pd.DataFrame:
        """The journal (of one wave when given), with each VM's identity from the plan:
        ``ENTRY_COLUMNS``, rows in (wave, position) order; ``job_ids`` as lists, times UTC."""
        return self._entries(wave)

    def in_progress(self, wave: int | None = None) -> pd.DataFrame:
        """The VMs a resume must reconcile (``in_progress``: a request may be in Azure), as
        ``entries``."""
        return self._entries(wave, status="in_progress")

    def counts(self, wave: int | None = None) -> dict[str, int]:
        """VMs per status (every status, 0 included), of one wave or the whole plan."""
        j = journal.c
        query = (sa.select(j.status, sa.func.count()).where(j.plan_id == self.plan_id)
                 .group_by(j.status))
        with self.engine.connect() as conn:
            if wave is not None:
                _require_wave(conn, self.engine, self.plan_id, wave)
                query = query.where(j.wave == wave)
            found = {status: int(n) for status, n in conn.execute(query)}
        return {status: found.get(status, 0) for status in STATUSES} | found

    def events(self, vm_key: str | None = None) -> pd.DataFrame:
        """The history, oldest first (of one VM when given): ``EVENT_COLUMNS``, ``detail`` as
        dicts holding what each call recorded (policies, operation and job ids, errors)."""
        e = journal_events.c
        query = (sa.select(e.id, e.vm_key, e.at, e.status, e.step, e.runner, e.detail_json)
                 .where(e.plan_id == self.plan_id).order_by(e.id))
        if vm_key is not None:
            query = query.where(e.vm_key == vm_key.lower())
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        frame = _frame(EVENT_COLUMNS, rows, ints={"id"}, objects={"at", "detail"})
        frame["detail"] = [json.loads(text) for text in frame["detail"]]
        frame["at"] = pd.to_datetime(pd.Series(frame["at"], dtype=object), utc=True)
        return frame

    # -- internals -------------------------------------------------------------------------

    def _write(self, vm_key: str, change: Any, detail: dict[str, Any]) -> JournalEntry:
        """Read the row under the write lock, let ``change`` check the transition and say what
        to set, update it and append the event: one transaction, committed on return."""
        key = vm_key.lower()
        pending = getattr(self, "_pending", None)
        if pending is not None:  # a JournalBatch's view: queue the write
            pending.append((key, change, detail))
            return None  # type: ignore[return-value]
        now = datetime.now(UTC)
        with write_transaction(self.engine) as conn:
            if self.lease is not None:
                self.lease.fence(conn)
            row = dict(self._row(conn, key, lock=True))
            if self.lease is not None and row["wave"] != self.lease.wave:
                raise JournalTransitionError(
                    f"VM {key} is in wave {row['wave']} of plan {self.plan_id}, but this runner "
                    f"holds the lease of wave {self.lease.wave} only")
            values = change(row, now)
            values.update(updated_at=now, runner=self.runner)
            conn.execute(sa.update(journal).where(journal.c.plan_id == self.plan_id,
                                                  journal.c.vm_key == key).values(**values))
            row.update(values)
            conn.execute(sa.insert(journal_events).values(
                plan_id=self.plan_id, vm_key=key, at=now, status=row["status"],
                step=row["step"], runner=self.runner,
                detail_json=json.dumps(detail, sort_keys=True, default=str)))
        return _entry(row)

    def _row(self, conn: Connection, key: str, *, lock: bool = False) -> Any:
        query = sa.select(journal).where(journal.c.plan_id == self.plan_id,
                                         journal.c.vm_key == key)
        row = conn.execute(query.with_for_update() if lock else query).first()
        if row is None:
            raise InputError(f"VM {key} is not in plan {self.plan_id} (state store "
                             f"{masked(self.engine.url)}); name a VM of the plan (see plan.csv)")
        return row._mapping

    def _refused(self, row: dict[str, Any], action: str, why: str) -> JournalTransitionError:
        step = f", step {row['step']}" if row["step"] else ""
        by = f", last written by {row['runner']}" if row.get("runner") else ""
        return JournalTransitionError(
            f"cannot {action}: VM {row['vm_key']} of plan {self.plan_id} is {row['status']}"
            f"{step} (attempt {row['attempt']}{by}); {why}")

    def _entries(self, wave: int | None, status: str | None = None) -> pd.DataFrame:
        j, v = journal.c, plan_vms.c
        columns = [j[name] if name in journal.c else v[name]
                   for name in ENTRY_COLUMNS if name != "job_ids"]
        columns.insert(ENTRY_COLUMNS.index("job_ids"), j.job_ids_json)
        query = (sa.select(*columns)
                 .join_from(journal, plan_vms, sa.and_(j.plan_id == v.plan_id,
                                                       j.vm_key == v.vm_key))
                 .where(j.plan_id == self.plan_id).order_by(j.wave, v.position))
        if status is not None:
            query = query.where(j.status == status)
        with self.engine.connect() as conn:
            if wave is not None:
                _require_wave(conn, self.engine, self.plan_id, wave)
                query = query.where(j.wave == wave)
            rows = conn.execute(query).all()
        frame = _frame(ENTRY_COLUMNS, rows, ints={"wave", "position", "attempt"},
                       objects={"job_ids", *_TIMES})
        frame["job_ids"] = [json.loads(text) for text in frame["job_ids"]]
        for name in _TIMES & set(ENTRY_COLUMNS):
            frame[name] = pd.to_datetime(pd.Series(frame[name], dtype=object), utc=True)
        return frame


class JournalBatch:
    """Many VMs' journal writes, committed in one transaction (``begin``, ``step``,
    ``finish``, ``skip`` and ``begin_rollback`` as on ``Journal``). Nothing is written before
    ``commit``; a caller sends to Azure only what ``commit`` returned without an error."""

    def __init__(self, owner: Journal) -> None:
        self._owner = owner
        self._view = Journal.__new__(Journal)
        self._view.__dict__.update(owner.__dict__)
        self._view._pending = []  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> Any:
        if name in ("begin", "step", "finish", "skip", "begin_rollback"):
            return getattr(self._view, name)
        raise AttributeError(name)

    def __len__(self) -> int:
        return len(self._view._pending)  # type: ignore[attr-defined]

    def commit(self) -> dict[str, CcmigrateError]:
        """Write every queued change in one transaction; per VM (lower key), the error that
        refused its change (all its changes in the batch are dropped with it). A lost lease
        refuses them all (``LeaseLostError`` raised)."""
        ops: list[tuple[str, Any, dict[str, Any]]] = self._view._pending  # type: ignore
        self._view._pending = []  # type: ignore[attr-defined]
        if not ops:
            return {}
        owner = self._owner
        keys = sorted({key for key, _, _ in ops})
        refused: dict[str, CcmigrateError] = {}
        now = datetime.now(UTC)
        with write_transaction(owner.engine) as conn:
            if owner.lease is not None:
                owner.lease.fence(conn)
            rows: dict[str, dict[str, Any]] = {}
            for part in range(0, len(keys), 500):
                query = sa.select(journal).where(journal.c.plan_id == owner.plan_id,
                                                 journal.c.vm_key.in_(keys[part:part + 500]))
                for row in conn.execute(query.with_for_update()):
                    rows[row._mapping["vm_key"]] = dict(row._mapping)
            changed: dict[str, dict[str, Any]] = {}
            events: list[dict[str, Any]] = []
            for key, change, detail in ops:
                if key in refused:
                    continue
                row = rows.get(key)
                try:
                    if row is None:
                        raise InputError(f"VM {key} is not in plan {owner.plan_id}")
                    if owner.lease is not None and row["wave"] != owner.lease.wave:
                        raise JournalTransitionError(
                            f"VM {key} is in wave {row['wave']} of plan {owner.plan_id}, but "
                            f"this runner holds the lease of wave {owner.lease.wave} only")
                    values = change(row, now)
                except CcmigrateError as err:
                    refused[key] = err
                    continue
                values.update(updated_at=now, runner=owner.runner)
                row.update(values)
                changed.setdefault(key, {}).update(values)
                events.append({"plan_id": owner.plan_id, "vm_key": key, "at": now,
                               "status": row["status"], "step": row["step"],
                               "runner": owner.runner,
                               "detail_json": json.dumps(detail, sort_keys=True, default=str)})
            for key, values in changed.items():
                if key in refused:
                    continue
                conn.execute(sa.update(journal).where(journal.c.plan_id == owner.plan_id,
                                                      journal.c.vm_key == key).values(**values))
            events = [e for e in events if e["vm_key"] not in refused]
            if events:
                conn.execute(sa.insert(journal_events), events)
        return refused


_BEGIN_HINT = {
    "done": "a done VM is on its target policy and is not migrated again (to undo it: "
            "`ccmigrate rollback`)",
    "in_progress": "a VM in progress is reconciled (resumed), not begun again",
    "rollback_failed": "its rollback failed; retry the rollback (begin_rollback) before "
                       "migrating it again",
}


def _check_step_order(journal_: Journal, row: dict[str, Any], step: str) -> None:
    current = row["step"]
    if current not in _RANK:
        return
    backwards = _RANK[step] < _RANK[current]
    if backwards:
        why = ("a rollback never returns to migrating" if current in ROLLBACK_STEPS
               and step in FORWARD_STEPS else f"step {step} comes before {current}")
        raise journal_._refused(row, f"record step {step}", why)


def _entry(row: Any) -> JournalEntry:
    m = dict(row)
    return JournalEntry(
        plan_id=m["plan_id"], vm_key=m["vm_key"], wave=int(m["wave"]), status=m["status"],
        step=m["step"], original_policy_id=m["original_policy_id"],
        target_policy_id=m["target_policy_id"], operation_id=m["operation_id"],
        job_ids=tuple(json.loads(m["job_ids_json"])), error_code=m["error_code"],
        error_message=m["error_message"], rollback_outcome=m["rollback_outcome"],
        attempt=int(m["attempt"]), started_at=m["started_at"], updated_at=m["updated_at"],
        finished_at=m["finished_at"], runner=m["runner"])


MIGRATION_COLUMNS: tuple[str, ...] = (
    "vm_key", "plan_id", "wave", "status", "step", "target_policy", "error_code",
    "error_message", "rollback_outcome", "updated_at",
)


def latest_by_vm(engine: Engine) -> pd.DataFrame:
    """Each VM's most recent journal row across all plans (VMs never begun are left out): what
    the readiness workbook's Migration sheet shows next to an assessment."""
    j, v = journal.c, plan_vms.c
    query = (sa.select(j.vm_key, j.plan_id, j.wave, j.status, j.step, v.target_policy,
                       j.error_code, j.error_message, j.rollback_outcome, j.updated_at)
             .join_from(journal, plan_vms, sa.and_(j.plan_id == v.plan_id,
                                                   j.vm_key == v.vm_key))
             .where(j.status != "pending")
             .order_by(j.vm_key, j.updated_at.desc()))
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    frame = pd.DataFrame([tuple(r) for r in rows], columns=list(MIGRATION_COLUMNS))
    return frame.drop_duplicates("vm_key").reset_index(drop=True)
