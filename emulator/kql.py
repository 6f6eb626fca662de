"""The emulator's KQL engine: the documented subset of Azure Resource Graph's query language.

The ARG emulator compiles a query once (``compile_query``) and runs it over in-memory tables of
ARG-shaped rows (``CompiledQuery.run``). Anything outside the subset is rejected with a
``KqlError`` carrying ARG's error-detail code, the offending token and its line/position, so a
query that would fail in Azure fails here too instead of silently returning something else.

Documented KQL subset
---------------------
Query shape: ``Table | op | op ...``; a query may also open with an operator (ARG's default
table is ``Resources``). Table names are case-insensitive; operator, function and column names
are case-sensitive (as in Kusto). Newlines and ``//`` comments may appear wherever whitespace may.

Tables: any ARG table name parses; ``run`` needs it in its ``tables`` mapping (the emulator serves
``resources``, ``resourcecontainers``, ``recoveryservicesresources``). Other names raise
``DisallowedLogicalTableName``. Columns are ARG's: id, name, type, tenantId, kind, location,
resourceGroup, subscriptionId, managedBy, sku, plan, properties, tags, identity, zones,
extendedLocation. Referencing a column that does not exist raises ``UnknownColumn``.

Tabular operators:
  where/filter, extend, project, project-away, project-keep, project-rename, summarize,
  order by / sort by (default desc; nulls first for asc, last for desc; ``nulls first|last``),
  take/limit N, top N by expr [asc|desc], distinct cols|*, count (one row ``{"Count": n}``),
  mv-expand/mvexpand ([kind=bag|array] [with_itemindex=I] [name =] expr [to typeof(t)], ...
  [limit N]), join ([kind=innerunique|inner|leftouter|fullouter] (subquery)|Table on col, ... |
  on $left.a == $right.b [and ...]), union ([kind=outer|inner] [withsource=C] legs).
Scalar operators: literals ('..', "..", @'..', ints, reals, true/false, dynamic(...)), columns,
  ``['col']``, ``a.b``, ``a['k']``, ``a[0]`` (missing -> null, negative index from the end),
  ``( )``, ``== != <>`` (typed, case-sensitive), ``< <= > >=`` (numbers, or strings with
  strings), ``=~ !~``, ``in !in in~ !in~ has_any``, ``contains !contains contains_cs
  !contains_cs has !has has_cs !has_cs startswith !startswith startswith_cs endswith !endswith
  endswith_cs hasprefix hassuffix``, ``matches regex``, ``and or``, ``+ - * / %`` on numbers,
  unary minus.
Scalar functions: isempty isnotempty isnull isnotnull not tostring tolower toupper toint tolong
  todouble toreal tobool todynamic parse_json array_length bag_keys pack_array iff iif case
  coalesce strcat strcat_array strlen substring split extract indexof replace_string now
  hash(source [, mod]) (stable, but not Kusto's xxhash64 values).
Aggregations (summarize): count countif dcount sum avg min max any take_any make_list make_set
  arg_max arg_min.
ARG limits enforced (learn.microsoft.com .../resource-graph/concepts/query-language, 2024):
  at most 3 ``join`` per query, of which at most 1 may be cross-table unless every cross-table
  join is between Resources and ResourceContainers (``TooManyJoins``); join flavors innerunique
  (the default: one left row per key), inner, leftouter, fullouter only (leftanti, leftsemi ...
  raise ``UnsupportedJoinFlavor``, the code ARG itself returns); no join hints; at most 3
  ``mv-expand`` (``TooManyMvExpand``; ARG's table says 2, its limits paragraph says 3), each
  expanding at most 128 elements per row by default and at most 400 (a larger ``limit`` is
  clamped to 400); at most 3 ``union`` legs, within one table or between Resources and
  ResourceContainers (``TooManyUnionLegs``/``DisallowedUnion``). RecoveryServicesResources
  joins like any table: the 2021 docs said "join *to* only", the 2024 docs list it as "Yes".

Semantics (Kusto's where it is cheap, see the tests): comparisons with null are false (``==`` and
``!=`` alike); string operators (``=~``, ``contains``, ``has``, ``in~`` ...) first apply
``tostring`` (null -> ""), so ``null !contains 'x'`` is true; ``and``/``or``/``where`` treat
anything but ``true`` as false; functions that return strings never return null; ``isempty`` is
true for null and ""; ``tostring`` of a bag or array is compact JSON; join keys that are null
never match; a leftouter join's unmatched right columns are null and clashing right columns get
the suffix 1 (``id1``); ``has`` treats every non-alphanumeric character as a term boundary;
``mv-expand`` of null keeps the row with null, of an empty array or bag drops it, of a bag
(kind=bag) yields one single-key bag per entry; ``make_set`` flattens arrays, ``make_list`` does
not; unnamed columns are named as Kusto.Language names them (``properties.a.b`` ->
``properties_a_b``, ``tostring(x.y)`` -> ``x_y``, ``count()`` -> ``count_``, ``make_list(x)`` ->
``list_x``, ``take_any(x)`` -> ``x``, others ``Column1``...). Output rows may share objects with
the input tables: treat them as read-only.
"""

from __future__ import annotations

import functools
import gc
import hashlib
import json
import math
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from .kql_parser import (
    Assign,
    Binary,
    Call,
    Col,
    Count,
    Distinct,
    Extend,
    Index,
    InList,
    Join,
    KqlError,
    Lit,
    Member,
    MvExpand,
    Pipeline,
    Project,
    ProjectAway,
    ProjectRename,
    Sort,
    SortKey,
    Star,
    Summarize,
    Take,
    Top,
    TypeOf,
    Unary,
    Union,
    Where,
    error,
    parse,
)

__all__ = ["ARG_COLUMNS", "ARG_TABLES", "CompiledQuery", "KqlError", "compile_query"]

Row = dict[str, Any]
Fn = Callable[[Row], Any]
Step = Callable[[list[Row], Mapping[str, Sequence[Row]]], list[Row]]

ARG_COLUMNS: tuple[str, ...] = (
    "id",
    "name",
    "type",
    "tenantId",
    "kind",
    "location",
    "resourceGroup",
    "subscriptionId",
    "managedBy",
    "sku",
    "plan",
    "properties",
    "tags",
    "identity",
    "zones",
    "extendedLocation",
)
# Table names ARG documents (query-language.md); the emulator serves three of them.
ARG_TABLES: frozenset[str] = frozenset(
    {
        "advisorresources",
        "alertsmanagementresources",
        "appserviceresources",
        "authorizationresources",
        "awsresources",
        "azurebusinesscontinuityresources",
        "chaosresources",
        "communitygalleryresources",
        "computeresources",
        "desktopvirtualizationresources",
        "dnsresources",
        "edgeorderresources",
        "elasticsanresources",
        "extendedlocationresources",
        "featureresources",
        "guestconfigurationresources",
        "healthresourcechanges",
        "healthresources",
        "insightsresources",
        "iotsecurityresources",
        "kubernetesconfigurationresources",
        "kustoresources",
        "maintenanceresources",
        "managedservicesresources",
        "migrateresources",
        "networkresources",
        "orbitalresources",
        "patchassessmentresources",
        "patchinstallationresources",
        "policyresources",
        "recoveryservicesresources",
        "resourcechanges",
        "resourcecontainerchanges",
        "resourcecontainers",
        "resources",
        "securityresources",
        "servicefabricresources",
        "servicehealthresources",
        "spotresources",
        "supportresources",
        "tagsresources",
        "workloadmonitorresources",
    }
)
MAX_JOINS = 3
MAX_MV_EXPAND = 3
MAX_UNION_LEGS = 3
MV_EXPAND_DEFAULT_LIMIT = 128
MV_EXPAND_MAX_LIMIT = 400
ALLOWED_JOIN_KINDS = ("innerunique", "inner", "leftouter", "fullouter")
_FREE_CROSS = frozenset({"resources", "resourcecontainers"})

_NUM = (int, float)
_JSON_TAG = object()
_BOOL_TAG = object()


# ------------------------------------------------------------------------------ value helpers


def _fmt_float(v: float) -> str:
    if v != v:
        return "NaN"
    if v in (math.inf, -math.inf):
        return "Infinity" if v > 0 else "-Infinity"
    if v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return repr(v)


def _tostr(v: Any) -> str:
    """Kusto's tostring: null -> "", bags and arrays -> compact JSON."""
    t = type(v)
    if t is str:
        return v
    if v is None:
        return ""
    if t is bool:
        return "true" if v else "false"
    if t is int:
        return str(v)
    if t is float:
        return _fmt_float(v)
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False)


