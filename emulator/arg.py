"""Azure Resource Graph: ``POST /providers/Microsoft.ResourceGraph/resources``.

Faithful where our tool depends on it (api-notes section 2): scopes by subscriptions (max 1000),
management groups or tenant; ``$top`` <= 1000, ``$skip``, ``$skipToken`` only when ``id`` is
projected; ``totalRecords``/``count``/``resultTruncated``; objectArray and table formats; the
per-user quota with ``x-ms-user-quota-*`` headers on every response and 429 past it.

Paging as Azure documents it (MD ``concepts/paging-results.md``, "Pagination in dynamic
environments"): every page is its own run of the query, so a page shows the estate as it is when
that page is served, and rows repeat or vanish when the estate changed between pages. Cheaply:
a query's result is kept per (query, scope) together with the state version it was computed at;
a later page (or the same query asked again) reuses it while the version is unchanged and re-runs
the query when it changed, then cuts the page by offset from the fresh result. With
``arg_churn`` set, the estate changes between two pages of one query (``churn.py``).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import threading
import uuid
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any

from .churn import churn_between_pages
from .http import ArmError, Request, Response, Router, require_api_version
from .kql import CompiledQuery, KqlError, compile_query
from .throttle import hhmmss
from .world import World

router = Router()

MAX_SUBSCRIPTIONS = 1000
MAX_TOP = 1000
MAX_RESULTS = 16  # results kept for later pages (each at most a fleet's worth of rows)
LIMIT_HIT_HEADER = "x-ms-tenant-subscription-limit-hit"


class Results:
    """Query results by (query, scope) fingerprint, each with the state version it reflects.

    ``get`` answers only for the current version: when the estate changed, the caller re-runs
    the query, as Azure runs every page as a query of its own (paging-results.md).
    """

    def __init__(self) -> None:
        self._items: OrderedDict[str, tuple[int, list[dict]]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, fingerprint: str, version: int) -> list[dict] | None:
        with self._lock:
            entry = self._items.get(fingerprint)
            if entry is None or entry[0] != version:
                return None
            self._items.move_to_end(fingerprint)
            return entry[1]

    def put(self, fingerprint: str, version: int, rows: list[dict]) -> None:
        with self._lock:
            self._items[fingerprint] = (version, rows)
            self._items.move_to_end(fingerprint)
            while len(self._items) > MAX_RESULTS:
                self._items.popitem(last=False)


def _bad_request(message: str, detail_code: str, detail_message: str, **detail: Any) -> ArmError:
    return ArmError(
        400,
        "BadRequest",
        message,
        details=[{"code": detail_code, "message": detail_message, **detail}],
    )


def _support_text() -> str:
    stamp = datetime.now(UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")
    return (
        f"Please provide below info when asking for support: timestamp = {stamp}, "
        f"correlationId = {uuid.uuid4()}."
    )


def _encode_token(fingerprint: str, offset: int, top: int) -> str:
    """The token names the query (not a frozen result: the next page runs the query again) and
    carries the page size too: a next-page request with only ``$skipToken`` gets pages of the
    first request's size (ResourcesNextPageQuery.json)."""
    data = {"$query": fingerprint[:32], "$offset": offset, "$top": top}
    return base64.b64encode(json.dumps(data).encode()).decode()


def _decode_token(token: str) -> tuple[str, int, int] | None:
    try:
        data = json.loads(base64.b64decode(token, validate=True))
        return str(data["$query"]), int(data["$offset"]), int(data["$top"])
    except (ValueError, KeyError, TypeError):
        return None


def _capped(subs: list[str], limit: int) -> tuple[set[str], bool]:
    """The first ``limit`` subscriptions of a tenant or management-group scope, and whether
    some were left out. Which ones Azure counts as "first" is undocumented (unverified): the
    emulator keeps the fleet file's order."""
    return set(subs[:limit]), len(subs) > limit


