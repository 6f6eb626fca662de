"""Client-side pacing under ARM's per-subscription request buckets (api-notes section 5).

ARM keeps a token bucket per subscription and operation kind and answers 429 once it is empty.
The SDK's RetryPolicy absorbs those, but every 429 is a wasted round trip followed by idle
waiting, and a parallel wave keeps bouncing off the limit. ``ArmPacer`` mirrors each bucket and
makes a request wait *before* it is sent until the bucket would let it through. The server's
remaining-quota header corrects the mirror (other clients of the same principal spend from the
same bucket), and a 429 stops the subscription's requests of that kind until Retry-After passes.

It runs in the pipeline after the RetryPolicy (as ``custom_hook_policy``), so every HTTP attempt,
retries included, is paced. It subclasses ``CustomHookPolicy`` so per-call ``raw_request_hook``
and ``raw_response_hook`` keep working. It sleeps in ``on_request``: sync pipelines only.
"""

from __future__ import annotations

import email.utils
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import CustomHookPolicy

KINDS = ("reads", "writes", "deletes")
_KIND_OF_METHOD = {"GET": "reads", "HEAD": "reads", "DELETE": "deletes",
                   "PUT": "writes", "PATCH": "writes", "POST": "writes"}
_SUBSCRIPTION = re.compile(r"^/subscriptions/([^/]+)", re.IGNORECASE)
_PROVIDER = re.compile(r"/providers/([^/]+)", re.IGNORECASE)
_CONTEXT_KEY = "ccmigrate_arm_pacing"
# A 429 without any Retry-After: ARM always sends one; one second is its usual answer.
_DEFAULT_RETRY_AFTER = 1.0


@dataclass(frozen=True)
class Reservation:
    """A slot in one bucket: send after ``delay`` seconds, if no 429 voided ``epoch`` since."""

    delay: float
    epoch: int
    seq: int


class Bucket:
    """A mirror of one ARM bucket: ``capacity`` tokens, ``refill`` per second, starting full.

    ``tokens`` may go negative: each token below zero is a request that reserved a slot and is
    sleeping until it comes, so later requests queue behind it. ``headroom`` tokens are never
    spent: until the server's first header corrects us, our clock and ARM's may disagree on
    when the bucket started, and a token of slack keeps that from turning into a 429.
    """

    def __init__(self, capacity: float, refill: float, *, headroom: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if capacity < 1 or refill <= 0:
            raise ValueError("a bucket needs capacity >= 1 and refill > 0")
        self.capacity = float(capacity)
        self.refill = float(refill)
        self.headroom = min(max(0.0, headroom), self.capacity - 1)
        self._clock = clock
        self._lock = threading.Lock()
        self.tokens = self.capacity
        self._stamp = clock()
        self._open_at = self._stamp  # when the last 429's Retry-After runs out
        self.issued = 0  # reservations ever handed out; relates server headers to our queue
        self.epoch = 0  # bumped by a 429: reservations of older epochs are void
        self.requests = 0
        self.waited = 0
        self.wait_s = 0.0
        self.throttled = 0

    def _advance(self) -> float:
        now = self._clock()
        self.tokens = min(self.capacity, self.tokens + (now - self._stamp) * self.refill)
        self._stamp = now
        return now

    def reserve(self) -> Reservation:
        """Take a token now; the caller sleeps ``delay`` (outside any lock) before sending."""
        with self._lock:
            self._advance()
            self.tokens -= 1
            self.issued += 1
            delay = max(0.0, (self.headroom - self.tokens) / self.refill)
            return Reservation(delay, self.epoch, self.issued)

    def valid(self, reservation: Reservation) -> bool:
        with self._lock:
            return reservation.epoch == self.epoch

    def record(self, *, waited: bool, seconds: float) -> None:
        with self._lock:
            self.requests += 1
            self.waited += int(waited)
            self.wait_s += seconds

    def observe(self, remaining: int, reservation: Reservation) -> None:
        """The server had ``remaining`` tokens right after this reservation's request.

        Requests reserved after it are already counted in our tokens but maybe not yet in
        the server's answer, so they are subtracted before comparing; the lower view wins.
        A header from before the last 429 is older than what that 429 told us, so is ignored.
        """
        with self._lock:
            if reservation.epoch != self.epoch:
                return
            self._advance()
            ahead = self.issued - reservation.seq
            self.tokens = min(self.tokens, float(remaining - ahead))

    def drain(self, retry_after: float) -> None:
        """ARM said 429: nothing more goes out before ``retry_after`` seconds from now.

        Outstanding reservations were computed from a view that proved wrong, so they are
        voided (their holders reserve again); the first new slot opens at ``retry_after``.
        """
        with self._lock:
            now = self._advance()
            self.epoch += 1
            self.throttled += 1
            # A later 429 with a shorter Retry-After must not reopen the bucket earlier.
            self._open_at = max(self._open_at, now + max(0.0, retry_after))
            self.tokens = 1 + self.headroom - self.refill * (self._open_at - now)

    def count_throttled(self) -> None:
        with self._lock:
            self.throttled += 1

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"requests": self.requests, "waited": self.waited,
                    "wait_s": round(self.wait_s, 3), "throttled": self.throttled}


