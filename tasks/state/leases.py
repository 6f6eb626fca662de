"""Wave leases: at most one runner per wave, across processes and hosts sharing a state store.

A lease is one ``wave_leases`` row: owner (host, pid, a random token), when it was taken and
until when its heartbeat keeps it. A second runner is refused while the lease is live; it takes
the lease over when the heartbeat expired, or when the owner ran on this very machine (same
host, boot and PID namespace, so its pid means the same process) and that process is gone or
its pid now belongs to a newer process. A runner elsewhere cannot see the owner's processes and
waits for the heartbeat to expire (default TTL 60 s).

Acquiring is race-free: it reads the row under the write lock (``BEGIN IMMEDIATE`` on SQLite,
``SELECT ... FOR UPDATE`` on PostgreSQL); a first lease is an INSERT that fails on the primary
key if another runner got there first, and a takeover is an UPDATE conditioned on the old owner's
token, checked by its row count. Times come from each host's clock: hosts sharing a PostgreSQL
store must keep their clocks in sync (NTP) to well within the TTL.
"""

from __future__ import annotations

import functools
import os
import secrets
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

import psutil
import sqlalchemy as sa
from sqlalchemy import Connection, Engine

from ..errors import CcmigrateError, InputError
from .db import write_transaction
from .plans import _require_wave
from .tables import wave_leases

DEFAULT_TTL_S = 60.0
# A pid's process counts as "newer than the lease" only if it started this much after the lease
# was taken: process start times (psutil) and the wall clock may disagree by about a second, and
# wrongly judging a live owner dead would put two runners on one wave.
PID_REUSE_SLACK_S = 5.0
_ACQUIRE_ROUNDS = 10
_STAMP = "%Y-%m-%d %H:%M:%S UTC"


class WaveBusyError(InputError):
    """Another live runner holds the wave's lease (exit 2: nothing was changed)."""

    def __init__(self, message: str, owner: LeaseOwner):
        super().__init__(message)
        self.owner = owner


class LeaseLostError(CcmigrateError):
    """This runner no longer holds its wave's lease: another runner took it over (after this one
    missed its heartbeats) or it was released. The runner must start no further VM."""


@dataclass(frozen=True)
class LeaseOwner:
    """Who holds (or held) a wave's lease; ``str()`` gives ``host:pid`` plus the reason a
    takeover happened, e.g. ``vm-7:4242 (dead)``."""

    host: str
    pid: int
    acquired_at: datetime
    heartbeat_at: datetime
    expires_at: datetime
    reason: str = ""  # why it was taken over: "dead", "pid reused", "heartbeat expired"

    @property
    def runner(self) -> str:
        return f"{self.host}:{self.pid}"

    def __str__(self) -> str:
        return f"{self.runner} ({self.reason})" if self.reason else self.runner


def this_runner() -> str:
    """``host:pid`` of this process: how the journal and leases name a runner."""
    return f"{socket.gethostname()}:{os.getpid()}"