def _is_num(v: Any) -> bool:
    t = type(v)
    return t is int or t is float


def _eq(a: Any, b: Any) -> bool:
    """Typed equality; null never equals anything, bool never equals a number."""
    if a is None or b is None:
        return False
    ta, tb = type(a), type(b)
    if ta is bool or tb is bool or ta is str or tb is str:
        return ta is tb and a == b
    return a == b


def _hkey(v: Any) -> Any:
    """A hashable grouping key for any JSON value (bags and arrays by their JSON text)."""
    t = type(v)
    if t is str or v is None or t is int or t is float:
        return v
    if t is bool:
        return (_BOOL_TAG, v)
    return (_JSON_TAG, json.dumps(v, sort_keys=True, separators=(",", ":")))


def _walk(v: Any, keys: tuple[str | int, ...]) -> Any:
    for k in keys:
        if type(k) is str:
            if type(v) is not dict:
                return None
            v = v.get(k)
        else:
            if type(v) is not list:
                return None
            try:
                v = v[k]
            except IndexError:
                return None
    return v


def _toint(v: Any) -> int | None:
    t = type(v)
    if t is int:
        return v
    if t is bool:
        return int(v)
    if t is float:
        return int(v) if math.isfinite(v) else None
    if t is str:
        s = v.strip()
        try:
            return int(s)
        except ValueError:
            try:
                f = float(s)
            except ValueError:
                return None
            return int(f) if math.isfinite(f) else None
    return None


def _toreal(v: Any) -> float | None:
    t = type(v)
    if t is float:
        return v
    if t is int or t is bool:
        return float(v)
    if t is str:
        try:
            return float(v.strip())
        except ValueError:
            return None
    return None


def _tobool(v: Any) -> bool | None:
    t = type(v)
    if t is bool:
        return v
    if t is int or t is float:
        return v != 0
    if t is str:
        s = v.strip().lower()
        if s in ("true", "1"):
            return True
        if s in ("false", "0"):
            return False
    return None


def _has(hay: str, needle: str) -> bool:
    """Whole-term match: the needle's alphanumeric edges must sit on term boundaries."""
    if not needle:
        return True
    a0, a1 = needle[0].isalnum(), needle[-1].isalnum()
    n, start = len(needle), 0
    while True:
        i = hay.find(needle, start)
        if i < 0:
            return False
        j = i + n
        if (not a0 or i == 0 or not hay[i - 1].isalnum()) and (
            not a1 or j == len(hay) or not hay[j].isalnum()
        ):
            return True
        start = i + 1


def _sort_key(f: Fn, null_rank: int) -> Fn:
    def key(r: Row) -> tuple[int, Any]:
        v = f(r)
        t = type(v)
        if t is str:
            return (2, v)
        if v is None:
            return (null_rank, 0)
        if t is int or t is float:
            return (1, v)
        if t is bool:
            return (1, int(v))
        return (3, _tostr(v))

    return key


def _sort_rows(rows: list[Row], keys: list[tuple[Fn, SortKey]]) -> list[Row]:
    out = list(rows)
    for f, k in reversed(keys):  # stable sorts, least significant key first
        null_rank = 4 if k.nulls_first == k.desc else 0
        out.sort(key=_sort_key(f, null_rank), reverse=k.desc)
    return out


# --------------------------------------------------------------------------- naming (Kusto's)

# Kusto.Language ResultNameKind for the scalar functions here: "first" = FirstArgument (the
# column is named after the argument, e.g. tostring(properties.x) -> properties_x), "prefix" =
# NameAndFirstArgument (strlen(name) -> strlen_name); all others have no inferred name.
_NAME_FIRST = frozenset(
    {
        "tostring",
        "toint",
        "tolong",
        "todouble",
        "toreal",
        "tobool",
        "todynamic",
        "parse_json",
    }
)
_NAME_PREFIX = frozenset({"strlen"})


def result_name(e: Any) -> str:
    """The column name Kusto infers for an unnamed expression ("" when it infers none)."""
    if isinstance(e, Col):
        return e.name
    if isinstance(e, Member):
        left, right = result_name(e.base), str(e.key)
        return f"{left}_{right}" if left else right
    if isinstance(e, Index):
        left = result_name(e.base)
        return f"{left}_" if left else ""
    if isinstance(e, Call) and e.args:
        if e.name in _NAME_FIRST:
            return result_name(e.args[0])
        if e.name in _NAME_PREFIX:
            return f"{e.name}_{result_name(e.args[0])}"
    return ""


class _Names:
    """Output column names of one operator: explicit duplicates are errors, inferred duplicates
    get a numeric suffix, and un-nameable expressions become Column1, Column2, ..."""

    def __init__(self, comp: _Compiler, op: str, taken: Sequence[str] = ()) -> None:
        self.comp, self.op = comp, op
        self.names: list[str] = list(taken)
        self.auto = 0

    def add(self, explicit: str | None, inferred: str, pos: int) -> str:
        if explicit is not None:
            if explicit in self.names:
                raise self.comp.err(
                    "DuplicateColumn",
                    f"'{self.op}' operator: duplicate column name {explicit!r}",
                    pos,
                    explicit,
                )
            self.names.append(explicit)
            return explicit
        name = inferred
        if not name:
            self.auto += 1
            name = f"Column{self.auto}"
            while name in self.names:
                self.auto += 1
                name = f"Column{self.auto}"
        base, k = name, 0
        while name in self.names:
            k += 1
            name = f"{base}{k}"
        self.names.append(name)
        return name


# ------------------------------------------------------------------------------ the compiler