def subscription_and_kind(method: str, url: str) -> tuple[str, str] | None:
    """``(subscription id, kind)`` of an ARM request, or None when no bucket applies."""
    kind = _KIND_OF_METHOD.get(method.upper())
    if kind is None:
        return None
    match = _SUBSCRIPTION.match(urlsplit(url).path)
    if not match:
        return None
    return match.group(1).lower(), kind


def provider_of(url: str) -> str | None:
    """The resource provider namespace a request goes to (``Microsoft.RecoveryServices``)."""
    match = _PROVIDER.search(urlsplit(url).path)
    return match.group(1) if match else None


def retry_after_seconds(headers: Any) -> float | None:
    """Seconds from ``retry-after-ms``, ``x-ms-retry-after-ms`` or ``Retry-After``."""
    for name in ("retry-after-ms", "x-ms-retry-after-ms"):
        value = headers.get(name)
        if value:
            try:
                return max(0.0, float(value) / 1000)
            except ValueError:
                pass
    value = headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _int_header(headers: Any, name: str) -> int | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        return int(str(value).strip())
    except ValueError:
        return None


class ArmPacer(CustomHookPolicy):
    """One per ``AzureAccess``: shared by all its clients and threads.

    ``limits`` maps each kind (reads, writes, deletes) to ``(capacity, refill per second)``.
    """

    def __init__(self, limits: dict[str, tuple[float, float]], *, headroom: float = 1.0,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__()
        missing = set(KINDS) - set(limits)
        if missing:
            raise ValueError(f"no limits for {', '.join(sorted(missing))}")
        self._limits = dict(limits)
        self._headroom = headroom
        self._clock = clock
        self._sleep = sleep
        self._buckets: dict[tuple[str, str], Bucket] = {}
        self._provider_open_at: dict[tuple[str, str, str], float] = {}
        self.provider_waits = 0
        self.provider_holds = True
        self._lock = threading.Lock()

    def bucket(self, subscription_id: str, kind: str) -> Bucket:
        key = (subscription_id.lower(), kind)
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                capacity, refill = self._limits[kind]
                bucket = self._buckets[key] = Bucket(capacity, refill, headroom=self._headroom,
                                                     clock=self._clock)
            return bucket

    def wait_turn(self, subscription_id: str, kind: str) -> tuple[Bucket, Reservation]:
        """Block until a request of ``kind`` may go to ``subscription_id``; never holds a lock
        while sleeping. A 429 seen meanwhile voids the slot and the request queues again."""
        bucket = self.bucket(subscription_id, kind)
        waited, seconds = False, 0.0
        while True:
            reservation = bucket.reserve()
            if reservation.delay > 0:
                waited = True
                self._sleep(reservation.delay)
                seconds += reservation.delay
            if bucket.valid(reservation):
                break
        bucket.record(waited=waited, seconds=seconds)
        return bucket, reservation

    def learn(self, bucket: Bucket, reservation: Reservation, kind: str, status: int,
              headers: Any) -> bool:
        """Fold one response into the mirror of its bucket; True for a resource provider's
        own 429 (the subscription's bucket still had tokens)."""
        remaining = _int_header(headers, f"x-ms-ratelimit-remaining-subscription-{kind}")
        # The global per-subscription limit (all principals together, 15x ours) has its own
        # header on real answers (recorded ARM responses: ...-reads 249 beside
        # ...-global-reads 3749, 15 x 250): when other principals have spent it
        # down, it is the lower count and the one that binds.
        shared = _int_header(headers, f"x-ms-ratelimit-remaining-subscription-global-{kind}")
        if shared is not None:
            remaining = shared if remaining is None else min(remaining, shared)
        if status == 429:
            # A 429 that still shows tokens in the subscription's bucket came from a resource
            # provider's own limit (e.g. Recovery Services' ResourceRequestsThrottled):
            # stopping every request of the subscription for it would slow the wave for
            # nothing; the caller holds that provider's gate instead.
            if remaining is not None and remaining > 0:
                bucket.count_throttled()
                bucket.observe(remaining, reservation)
                return True
            wait = retry_after_seconds(headers)
            bucket.drain(_DEFAULT_RETRY_AFTER if wait is None else wait)
        elif remaining is not None:
            bucket.observe(remaining, reservation)
        return False

    # -- resource providers' own throttling ----------------------------------------------
    def hold_provider(self, subscription_id: str, provider: str, seconds: float,
                      kind: str = "writes") -> None:
        """A provider answered 429 of its own (its Retry-After may be minutes): nothing more
        of that kind goes to that provider in this subscription until it has passed. Per kind:
        the provider names the action it throttled ("Number of requests for action ...",
        hashicorp/terraform-provider-azurerm #26874), so its reads go on (unverified beyond
        that message). Off while ``provider_holds`` is False: the wave engine then decides
        (the throttled request waits its own Retry-After, as azure-core's RetryPolicy does,
        and the engine lowers the subscription's change rate)."""
        if not self.provider_holds:
            return
        key = (subscription_id.lower(), provider.lower(), kind)
        with self._lock:
            self._provider_open_at[key] = max(self._provider_open_at.get(key, 0.0),
                                              self._clock() + max(0.0, seconds))

    def wait_provider(self, subscription_id: str, provider: str, kind: str = "writes") -> None:
        key = (subscription_id.lower(), provider.lower(), kind)
        while True:
            with self._lock:
                left = self._provider_open_at.get(key, 0.0) - self._clock()
                if left > 0:
                    self.provider_waits += 1
            if left <= 0:
                return
            self._sleep(left)

    # -- pipeline hooks --------------------------------------------------------------------
    def on_request(self, request: PipelineRequest) -> None:
        http = request.http_request
        key = subscription_and_kind(http.method, http.url)
        if key is not None:
            provider = provider_of(http.url)
            if provider:
                self.wait_provider(key[0], provider, key[1])
            bucket, reservation = self.wait_turn(*key)
            request.context[_CONTEXT_KEY] = (bucket, reservation, key[1], key[0], provider)
        super().on_request(request)

    def on_response(self, request: PipelineRequest, response: PipelineResponse) -> None:
        paced = request.context.get(_CONTEXT_KEY)
        if paced is not None:
            bucket, reservation, kind, subscription, provider = paced
            http = response.http_response
            if self.learn(bucket, reservation, kind, http.status_code, http.headers) \
                    and provider:
                wait = retry_after_seconds(http.headers)
                self.hold_provider(subscription, provider,
                                   _DEFAULT_RETRY_AFTER if wait is None else wait, kind)
        super().on_response(request, response)

    # -- observability ---------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Totals per kind and per subscription: requests, how many waited, seconds waited,
        429s seen. Plain data, ready for a log line or a report."""
        with self._lock:
            buckets = dict(self._buckets)
        totals = {kind: {"requests": 0, "waited": 0, "wait_s": 0.0, "throttled": 0}
                  for kind in KINDS}
        subscriptions: dict[str, dict[str, dict[str, Any]]] = {}
        for (sub, kind), bucket in sorted(buckets.items()):
            one = bucket.stats()
            subscriptions.setdefault(sub, {})[kind] = one
            for name, value in one.items():
                totals[kind][name] += value
        for kind in KINDS:
            totals[kind]["wait_s"] = round(totals[kind]["wait_s"], 3)
        return {"enabled": True, **totals, "provider_waits": self.provider_waits,
                "subscriptions": subscriptions}
