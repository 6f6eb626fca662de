"""The in-flight limit per subscription: found, not guessed. It grows quickly from a small start
while Azure takes every change, shrinks at once when a change is throttled (and the change
rate drops to what Azure took), then grows back slowly; never above its ceiling."""

from __future__ import annotations

from itertools import pairwise

from tasks.migration.concurrency import COOL_DOWN_S, InFlight, Limits, SubscriptionLimit


def test_the_vms_on_their_way_double_while_changes_are_taken_and_stop_at_the_ceiling():
    limit = SubscriptionLimit(ceiling=100, start=8)
    now = 0.0
    for _ in range(8):  # one round trip: every VM in flight had its change taken
        now += 0.01
        limit.accepted(now)
    # The 8 keep their slots while Azure works on their changes; 16 more may be on their way.
    assert limit.allowed == 8 + 16
    for _ in range(500):
        now += 0.01
        limit.accepted(now)
    assert limit.allowed == 100 and limit.rate is None


def test_a_throttle_cuts_the_rate_to_what_azure_took_and_the_limit_to_what_it_keeps_in_flight():
    limit = SubscriptionLimit(ceiling=1000, start=8)
    now = 0.0
    for _ in range(200):  # 20 changes a second taken
        now += 0.05
        limit.accepted(now, change_s=5.0)
    assert limit.allowed == 8 + 2 * 200
    assert limit.throttle(now, in_flight=150, change_s=5.0)
    assert limit.rate is not None and 17 < limit.rate < 19  # 90 % of the 20/s taken
    # What that rate keeps in flight with 5-s changes, with 20 % headroom: about 108.
    assert 100 < limit.allowed < 115
    assert not limit.throttle(now + 1, in_flight=120, change_s=5.0)  # within the cool-down
    cut_rate, cut_limit = limit.rate, limit.allowed
    now += COOL_DOWN_S
    for _ in range(100):  # no more throttling: both probe upwards
        now += 0.1
        limit.accepted(now, change_s=5.0)
    assert limit.rate > cut_rate and limit.allowed > cut_limit


def test_changes_go_out_no_faster_than_the_learned_rate():
    limit = SubscriptionLimit(ceiling=1000)
    for i in range(100):
        limit.accepted(i * 0.1)
    limit.throttle(10.0, in_flight=50)
    sent = []
    now = 10.0
    for _ in range(20):
        at = limit.next_change_at(now)
        limit.sent_change(at)
        sent.append(at)
    gaps = [b - a for a, b in pairwise(sent)]
    assert min(gaps) >= 1 / limit.rate * 0.99


def test_the_wave_vault_and_subscription_limits_all_hold():
    flow = InFlight(Limits(wave=5, per_vault=2, per_subscription=4, adaptive=False))
    assert flow.room("s1", "v1")
    flow.enter("s1", "v1")
    flow.enter("s1", "v1")
    assert not flow.room("s1", "v1")  # the vault is full
    flow.enter("s1", "v2")
    flow.enter("s1", "v3")
    assert not flow.room("s1", "v4")  # the subscription is full
    flow.enter("s2", "v5")
    assert not flow.room("s2", "v6")  # the wave is full
    flow.leave("s1", "v1")
    assert flow.room("s1", "v1") and flow.peak == 5