class WaveLease:
    """A held lease on one wave. ``heartbeat()`` keeps it, ``keep_alive()`` does so from a
    background thread, ``release()`` (or leaving a ``with`` block) gives it up."""

    def __init__(self, engine: Engine, plan_id: str, wave: int, *, ttl_s: float, token: str,
                 host: str, pid: int, acquired_at: datetime, expires_at: datetime,
                 took_over_from: LeaseOwner | None):
        self.engine, self.plan_id, self.wave, self.ttl_s = engine, plan_id, wave, ttl_s
        self.token, self.host, self.pid = token, host, pid
        self.acquired_at, self.expires_at = acquired_at, expires_at
        # The previous owner when this lease was taken over, for the runner to report.
        self.took_over_from = took_over_from
        self.lost: LeaseLostError | None = None  # set when a heartbeat found the lease gone
        self.last_heartbeat_error: BaseException | None = None  # e.g. database unreachable
        self._released = False
        self._keeper: KeepAlive | None = None

    @property
    def runner(self) -> str:
        return f"{self.host}:{self.pid}"

    def heartbeat(self) -> datetime:
        """Extend the lease by its TTL from now; return the new expiry. Raises
        ``LeaseLostError`` if another runner holds the lease now (or it was released)."""
        if self._released:
            raise LeaseLostError(f"the lease on wave {self.wave} of plan {self.plan_id} was "
                                 "released by this runner; acquire it again to go on")
        now = _now()
        expires = now + timedelta(seconds=self.ttl_s)
        with write_transaction(self.engine) as conn:
            done = conn.execute(
                sa.update(wave_leases).where(*self._mine())
                .values(heartbeat_at=now, expires_at=expires)).rowcount
            if done != 1:
                self.lost = self._lost_error(conn)
        if self.lost is not None:
            raise self.lost
        self.expires_at = expires
        return expires

    def check(self) -> None:
        """Raise ``LeaseLostError`` if the lease is known lost, or has expired without being
        renewed (say the database was unreachable): call before starting each VM."""
        if self.lost is not None:
            raise self.lost
        if not self._released and _now() >= self.expires_at:
            raise LeaseLostError(
                f"the lease on wave {self.wave} of plan {self.plan_id} expired at "
                f"{self.expires_at:{_STAMP}} without being renewed (last error: "
                f"{self.last_heartbeat_error or 'none'}); another runner may take it over, so "
                "this one starts no further VM; re-run with --resume once the state store is "
                "reachable")

    def release(self) -> None:
        """Give the lease up (idempotent); stops ``keep_alive``. Never removes a lease another
        runner has taken over."""
        keeper, self._keeper = self._keeper, None
        if keeper is not None:
            keeper.stop()
        if self._released:
            return
        with write_transaction(self.engine) as conn:
            conn.execute(sa.delete(wave_leases).where(*self._mine()))
        self._released = True

    def keep_alive(self, interval: float | None = None) -> KeepAlive:
        """Heartbeat from a daemon thread every ``interval`` seconds (default TTL/3) until
        ``release()`` or the end of the ``with`` block the result is used in. A heartbeat that
        finds the lease taken over stops the thread and sets ``lost`` (``check()`` raises it)."""
        if self._keeper is None or not self._keeper.running:
            self._keeper = KeepAlive(self, interval or self.ttl_s / 3)
        return self._keeper

    def __enter__(self) -> WaveLease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _mine(self) -> tuple[Any, ...]:
        c = wave_leases.c
        return c.plan_id == self.plan_id, c.wave == self.wave, c.owner_token == self.token

    def _lost_error(self, conn: Connection) -> LeaseLostError:
        holder = _owner(conn, self.plan_id, self.wave)
        if holder is None:
            who = "nobody holds it now (it was released or its plan deleted)"
        else:
            who = (f"{holder.runner} holds it now (since {holder.acquired_at:{_STAMP}}), after "
                   "this runner missed its heartbeats")
        return LeaseLostError(
            f"lost the lease on wave {self.wave} of plan {self.plan_id}: {who}; this runner "
            "starts no further VM; let the other runner finish, or re-run with --resume once it "
            "has stopped")

    def fence(self, conn: Connection) -> None:
        """Inside a caller's transaction: raise ``LeaseLostError`` unless this lease is still
        held, so a runner that lost its wave cannot write the journal (and so cannot go on to
        change Azure, which it does only after journaling)."""
        c = wave_leases.c
        token = conn.execute(sa.select(c.owner_token).where(
            c.plan_id == self.plan_id, c.wave == self.wave)).scalar()
        if token != self.token:
            self.lost = self._lost_error(conn)
            raise self.lost


class KeepAlive:
    """The heartbeat thread of one lease; a context manager that stops it on exit."""

    def __init__(self, lease: WaveLease, interval: float):
        if interval <= 0:
            raise ValueError(f"keep-alive interval must be > 0, not {interval}")
        self.lease, self.interval = lease, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, daemon=True,
            name=f"lease-{lease.plan_id}-wave-{lease.wave}")
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.lease.heartbeat()
                self.lease.last_heartbeat_error = None
            except LeaseLostError:
                return  # lease.lost is set; the runner sees it at its next check()
            except Exception as err:  # a database hiccup: try again next beat
                self.lease.last_heartbeat_error = err

    def __enter__(self) -> WaveLease:
        return self.lease

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def acquire_wave_lease(engine: Engine, plan_id: str, wave: int, *,
                       ttl_s: float = DEFAULT_TTL_S) -> WaveLease:
    """Take the lease on ``wave`` of ``plan_id`` for this process, for ``ttl_s`` seconds until
    renewed. Takes over a dead or expired owner's lease (``took_over_from`` says whose and
    why); raises ``WaveBusyError`` while a live runner holds it, and ``InputError`` for an
    unknown plan or wave."""
    if ttl_s <= 0:
        raise ValueError(f"lease TTL must be > 0 seconds, not {ttl_s}")
    host, pid, token = socket.gethostname(), os.getpid(), secrets.token_hex(16)
    c = wave_leases.c
    here = (c.plan_id == plan_id, c.wave == wave)
    for _ in range(_ACQUIRE_ROUNDS):
        now = _now()
        expires = now + timedelta(seconds=ttl_s)
        values = {"owner_host": host, "owner_pid": pid, "owner_node": _node(),
                  "owner_token": token, "acquired_at": now, "heartbeat_at": now,
                  "expires_at": expires}
        previous: LeaseOwner | None = None
        with write_transaction(engine) as conn:
            _require_wave(conn, engine, plan_id, wave)
            row = conn.execute(sa.select(wave_leases).where(*here).with_for_update()).first()
            if row is None:
                try:
                    with conn.begin_nested():
                        conn.execute(sa.insert(wave_leases).values(
                            plan_id=plan_id, wave=wave, **values))
                except sa.exc.IntegrityError:
                    continue  # another runner inserted first: look at its lease
            else:
                owner = _owner_of(row)
                reason = _why_gone(row._mapping, now)
                if reason is None:
                    raise WaveBusyError(_busy_message(plan_id, wave, owner), owner)
                taken = conn.execute(sa.update(wave_leases)
                                     .where(*here, c.owner_token == row.owner_token)
                                     .values(**values)).rowcount
                if taken != 1:
                    continue  # someone else took it over meanwhile: look again
                previous = LeaseOwner(owner.host, owner.pid, owner.acquired_at,
                                      owner.heartbeat_at, owner.expires_at, reason)
        return WaveLease(engine, plan_id, wave, ttl_s=ttl_s, token=token, host=host, pid=pid,
                         acquired_at=now, expires_at=expires, took_over_from=previous)
    raise CcmigrateError(f"could not take the lease on wave {wave} of plan {plan_id}: it kept "
                         f"changing hands ({_ACQUIRE_ROUNDS} tries); try again")