def _scoped(world: World, body: dict) -> tuple[set[str], bool]:
    """The lower-case subscription ids the request covers, checked like ARG checks them, and
    whether a tenant or management-group scope was cut at its subscription limit.

    Limits (both documented, in docs that disagree; both configurable): a tenant-scope query
    covers the first ``arg_tenant_subscription_limit`` (default 10,000, MD
    ``concepts/guidance-for-throttled-requests.md``) subscriptions, a management-group scope the
    first ``arg_management_group_subscription_limit`` (default 5,000, MD
    ``concepts/query-language.md``, "Query scope"); the cut is signalled by
    ``x-ms-tenant-subscription-limit-hit: true`` (the throttling doc names it for tenant scope;
    that a management-group cut sends it too is unverified).
    """
    subs = body.get("subscriptions")
    mgs = body.get("managementGroups")
    state = world.state
    if subs:
        if not isinstance(subs, list):
            raise _bad_request(
                _support_text(),
                "InvalidRequest",
                "'subscriptions' must be an array of subscription ids.",
            )
        if len(subs) > MAX_SUBSCRIPTIONS:
            raise _bad_request(
                _support_text(),
                "TooManySubscriptions",
                f"The request has {len(subs)} subscriptions; at most {MAX_SUBSCRIPTIONS} are "
                "allowed per request. Split the subscriptions into batches.",
            )
        wanted = {str(s).lower() for s in subs}
        down = wanted & {s.lower() for s in world.faults.arg_unavailable_subscriptions}
        if down:
            raise ArmError(
                503,
                "ServiceUnavailable",
                f"Resource Graph is temporarily unavailable for subscription {sorted(down)[0]} "
                "(injected by the emulator).",
            )
        for sub in sorted(wanted):
            if world.faults.forbidden(f"/subscriptions/{sub}"):
                raise ArmError(
                    403,
                    "AuthorizationFailed",
                    "The client does not have authorization to perform action "
                    "'Microsoft.ResourceGraph/resources/read' over scope "
                    f"'/subscriptions/{sub}' or the scope is invalid.",
                )
        known = {s for s in wanted if state.subscription_exists(s)}
        if not known:
            raise ArmError(
                403,
                "AuthorizationFailed",
                f"The client does not have authorization to perform action "
                f"'Microsoft.ResourceGraph/resources/read' over scope "
                f"'/subscriptions/{sorted(wanted)[0]}' or the scope is invalid.",
            )
        return known, False
    if mgs:
        out: dict[str, None] = {}
        for mg in mgs:
            members = state.management_group_subscriptions(str(mg))
            if members is None:
                raise ArmError(
                    403,
                    "AuthorizationFailed",
                    f"The client does not have authorization to perform action "
                    f"'Microsoft.ResourceGraph/resources/read' over scope "
                    f"'/providers/Microsoft.Management/managementGroups/{mg}' or the scope is "
                    "invalid.",
                )
            out.update(dict.fromkeys(members))
        readable = [s for s in out if not world.faults.forbidden(f"/subscriptions/{s}")]
        return _capped(readable, world.config.arg_management_group_subscription_limit)
    readable = [s for s in state.subscriptions if not world.faults.forbidden(f"/subscriptions/{s}")]
    return _capped(readable, world.config.arg_tenant_subscription_limit)


def _filter_tables(world: World, subs: set[str]) -> dict[str, list[dict]]:
    """The ARG tables cut to ``subs``; kept per (state version, scope), so the slices and pages
    of one batch share one cut (and kql's memo of leading ``where``s keyed on it)."""
    with world.state.lock:
        version = world.state.version
        tables = world.state.arg_tables()
    if len(subs) == len(world.state.subscriptions):
        return tables
    cuts: OrderedDict = world.services.setdefault("arg_scope_cuts", OrderedDict())
    key = (version, frozenset(subs))
    cut = cuts.get(key)
    if cut is None:
        cut = {name: [r for r in rows if r["subscriptionId"] in subs]
               for name, rows in tables.items()}
        cuts[key] = cut
        while len(cuts) > 8:
            cuts.popitem(last=False)
    return cut


def _table_format(rows: list[dict], columns: list[str]) -> dict:

    def kind(value: Any) -> str:
        if isinstance(value, bool):
            return "boolean"
        if isinstance(value, int):
            return "integer"
        if isinstance(value, float):
            return "number"
        if isinstance(value, dict | list):
            return "object"
        return "string"

    sample = rows[0] if rows else {}
    return {
        "columns": [{"name": c, "type": kind(sample.get(c))} for c in columns],
        "rows": [[r.get(c) for c in columns] for r in rows],
    }


@router.route("POST", "/providers/Microsoft.ResourceGraph/resources", "arg")
def resources(world: World, req: Request) -> Response:
    require_api_version(req)
    user = req.principal or "anonymous"
    take = world.arg_quota.take(user)
    quota_headers = {
        "x-ms-user-quota-remaining": str(take.remaining),
        "x-ms-user-quota-resets-after": hhmmss(take.retry_after),
    }
    if not take.ok:
        raise ArmError(
            429,
            "RateLimiting",
            _support_text(),
            headers={**quota_headers, "Retry-After": str(max(1, int(take.retry_after + 0.999)))},
            details=[
                {
                    "code": "RateLimiting",
                    "message": "Client application has been throttled and should not attempt "
                    "to repeat the request until an amount of time has elapsed. "
                    "Please see https://aka.ms/resourcegraph-throttling for help.",
                }
            ],
        )
    try:
        response = _query(world, req)
    except ArmError as err:
        err.headers.update(quota_headers)
        raise
    response.headers.update(quota_headers)
    return response


