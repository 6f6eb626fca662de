"""The bucket and reservation math of ``ArmPacer``, on a fake clock: nothing really sleeps."""

from __future__ import annotations

import threading

import pytest

from tasks.azure.pacing import ArmPacer, Bucket, retry_after_seconds, subscription_and_kind

SUB = "11111111-1111-4111-8111-111111111111"
OTHER = "22222222-2222-4222-8222-222222222222"


class FakeTime:
    """A clock that only moves when someone sleeps (or the test says so)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def _pacer(t: FakeTime, *, reads=(20, 10.0), writes=(5, 2.0), headroom=1.0) -> ArmPacer:
    return ArmPacer({"reads": reads, "writes": writes, "deletes": writes}, headroom=headroom,
                    clock=t.clock, sleep=t.sleep)


def test_a_full_bucket_lets_a_burst_through_then_queues_one_refill_apart():
    t = FakeTime()
    bucket = Bucket(10, 5.0, headroom=1.0, clock=t.clock)
    delays = [bucket.reserve().delay for _ in range(13)]
    # 9 go at once (one token of headroom is never spent), then one every 1/5 s, in order.
    assert delays[:9] == [0.0] * 9
    assert delays[9:] == pytest.approx([0.2, 0.4, 0.6, 0.8])


def test_tokens_come_back_at_the_refill_rate_but_never_beyond_capacity():
    t = FakeTime()
    bucket = Bucket(10, 5.0, headroom=0.0, clock=t.clock)
    for _ in range(10):
        bucket.reserve()
    t.now += 1.0  # five tokens back
    assert [bucket.reserve().delay for _ in range(6)] == pytest.approx([0] * 5 + [0.2])
    t.now += 3600  # idle for an hour: still only a full bucket
    assert [bucket.reserve().delay for _ in range(11)] == pytest.approx([0] * 10 + [0.2])


def test_headroom_never_blocks_a_bucket_of_one():
    t = FakeTime()
    bucket = Bucket(1, 1.0, headroom=1.0, clock=t.clock)
    assert bucket.reserve().delay == 0.0
    assert bucket.reserve().delay == pytest.approx(1.0)


def test_server_header_lower_than_our_count_wins():
    t = FakeTime()
    bucket = Bucket(20, 10.0, headroom=0.0, clock=t.clock)
    first = bucket.reserve()
    # Someone else spent the bucket: the server had 2 tokens left after our request.
    bucket.observe(2, first)
    assert [bucket.reserve().delay for _ in range(4)] == pytest.approx([0, 0, 0.1, 0.2])


def test_server_header_counts_requests_reserved_after_the_one_it_answers():
    t = FakeTime()
    bucket = Bucket(20, 10.0, headroom=0.0, clock=t.clock)
    first = bucket.reserve()
    for _ in range(3):  # three more went out before the first answer arrived
        bucket.reserve()
    bucket.observe(5, first)  # 5 left after the first: 2 after the other three
    assert [bucket.reserve().delay for _ in range(3)] == pytest.approx([0, 0, 0.1])


def test_server_header_higher_than_our_count_changes_nothing():
    t = FakeTime()
    bucket = Bucket(20, 10.0, headroom=0.0, clock=t.clock)
    reservations = [bucket.reserve() for _ in range(20)]
    bucket.observe(19, reservations[-1])  # stale or more generous: we stay careful
    assert bucket.reserve().delay == pytest.approx(0.1)


def test_429_holds_the_bucket_for_retry_after_and_voids_queued_slots():
    t = FakeTime()
    bucket = Bucket(10, 5.0, headroom=1.0, clock=t.clock)
    for _ in range(9):
        bucket.reserve()
    queued = bucket.reserve()
    assert queued.delay == pytest.approx(0.2)
    bucket.drain(3.0)
    assert not bucket.valid(queued)  # its holder must queue again
    again = [bucket.reserve().delay for _ in range(3)]
    assert again == pytest.approx([3.0, 3.2, 3.4])


def test_a_later_429_with_a_shorter_retry_after_does_not_reopen_earlier():
    t = FakeTime()
    bucket = Bucket(10, 5.0, headroom=0.0, clock=t.clock)
    bucket.drain(10.0)
    t.now += 1.0
    bucket.drain(1.0)
    assert bucket.reserve().delay == pytest.approx(9.0)


def test_headers_from_before_a_429_are_ignored():
    t = FakeTime()
    bucket = Bucket(10, 5.0, headroom=0.0, clock=t.clock)
    old = bucket.reserve()
    bucket.drain(1.0)
    bucket.observe(0, old)  # older news than the 429's Retry-After
    assert bucket.reserve().delay == pytest.approx(1.0)


def test_pacer_waits_and_counts_per_subscription_and_kind():
    t = FakeTime()
    pacer = _pacer(t)
    for _ in range(25):
        pacer.wait_turn(SUB, "reads")
    for _ in range(5):
        pacer.wait_turn(OTHER, "reads")
    for _ in range(3):
        pacer.wait_turn(SUB, "writes")
    stats = pacer.stats()
    assert stats["subscriptions"][SUB]["reads"]["requests"] == 25
    assert stats["subscriptions"][SUB]["reads"]["waited"] == 6  # 19 at once, then one each
    assert stats["subscriptions"][OTHER]["reads"]["waited"] == 0
    assert stats["subscriptions"][SUB]["writes"]["waited"] == 0
    assert stats["reads"]["requests"] == 30 and stats["writes"]["requests"] == 3
    assert stats["reads"]["wait_s"] == pytest.approx(0.6)
    assert sum(t.slept) == pytest.approx(0.6)


def test_reads_writes_and_deletes_are_separate_buckets():
    t = FakeTime()
    pacer = _pacer(t, writes=(3, 1.0))
    for _ in range(2):
        pacer.wait_turn(SUB, "writes")
    pacer.wait_turn(SUB, "writes")  # the write bucket is now behind
    assert pacer.stats()["writes"]["waited"] == 1
    for kind in ("reads", "deletes"):
        pacer.wait_turn(SUB, kind)
        assert pacer.stats()[kind]["waited"] == 0


def test_pacer_follows_remaining_header_and_429_from_responses():
    t = FakeTime()
    pacer = _pacer(t)
    bucket, reservation = pacer.wait_turn(SUB, "reads")
    pacer.learn(bucket, reservation, "reads", 200,
                {"x-ms-ratelimit-remaining-subscription-reads": "1"})
    pacer.wait_turn(SUB, "reads")  # uses the last token the server said it had (less headroom)
    assert t.slept == pytest.approx([0.1])
    bucket, reservation = pacer.wait_turn(SUB, "reads")
    pacer.learn(bucket, reservation, "reads", 429,
                {"x-ms-ratelimit-remaining-subscription-reads": "0", "Retry-After": "2"})
    before = t.now
    pacer.wait_turn(SUB, "reads")
    assert t.now - before == pytest.approx(2.0)
    assert pacer.stats()["reads"]["throttled"] == 1


def test_resource_provider_429_does_not_hold_the_subscription():
    t = FakeTime()
    pacer = _pacer(t)
    bucket, reservation = pacer.wait_turn(SUB, "reads")
    # Recovery Services' own limit: ARM's bucket still shows tokens left.
    pacer.learn(bucket, reservation, "reads", 429,
                {"x-ms-ratelimit-remaining-subscription-reads": "15", "Retry-After": "30"})
    pacer.wait_turn(SUB, "reads")
    assert t.slept == []
    assert pacer.stats()["reads"]["throttled"] == 1


def test_concurrent_reservations_queue_without_sharing_a_slot():
    t = FakeTime()  # frozen: every delay is relative to the same instant
    bucket = Bucket(10, 100.0, headroom=0.0, clock=t.clock)
    delays: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        mine = [bucket.reserve().delay for _ in range(50)]
        with lock:
            delays.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    slots = sorted(round(d * 100) for d in delays)
    assert slots == [0] * 10 + list(range(1, 391))


@pytest.mark.parametrize(("method", "url", "expected"), [
    ("GET", f"https://management.azure.com/subscriptions/{SUB.upper()}/resourceGroups/rg/"
            "providers/Microsoft.Compute/virtualMachines/vm?api-version=2024-07-01",
     (SUB, "reads")),
    ("HEAD", f"https://h/SUBSCRIPTIONS/{SUB}/resourcegroups/rg", (SUB, "reads")),
    ("PUT", f"https://h/subscriptions/{SUB}/x", (SUB, "writes")),
    ("patch", f"https://h/subscriptions/{SUB}/x", (SUB, "writes")),
    ("POST", f"https://h/subscriptions/{SUB}/x/backup", (SUB, "writes")),
    ("DELETE", f"https://h/subscriptions/{SUB}/x", (SUB, "deletes")),
    ("POST", "https://h/providers/Microsoft.ResourceGraph/resources?api-version=2022-10-01",
     None),
    ("POST", "https://login.microsoftonline.com/tenant/oauth2/v2.0/token", None),
    ("GET", "https://h/subscriptions?api-version=2022-12-01", None),
    ("OPTIONS", f"https://h/subscriptions/{SUB}/x", None),
])
def test_requests_map_to_a_subscription_and_kind(method, url, expected):
    assert subscription_and_kind(method, url) == expected


def test_retry_after_forms():
    assert retry_after_seconds({"Retry-After": "7"}) == 7.0
    assert retry_after_seconds({"retry-after-ms": "1500", "Retry-After": "7"}) == 1.5
    assert retry_after_seconds({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert retry_after_seconds({}) is None
    assert retry_after_seconds({"Retry-After": "soon"}) is None


def test_the_global_header_binds_when_other_principals_spent_the_subscription_down():
    t = FakeTime()
    pacer = _pacer(t)
    bucket, reservation = pacer.wait_turn(SUB, "reads")
    # Our own bucket has plenty; the global one (all principals together) has one token.
    pacer.learn(bucket, reservation, "reads", 200,
                {"x-ms-ratelimit-remaining-subscription-reads": "18",
                 "x-ms-ratelimit-remaining-subscription-global-reads": "1"})
    pacer.wait_turn(SUB, "reads")
    assert t.slept == pytest.approx([0.1])  # waited for the global count, less headroom


def test_a_provider_429_holds_that_provider_only_until_its_retry_after():
    t = FakeTime()
    pacer = _pacer(t)
    pacer.hold_provider(SUB, "Microsoft.RecoveryServices", 120)
    pacer.wait_provider(SUB, "Microsoft.Compute")  # another provider goes on at once
    pacer.wait_provider(OTHER, "Microsoft.RecoveryServices")  # so does another subscription
    assert t.slept == []
    pacer.wait_provider(SUB, "microsoft.recoveryservices")
    assert sum(t.slept) == pytest.approx(120.0)
    assert pacer.stats()["provider_waits"] == 1
