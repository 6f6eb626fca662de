"""Wave leases: one runner per wave across processes; a live lease is refused with who holds it
and what to do; a dead, reused-pid or expired owner's lease is taken over and the old holder
finds out at its next heartbeat; keep-alive renews until release."""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from tasks.errors import InputError
from tasks.state import (
    LeaseLostError,
    WaveBusyError,
    acquire_wave_lease,
    lease_holder,
    open_store,
    wave_lease,
)
from tasks.state.leases import _node
from tasks.state.tables import wave_leases

REPO = Path(__file__).resolve().parents[2]
HOST = socket.gethostname()
WAIT_S = 120  # generous: only ever waited on, never asserted

HOLDER = """
import sys, time
from tasks.state import acquire_wave_lease, open_store
engine = open_store(sys.argv[1])
lease = acquire_wave_lease(engine, sys.argv[2], int(sys.argv[3]))
print("held", flush=True)
time.sleep(600)
"""


def _set_lease(engine, plan_id, wave, **values) -> None:
    with engine.begin() as conn:
        conn.execute(sa.update(wave_leases).where(wave_leases.c.plan_id == plan_id,
                                                  wave_leases.c.wave == wave).values(**values))


def test_a_live_lease_is_refused_with_its_owner_and_the_fix(engine, make_plan):
    plan = make_plan()
    held = acquire_wave_lease(engine, plan.id, 2)
    assert held.took_over_from is None and held.runner == f"{HOST}:{os.getpid()}"
    with pytest.raises(WaveBusyError) as err:
        acquire_wave_lease(engine, plan.id, 2)
    message = str(err.value)
    assert f"wave 2 of plan {plan.id} is being run by {HOST}:{os.getpid()}" in message
    assert f"lease held since {held.acquired_at:%Y-%m-%d %H:%M:%S} UTC" in message
    assert f"expires {held.expires_at:%Y-%m-%d %H:%M:%S} UTC unless renewed" in message
    assert f"kill {os.getpid()}" in message and "--resume" in message
    assert err.value.exit_code == 2 and isinstance(err.value, InputError)
    assert err.value.owner.pid == os.getpid()
    # Other waves are independent.
    acquire_wave_lease(engine, plan.id, 3).release()


def _race(url: str, plan_id: str, barrier, results, release) -> None:
    engine = open_store(url)
    try:
        barrier.wait()
        try:
            acquire_wave_lease(engine, plan_id, 1)
            results.put(("won", os.getpid()))
            release.wait(WAIT_S)  # hold it until every contender has tried
        except WaveBusyError as err:
            results.put(("busy", err.owner.pid))
    except BaseException as exc:
        results.put(("error", repr(exc)))
    finally:
        engine.dispose()


def test_processes_racing_for_one_wave_let_exactly_one_win(store_url, make_plan):
    plan = make_plan()
    fork = "fork" in multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if fork else "spawn")
    n = 5
    barrier, results, release = ctx.Barrier(n), ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=_race, args=(store_url, plan.id, barrier, results, release))
             for _ in range(n)]
    for p in procs:
        p.start()
    try:
        outcomes = [results.get(timeout=WAIT_S) for _ in procs]
    finally:
        release.set()
        for p in procs:
            p.join(timeout=WAIT_S)
    winners = [pid for what, pid in outcomes if what == "won"]
    assert len(winners) == 1, outcomes
    assert sorted(outcomes) == sorted([("won", winners[0])] + [("busy", winners[0])] * (n - 1))


def test_lease_of_a_killed_runner_is_taken_over(engine, store_url, make_plan):
    plan = make_plan()
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, store_url, plan.id, "2"],
                              cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    try:
        line = holder.stdout.readline()
        assert line.strip() == "held", holder.stderr.read()
        with pytest.raises(WaveBusyError, match=f"{HOST}:{holder.pid}"):
            acquire_wave_lease(engine, plan.id, 2)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=WAIT_S)  # reaped: no zombie keeps the pid
        holder.stdout.close()
        holder.stderr.close()

    lease = acquire_wave_lease(engine, plan.id, 2)
    assert str(lease.took_over_from) == f"{HOST}:{holder.pid} (dead)"
    assert lease.took_over_from.reason == "dead" and lease.took_over_from.pid == holder.pid
    assert lease_holder(engine, plan.id, 2).pid == os.getpid()


