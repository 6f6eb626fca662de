"""Resource Graph paging with quota awareness.

Each page costs one unit of the per-user quota (15 per 5 s by default), so we read
``x-ms-user-quota-remaining`` / ``-resets-after`` from every response and wait for the window to
reset before asking again, instead of provoking 429s. A 429 that still happens is retried by the
SDK's RetryPolicy (it honours Retry-After), configured in ``clients.py``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .errors import azure_call


@dataclass
class Page:
    rows: list[dict[str, Any]]
    total_records: int
    skip_token: str | None
    truncated: bool
    quota_remaining: int | None
    quota_resets_after: float | None


def _seconds(hhmmss: str | None) -> float | None:
    if not hhmmss:
        return None
    try:
        h, m, s = hhmmss.split(":")
        return int(h) * 3600 + int(m) * 60 + float(s)
    except ValueError:
        return None


class QuotaGate:
    """Paces every thread querying as one user so the quota is never exceeded.

    It remembers the quota left in the current window (from the newest response) and the
    requests in flight; a new request starts only while ``remaining - in_flight > 0``, else it
    waits for the window to reset. Until the first answer it lets one request through.
    Counts requests, seconds waited and 429s seen (which the SDK's RetryPolicy then absorbs).
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._remaining: int | None = None
        self._reset_at = 0.0
        self._in_flight = 0
        self.requests = 0
        self.waited = 0.0
        self.throttled = 0

    def acquire(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                if self._remaining is not None and now >= self._reset_at:
                    self._remaining = None  # a new window: its quota is unknown until answered
                if self._remaining is None:
                    if self._in_flight == 0:
                        break
                    self._cond.wait(0.05)
                    continue
                if self._remaining - self._in_flight > 0:
                    break
                delay = self._reset_at - now
                self._cond.wait(delay)
                self.waited += time.monotonic() - now
            self._in_flight += 1
            self.requests += 1

    def release(self, remaining: int | None, resets_after: float | None) -> None:
        with self._cond:
            self._in_flight -= 1
            if remaining is not None and resets_after is not None:
                # resets-after comes in whole seconds, rounded up, so each answer gives an
                # upper bound of the window's end: keep the tightest one seen in this window.
                reset_at = time.monotonic() + resets_after + 0.05
                same_window = self._remaining is not None and reset_at < self._reset_at + 1.5
                if same_window:
                    self._remaining = min(self._remaining, remaining)
                    self._reset_at = min(self._reset_at, reset_at)
                else:
                    self._remaining, self._reset_at = remaining, reset_at
            self._cond.notify_all()

    def saw_status(self, status: int) -> None:
        if status == 429:
            with self._cond:
                self.throttled += 1


def query_page(client, query: str, *, subscriptions: list[str] | None = None,
               management_groups: list[str] | None = None, top: int = 1000,
               skip_token: str | None = None, gate: QuotaGate | None = None,
               what: str = "querying Resource Graph") -> Page:
    """One Resource Graph request; returns rows (objectArray) and the quota headers."""
    from azure.mgmt.resourcegraph.models import QueryRequest, QueryRequestOptions

    options = QueryRequestOptions(top=top, skip_token=skip_token, result_format="objectArray")
    request = QueryRequest(subscriptions=subscriptions or None,
                           management_groups=management_groups or None,
                           query=query, options=options)
    headers: dict[str, str] = {}

    def seen(response) -> None:
        # Every try, errors and 429s included, so the gate always learns the quota left.
        headers.update(response.http_response.headers)
        if gate:
            gate.saw_status(response.http_response.status_code)

    if gate:
        gate.acquire()
    try:
        with azure_call(what):
            result = client.resources(request, raw_response_hook=seen)
    finally:
        left = headers.get("x-ms-user-quota-remaining")
        if gate:
            gate.release(int(left) if left not in (None, "") else None,
                         _seconds(headers.get("x-ms-user-quota-resets-after")))
    remaining = headers.get("x-ms-user-quota-remaining")
    page = Page(
        rows=list(result.data or []),
        total_records=int(result.total_records or 0),
        skip_token=result.skip_token,
        truncated=str(result.result_truncated).lower() == "true",
        quota_remaining=int(remaining) if remaining not in (None, "") else None,
        quota_resets_after=_seconds(headers.get("x-ms-user-quota-resets-after")),
    )
    return page


def iter_pages(client, query: str, **kwargs: Any) -> Iterator[Page]:
    """All pages of one query, following ``$skipToken``."""
    token: str | None = None
    while True:
        page = query_page(client, query, skip_token=token, **kwargs)
        yield page
        token = page.skip_token
        if not token:
            return
