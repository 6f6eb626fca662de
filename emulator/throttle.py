"""Throttles the emulator enforces: ARM's per-subscription token buckets and ARG's user quota."""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass


@dataclass
class Take:
    ok: bool
    remaining: int
    retry_after: float


class TokenBucket:
    """ARM's bucket (request-limits-and-throttling): ``capacity`` tokens, ``refill`` per second."""

    def __init__(self, capacity: int, refill: float, clock=time.monotonic) -> None:
        self.capacity, self.refill, self.clock = capacity, refill, clock
        self.tokens = float(capacity)
        self.stamp = clock()
        self.lock = threading.Lock()

    def take(self) -> Take:
        with self.lock:
            now = self.clock()
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.refill)
            self.stamp = now
            if self.tokens >= 1:
                self.tokens -= 1
                return Take(True, int(self.tokens), 0.0)
            wait = (1 - self.tokens) / self.refill if self.refill > 0 else 3600.0
            return Take(False, 0, wait)


class BucketSet:
    """One bucket per (subscription, operation kind), created on first use."""

    def __init__(self, capacity: int, refill: float) -> None:
        self.capacity, self.refill = capacity, refill
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> Take:
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = TokenBucket(self.capacity, self.refill)
        return bucket.take()


class QuotaWindow:
    """ARG's per-user quota: ``limit`` queries per ``window`` seconds, reset at window end."""

    def __init__(self, limit: int, window: float, clock=time.monotonic) -> None:
        self.limit, self.window, self.clock = limit, window, clock
        self._windows: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def take(self, user: str) -> Take:
        with self._lock:
            now = self.clock()
            start, used = self._windows.get(user, (now, 0))
            if now - start >= self.window:
                start, used = now, 0
            resets = max(0.0, start + self.window - now)
            if used >= self.limit:
                self._windows[user] = (start, used)
                return Take(False, 0, resets)
            used += 1
            self._windows[user] = (start, used)
            return Take(True, self.limit - used, resets)


def hhmmss(seconds: float) -> str:
    """ARG's ``x-ms-user-quota-resets-after`` format; rounds up so waiting it is always enough."""
    total = max(0, math.ceil(seconds))
    return f"{total // 3600:02d}:{total % 3600 // 60:02d}:{total % 60:02d}"
