"""Resource Graph paging with quota awareness, correct in an estate that changes while we read.

Each page costs one unit of the per-user quota (15 per 5 s by default), so we read
``x-ms-user-quota-remaining`` / ``-resets-after`` from every response and wait for the window to
reset before asking again, instead of provoking 429s. A 429 that still happens is retried by the
SDK's RetryPolicy (it honours Retry-After), configured in ``clients.py``.

Azure runs every page as a query of its own (MD ``concepts/paging-results.md``, "Pagination in
dynamic environments"): resources created or deleted between two pages make rows repeat or
vanish, even with a unique sort column. ``read_all`` therefore pages with ``$skip`` and a small
overlap, accepts a page only when it contains a row already read (so nothing was skipped: rows
keep their order by ``id``, and every row up to the last accepted one was read), steps back when
it does not, and keeps each ``id`` once, counting repeats. ``summarize`` results are never paged
("Simplified first page only", MD ``concepts/query-language.md``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
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
    # x-ms-tenant-subscription-limit-hit: a tenant (or management-group) scope was cut to its
    # first 10,000 (5,000) subscriptions (guidance-for-throttled-requests.md, query-language.md)
    limit_hit: bool = False


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
               skip: int | None = None, skip_token: str | None = None,
               gate: QuotaGate | None = None, what: str = "querying Resource Graph") -> Page:
    """One Resource Graph request; returns rows (objectArray) and the quota headers."""
    from azure.mgmt.resourcegraph.models import QueryRequest, QueryRequestOptions

    options = QueryRequestOptions(top=top, skip=skip or None, skip_token=skip_token,
                                  result_format="objectArray")
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
        limit_hit=_header(headers, "x-ms-tenant-subscription-limit-hit").lower() == "true",
    )
    return page


def _header(headers: dict[str, str], name: str) -> str:
    """A header by name, whatever its case (azure-core's dict is case-insensitive, a copy of it
    in a plain dict is not)."""
    for key, value in headers.items():
        if key.lower() == name:
            return str(value)
    return ""


def iter_pages(client, query: str, **kwargs: Any) -> Iterator[Page]:
    """All pages of one query, following ``$skipToken``."""
    token: str | None = None
    while True:
        page = query_page(client, query, skip_token=token, **kwargs)
        yield page
        token = page.skip_token
        if not token:
            return


@dataclass
class ReadAll:
    """Every row of one query, each ``id`` once; what it took and what the estate did."""

    rows: list[dict[str, Any]]
    requests: int = 0
    repeated: int = 0  # rows read again (overlap, or moved by changes between pages)
    step_backs: int = 0  # pages refused because rows before them had vanished
    limit_hit: bool = False


def read_all(client, query: str, *, top: int = 1000, overlap: int = 8,
             key: str = "id", on_page: Callable[[list[dict[str, Any]]], None] | None = None,
             **kwargs: Any) -> ReadAll:
    """All rows of ``query`` (which must sort by the unique column ``key``), read as pages that
    are each their own query (``$skip``, no ``$skipToken``), correct while the estate changes.

    Each page after the first starts ``overlap`` rows before the end of the last accepted one.
    A page is accepted when it holds a row already read, or starts at offset 0: rows keep their
    order, so no row that existed throughout can fall between two accepted pages. Otherwise
    (more rows vanished before it than the overlap covers) the overlap grows fourfold and the
    page is asked again, closer; past ``top - 1`` it steps back a page at a time down to 0.

    Once a page is accepted, the next one's offset is known, so it is asked at once (in a
    thread) while this page's rows are taken in: the answer's trip and the caller's work on the
    rows overlap instead of adding up, and the quota, not our own latency, sets the pace. No
    request is spent ahead that the sequential reading would not have made: a page is asked
    only after the one before it was accepted, and not past ``totalRecords``.

    With ``on_page``, each accepted page's rows not read before go to it as soon as the page
    is in (so the caller works on them while the next page is on its way), in the order
    ``rows`` would hold them, and ``rows`` stays empty: only their keys are kept.
    """
    seen: dict[Any, dict[str, Any] | None] = {}
    out = ReadAll(rows=[])
    offset, last_start = 0, 0
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="resource-graph-page") as ahead:
        def ask(skip: int) -> Future[Page]:
            return ahead.submit(query_page, client, query, top=top, skip=skip, **kwargs)

        pending = ask(offset)
        while True:
            page = pending.result()
            out.requests += 1
            out.limit_hit |= page.limit_hit
            if page.rows and key not in page.rows[0]:
                raise ValueError(f"read_all needs the query to project {key!r} (and sort by it)")
            keys = [r.get(key) for r in page.rows]
            if offset > 0 and not any(k in seen for k in keys):
                out.step_backs += 1
                if overlap < top - 1:
                    overlap = min(top - 1, overlap * 4)
                    offset = last_start + top - overlap
                else:
                    offset = max(0, offset - top)
                pending = ask(offset)
                continue
            last = len(page.rows) < top or offset + len(page.rows) >= page.total_records
            if not last:
                pending = ask(offset + top - overlap)
            again = 0
            fresh: list[dict[str, Any]] = []  # with on_page: the rows live on with the caller
            for k, row in zip(keys, page.rows, strict=True):
                if k in seen:
                    again += 1
                elif on_page is None:
                    seen[k] = row
                else:
                    seen[k] = None
                    fresh.append(row)
            if fresh:
                on_page(fresh)
            # Rows read again beyond the planned overlap: moved by changes between pages.
            out.repeated += max(0, again - (overlap if offset > 0 else 0))
            if last:
                break
            last_start = offset
            offset += top - overlap
    out.rows = list(seen.values()) if on_page is None else []
    return out