def lease_holder(engine: Engine, plan_id: str, wave: int) -> LeaseOwner | None:
    """Who holds the wave's lease now (live or not), or None: for status displays."""
    with engine.connect() as conn:
        return _owner(conn, plan_id, wave)


@contextmanager
def wave_lease(engine: Engine, plan_id: str, wave: int, *, ttl_s: float = DEFAULT_TTL_S,
               interval: float | None = None) -> Iterator[WaveLease]:
    """Acquire, keep alive from a thread, and release at the end: the usual way to hold a
    wave while running it."""
    lease = acquire_wave_lease(engine, plan_id, wave, ttl_s=ttl_s)
    try:
        with lease.keep_alive(interval):
            yield lease
    finally:
        lease.release()


# -- internals --------------------------------------------------------------------------------

def _now() -> datetime:
    return datetime.now(UTC)


@functools.cache
def _node() -> str:
    """Where a pid names a process: host name, boot and PID namespace (containers sharing a
    host name, or the same host after a reboot, are different nodes)."""
    parts = [socket.gethostname()]
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            parts.append(f.read().strip())
    except OSError:
        parts.append(f"boot@{int(psutil.boot_time())}")
    with suppress(OSError):  # no /proc: not Linux, so no PID namespaces either
        parts.append(os.readlink("/proc/self/ns/pid"))
    return "|".join(parts)


def _why_gone(lease: Any, now: datetime) -> str | None:
    """Why the lease's owner no longer counts ("heartbeat expired", "dead", "pid reused"), or
    None if it must be presumed alive."""
    if lease["expires_at"] <= now:
        return "heartbeat expired"
    if lease["owner_node"] != _node():
        return None  # its pid means nothing here: wait for the heartbeat to expire
    return _pid_gone(int(lease["owner_pid"]), lease["acquired_at"])


def _pid_gone(pid: int, acquired_at: datetime) -> str | None:
    if pid <= 0:
        return None  # not a process we can ask about (0 would signal our own group)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return "dead"
    except PermissionError:
        pass  # alive, another user's
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return "dead"
        if proc.create_time() > acquired_at.timestamp() + PID_REUSE_SLACK_S:
            return "pid reused"  # the owner died; a newer process got its pid
    except psutil.NoSuchProcess:
        return "dead"
    except psutil.Error:
        pass  # cannot tell: presume alive
    return None


def _owner_of(row: sa.Row[Any]) -> LeaseOwner:
    m = row._mapping
    return LeaseOwner(m["owner_host"], int(m["owner_pid"]), m["acquired_at"], m["heartbeat_at"],
                      m["expires_at"])


def _owner(conn: Connection, plan_id: str, wave: int) -> LeaseOwner | None:
    c = wave_leases.c
    row = conn.execute(sa.select(wave_leases).where(c.plan_id == plan_id, c.wave == wave)).first()
    return _owner_of(row) if row is not None else None


def _busy_message(plan_id: str, wave: int, owner: LeaseOwner) -> str:
    return (f"wave {wave} of plan {plan_id} is being run by {owner.runner} (lease held since "
            f"{owner.acquired_at:{_STAMP}}, last heartbeat {owner.heartbeat_at:{_STAMP}}, "
            f"expires {owner.expires_at:{_STAMP}} unless renewed); wait for that run to finish, "
            f"or stop it (on {owner.host}: kill {owner.pid}); a dead runner's lease is taken "
            f"over automatically by a re-run or `ccmigrate migrate --plan {plan_id} --wave "
            f"{wave} --resume`")
