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
from dataclasses import dataclass, field
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


@dataclass
class QuotaGate:
    """Shared by every thread querying as one user: holds new queries while the quota is spent."""

    _ready_at: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    requests: int = 0
    waited: float = 0.0

    def wait(self) -> None:
        with self._lock:
            delay = self._ready_at - time.monotonic()
            self.requests += 1
        if delay > 0:
            time.sleep(delay)
            with self._lock:
                self.waited += delay

    def observe(self, remaining: int | None, resets_after: float | None) -> None:
        if remaining is None or resets_after is None or remaining > 0:
            return
        with self._lock:
            # Small margin: the service rounds resets-after down to whole seconds.
            self._ready_at = max(self._ready_at, time.monotonic() + resets_after + 0.05)


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

    def keep(pipeline_response, deserialized, _headers):
        headers.update(pipeline_response.http_response.headers)
        return deserialized

    if gate:
        gate.wait()
    with azure_call(what):
        result = client.resources(request, cls=keep)
    remaining = headers.get("x-ms-user-quota-remaining")
    page = Page(
        rows=list(result.data or []),
        total_records=int(result.total_records or 0),
        skip_token=result.skip_token,
        truncated=str(result.result_truncated).lower() == "true",
        quota_remaining=int(remaining) if remaining not in (None, "") else None,
        quota_resets_after=_seconds(headers.get("x-ms-user-quota-resets-after")),
    )
    if gate:
        gate.observe(page.quota_remaining, page.quota_resets_after)
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
