"""How many VMs a wave holds in flight: fixed ceilings, and a limit per subscription that is
found, not guessed.

ARM publishes its buckets (reads 25/s, writes 10/s per subscription and principal:
request-limits-and-throttling.md) and the client paces under them (``tasks/azure/pacing.py``).
Recovery Services throttles some actions on its own (``ResourceRequestsThrottled``) with numbers
Microsoft does not publish (api-notes section 5), and no per-vault concurrency figure exists
either. So each subscription's in-flight limit adapts:

- it starts small and grows by two for every change Azure accepts while nothing was throttled
  (one for the slot that change keeps while Azure works on it, one more: the VMs on their way
  to their PUT double about every round trip, as TCP's slow start), up to the configured
  ceilings. Growing by one only would hold those VMs at ``START``: at 8 a subscription and
  a round trip of about 1.5 s (item read, journal, PUT) that is 5 changes a second of ARM's 10;
- a throttled change (ARM's 429 or the provider's) sets the subscription's change rate to 90 %
  of what Azure took over the last ``RATE_WINDOW_S`` (at most once per ``COOL_DOWN_S``), so
  the cut acts at once rather than a change-latency later, and the limit shrinks to what that
  rate keeps in flight (rate x the changes' mean duration, with ``HEADROOM``), never above what
  it was;
- without throttling the rate probes upwards (``PROBE_GROWTH`` every ``PROBE_S``) and the limit
  follows it, so a limit that moved is found again; after ``RECOVERY_S`` without any throttle
  the rate is dropped and the limit grows as at the start (throttling that stopped costs
  half a minute, not the slow climb of the probes).

The curve of in flight and the limits is kept for the wave report and the log.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field

START = 8  # VMs per subscription at the start
COOL_DOWN_S = 5.0
RATE_WINDOW_S = 10.0
RATE_SHARE = 0.9
MIN_RATE = 0.1
PROBE_S = 3.0
PROBE_GROWTH = 1.03
HEADROOM = 1.2
RECOVERY_S = 30.0


@dataclass
class SubscriptionLimit:
    """One subscription's adaptive in-flight limit and change rate."""

    ceiling: int
    start: int = START
    limit: float = 0.0
    rate: float | None = None  # changes per second Azure took without throttling; None: any
    throttled: int = 0
    _accepted: deque[float] = field(default_factory=deque)
    _last_cut: float = -math.inf
    _last_throttle: float = -math.inf
    _last_probe: float = 0.0
    _next_change_at: float = 0.0

    def __post_init__(self) -> None:
        self.limit = float(min(self.ceiling, max(1, self.start)))

    @property
    def allowed(self) -> int:
        return max(1, int(self.limit))

    def _recent_rate(self, now: float) -> float:
        while self._accepted and self._accepted[0] < now - RATE_WINDOW_S:
            self._accepted.popleft()
        if not self._accepted:
            return 0.0
        span = max(1.0, now - self._accepted[0])
        return len(self._accepted) / span

    def _follow_rate(self, change_s: float) -> float:
        assert self.rate is not None
        return min(float(self.ceiling), max(float(self.start), self.rate * change_s * HEADROOM))

    def accepted(self, now: float, change_s: float = 0.0) -> None:
        """Azure took a change (its 202); ``change_s``: the changes' mean duration so far."""
        self._accepted.append(now)
        if self.rate is not None and now - self._last_throttle >= RECOVERY_S:
            self.rate = None  # no throttle for a while: grow as at the start
        if self.rate is None:  # nothing throttled (lately): slow start
            self.limit = min(float(self.ceiling), self.limit + 2.0)
            return
        if now - self._last_cut >= COOL_DOWN_S and now - self._last_probe >= PROBE_S:
            self.rate *= PROBE_GROWTH
            self._last_probe = now
        self.limit = self._follow_rate(change_s)

    def throttle(self, now: float, in_flight: int, change_s: float = 0.0) -> bool:
        """A change was throttled; True when this cut the rate and limit (once per
        cool-down)."""
        self.throttled += 1
        self._last_throttle = now
        if now - self._last_cut < COOL_DOWN_S:
            return False
        recent = self._recent_rate(now)
        if recent > 0:
            self.rate = max(MIN_RATE, recent * RATE_SHARE)
        else:
            self.rate = max(MIN_RATE, (self.rate or 1.0) * RATE_SHARE)
        self.limit = min(self.limit, float(max(in_flight, self.start)),
                         self._follow_rate(change_s))
        self._last_cut = self._last_probe = now
        return True

    def next_change_at(self, now: float) -> float:
        """When the next change may go out under the learned rate (``now`` when none)."""
        if self.rate is None:
            return now
        return max(now, self._next_change_at)

    def sent_change(self, now: float) -> None:
        if self.rate is not None:
            self._next_change_at = max(now, self._next_change_at) + 1.0 / self.rate


@dataclass
class Limits:
    """The wave's ceilings (settings, flags) and whether the per-subscription limit adapts."""

    wave: int
    per_vault: int
    per_subscription: int
    adaptive: bool = True
    start: int = START


class InFlight:
    """Counts of VMs in flight by wave, subscription and vault, checked against the limits."""

    def __init__(self, limits: Limits, clock=time.monotonic) -> None:
        self.limits = limits
        self.clock = clock
        self.total = 0
        self.by_subscription: dict[str, int] = {}
        self.by_vault: dict[str, int] = {}
        self.subscriptions: dict[str, SubscriptionLimit] = {}
        self.peak = 0
        self.curve: list[tuple[float, int, int]] = []  # (seconds since start, in flight, allowed)
        self._t0 = clock()
        self._last_point = -math.inf

    def limit(self, subscription: str) -> SubscriptionLimit:
        found = self.subscriptions.get(subscription)
        if found is None:
            ceiling = min(self.limits.per_subscription, self.limits.wave)
            start = self.limits.start if self.limits.adaptive else ceiling
            found = self.subscriptions[subscription] = SubscriptionLimit(ceiling, start=start)
        return found

    def allowed(self) -> int:
        """What the wave may hold now: the sum of the subscriptions' limits, at most the cap."""
        if not self.subscriptions:
            return self.limits.start if self.limits.adaptive else self.limits.wave
        return min(self.limits.wave, sum(s.allowed for s in self.subscriptions.values()))

    def room(self, subscription: str, vault: str) -> bool:
        return (self.total < self.limits.wave
                and self.by_vault.get(vault, 0) < self.limits.per_vault
                and self.by_subscription.get(subscription, 0)
                < self.limit(subscription).allowed)

    def enter(self, subscription: str, vault: str) -> None:
        self.total += 1
        self.by_subscription[subscription] = self.by_subscription.get(subscription, 0) + 1
        self.by_vault[vault] = self.by_vault.get(vault, 0) + 1
        self.peak = max(self.peak, self.total)

    def leave(self, subscription: str, vault: str) -> None:
        self.total -= 1
        self.by_subscription[subscription] -= 1
        self.by_vault[vault] -= 1

    def point(self, force: bool = False) -> None:
        """Add a point to the curve: four a second at first, then sparser (a point every
        ``elapsed / 3600`` s), so a wave of hours keeps a few thousand points."""
        now = self.clock() - self._t0
        if force or now - self._last_point >= max(0.25, now / 3600):
            self.curve.append((round(now, 1), self.total, self.allowed()))
            self._last_point = now

    def throttled(self) -> int:
        return sum(s.throttled for s in self.subscriptions.values())
