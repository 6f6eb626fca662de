"""How long a VM waits out throttling and transient failures: the one place that decides.

ARM's 429s carry ``Retry-After`` (request-limits-and-throttling.md: "wait the number of seconds
in Retry-After"); Recovery Services' own ``ResourceRequestsThrottled`` does too, with numbers
Microsoft does not publish (api-notes section 5). A throttle is never a VM's failure: the VM
waits and asks again, for as long as its deadline allows. Before its change is sent a VM has
nothing at stake, so past the deadline it is left for a later run (journal code
``THROTTLED``); once the change is in Azure, its deadline is the operation timeout and what
happens at the end of it is the caller's rollback. In the engine (single-attempt calls),
server errors and lost connections are waited out the same way, with exponential backoff.

Everything that waits goes through here: the wave engine's timers (``delay``) and the blocking
helpers of rollback, reconcile and policy preparation (``patiently``).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from ..errors import AzureError

T = TypeVar("T")

FIRST_BACKOFF_S = 1.0
MAX_BACKOFF_S = 30.0
# A Retry-After is a floor; a little jitter keeps VMs throttled together from coming back in
# the same instant (they would meet the same empty bucket).
JITTER = 0.1

_random = random.Random()


def backoff(attempt: int) -> float:
    """1, 2, 4, ... seconds, at most ``MAX_BACKOFF_S`` (attempt counts from 1)."""
    return min(MAX_BACKOFF_S, FIRST_BACKOFF_S * 2 ** max(0, attempt - 1))


def delay(attempt: int, retry_after: float | None) -> float:
    """Seconds before asking again after the ``attempt``-th throttle or transient failure: the
    server's ``Retry-After`` when it gave one, else exponential backoff; plus jitter."""
    base = retry_after if retry_after is not None and retry_after > 0 else backoff(attempt)
    return base * (1 + JITTER * _random.random())


def fits(now: float, wait: float, deadline: float) -> bool:
    """Whether waiting ``wait`` seconds from ``now`` still ends before ``deadline``."""
    return now + wait <= deadline


def transient(err: AzureError) -> bool:
    """Throttled, a server error, or no answer: worth asking again."""
    return err.status is None or err.status in (408, 429) or err.status >= 500


def patiently(call: Callable[[], T], *, timeout: float,
              clock: Callable[[], float] = time.monotonic,
              sleep: Callable[[float], None] = time.sleep) -> T:
    """``call()``, asked again after each throttle (or server error) until ``timeout`` seconds
    have passed; then the last error is raised. For the blocking paths (rollback, reconcile,
    policy preparation), whose calls go through the SDK's own retries first; the wave engine
    uses ``delay`` with its own timers instead."""
    deadline = clock() + timeout
    attempt = 0
    while True:
        try:
            return call()
        except AzureError as err:
            if not _retryable(err):
                raise
            attempt += 1
            wait = delay(attempt, getattr(err, "retry_after", None))
            if not fits(clock(), wait, deadline):
                raise
        sleep(wait)


def _retryable(err: AzureError) -> bool:
    # The SDK's RetryPolicy already asked again after server errors on these paths; what is
    # left to wait out is throttling that outlasted its retries.
    return err.status == 429