def _query(world: World, req: Request) -> Response:
    body = req.body if isinstance(req.body, dict) else None
    if body is None or not isinstance(body.get("query"), str) or not body["query"].strip():
        raise _bad_request(
            _support_text(),
            "InvalidRequest",
            "The request body must be a JSON object with a non-empty 'query'.",
        )
    options = body.get("options") or {}
    top = options.get("$top")
    skip = options.get("$skip") or 0
    token = options.get("$skipToken")
    fmt = options.get("resultFormat") or "objectArray"
    if top is not None and (not isinstance(top, int) or not 1 <= top <= MAX_TOP):
        raise _bad_request(
            _support_text(),
            "InvalidRequest",
            f"options.$top must be between 1 and {MAX_TOP}; got {top!r}.",
        )
    if not isinstance(skip, int) or skip < 0:
        raise _bad_request(
            _support_text(), "InvalidRequest", f"options.$skip must be 0 or more; got {skip!r}."
        )
    if fmt not in ("objectArray", "table"):
        raise _bad_request(
            _support_text(),
            "InvalidRequest",
            f"options.resultFormat must be 'objectArray' or 'table'; got {fmt!r}.",
        )
    try:
        query = _compiled(body["query"])
    except KqlError as err:
        raise _kql_error(err) from err
    subs, limit_hit = _scoped(world, body)
    fingerprint = hashlib.sha256(
        json.dumps([body["query"], sorted(subs)], separators=(",", ":")).encode()
    ).hexdigest()
    results: Results = world.services.setdefault("arg_results", Results())

    offset = 0 if query.has_limit else skip
    if token:
        decoded = _decode_token(token)
        if decoded is None or decoded[0] != fingerprint[:32]:
            raise _bad_request(
                _support_text(),
                "InvalidSkipToken",
                "The $skipToken is not valid: it was not issued for this query and scope. "
                "Re-run the query without $skipToken.",
            )
        _, offset, token_top = decoded
        offset += skip
        top = top or token_top
    if token or offset:
        # A later page of a query: the estate may have changed since the one before it.
        churn_between_pages(world)
    version = world.state.version
    rows = results.get(fingerprint, version)
    if rows is None:
        try:
            rows = query.run(_filter_tables(world, subs))
        except KqlError as err:
            raise _kql_error(err) from err
        results.put(fingerprint, version, rows)

    size = top or MAX_TOP
    if query.has_summarize:
        # Our reading of "summarize: Simplified first page only" (MD concepts/query-language.md,
        # operator table): a summarize result is served as its first page, whatever $skip or
        # $top ask beyond it; no $skipToken is issued, resultTruncated says rows were cut.
        offset = 0
    page = rows[offset : offset + size]
    more = offset + size < len(rows)
    out: dict[str, Any] = {
        "totalRecords": len(rows),
        "count": len(page),
        "resultTruncated": "false",
        "facets": [],
    }
    if more:
        if query.projects_id() and not query.has_summarize:
            out["$skipToken"] = _encode_token(fingerprint, offset + size, size)
        else:
            out["resultTruncated"] = "true"
    out["data"] = page if fmt == "objectArray" else _table_format(page, list(query.columns))
    if body.get("facets"):
        out["facets"] = [_facet(f, rows) for f in body["facets"]]
    headers = {LIMIT_HIT_HEADER: "true"} if limit_hit else {}
    return Response(200, out, headers=headers)


@functools.lru_cache(maxsize=256)
def _compiled(text: str) -> CompiledQuery:
    """Compiling is pure (kql.compile_query), so every page of a query reuses one compile."""
    return compile_query(text)


def _facet(request: dict, rows: list[dict]) -> dict:
    """Facets are summaries of the full result; only plain column expressions are supported."""
    expression = str(request.get("expression", ""))
    opts = request.get("options") or {}
    if not expression.isidentifier():
        return {
            "expression": expression,
            "resultType": "FacetError",
            "errors": [
                {
                    "code": "NotSupported",
                    "message": "The emulator supports facets on plain column names only.",
                }
            ],
        }
    counts: dict[str, int] = {}
    for row in rows:
        key = json.dumps(row.get(expression), sort_keys=True)
        counts[key] = counts.get(key, 0) + 1
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    top = int(opts.get("$top") or 10)
    data = [{expression: json.loads(k), "count": n} for k, n in ranked[:top]]
    return {
        "expression": expression,
        "resultType": "FacetResult",
        "totalRecords": len(counts),
        "count": len(data),
        "data": data,
    }


def _kql_error(err: KqlError) -> ArmError:
    detail: dict[str, Any] = {"code": err.code, "message": err.message}
    for attr, key in (("line", "line"), ("column", "characterPositionInLine"), ("token", "token")):
        value = getattr(err, attr, None)
        if value is not None:
            detail[key] = value
    return ArmError(
        400,
        "BadRequest",
        _support_text(),
        details=[
            {
                "code": "InvalidQuery",
                "message": "Query is invalid. Please refer to the documentation for the Azure "
                "Resource "
                "Graph service and fix the error before retrying.",
            },
            detail,
        ],
    )