class _Compiler:
    """Turns the AST into closures, tracking each operator's output columns statically (as
    Kusto does) and counting the operators ARG limits."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tables: set[str] = set()
        self.joins: list[tuple[str, str, Join]] = []
        self.mv_expands: list[MvExpand] = []
        self.union_legs: list[tuple[str, Pipeline]] = []
        self.has_limit = False
        self.has_summarize = False

    def err(self, code: str, message: str, pos: int | None, token: str | None = None) -> KqlError:
        return error(self.text, code, message, pos, token)

    # -- pipelines -----------------------------------------------------------------------
    def pipeline(
        self, p: Pipeline
    ) -> tuple[Callable[[Mapping[str, Sequence[Row]]], list[Row]], list[str]]:
        if p.table not in ARG_TABLES:
            raise self.err(
                "DisallowedLogicalTableName",
                f"Table {p.table_raw} is invalid, unsupported or disallowed.",
                p.pos,
                p.table_raw,
            )
        self.tables.add(p.table)
        cols = list(ARG_COLUMNS)
        steps: list[Step] = []
        for op in p.ops:
            step, cols = self.operator(op, cols, p)
            steps.append(step)
        table, text, raw, pos = p.table, self.text, p.table_raw, p.pos
        # Leading `where`s are memoised per table object (see _Memo): pages of one query and
        # hash slices of one query over an unchanged estate filter the table once.
        lead = 0
        while lead < len(p.ops) and isinstance(p.ops[lead], Where):
            lead += 1
        keys = [repr((p.table, p.ops[: i + 1])) for i in range(lead)]
        slices = [self._hash_slice(p.ops[i], list(ARG_COLUMNS)) for i in range(lead)]

        def run(tables: Mapping[str, Sequence[Row]]) -> list[Row]:
            try:
                rows: Any = tables[table]
            except KeyError:
                raise error(
                    text,
                    "DisallowedLogicalTableName",
                    f"Table {raw} is invalid, unsupported or disallowed (the emulator "
                    "does not serve it).",
                    pos,
                    raw,
                ) from None
            if not steps:
                return list(rows)
            base, start = rows, 0
            for j in range(lead, 0, -1):
                hit = _MEMO.get(base, keys[j - 1])
                if hit is not None:
                    rows, start = hit, j
                    break
            for i in range(start, len(steps)):
                if i < lead and slices[i] is not None:
                    fn, expr_key, mod, part = slices[i]
                    bucket_key = f"{keys[i - 1] if i else table}|hash({expr_key}, {mod})"
                    buckets = _MEMO.get(base, bucket_key)
                    if buckets is None:
                        buckets = _buckets(rows, fn, mod)
                        _MEMO.put(base, bucket_key, buckets)
                    rows = buckets[part]
                else:
                    rows = steps[i](rows, tables)
                if i < lead:
                    _MEMO.put(base, keys[i], rows)
            return rows if start < len(steps) else list(rows)

        return run, cols

    def _hash_slice(self, op: Where, cols: list[str]) -> tuple[Fn, str, int, int] | None:
        """``where hash(expr, N) == k`` (k a literal in 0..N-1): the expression (compiled, and
        as a memo key), N and k."""
        pred = op.pred
        if not (isinstance(pred, Binary) and pred.op == "=="):
            return None
        call, lit = pred.left, pred.right
        if isinstance(call, Lit):
            call, lit = lit, call
        if not (isinstance(call, Call) and call.name == "hash" and len(call.args) == 2
                and isinstance(lit, Lit) and isinstance(call.args[1], Lit)):
            return None
        mod, part = call.args[1].value, lit.value
        if not (type(mod) is int and type(part) is int and 0 <= part < mod):
            return None
        return self.expr(call.args[0], cols, "where"), repr(call.args[0]), mod, part

    def operator(self, op: Any, cols: list[str], pipe: Pipeline) -> tuple[Step, list[str]]:
        method = getattr(self, "op_" + type(op).__name__.lower())
        return method(op, cols, pipe)

    # -- where / extend / project --------------------------------------------------------
    def op_where(self, op: Where, cols: list[str], pipe: Pipeline) -> tuple[Step, list[str]]:
        pred = op.pred
        if (
            isinstance(pred, Binary)
            and pred.op == "=="
            and isinstance(pred.left, Col)
            and isinstance(pred.right, Lit)
            and type(pred.right.value) is str
        ):
            name, const = self.column(pred.left, cols, "where"), pred.right.value

            def where_eq(rows: list[Row], _t: Any) -> list[Row]:
                return [r for r in rows if r.get(name) == const]

            return where_eq, cols
        f = self.expr(pred, cols, "where")

        def where(rows: list[Row], _t: Any) -> list[Row]:
            return [r for r in rows if f(r) is True]

        return where, cols

    def op_extend(self, op: Extend, cols: list[str], pipe: Pipeline) -> tuple[Step, list[str]]:
        out = list(cols)
        names = _Names(self, "extend", out)  # Column1... avoid every existing column
        items: list[tuple[str, Fn]] = []
        for a in op.items:
            f = self.expr(a.expr, out, "extend")
            name = a.name if a.name is not None else result_name(a.expr)
            name = name or names.add(None, "", a.pos)
            if name not in out:
                out.append(name)
                names.names.append(name)
            items.append((name, f))

        if len(items) == 1:
            name0, f0 = items[0]
            return (lambda rows, _t: [{**r, name0: f0(r)} for r in rows]), out

        def extend(rows: list[Row], _t: Any) -> list[Row]:
            res = []
            for r in rows:
                d = dict(r)
                for name, f in items:
                    d[name] = f(d)  # later items see earlier ones, as in Kusto
                res.append(d)
            return res

        return extend, out

    def op_project(self, op: Project, cols: list[str], pipe: Pipeline) -> tuple[Step, list[str]]:
        names = _Names(self, "project")
        items: list[tuple[str, Fn]] = []
        for a in op.items:
            if isinstance(a.expr, Star):
                raise self.err("ParserFailure", "'project' does not accept '*'", a.expr.pos, "*")
            f = self.expr(a.expr, cols, "project")
            items.append((names.add(a.name, result_name(a.expr), a.pos), f))
        return self._projector(items), names.names

    @staticmethod
    def _projector(items: list[tuple[str, Fn]]) -> Step:
        if len(items) <= 8:
            # Unrolled row builders: the common narrow projections run ~2x faster than a
            # comprehension over (name, fn) pairs.
            ns = [n for n, _ in items] + [""] * (8 - len(items))
            fs = [f for _, f in items] + [None] * (8 - len(items))
            n0, n1, n2, n3, n4, n5, n6, n7 = ns
            f0, f1, f2, f3, f4, f5, f6, f7 = fs
            k = len(items)
            if k == 1:
                return lambda rows, _t: [{n0: f0(r)} for r in rows]
            if k == 2:
                return lambda rows, _t: [{n0: f0(r), n1: f1(r)} for r in rows]
            if k == 3:
                return lambda rows, _t: [{n0: f0(r), n1: f1(r), n2: f2(r)} for r in rows]
            if k == 4:
                return lambda rows, _t: [{n0: f0(r), n1: f1(r), n2: f2(r), n3: f3(r)} for r in rows]
            if k == 5:
                return lambda rows, _t: [
                    {n0: f0(r), n1: f1(r), n2: f2(r), n3: f3(r), n4: f4(r)} for r in rows
                ]
            if k == 6:
                return lambda rows, _t: [
                    {n0: f0(r), n1: f1(r), n2: f2(r), n3: f3(r), n4: f4(r), n5: f5(r)} for r in rows
                ]
            if k == 7:
                return lambda rows, _t: [
                    {n0: f0(r), n1: f1(r), n2: f2(r), n3: f3(r), n4: f4(r), n5: f5(r), n6: f6(r)}
                    for r in rows
                ]
            return lambda rows, _t: [
                {
                    n0: f0(r),
                    n1: f1(r),
                    n2: f2(r),
                    n3: f3(r),
                    n4: f4(r),
                    n5: f5(r),
                    n6: f6(r),
                    n7: f7(r),
                }
                for r in rows
            ]
        return lambda rows, _t: [{n: f(r) for n, f in items} for r in rows]

    def op_projectaway(
        self, op: ProjectAway, cols: list[str], pipe: Pipeline
    ) -> tuple[Step, list[str]]:
        verb = "project-keep" if op.keep else "project-away"
        matched: set[str] = set()
        for pat, pos in op.patterns:
            rx = re.compile("^" + ".*".join(re.escape(p) for p in pat.split("*")) + "$")
            hits = {c for c in cols if rx.match(c)}
            if not hits and "*" not in pat:
                raise self.err(
                    "UnknownColumn",
                    f"'{verb}' operator: Failed to resolve column named {pat!r}",
                    pos,
                    pat,
                )
            matched |= hits
        out = [c for c in cols if (c in matched) == op.keep]
        if op.keep:
            keep = tuple(out)
            return (lambda rows, _t: [{c: r.get(c) for c in keep} for r in rows]), out
        drop = frozenset(matched)
        return (lambda rows, _t: [{k: v for k, v in r.items() if k not in drop} for r in rows]), out

    def op_projectrename(
        self, op: ProjectRename, cols: list[str], pipe: Pipeline
    ) -> tuple[Step, list[str]]:
        ren: dict[str, str] = {}
        for new, old, pos in op.pairs:
            if old not in cols:
                raise self.err(
                    "UnknownColumn",
                    f"'project-rename' operator: Failed to resolve column named {old!r}",
                    pos,
                    old,
                )
            ren[old] = new
        out = [ren.get(c, c) for c in cols]
        if len(set(out)) != len(out):
            raise self.err(
                "DuplicateColumn",
                "'project-rename' operator: duplicate column name",
                op.pos,
                "project-rename",
            )
        return (lambda rows, _t: [{ren.get(k, k): v for k, v in r.items()} for r in rows]), out

    # -- sort / take / top / distinct / count --------------------------------------------
    def _keys(self, keys: list[SortKey], cols: list[str], verb: str) -> list[tuple[Fn, SortKey]]:
        return [(self.expr(k.expr, cols, verb), k) for k in keys]

    def op_sort(self, op: Sort, cols: list[str], pipe: Pipeline) -> tuple[Step, list[str]]:
        keys = self._keys(op.keys, cols, "order by")
        return (lambda rows, _t: _sort_rows(rows, keys)), cols

    def op_take(self, op: Take, cols: list[str], pipe: Pipeline) -> tuple[Step, list[str]]:
        self.has_limit = True
        n = op.count
        return (lambda rows, _t: list(rows[:n])), cols

    def op_top(self, op: Top, cols: list[str], pipe: Pipeline) -> tuple[Step, list[str]]:
        keys, n = self._keys([op.key], cols, "top"), op.count
        return (lambda rows, _t: _sort_rows(rows, keys)[:n]), cols

    def op_distinct(self, op: Distinct, cols: list[str], pipe: Pipeline) -> tuple[Step, list[str]]:
        if op.columns[0][0] == "*":
            names = tuple(cols)
        else:
            for name, pos in op.columns:
                self.column(Col(name, pos), cols, "distinct")
            names = tuple(dict.fromkeys(n for n, _ in op.columns))

        def distinct(rows: list[Row], _t: Any) -> list[Row]:
            seen: set[Any] = set()
            out = []
            for r in rows:
                vals = tuple(r.get(c) for c in names)
                key = tuple(_hkey(v) for v in vals)
                if key not in seen:
                    seen.add(key)
                    out.append(dict(zip(names, vals, strict=True)))
            return out

        return distinct, list(names)

    def op_count(self, op: Count, cols: list[str], pipe: Pipeline) -> tuple[Step, list[str]]:
        return (lambda rows, _t: [{"Count": len(rows)}]), ["Count"]

    # -- summarize -----------------------------------------------------------------------
    def op_summarize(
        self, op: Summarize, cols: list[str], pipe: Pipeline
    ) -> tuple[Step, list[str]]:
        self.has_summarize = True
        names = _Names(self, "summarize")
        by: list[tuple[str, Fn]] = []
        for a in op.by:
            f = self.expr(a.expr, cols, "summarize")
            by.append((names.add(a.name, result_name(a.expr), a.pos), f))
        by_cols = {b.expr.name for b in op.by if isinstance(b.expr, Col) and b.name is None}
        aggs: list[tuple[list[str], Callable[[list[Row]], list[Any]]]] = []
        for a in op.aggs:
            aggs.append(self.aggregate(a, cols, names, by_cols))
        by_names = [n for n, _ in by]
        by_fns = [f for _, f in by]

        def summarize(rows: list[Row], _t: Any) -> list[Row]:
            groups: dict[Any, tuple[tuple[Any, ...], list[Row]]] = {}
            if not by_fns:
                groups[()] = ((), list(rows))
            elif len(by_fns) == 1:
                f0 = by_fns[0]
                for r in rows:
                    v = f0(r)
                    key = _hkey(v)
                    g = groups.get(key)
                    if g is None:
                        groups[key] = g = ((v,), [])
                    g[1].append(r)
            else:
                for r in rows:
                    vals = tuple(f(r) for f in by_fns)
                    key = tuple(_hkey(v) for v in vals)
                    g = groups.get(key)
                    if g is None:
                        groups[key] = g = (vals, [])
                    g[1].append(r)
            out = []
            for vals, grows in groups.values():
                d = dict(zip(by_names, vals, strict=True))
                for anames, fn in aggs:
                    d.update(zip(anames, fn(grows), strict=True))
                out.append(d)
            return out

        return summarize, names.names

    def aggregate(
        self, a: Assign, cols: list[str], names: _Names, by_cols: set[str]
    ) -> tuple[list[str], Callable[[list[Row]], list[Any]]]:
        e = a.expr
        if not isinstance(e, Call) or e.name not in _AGGREGATES:
            pos = getattr(e, "pos", a.pos)
            token = e.name if isinstance(e, Call) else self.text[pos : pos + 20]
            raise self.err(
                "UnknownFunction",
                f"'summarize' operator: {token!r} is not a supported aggregation "
                f"function (supported: {', '.join(sorted(_AGGREGATES))})",
                pos,
                token,
            )
        lo, hi = _AGGREGATES[e.name]
        if not lo <= len(e.args) <= hi:
            raise self.err(
                "InvalidArgumentCount",
                f"Aggregation {e.name!r} expects {lo}..{hi} arguments, got {len(e.args)}",
                e.pos,
                e.name,
            )
        if e.name in ("arg_max", "arg_min"):
            return self.arg_extreme(a, e, cols, names, by_cols)
        if e.name == "take_any" and len(e.args) > 1:
            raise self.err(
                "UnsupportedOperator",
                "take_any with several arguments is not supported; use one take_any per column",
                e.pos,
                e.name,
            )
        fns = [self.expr(x, cols, "summarize") for x in e.args[:1]]
        arg = e.args[0] if e.args else None
        if e.name == "take_any":
            inferred = arg.name if isinstance(arg, Col) else (result_name(arg) or "any_arg0")
        else:
            prefix = _AGG_PREFIX.get(e.name, e.name)
            inferred = f"{prefix}_{result_name(arg) if arg is not None else ''}"
        name = names.add(a.name, inferred, a.pos)
        f = fns[0] if fns else None
        impl = _AGG_IMPL[e.name](f)
        if e.name in ("make_list", "make_set") and len(e.args) == 2:
            size = e.args[1]
            if not (isinstance(size, Lit) and type(size.value) is int and size.value > 0):
                raise self.err(
                    "InvalidArgument",
                    f"{e.name}(): maxSize must be a positive integer literal",
                    getattr(size, "pos", e.pos),
                    e.name,
                )
            n, full = size.value, impl
            return [name], lambda rows: [full(rows)[0][:n]]
        return [name], impl

    def arg_extreme(
        self, a: Assign, e: Call, cols: list[str], names: _Names, by_cols: set[str]
    ) -> tuple[list[str], Callable[[list[Row]], list[Any]]]:
        prim = e.args[0]
        fprim = self.expr(prim, cols, "summarize")
        prefix = "max" if e.name == "arg_max" else "min"
        out: list[tuple[str, Fn]] = []
        pname = prim.name if isinstance(prim, Col) else (result_name(prim) or f"{prefix}_")
        out.append((names.add(a.name, pname, a.pos), fprim))
        star = any(isinstance(x, Star) for x in e.args[1:])
        taken = {prim.name} if isinstance(prim, Col) else set()
        for i, x in enumerate(e.args[1:], start=1):
            if isinstance(x, Star):
                for c in cols:
                    if c not in taken and c not in by_cols:
                        taken.add(c)
                        out.append((names.add(None, c, e.pos), _getter(c)))
            elif isinstance(x, Col):
                self.column(x, cols, "summarize")
                if star and (x.name in taken or x.name in by_cols):
                    continue
                taken.add(x.name)
                out.append((names.add(None, x.name, x.pos), _getter(x.name)))
            else:
                f = self.expr(x, cols, "summarize")
                out.append(
                    (names.add(None, result_name(x) or f"{prefix}_{pname}_arg{i}", x.pos), f)
                )
        better = (lambda v, b: v > b) if prefix == "max" else (lambda v, b: v < b)
        fns = [f for _, f in out[1:]]

        def agg(rows: list[Row]) -> list[Any]:
            best, bv = None, None
            for r in rows:
                v = fprim(r)
                if v is None:
                    continue
                if best is None or (_comparable(v, bv) and better(v, bv)):
                    best, bv = r, v
            if best is None:
                return [None] * (1 + len(fns))
            return [bv, *(f(best) for f in fns)]

        return [n for n, _ in out], agg

    # -- mv-expand -----------------------------------------------------------------------
    def op_mvexpand(self, op: MvExpand, cols: list[str], pipe: Pipeline) -> tuple[Step, list[str]]:
        self.mv_expands.append(op)
        out = list(cols)
        names = _Names(self, "mv-expand", out)
        items: list[tuple[str, Fn, Callable[[Any], Any] | None]] = []
        for a, typename in op.items:
            f = self.expr(a.expr, cols, "mv-expand")
            name = (
                a.name
                if a.name is not None
                else (result_name(a.expr) or names.add(None, "", a.pos))
            )
            if name not in out:
                out.append(name)
            cast = None
            if typename is not None:
                if typename not in _CASTS:
                    raise self.err(
                        "ParserFailure", f"Unknown type {typename!r} in typeof()", a.pos, typename
                    )
                cast = _CASTS[typename]
            items.append((name, f, cast))
        idx = op.index_column
        if idx is not None and idx not in out:
            out.append(idx)
        limit = MV_EXPAND_DEFAULT_LIMIT if op.limit is None else min(op.limit, MV_EXPAND_MAX_LIMIT)
        as_array = op.bag_kind == "array"

        def expand_one(v: Any) -> list[Any]:
            t = type(v)
            if t is list:
                return v
            if v is None:
                return [None]
            if t is dict:
                if as_array:
                    return [[k, x] for k, x in v.items()]
                return [{k: x} for k, x in v.items()]
            return [v]

        if len(items) == 1 and items[0][2] is None and idx is None:
            name0, f0 = items[0][0], items[0][1]

            def mv_expand_one(rows: list[Row], _t: Any) -> list[Row]:
                res: list[Row] = []
                for r in rows:
                    v = f0(r)
                    seq = v if type(v) is list else expand_one(v)
                    res.extend([{**r, name0: x} for x in seq[:limit]])
                return res

            return mv_expand_one, out

        def mv_expand(rows: list[Row], _t: Any) -> list[Row]:
            res = []
            for r in rows:
                seqs = [expand_one(f(r)) for _, f, _ in items]
                n = min(max(len(s) for s in seqs), limit)
                for i in range(n):
                    d = dict(r)
                    for (name, _, cast), seq in zip(items, seqs, strict=True):
                        v = seq[i] if i < len(seq) else None
                        d[name] = cast(v) if cast is not None else v
                    if idx is not None:
                        d[idx] = i
                    res.append(d)
            return res

        return mv_expand, out

    # -- join / union --------------------------------------------------------------------
    def op_join(self, op: Join, cols: list[str], pipe: Pipeline) -> tuple[Step, list[str]]:
        if op.kind not in ALLOWED_JOIN_KINDS:
            raise self.err(
                "UnsupportedJoinFlavor",
                f'The join kind "{op.kind}" is not supported or not allowed. Azure '
                f"Resource Graph allows: {', '.join(ALLOWED_JOIN_KINDS)}.",
                op.kind_pos,
                op.kind,
            )
        self.joins.append((pipe.table, op.right.table, op))
        right_run, rcols = self.pipeline(op.right)
        lkeys, rkeys = [], []
        for lk, rk, pos in op.keys:
            if lk not in cols:
                raise self.err(
                    "UnknownColumn",
                    f"'join' operator: Failed to resolve column {lk!r} on the left side",
                    pos,
                    lk,
                )
            if rk not in rcols:
                raise self.err(
                    "UnknownColumn",
                    f"'join' operator: Failed to resolve column {rk!r} on the right side",
                    pos,
                    rk,
                )
            lkeys.append(lk)
            rkeys.append(rk)
        out = list(cols)
        rmap: list[tuple[str, str]] = []
        for c in rcols:
            name, k = c, 0
            while name in out:
                k += 1
                name = f"{c}{k}"
            out.append(name)
            rmap.append((c, name))
        lkey, rkey = _key_fn(lkeys), _key_fn(rkeys)
        kind = op.kind
        null_right = {dst: None for _, dst in rmap}
        null_left = dict.fromkeys(cols)

        def join(rows: list[Row], tables: Mapping[str, Sequence[Row]]) -> list[Row]:
            index: dict[Any, list[Row]] = {}
            unkeyed: list[Row] = []
            for rr in right_run(tables):
                k = rkey(rr)
                if k is not None:
                    index.setdefault(k, []).append(rr)
                else:
                    unkeyed.append(rr)
            res: list[Row] = []
            matched: set[Any] = set()
            seen: set[Any] = set()
            for lr in rows:
                k = lkey(lr)
                if kind == "innerunique":
                    if k is None or k in seen:
                        continue
                    seen.add(k)
                hits = index.get(k) if k is not None else None
                if hits:
                    if kind == "fullouter":
                        matched.add(k)
                    for rr in hits:
                        d = dict(lr)
                        for src, dst in rmap:
                            d[dst] = rr.get(src)
                        res.append(d)
                elif kind in ("leftouter", "fullouter"):
                    d = dict(lr)
                    d.update(null_right)
                    res.append(d)
            if kind == "fullouter":
                rest = [rr for k, hits in index.items() if k not in matched for rr in hits]
                for rr in rest + unkeyed:
                    d = dict(null_left)
                    for src, dst in rmap:
                        d[dst] = rr.get(src)
                    res.append(d)
            return res

        return join, out

    def op_union(self, op: Union, cols: list[str], pipe: Pipeline) -> tuple[Step, list[str]]:
        runs = []
        out = list(cols)
        common = set(cols)
        for leg in op.legs:
            self.union_legs.append((pipe.table, leg))
            run, lcols = self.pipeline(leg)
            runs.append((leg.table_raw, run))
            out += [c for c in lcols if c not in out]
            common &= set(lcols)
        if op.kind == "inner":
            out = [c for c in out if c in common]
        ws = op.withsource
        if ws is not None:
            out = [ws] + [c for c in out if c != ws]
        keep = tuple(out) if op.kind == "inner" else None
        first = pipe.table_raw

        def union(rows: list[Row], tables: Mapping[str, Sequence[Row]]) -> list[Row]:
            parts = [(first, rows)] + [(name, run(tables)) for name, run in runs]
            res: list[Row] = []
            for name, part in parts:
                for r in part:
                    d = {c: r.get(c) for c in keep} if keep is not None else dict(r)
                    if ws is not None:
                        d = {ws: name, **d}
                    res.append(d)
            return res

        return union, out

    # -- limits --------------------------------------------------------------------------
    def check_limits(self) -> None:
        if len(self.joins) > MAX_JOINS:
            op = self.joins[MAX_JOINS][2]
            raise self.err(
                "TooManyJoins",
                f"The query has {len(self.joins)} join operators; Azure Resource "
                f"Graph allows at most {MAX_JOINS} join per query.",
                op.pos,
                "join",
            )
        cross = [(lt, rt, op) for lt, rt, op in self.joins if lt != rt]
        if len(cross) > 1 and any({lt, rt} - _FREE_CROSS for lt, rt, _ in cross):
            op = cross[1][2]
            raise self.err(
                "TooManyJoins",
                f"The query has {len(cross)} cross-table joins; Azure Resource Graph "
                "allows at most 1 cross-table join per query, or 3 when every "
                "cross-table join is between Resources and ResourceContainers.",
                op.pos,
                "join",
            )
        if len(self.mv_expands) > MAX_MV_EXPAND:
            op = self.mv_expands[MAX_MV_EXPAND]
            raise self.err(
                "TooManyMvExpand",
                f"The query has {len(self.mv_expands)} mv-expand operators; Azure "
                f"Resource Graph allows at most {MAX_MV_EXPAND} mv-expand per query.",
                op.pos,
                "mv-expand",
            )
        if len(self.union_legs) > MAX_UNION_LEGS:
            leg = self.union_legs[MAX_UNION_LEGS][1]
            raise self.err(
                "TooManyUnionLegs",
                f"The query has {len(self.union_legs)} union legs; Azure Resource "
                f"Graph allows at most {MAX_UNION_LEGS} union legs per query.",
                leg.pos,
                leg.table_raw,
            )
        for lt, leg in self.union_legs:
            if lt != leg.table and {lt, leg.table} - _FREE_CROSS:
                raise self.err(
                    "DisallowedUnion",
                    f"union of {lt} with {leg.table_raw}: Azure Resource Graph allows "
                    "union within one table or between Resources and "
                    "ResourceContainers only.",
                    leg.pos,
                    leg.table_raw,
                )

    # -- scalar expressions --------------------------------------------------------------
    def column(self, c: Col, cols: Sequence[str], verb: str) -> str:
        if c.name not in cols:
            raise self.err(
                "UnknownColumn",
                f"'{verb}' operator: Failed to resolve scalar expression named {c.name!r}",
                c.pos,
                c.name,
            )
        return c.name

    def expr(self, e: Any, cols: Sequence[str], verb: str) -> Fn:
        """Compile one scalar expression into a closure over a row dict."""
        if isinstance(e, Lit):
            v = e.value
            return lambda r: v
        if isinstance(e, Col):
            return _getter(self.column(e, cols, verb))
        if isinstance(e, Member):
            keys: list[str | int] = []
            base = e
            while isinstance(base, Member):
                keys.append(base.key)
                base = base.base
            keys.reverse()
            return self.path(base, tuple(keys), cols, verb)
        if isinstance(e, Index):
            fb, fi = self.expr(e.base, cols, verb), self.expr(e.index, cols, verb)

            def index(r: Row) -> Any:
                i = fi(r)
                if type(i) not in (int, str):
                    return None
                return _walk(fb(r), (i,))

            return index
        if isinstance(e, Binary):
            return self.binary(e, cols, verb)
        if isinstance(e, Unary):
            f = self.expr(e.operand, cols, verb)
            if e.op == "+":
                return lambda r: v if _is_num(v := f(r)) else None
            return lambda r: -v if _is_num(v := f(r)) else None
        if isinstance(e, InList):
            return self.in_list(e, cols, verb)
        if isinstance(e, Call):
            return self.call(e, cols, verb)
        if isinstance(e, Star):
            raise self.err(
                "ParserFailure",
                "'*' is only allowed as an argument of arg_max, arg_min",
                e.pos,
                "*",
            )
        if isinstance(e, TypeOf):
            raise self.err(
                "ParserFailure", "typeof() is only allowed in 'mv-expand ... to'", e.pos, "typeof"
            )
        raise self.err(
            "ParserFailure", f"Unsupported expression {type(e).__name__}", getattr(e, "pos", None)
        )

    def path(self, base: Any, keys: tuple[str | int, ...], cols: Sequence[str], verb: str) -> Fn:
        if isinstance(base, Col):
            c = self.column(base, cols, verb)
            if len(keys) == 1 and type(keys[0]) is str:
                k0 = keys[0]

                def path1(r: Row) -> Any:
                    v = r.get(c)
                    return v.get(k0) if type(v) is dict else None

                return path1
            if len(keys) == 2 and type(keys[0]) is str and type(keys[1]) is str:
                k0, k1 = keys

                def path2(r: Row) -> Any:
                    v = r.get(c)
                    if type(v) is not dict:
                        return None
                    v = v.get(k0)
                    return v.get(k1) if type(v) is dict else None

                return path2
            return lambda r: _walk(r.get(c), keys)
        fb = self.expr(base, cols, verb)
        return lambda r: _walk(fb(r), keys)

    def binary(self, e: Binary, cols: Sequence[str], verb: str) -> Fn:
        op = e.op
        fl = self.expr(e.left, cols, verb)
        fr = self.expr(e.right, cols, verb)
        const = e.right.value if isinstance(e.right, Lit) else None
        is_const = isinstance(e.right, Lit)
        if op == "and":
            return lambda r: fl(r) is True and fr(r) is True
        if op == "or":
            return lambda r: fl(r) is True or fr(r) is True
        if op == "==":
            if is_const and type(const) is str:
                return lambda r: fl(r) == const
            return lambda r: _eq(fl(r), fr(r))
        if op == "!=":
            if is_const and type(const) is str:
                return lambda r: (v := fl(r)) is not None and v != const
            return lambda r: (a := fl(r)) is not None and (b := fr(r)) is not None and not _eq(a, b)
        if op in ("<", "<=", ">", ">="):
            cmp = _CMP[op]

            def compare(r: Row) -> bool:
                a, b = fl(r), fr(r)
                return _comparable(a, b) and cmp(a, b)

            return compare
        if op in ("+", "-", "*", "/", "%"):
            arith = _ARITH[op]

            def arithmetic(r: Row) -> Any:
                a, b = fl(r), fr(r)
                if _is_num(a) and _is_num(b):
                    return arith(a, b)
                return None

            return arithmetic
        if op == "matches regex":
            if not (is_const and type(const) is str):
                raise self.err(
                    "ParserFailure",
                    "'matches regex' needs a constant string pattern",
                    e.pos,
                    "matches regex",
                )
            rx = self.regex(const, e.right.pos)
            return lambda r: rx.search(_tostr(fl(r))) is not None
        neg = op.startswith("!")
        base = op[1:] if neg else op
        if base in ("=~", "~"):  # "!~" arrives as base "~"
            test: Callable[[str, str], bool] = str.__eq__
            fold = True
        else:
            test, fold = _STRING_TESTS[base]
        if is_const:
            needle = _tostr(const).lower() if fold else _tostr(const)
            if fold:
                f = (
                    (lambda r: not test(_tostr(fl(r)).lower(), needle))
                    if neg
                    else (lambda r: test(_tostr(fl(r)).lower(), needle))
                )
            else:
                f = (
                    (lambda r: not test(_tostr(fl(r)), needle))
                    if neg
                    else (lambda r: test(_tostr(fl(r)), needle))
                )
            return f

        def string_op(r: Row) -> bool:
            a, b = _tostr(fl(r)), _tostr(fr(r))
            if fold:
                a, b = a.lower(), b.lower()
            return test(a, b) != neg

        return string_op

    def regex(self, pattern: str, pos: int) -> re.Pattern[str]:
        try:
            return re.compile(pattern)
        except re.error as exc:
            raise self.err(
                "InvalidRegex", f"Invalid regular expression {pattern!r}: {exc}", pos, pattern
            ) from None

    def in_list(self, e: InList, cols: Sequence[str], verb: str) -> Fn:
        f = self.expr(e.operand, cols, verb)
        op = e.op
        if all(isinstance(x, Lit) for x in e.items):
            consts: list[Any] = []
            for x in e.items:
                consts.extend(x.value if type(x.value) is list else [x.value])
            if op == "has_any":
                needles = [_tostr(c).lower() for c in consts]

                def has_any(r: Row) -> bool:
                    hay = _tostr(f(r)).lower()
                    return any(_has(hay, n) for n in needles)

                return has_any
            if op in ("in~", "!in~"):
                folded = frozenset(_tostr(c).lower() for c in consts)
                if op == "in~":
                    return lambda r: _tostr(f(r)).lower() in folded
                return lambda r: _tostr(f(r)).lower() not in folded
            if all(type(c) is str for c in consts):
                strs = frozenset(consts)
                if op == "in":
                    return lambda r: type(v := f(r)) is str and v in strs
                return lambda r: (v := f(r)) is not None and not (type(v) is str and v in strs)
            if op == "in":
                return lambda r: any(_eq(f(r), c) for c in consts)
            return lambda r: (v := f(r)) is not None and not any(_eq(v, c) for c in consts)
        fns = [self.expr(x, cols, verb) for x in e.items]

        def values(r: Row) -> list[Any]:
            out: list[Any] = []
            for g in fns:
                v = g(r)
                out.extend(v if type(v) is list else [v])
            return out

        if op == "has_any":
            return lambda r: any(_has(_tostr(f(r)).lower(), _tostr(n).lower()) for n in values(r))
        if op in ("in~", "!in~"):
            want = op == "in~"
            return lambda r: (
                (_tostr(f(r)).lower() in {_tostr(c).lower() for c in values(r)}) == want
            )
        if op == "in":
            return lambda r: any(_eq(f(r), c) for c in values(r))
        return lambda r: (v := f(r)) is not None and not any(_eq(v, c) for c in values(r))

    def call(self, e: Call, cols: Sequence[str], verb: str) -> Fn:
        if e.name in _AGGREGATES:
            raise self.err(
                "UnknownFunction",
                f"{e.name!r} is an aggregation function and may only be used in 'summarize'",
                e.pos,
                e.name,
            )
        spec = _FUNCTIONS.get(e.name)
        if spec is None:
            raise self.err(
                "UnknownFunction",
                f"Unknown function {e.name!r}: it is not a Kusto "
                "function or is outside the emulator's KQL subset",
                e.pos,
                e.name,
            )
        lo, hi, build = spec
        if not lo <= len(e.args) <= hi:
            want = str(lo) if lo == hi else f"{lo}..{'n' if hi > 64 else hi}"
            raise self.err(
                "InvalidArgumentCount",
                f"Function {e.name!r} expects {want} arguments, got {len(e.args)}",
                e.pos,
                e.name,
            )
        fns = [self.expr(x, cols, verb) for x in e.args]
        return build(self, e, fns)


def _getter(name: str) -> Fn:
    return lambda r: r.get(name)


def _key_fn(names: list[str]) -> Fn:
    if len(names) == 1:
        c = names[0]

        def key1(r: Row) -> Any:
            v = r.get(c)
            return None if v is None else _hkey(v)

        return key1

    def key(r: Row) -> Any:
        vals = [r.get(c) for c in names]
        if any(v is None for v in vals):
            return None
        return tuple(_hkey(v) for v in vals)

    return key


def _comparable(a: Any, b: Any) -> bool:
    ta, tb = type(a), type(b)
    return ((ta is int or ta is float) and (tb is int or tb is float)) or (ta is str and tb is str)


def _div(a: Any, b: Any) -> Any:
    if b == 0:
        return None
    if type(a) is int and type(b) is int:
        q = abs(a) // abs(b)
        return q if (a >= 0) == (b >= 0) else -q
    return a / b


def _mod(a: Any, b: Any) -> Any:
    if b == 0:
        return None
    return (
        math.fmod(a, b)
        if type(a) is float or type(b) is float
        else (abs(a) % abs(b) * (1 if a >= 0 else -1))
    )


_CMP: dict[str, Callable[[Any, Any], bool]] = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}
_ARITH: dict[str, Callable[[Any, Any], Any]] = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": _div,
    "%": _mod,
}
# base operator -> (test(haystack, needle), case-insensitive?)
_STRING_TESTS: dict[str, tuple[Callable[[str, str], bool], bool]] = {
    "contains": (lambda h, n: n in h, True),
    "contains_cs": (lambda h, n: n in h, False),
    "has": (_has, True),
    "has_cs": (_has, False),
    "hasprefix": (lambda h, n: any(t.startswith(n) for t in re.split(r"[^0-9a-z]+", h)), True),
    "hassuffix": (lambda h, n: any(t.endswith(n) for t in re.split(r"[^0-9a-z]+", h)), True),
    "startswith": (str.startswith, True),
    "startswith_cs": (str.startswith, False),
    "endswith": (str.endswith, True),
    "endswith_cs": (str.endswith, False),
}
_CASTS: dict[str, Callable[[Any], Any]] = {
    "dynamic": lambda v: v,
    "string": lambda v: v if type(v) is str else None,
    "long": lambda v: v if type(v) is int else None,
    "int": lambda v: v if type(v) is int else None,
    "real": lambda v: float(v) if _is_num(v) else None,
    "double": lambda v: float(v) if _is_num(v) else None,
    "bool": lambda v: v if type(v) is bool else None,
    "boolean": lambda v: v if type(v) is bool else None,
}


# ----------------------------------------------------------------------------- functions


def _f1(g: Callable[[Any], Any]) -> Callable[[_Compiler, Call, list[Fn]], Fn]:
    """A one-argument function whose argument is evaluated first."""

    def build(_c: _Compiler, _e: Call, fns: list[Fn]) -> Fn:
        f = fns[0]
        return lambda r: g(f(r))

    return build


def _b_iff(_c: _Compiler, _e: Call, fns: list[Fn]) -> Fn:
    fc, fa, fb = fns
    return lambda r: fa(r) if fc(r) is True else fb(r)


def _b_case(c: _Compiler, e: Call, fns: list[Fn]) -> Fn:
    if len(fns) % 2 == 0:
        raise c.err(
            "InvalidArgumentCount",
            "case() expects condition/value pairs and a final "
            "else value (an odd number of arguments)",
            e.pos,
            "case",
        )
    pairs = list(zip(fns[0:-1:2], fns[1:-1:2], strict=True))
    last = fns[-1]

    def case(r: Row) -> Any:
        for cond, val in pairs:
            if cond(r) is True:
                return val(r)
        return last(r)

    return case


def _b_coalesce(_c: _Compiler, _e: Call, fns: list[Fn]) -> Fn:
    def coalesce(r: Row) -> Any:
        res = None
        for f in fns:
            v = f(r)
            if v is None:
                continue
            if v == "" and type(v) is str:
                res = ""
                continue
            return v
        return res

    return coalesce


def _b_strcat(_c: _Compiler, _e: Call, fns: list[Fn]) -> Fn:
    return lambda r: "".join(_tostr(f(r)) for f in fns)


def _b_strcat_array(_c: _Compiler, _e: Call, fns: list[Fn]) -> Fn:
    fa, fd = fns
    return lambda r: _tostr(fd(r)).join(_tostr(x) for x in a) if type(a := fa(r)) is list else ""


def _b_split(_c: _Compiler, _e: Call, fns: list[Fn]) -> Fn:
    fs, fd = fns[0], fns[1]
    fi = fns[2] if len(fns) > 2 else None

    def split(r: Row) -> list[str]:
        s, d = _tostr(fs(r)), _tostr(fd(r))
        parts = s.split(d) if d else [s]
        if fi is None:
            return parts
        i = _toint(fi(r))
        if i is None:
            return []
        if i < 0:
            i += len(parts)
        return [parts[i]] if 0 <= i < len(parts) else []

    return split


def _b_substring(_c: _Compiler, _e: Call, fns: list[Fn]) -> Fn:
    fs, fstart = fns[0], fns[1]
    flen = fns[2] if len(fns) > 2 else None

    def substring(r: Row) -> str:
        s = _tostr(fs(r))
        start = _toint(fstart(r))
        if start is None:
            return ""
        if start < 0:
            start = max(0, len(s) + start)
        if flen is None:
            return s[start:]
        n = _toint(flen(r))
        return "" if n is None or n < 0 else s[start : start + n]

    return substring


def _b_extract(c: _Compiler, e: Call, fns: list[Fn]) -> Fn:
    pat, grp = e.args[0], e.args[1]
    if not (isinstance(pat, Lit) and type(pat.value) is str):
        raise c.err("ParserFailure", "extract() needs a constant regex", pat.pos, "extract")
    if not (isinstance(grp, Lit) and type(grp.value) is int and grp.value >= 0):
        raise c.err(
            "ParserFailure", "extract() needs a constant capture group number", grp.pos, "extract"
        )
    rx, g, fs = c.regex(pat.value, pat.pos), grp.value, fns[2]
    if g > rx.groups:
        raise c.err(
            "InvalidRegex", f"extract(): the regex has no capture group {g}", grp.pos, str(g)
        )

    def extract(r: Row) -> str:
        m = rx.search(_tostr(fs(r)))
        return (m.group(g) or "") if m else ""

    return extract


def _b_indexof(_c: _Compiler, _e: Call, fns: list[Fn]) -> Fn:
    fs, fn = fns
    return lambda r: _tostr(fs(r)).find(_tostr(fn(r)))


def _hash64(v: Any) -> int:
    """A stable 64-bit hash of a value's string form. Kusto's ``hash(source [, mod])`` uses
    xxhash64 ("this may change; use it within a single query", Kusto docs hash-function); the
    emulator uses BLAKE2b instead, so values differ from Azure's while keeping what callers may
    rely on: the same input always lands in the same bucket, buckets are 0..mod-1."""
    return _hash_text(v if type(v) is str else _tostr(v))


@functools.lru_cache(maxsize=1 << 19)
def _hash_text(text: str) -> int:
    # Cached: queries sliced by hash(id, N) == k ask the same ids' hashes once per slice.
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def _b_hash(_c: _Compiler, _e: Call, fns: list[Fn]) -> Fn:
    if len(fns) == 1:
        f = fns[0]
        return lambda r: None if (v := f(r)) is None else _hash64(v) >> 1
    f, fm = fns

    def hashed(r: Row) -> int | None:
        v, mod = f(r), fm(r)
        if v is None or not isinstance(mod, int) or isinstance(mod, bool) or mod <= 0:
            return None
        return _hash64(v) % mod

    return hashed


def _b_replace_string(_c: _Compiler, _e: Call, fns: list[Fn]) -> Fn:
    fs, fa, fb = fns

    def replace_string(r: Row) -> str:
        s, old = _tostr(fs(r)), _tostr(fa(r))
        return s.replace(old, _tostr(fb(r))) if old else s

    return replace_string


def _b_pack_array(_c: _Compiler, _e: Call, fns: list[Fn]) -> Fn:
    return lambda r: [f(r) for f in fns]


def _b_now(_c: _Compiler, _e: Call, _fns: list[Fn]) -> Fn:
    return lambda r: datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f0Z")


def _parse_json(v: Any) -> Any:
    if type(v) is not str:
        return v
    try:
        return json.loads(v)
    except ValueError:
        return v


def _not(v: Any) -> bool | None:
    if v is True:
        return False
    if v is False:
        return True
    return None


_FUNCTIONS: dict[str, tuple[int, int, Callable[[_Compiler, Call, list[Fn]], Fn]]] = {
    "isempty": (1, 1, _f1(lambda v: v is None or (type(v) is str and v == ""))),
    "isnotempty": (1, 1, _f1(lambda v: v is not None and not (type(v) is str and v == ""))),
    "isnull": (1, 1, _f1(lambda v: v is None)),
    "isnotnull": (1, 1, _f1(lambda v: v is not None)),
    "not": (1, 1, _f1(_not)),
    "tostring": (1, 1, _f1(_tostr)),
    "tolower": (1, 1, _f1(lambda v: _tostr(v).lower())),
    "toupper": (1, 1, _f1(lambda v: _tostr(v).upper())),
    "toint": (1, 1, _f1(_toint)),
    "tolong": (1, 1, _f1(_toint)),
    "todouble": (1, 1, _f1(_toreal)),
    "toreal": (1, 1, _f1(_toreal)),
    "tobool": (1, 1, _f1(_tobool)),
    "toboolean": (1, 1, _f1(_tobool)),
    "todynamic": (1, 1, _f1(_parse_json)),
    "parse_json": (1, 1, _f1(_parse_json)),
    "array_length": (1, 1, _f1(lambda v: len(v) if type(v) is list else None)),
    "bag_keys": (1, 1, _f1(lambda v: list(v) if type(v) is dict else None)),
    "strlen": (1, 1, _f1(lambda v: len(_tostr(v)))),
    "pack_array": (1, 1 << 16, _b_pack_array),
    "iff": (3, 3, _b_iff),
    "iif": (3, 3, _b_iff),
    "case": (3, 1 << 16, _b_case),
    "coalesce": (1, 1 << 16, _b_coalesce),
    "strcat": (1, 64, _b_strcat),
    "strcat_array": (2, 2, _b_strcat_array),
    "split": (2, 3, _b_split),
    "substring": (2, 3, _b_substring),
    "extract": (3, 3, _b_extract),
    "indexof": (2, 2, _b_indexof),
    "replace_string": (3, 3, _b_replace_string),
    "now": (0, 0, _b_now),
    "hash": (1, 2, _b_hash),
}


# ----------------------------------------------------------------------------- aggregations


def _agg_count(_f: Fn | None) -> Callable[[list[Row]], list[Any]]:
    return lambda rows: [len(rows)]


def _agg_countif(f: Fn | None) -> Callable[[list[Row]], list[Any]]:
    assert f is not None
    return lambda rows: [sum(1 for r in rows if f(r) is True)]


def _agg_dcount(f: Fn | None) -> Callable[[list[Row]], list[Any]]:
    assert f is not None
    return lambda rows: [len({_hkey(v) for r in rows if (v := f(r)) is not None})]


def _numbers(f: Fn, rows: list[Row]) -> list[Any]:
    return [v for r in rows if _is_num(v := f(r))]


def _agg_sum(f: Fn | None) -> Callable[[list[Row]], list[Any]]:
    assert f is not None
    return lambda rows: [sum(vals) if (vals := _numbers(f, rows)) else None]


def _agg_avg(f: Fn | None) -> Callable[[list[Row]], list[Any]]:
    assert f is not None
    return lambda rows: [sum(vals) / len(vals) if (vals := _numbers(f, rows)) else None]


def _agg_extreme(
    pick: Callable[..., Any],
) -> Callable[[Fn | None], Callable[[list[Row]], list[Any]]]:
    def make(f: Fn | None) -> Callable[[list[Row]], list[Any]]:
        assert f is not None

        def agg(rows: list[Row]) -> list[Any]:
            vals = [v for r in rows if (v := f(r)) is not None]
            nums = [v for v in vals if _is_num(v)]
            if nums:
                return [pick(nums)]
            strs = [v for v in vals if type(v) is str]
            return [pick(strs) if strs else None]

        return agg

    return make


def _agg_any(f: Fn | None) -> Callable[[list[Row]], list[Any]]:
    assert f is not None

    def agg(rows: list[Row]) -> list[Any]:
        first = None
        for r in rows:
            v = f(r)
            if v is not None and v != "":
                return [v]
            if first is None:
                first = v
        return [first]

    return agg


def _agg_make_list(f: Fn | None) -> Callable[[list[Row]], list[Any]]:
    assert f is not None
    return lambda rows: [[v for r in rows if (v := f(r)) is not None]]


def _agg_make_set(f: Fn | None) -> Callable[[list[Row]], list[Any]]:
    assert f is not None

    def agg(rows: list[Row]) -> list[Any]:
        seen: set[Any] = set()
        out = []
        for r in rows:
            v = f(r)
            if v is None:
                continue
            vals = v if type(v) is list else [v]  # make_set flattens arrays, as Kusto does
            for x in vals:
                k = _hkey(x)
                if k not in seen:
                    seen.add(k)
                    out.append(x)
        return [out]

    return agg


_AGGREGATES: dict[str, tuple[int, int]] = {
    "count": (0, 0),
    "countif": (1, 1),
    "dcount": (1, 2),
    "sum": (1, 1),
    "avg": (1, 1),
    "min": (1, 1),
    "max": (1, 1),
    "any": (1, 1),
    "take_any": (1, 1 << 16),
    "make_list": (1, 2),
    "make_set": (1, 2),
    "arg_max": (2, 1 << 16),
    "arg_min": (2, 1 << 16),
}
_AGG_PREFIX = {"make_list": "list", "make_set": "set"}
_AGG_IMPL: dict[str, Callable[[Fn | None], Callable[[list[Row]], list[Any]]]] = {
    "count": _agg_count,
    "countif": _agg_countif,
    "dcount": _agg_dcount,
    "sum": _agg_sum,
    "avg": _agg_avg,
    "min": _agg_extreme(min),
    "max": _agg_extreme(max),
    "any": _agg_any,
    "take_any": _agg_any,
    "make_list": _agg_make_list,
    "make_set": _agg_make_set,
}


class _Memo:
    """Rows after a pipeline's leading ``where``s, per table object (the state's ARG tables
    are new lists after every change, so an entry never outlives the estate it describes; the
    table is held so its id is not reused). A few dozen entries of row references."""

    def __init__(self, size: int = 64, tables: int = 4) -> None:
        self._items: OrderedDict[tuple[int, str], tuple[Any, Any]] = OrderedDict()
        self._size, self._tables = size, tables
        self._lock = threading.Lock()

    def get(self, table: Any, key: str) -> Any:
        with self._lock:
            entry = self._items.get((id(table), key))
            if entry is None or entry[0] is not table:
                return None
            self._items.move_to_end((id(table), key))
            return entry[1]

    def put(self, table: Any, key: str, value: Any) -> None:
        with self._lock:
            self._items[(id(table), key)] = (table, value)
            self._items.move_to_end((id(table), key))
            while len(self._items) > self._size:
                self._items.popitem(last=False)
            # Entries of tables other than the newest few go: an old table (the estate before
            # a change) must not stay alive through its memo entries.
            tables = list(dict.fromkeys(k[0] for k in reversed(self._items)))
            if len(tables) > self._tables:
                stale = set(tables[self._tables:])
                for k in [k for k in self._items if k[0] in stale]:
                    del self._items[k]


_MEMO = _Memo()


def _buckets(rows: Sequence[Row], fn: Fn, mod: int) -> list[list[Row]]:
    """Rows split by ``hash(fn(row), mod)`` (rows whose value is null match no slice)."""
    out: list[list[Row]] = [[] for _ in range(mod)]
    for r in rows:
        v = fn(r)
        if v is not None:
            out[_hash64(v) % mod].append(r)
    return out


# ------------------------------------------------------------------------------ public API


class CompiledQuery:
    """A parsed and checked query, ready to run any number of times over fresh tables."""

    def __init__(
        self,
        text: str,
        run: Callable[[Mapping[str, Sequence[Row]]], list[Row]],
        columns: list[str],
        tables: frozenset[str],
        has_limit: bool,
        has_summarize: bool = False,
    ) -> None:
        self.text = text
        self._run = run
        self.columns: tuple[str, ...] = tuple(columns)  # static output schema, in order
        self.tables: frozenset[str] = tables
        self.has_limit: bool = has_limit
        # ``summarize`` anywhere: ARG serves such results as a first page only (see arg.py).
        self.has_summarize: bool = has_summarize

    def run(self, tables: Mapping[str, Sequence[Row]]) -> list[Row]:
        """Evaluate over ``tables`` (lower-case table name -> rows); rows are not modified.

        The cyclic garbage collector is paused while the query runs: a query over 400k rows
        allocates hundreds of thousands of acyclic dicts, and the collector passes they trigger
        roughly doubled run time without ever finding garbage.
        """
        paused = gc.isenabled()
        if paused:
            gc.disable()
        try:
            return self._run(tables)
        finally:
            if paused:
                gc.enable()

    def projects_id(self) -> bool:
        """True when output rows carry an ``id`` column (ARG issues $skipToken only then)."""
        return "id" in self.columns

    def __repr__(self) -> str:
        return f"CompiledQuery({self.text!r})"


def compile_query(text: str) -> CompiledQuery:
    """Parse, check and compile ``text``; raises KqlError for anything ARG would reject.

    Pure: the same text always yields an equivalent query, so callers may cache the result.
    """
    if not isinstance(text, str) or not text.strip():
        raise KqlError("ParserFailure", "The query is empty", 0, "", line=1, column=0)
    pipe = parse(text)
    comp = _Compiler(text)
    run, cols = comp.pipeline(pipe)
    comp.check_limits()
    return CompiledQuery(text, run, cols, frozenset(comp.tables), comp.has_limit,
                         comp.has_summarize)


if __name__ == "__main__":  # a quick timing run: python -m emulator.kql
    import time

    vms = [
        {
            "id": f"/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/"
            f"virtualMachines/vm{i}",
            "name": f"vm{i}",
            "type": "microsoft.compute/virtualmachines" if i % 3 else "microsoft.compute/disks",
            "properties": {"hardwareProfile": {"vmSize": "Standard_D2s_v5"}},
        }
        for i in range(300_000)
    ]
    for q in (
        "Resources | where type == 'microsoft.compute/virtualmachines' "
        "| project id, name, properties.hardwareProfile.vmSize",
        "Resources | take 100000 | order by id asc",
        "Resources | summarize count() by type",
    ):
        cq = compile_query(q)
        t0 = time.perf_counter()
        n = len(cq.run({"resources": vms}))
        print(f"{time.perf_counter() - t0:6.3f}s {n:7d} rows  {q}")