def test_expired_heartbeat_is_taken_over_and_the_old_holder_loses_the_lease(engine, make_plan):
    plan = make_plan()
    stalled = acquire_wave_lease(engine, plan.id, 1)  # alive, but stopped heartbeating
    _set_lease(engine, plan.id, 1, expires_at=datetime.now(UTC) - timedelta(seconds=1))

    newer = acquire_wave_lease(engine, plan.id, 1)
    assert newer.took_over_from.reason == "heartbeat expired"
    assert newer.took_over_from.runner == stalled.runner
    with pytest.raises(LeaseLostError) as err:
        stalled.heartbeat()
    assert f"lost the lease on wave 1 of plan {plan.id}" in str(err.value)
    assert "holds it now" in str(err.value)
    with pytest.raises(LeaseLostError):
        stalled.check()
    stalled.release()  # never removes the new holder's lease
    assert newer.heartbeat() > newer.acquired_at
    assert lease_holder(engine, plan.id, 1) is not None


def test_a_short_ttl_lapses_on_its_own(engine, make_plan):
    plan = make_plan()
    first = acquire_wave_lease(engine, plan.id, 1, ttl_s=0.05)
    deadline = time.monotonic() + WAIT_S
    while True:  # wait until the lease has lapsed: the taker's clock decides
        try:
            second = acquire_wave_lease(engine, plan.id, 1)
            break
        except WaveBusyError:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    assert second.took_over_from.reason == "heartbeat expired"
    with pytest.raises(LeaseLostError):
        first.heartbeat()


def test_lease_whose_pid_now_belongs_to_a_newer_process_is_taken_over(engine, make_plan):
    plan = make_plan()
    acquire_wave_lease(engine, plan.id, 1)
    # As if this process's pid had been the owner's, a day before this process started.
    _set_lease(engine, plan.id, 1, owner_token="old-owner",
               acquired_at=datetime.now(UTC) - timedelta(days=1))
    lease = acquire_wave_lease(engine, plan.id, 1)
    assert lease.took_over_from.reason == "pid reused"


def test_lease_held_on_another_machine_waits_for_its_heartbeat(engine, make_plan):
    plan = make_plan()
    acquire_wave_lease(engine, plan.id, 1)
    dead_here = _dead_pid()
    # Same host name, another PID namespace (a container): its pid means nothing here.
    _set_lease(engine, plan.id, 1, owner_token="elsewhere", owner_pid=dead_here,
               owner_node=_node() + "-other")
    with pytest.raises(WaveBusyError, match=f"{HOST}:{dead_here}"):
        acquire_wave_lease(engine, plan.id, 1)
    _set_lease(engine, plan.id, 1, expires_at=datetime.now(UTC) - timedelta(seconds=1))
    assert acquire_wave_lease(engine, plan.id, 1).took_over_from.reason == "heartbeat expired"


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(timeout=WAIT_S)
    return proc.pid


def test_released_lease_is_free_and_release_is_idempotent(engine, make_plan):
    plan = make_plan()
    with acquire_wave_lease(engine, plan.id, 1) as lease:
        assert lease_holder(engine, plan.id, 1).pid == os.getpid()
    assert lease_holder(engine, plan.id, 1) is None
    lease.release()
    with pytest.raises(LeaseLostError, match="released by this runner"):
        lease.heartbeat()
    again = acquire_wave_lease(engine, plan.id, 1)
    assert again.took_over_from is None


def test_keep_alive_renews_until_release(engine, make_plan):
    plan = make_plan()
    lease = acquire_wave_lease(engine, plan.id, 1, ttl_s=30)
    first_expiry = lease_holder(engine, plan.id, 1).expires_at
    keeper = lease.keep_alive(interval=0.02)
    assert lease.keep_alive() is keeper  # one thread per lease
    deadline = time.monotonic() + WAIT_S
    while lease_holder(engine, plan.id, 1).expires_at <= first_expiry:
        assert time.monotonic() < deadline, "keep-alive never renewed the lease"
        time.sleep(0.02)
    lease.release()
    assert not keeper.running
    assert lease_holder(engine, plan.id, 1) is None
    lease.check()  # a released lease is not "lost"


def test_keep_alive_notices_a_takeover(engine, make_plan):
    plan = make_plan()
    with wave_lease(engine, plan.id, 1, interval=0.02) as lease:
        _set_lease(engine, plan.id, 1, owner_token="another-runner")
        deadline = time.monotonic() + WAIT_S
        while lease.lost is None:
            assert time.monotonic() < deadline, "keep-alive never noticed the takeover"
            time.sleep(0.02)
        with pytest.raises(LeaseLostError, match="holds it now"):
            lease.check()
    # Leaving the block released only what was ours: the other runner keeps its lease.
    assert lease_holder(engine, plan.id, 1) is not None


def test_unknown_wave_or_plan_is_an_input_error(engine, make_plan):
    plan = make_plan(n=4, sizes=(1, 3))
    with pytest.raises(InputError, match=r"has no wave 9; its waves are 1-2"):
        acquire_wave_lease(engine, plan.id, 9)
    with pytest.raises(InputError, match="no plan 'nope'"):
        acquire_wave_lease(engine, "nope", 1)
