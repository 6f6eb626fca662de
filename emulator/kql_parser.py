"""Lexer and parser for the emulator's KQL subset (the subset itself is listed in ``emulator.kql``).

Kept apart from the evaluator so that every syntax error, with the line and 0-based
characterPositionInLine ARG reports for a ParserFailure, is produced in one place. The parser
builds a small AST of slotted dataclasses; ``emulator.kql`` compiles that AST into closures.
Operator and function names are case-sensitive, as in Kusto; table names are not, as in ARG.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class KqlError(Exception):
    """A query ARG would reject.

    ``code`` is the ARG error-detail code (``ParserFailure``, ``UnsupportedOperator``,
    ``UnknownFunction``, ``UnknownColumn``, ``UnsupportedJoinFlavor``, ``TooManyJoins``,
    ``TooManyMvExpand``, ``TooManyUnionLegs``, ``DisallowedLogicalTableName`` ...); ``message``
    names the offending token or operator and where it is. ``position`` is the 0-based character
    offset in the query, ``line`` is 1-based and ``column`` is the 0-based position in that line
    (ARG's ``characterPositionInLine``); all three are None when the error has no single place.
    """

    def __init__(
        self,
        code: str,
        message: str,
        position: int | None = None,
        token: str | None = None,
        *,
        line: int | None = None,
        column: int | None = None,
        expected: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.position = position
        self.token = token
        self.line = line
        self.column = column
        self.expected = expected

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


def locate(text: str, pos: int) -> tuple[int, int]:
    """1-based line and 0-based column of ``pos`` (ANTLR's convention, which ARG reports)."""
    pos = max(0, min(pos, len(text)))
    line = text.count("\n", 0, pos) + 1
    return line, pos - (text.rfind("\n", 0, pos) + 1)


def error(
    text: str,
    code: str,
    message: str,
    pos: int | None,
    token: str | None = None,
    expected: str | None = None,
) -> KqlError:
    """Build a KqlError whose message ends with the line and position it refers to."""
    if pos is None:
        return KqlError(code, message, None, token, expected=expected)
    line, col = locate(text, pos)
    where = f" (line {line}, position {col})"
    return KqlError(code, message + where, pos, token, line=line, column=col, expected=expected)


# --------------------------------------------------------------------------------------- lexer


@dataclass(slots=True)
class Token:
    kind: str  # "ident", "str", "int", "real", "op", "eof"
    value: Any
    pos: int
    end: int

    def show(self, text: str) -> str:
        return "<end of query>" if self.kind == "eof" else text[self.pos : self.end]


_OPS2 = ("==", "!=", "<>", "=~", "!~", "<=", ">=")
_OPS1 = "=<>+-*/%()[]{},.|:;"
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"', "0": "\0"}


def _ident_char(c: str) -> bool:
    return c.isalnum() or c == "_"


def tokenize(text: str) -> list[Token]:
    """Split a query into tokens; whitespace and ``//`` comments are dropped."""
    toks: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
            continue
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j + 1
            continue
        start = i
        if c in "'\"" or (c in "@hH" and i + 1 < n and text[i + 1] in "'\""):
            verbatim = c == "@"
            if c in "@hH":
                i += 1
            toks.append(_lex_string(text, start, i, verbatim))
            i = toks[-1].end
            continue
        if text.startswith("```", i):
            raise error(
                text, "ParserFailure", "Multi-line ``` string literals are not supported", i, "```"
            )
        if c.isdigit():
            toks.append(_lex_number(text, i))
            i = toks[-1].end
            continue
        if c.isalpha() or c == "_" or (c == "$" and i + 1 < n and text[i + 1].isalpha()):
            i += 1
            while i < n and _ident_char(text[i]):
                i += 1
            word = text[start:i]
            if word == "in" and i < n and text[i] == "~":
                i += 1
                toks.append(Token("op", "in~", start, i))
            else:
                toks.append(Token("ident", word, start, i))
            continue
        if c == "!" and i + 1 < n and (text[i + 1].isalpha()):
            i += 1
            while i < n and _ident_char(text[i]):
                i += 1
            if text[start + 1 : i] == "in" and i < n and text[i] == "~":
                i += 1
            toks.append(Token("op", text[start:i], start, i))
            continue
        two = text[i : i + 2]
        if two in _OPS2:
            toks.append(Token("op", "!=" if two == "<>" else two, i, i + 2))
            i += 2
            continue
        if c in _OPS1:
            toks.append(Token("op", c, i, i + 1))
            i += 1
            continue
        raise error(text, "ParserFailure", f"Unexpected character {c!r}", i, c)
    toks.append(Token("eof", None, n, n))
    return toks


def _lex_string(text: str, start: int, i: int, verbatim: bool) -> Token:
    quote = text[i]
    i += 1
    out: list[str] = []
    n = len(text)
    while i < n:
        c = text[i]
        if c == quote:
            if verbatim and i + 1 < n and text[i + 1] == quote:
                out.append(quote)
                i += 2
                continue
            return Token("str", "".join(out), start, i + 1)
        if c == "\n":
            break
        if c == "\\" and not verbatim and i + 1 < n:
            e = text[i + 1]
            if e == "u" and i + 5 < n:
                try:
                    out.append(chr(int(text[i + 2 : i + 6], 16)))
                    i += 6
                    continue
                except ValueError:
                    pass
            out.append(_ESCAPES.get(e, e))
            i += 2
            continue
        out.append(c)
        i += 1
    shown = text[start : min(i, start + 40)]
    raise error(
        text,
        "ParserFailure",
        f"Unterminated string literal {shown}",
        start,
        shown,
        expected=quote,
    )


def _lex_number(text: str, i: int) -> Token:
    start, n = i, len(text)
    while i < n and text[i].isdigit():
        i += 1
    real = False
    if i + 1 < n and text[i] == "." and text[i + 1].isdigit():
        real = True
        i += 1
        while i < n and text[i].isdigit():
            i += 1
    if i < n and text[i] in "eE":
        j = i + 1
        if j < n and text[j] in "+-":
            j += 1
        if j < n and text[j].isdigit():
            real = True
            i = j
            while i < n and text[i].isdigit():
                i += 1
    if i < n and (text[i].isalpha() or text[i] == "_"):
        j = i
        while j < n and _ident_char(text[j]):
            j += 1
        raise error(
            text,
            "ParserFailure",
            f"Unsupported literal {text[start:j]!r} (timespan, hex and typed numeric "
            "literals are outside the emulator's KQL subset)",
            start,
            text[start:j],
        )
    raw = text[start:i]
    return Token("real" if real else "int", float(raw) if real else int(raw), start, i)


# ----------------------------------------------------------------------------------------- AST


@dataclass(slots=True)
class Lit:
    value: Any
    pos: int


@dataclass(slots=True)
class Col:
    name: str
    pos: int


@dataclass(slots=True)
class Member:
    """``base.key``, ``base['key']`` or ``base[0]`` (a constant selector)."""

    base: Any
    key: str | int
    pos: int


@dataclass(slots=True)
class Index:
    """``base[expr]`` with a computed selector."""

    base: Any
    index: Any
    pos: int


@dataclass(slots=True)
class Call:
    name: str
    args: list[Any]
    pos: int


@dataclass(slots=True)
class Star:
    pos: int


@dataclass(slots=True)
class Unary:
    op: str
    operand: Any
    pos: int


@dataclass(slots=True)
class Binary:
    op: str
    left: Any
    right: Any
    pos: int


@dataclass(slots=True)
class InList:
    op: str  # in, !in, in~, !in~, has_any
    operand: Any
    items: list[Any]
    pos: int


@dataclass(slots=True)
class TypeOf:
    name: str
    pos: int


@dataclass(slots=True)
class Assign:
    name: str | None
    expr: Any
    pos: int


@dataclass(slots=True)
class SortKey:
    expr: Any
    desc: bool
    nulls_first: bool


@dataclass(slots=True)
class Pipeline:
    table: str  # lower-case
    table_raw: str
    pos: int
    ops: list[Any] = field(default_factory=list)


@dataclass(slots=True)
class Where:
    pred: Any
    pos: int


@dataclass(slots=True)
class Extend:
    items: list[Assign]
    pos: int


@dataclass(slots=True)
class Project:
    items: list[Assign]
    pos: int


@dataclass(slots=True)
class ProjectAway:
    patterns: list[tuple[str, int]]
    keep: bool
    pos: int


@dataclass(slots=True)
class ProjectRename:
    pairs: list[tuple[str, str, int]]
    pos: int


@dataclass(slots=True)
class Summarize:
    aggs: list[Assign]
    by: list[Assign]
    pos: int


@dataclass(slots=True)
class Sort:
    keys: list[SortKey]
    pos: int


@dataclass(slots=True)
class Take:
    count: int
    pos: int


@dataclass(slots=True)
class Top:
    count: int
    key: SortKey
    pos: int


@dataclass(slots=True)
class Distinct:
    columns: list[tuple[str, int]]  # [("*", pos)] for distinct *
    pos: int


@dataclass(slots=True)
class Count:
    pos: int


@dataclass(slots=True)
class MvExpand:
    items: list[tuple[Assign, str | None]]  # (name = expr, typeof name)
    bag_kind: str
    index_column: str | None
    limit: int | None
    pos: int


@dataclass(slots=True)
class Join:
    kind: str
    kind_pos: int
    right: Pipeline
    keys: list[tuple[str, str, int]]  # (left column, right column, position)
    pos: int


@dataclass(slots=True)
class Union:
    kind: str
    withsource: str | None
    legs: list[Pipeline]
    pos: int


# ---------------------------------------------------------------------------------------- parser

# Tabular operators that may open a query with no table name (ARG's default table is Resources).
OPERATORS = (
    "where",
    "filter",
    "extend",
    "project",
    "project-away",
    "project-keep",
    "project-rename",
    "summarize",
    "order",
    "sort",
    "take",
    "limit",
    "top",
    "distinct",
    "count",
    "mv-expand",
    "mvexpand",
    "join",
    "union",
)
# Real Kusto operators outside the subset: rejected as UnsupportedOperator rather than a syntax
# error, so the message says "not supported" instead of "not understood".
KNOWN_UNSUPPORTED = frozenset(
    {
        "parse",
        "parse-where",
        "parse-kv",
        "evaluate",
        "make-series",
        "lookup",
        "render",
        "as",
        "getschema",
        "invoke",
        "search",
        "find",
        "print",
        "range",
        "datatable",
        "sample",
        "sample-distinct",
        "serialize",
        "partition",
        "facet",
        "fork",
        "mv-apply",
        "externaldata",
        "scan",
        "project-reorder",
        "top-nested",
        "top-hitters",
        "consume",
        "reduce",
        "let",
        "set",
        "declare",
        "materialize",
        "extend-rename",
        "graph-match",
        "make-graph",
        "assert-schema",
    }
)
_CMP_OPS = frozenset({"==", "!=", "<", "<=", ">", ">=", "=~", "!~"})
STRING_OPS = frozenset(
    {
        "contains",
        "contains_cs",
        "has",
        "has_cs",
        "startswith",
        "startswith_cs",
        "endswith",
        "endswith_cs",
        "hasprefix",
        "hassuffix",
    }
)
_NEG_STRING_OPS = frozenset("!" + op for op in STRING_OPS)
_IN_OPS = frozenset({"in", "!in", "in~", "!in~"})
_RESERVED = frozenset({"and", "or", "by", "on", "asc", "desc", "nulls", "in", "between"})
_JOIN_KINDS = frozenset(
    {
        "innerunique",
        "inner",
        "leftouter",
        "fullouter",
        "leftanti",
        "rightanti",
        "leftsemi",
        "rightsemi",
        "rightouter",
        "leftantisemi",
        "rightantisemi",
        "anti",
        "semi",
    }
)


class Parser:
    """Recursive-descent parser over the token list of one query text."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = tokenize(text)
        self.i = 0

    # -- token helpers -------------------------------------------------------------------
    def peek(self, k: int = 0) -> Token:
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def advance(self) -> Token:
        tok = self.toks[self.i]
        if tok.kind != "eof":
            self.i += 1
        return tok

    def at_op(self, value: str, k: int = 0) -> bool:
        tok = self.peek(k)
        return tok.kind == "op" and tok.value == value

    def at_word(self, value: str, k: int = 0) -> bool:
        tok = self.peek(k)
        return tok.kind == "ident" and tok.value == value

    def fail(
        self,
        message: str,
        tok: Token | None = None,
        expected: str | None = None,
        code: str = "ParserFailure",
    ) -> KqlError:
        tok = tok or self.peek()
        shown = tok.show(self.text)
        msg = f"{message}: unexpected {shown!r}" if code == "ParserFailure" else message
        if expected:
            msg += f", expected {expected}"
        return error(self.text, code, msg, tok.pos, shown, expected)

    def expect_op(self, value: str, context: str) -> Token:
        if not self.at_op(value):
            raise self.fail(f"Syntax error in {context}", expected=repr(value))
        return self.advance()

    def expect_word(self, value: str, context: str) -> Token:
        if not self.at_word(value):
            raise self.fail(f"Syntax error in {context}", expected=repr(value))
        return self.advance()

    def expect_ident(self, context: str) -> Token:
        tok = self.peek()
        if tok.kind != "ident" or tok.value in _RESERVED:
            raise self.fail(f"Syntax error in {context}", expected="a name")
        return self.advance()

    def expect_int(self, context: str) -> int:
        tok = self.peek()
        if tok.kind != "int":
            raise self.fail(f"Syntax error in {context}", expected="an integer literal")
        self.advance()
        return int(tok.value)

    def column_name(self, context: str) -> tuple[str, int]:
        """A column name: ``name`` or ``['name']``."""
        tok = self.peek()
        if self.at_op("[") and self.peek(1).kind == "str" and self.at_op("]", 2):
            self.i += 3
            return str(self.peek(-2).value), tok.pos
        return self.expect_ident(context).value, tok.pos

    # -- query ---------------------------------------------------------------------------
    def parse(self) -> Pipeline:
        pipe = self.pipeline()
        tok = self.peek()
        if tok.kind != "eof":
            if tok.kind == "op" and tok.value == ";":
                raise self.fail(
                    "Multiple statements (let, set, ';') are not supported",
                    tok,
                    code="UnsupportedOperator",
                )
            raise self.fail("Syntax error", expected="'|' or end of query")
        return pipe

    def pipeline(self) -> Pipeline:
        tok = self.peek()
        if tok.kind == "ident" and self.operator_word(peek_only=True) in OPERATORS:
            pipe = Pipeline("resources", "Resources", tok.pos)
            pipe.ops.append(self.operator())
        elif tok.kind == "ident" and tok.value in KNOWN_UNSUPPORTED:
            raise self.fail(
                f"The operator or statement {tok.value!r} is not supported by the "
                "emulator's KQL subset",
                tok,
                code="UnsupportedOperator",
            )
        elif tok.kind == "ident" and tok.value not in _RESERVED:
            self.advance()
            pipe = Pipeline(tok.value.lower(), tok.value, tok.pos)
        else:
            raise self.fail("Syntax error at start of query", expected="a table name")
        while self.at_op("|"):
            self.advance()
            pipe.ops.append(self.operator())
        return pipe

    def operator_word(self, peek_only: bool = False) -> str:
        """Read an operator name, joining hyphenated ones (``mv-expand``, ``project-away``)."""
        start = self.i
        tok = self.peek()
        if tok.kind != "ident":
            raise self.fail("Syntax error after '|'", expected="a tabular operator")
        word, end = tok.value, tok.end
        self.i += 1
        while (
            self.at_op("-")
            and self.peek().pos == end
            and self.peek(1).kind == "ident"
            and self.peek(1).pos == end + 1
        ):
            word += "-" + self.peek(1).value
            end = self.peek(1).end
            self.i += 2
        if peek_only:
            self.i = start
        return word

    def operator(self) -> Any:
        tok = self.peek()
        word = self.operator_word()
        pos = tok.pos
        if word in ("where", "filter"):
            return Where(self.expr(), pos)
        if word == "extend":
            return Extend(self.assignments("extend"), pos)
        if word == "project":
            return Project(self.assignments("project"), pos)
        if word in ("project-away", "project-keep"):
            pats = [self.column_pattern(word)]
            while self.at_op(","):
                self.advance()
                pats.append(self.column_pattern(word))
            return ProjectAway(pats, word == "project-keep", pos)
        if word == "project-rename":
            pairs = []
            while True:
                new, npos = self.column_name(word)
                self.expect_op("=", word)
                old, _ = self.column_name(word)
                pairs.append((new, old, npos))
                if not self.at_op(","):
                    break
                self.advance()
            return ProjectRename(pairs, pos)
        if word == "summarize":
            return self.summarize(pos)
        if word in ("order", "sort"):
            self.expect_word("by", f"'{word}'")
            keys = [self.sort_key()]
            while self.at_op(","):
                self.advance()
                keys.append(self.sort_key())
            return Sort(keys, pos)
        if word in ("take", "limit"):
            return Take(self.expect_int(f"'{word}'"), pos)
        if word == "top":
            n = self.expect_int("'top'")
            self.expect_word("by", "'top'")
            return Top(n, self.sort_key(), pos)
        if word == "distinct":
            if self.at_op("*"):
                star = self.advance()
                return Distinct([("*", star.pos)], pos)
            cols = [self.column_name("'distinct'")]
            while self.at_op(","):
                self.advance()
                cols.append(self.column_name("'distinct'"))
            return Distinct(cols, pos)
        if word == "count":
            return Count(pos)
        if word in ("mv-expand", "mvexpand"):
            return self.mv_expand(pos)
        if word == "join":
            return self.join(pos)
        if word == "union":
            return self.union(pos)
        if word in KNOWN_UNSUPPORTED:
            raise error(
                self.text,
                "UnsupportedOperator",
                f"The operator {word!r} is not supported by the emulator's KQL subset",
                pos,
                word,
            )
        raise error(
            self.text,
            "ParserFailure",
            f"Unknown tabular operator {word!r}",
            pos,
            word,
            "a tabular operator",
        )

    def column_pattern(self, context: str) -> tuple[str, int]:
        """A column name that may contain ``*`` wildcards (project-away, project-keep)."""
        tok = self.peek()
        parts: list[str] = []
        end = tok.pos
        while True:
            t = self.peek()
            if t.pos != end and parts:
                break
            if t.kind == "ident" or (t.kind == "op" and t.value == "*"):
                parts.append(str(t.value))
                end = t.end
                self.advance()
            else:
                break
        if not parts:
            raise self.fail(f"Syntax error in '{context}'", expected="a column name")
        return "".join(parts), tok.pos

    def assignments(self, context: str) -> list[Assign]:
        items = [self.assignment(context)]
        while self.at_op(","):
            self.advance()
            items.append(self.assignment(context))
        return items

    def assignment(self, context: str) -> Assign:
        tok = self.peek()
        if tok.kind == "ident" and self.at_op("=", 1) and tok.value not in _RESERVED:
            self.i += 2
            return Assign(tok.value, self.expr(), tok.pos)
        if (
            self.at_op("[")
            and self.peek(1).kind == "str"
            and self.at_op("]", 2)
            and self.at_op("=", 3)
        ):
            name = str(self.peek(1).value)
            self.i += 4
            return Assign(name, self.expr(), tok.pos)
        if self.at_op("("):
            # (a, b) = expr: tuple assignment is outside the subset
            j = 1
            while self.peek(j).kind in ("ident", "op") and not self.at_op(")", j) and j < 64:
                j += 1
            if self.at_op(")", j) and self.at_op("=", j + 1):
                raise self.fail(
                    f"Tuple assignment '(a, b) = ...' in '{context}' is not supported",
                    tok,
                    code="UnsupportedOperator",
                )
        return Assign(None, self.expr(), tok.pos)

    def summarize(self, pos: int) -> Summarize:
        aggs: list[Assign] = []
        by: list[Assign] = []
        if not self.at_word("by"):
            aggs = self.assignments("'summarize'")
        if self.at_word("by"):
            self.advance()
            by = self.assignments("'summarize ... by'")
        if not aggs and not by:
            raise self.fail("Syntax error in 'summarize'", expected="an aggregation or 'by'")
        return Summarize(aggs, by, pos)

    def sort_key(self) -> SortKey:
        e = self.expr()
        desc = True  # Kusto's default sort order is descending
        if self.at_word("asc") or self.at_word("desc"):
            desc = self.advance().value == "desc"
        nulls_first = not desc  # Kusto: nulls first for asc, nulls last for desc
        if self.at_word("nulls"):
            self.advance()
            if self.at_word("first") or self.at_word("last"):
                nulls_first = self.advance().value == "first"
            else:
                raise self.fail("Syntax error in sort key", expected="'first' or 'last'")
        return SortKey(e, desc, nulls_first)

    def mv_expand(self, pos: int) -> MvExpand:
        bag_kind, index_column = "bag", None
        while True:
            if (self.at_word("kind") or self.at_word("bagexpansion")) and self.at_op("=", 1):
                self.i += 2
                tok = self.peek()
                if tok.kind != "ident" or tok.value not in ("bag", "array"):
                    raise self.fail("Syntax error in 'mv-expand'", expected="'bag' or 'array'")
                bag_kind = self.advance().value
            elif self.at_word("with_itemindex") and self.at_op("=", 1):
                self.i += 2
                index_column = self.expect_ident("'mv-expand with_itemindex'").value
            else:
                break
        items: list[tuple[Assign, str | None]] = []
        while True:
            a = self.assignment("'mv-expand'")
            typename = None
            if self.at_word("to"):
                self.advance()
                self.expect_word("typeof", "'mv-expand ... to'")
                self.expect_op("(", "'typeof'")
                typename = self.expect_ident("'typeof'").value
                self.expect_op(")", "'typeof'")
            items.append((a, typename))
            if not self.at_op(","):
                break
            self.advance()
        limit = None
        if self.at_word("limit"):
            self.advance()
            limit = self.expect_int("'mv-expand ... limit'")
        return MvExpand(items, bag_kind, index_column, limit, pos)

    def join(self, pos: int) -> Join:
        kind, kind_pos = "innerunique", pos
        while self.peek().kind == "ident" and not self.at_word("on"):
            tok = self.peek()
            if tok.value == "kind" and self.at_op("=", 1):
                self.i += 2
                kt = self.peek()
                if kt.kind != "ident" or kt.value not in _JOIN_KINDS:
                    raise self.fail("Syntax error in 'join kind='", expected="a join flavor")
                kind, kind_pos = self.advance().value, kt.pos
            elif tok.value.startswith("hint") and self.at_op(".", 1):
                raise self.fail(
                    "Join hints and custom join strategies are not allowed by "
                    f"Azure Resource Graph ({tok.value}.{self.peek(2).value})",
                    tok,
                    code="UnsupportedOperator",
                )
            else:
                break
        right = self.tabular_operand("'join'")
        self.expect_word("on", "'join'")
        keys = [self.join_key()]
        while self.at_op(",") or self.at_word("and"):
            self.advance()
            keys.append(self.join_key())
        return Join(kind, kind_pos, right, keys, pos)

    def tabular_operand(self, context: str) -> Pipeline:
        """``(Table | ops...)`` or a bare table name."""
        if self.at_op("("):
            self.advance()
            sub = self.pipeline()
            self.expect_op(")", context)
            return sub
        tok = self.peek()
        if tok.kind == "ident" and tok.value not in _RESERVED and not self.at_op("=", 1):
            self.advance()
            return Pipeline(tok.value.lower(), tok.value, tok.pos)
        raise self.fail(f"Syntax error in {context}", expected="'(' or a table name")

    def join_key(self) -> tuple[str, str, int]:
        tok = self.peek()
        if tok.kind == "ident" and tok.value in ("$left", "$right"):
            s1, n1 = self.side_ref()
            self.expect_op("==", "'join ... on'")
            s2, n2 = self.side_ref()
            if s1 == s2:
                raise error(
                    self.text,
                    "ParserFailure",
                    "A join condition must compare $left with $right",
                    tok.pos,
                    s1,
                )
            return (n1, n2, tok.pos) if s1 == "$left" else (n2, n1, tok.pos)
        name, npos = self.column_name("'join ... on'")
        return name, name, npos

    def side_ref(self) -> tuple[str, str]:
        side = self.advance()
        if side.kind != "ident" or side.value not in ("$left", "$right"):
            raise self.fail("Syntax error in 'join ... on'", side, expected="$left or $right")
        self.expect_op(".", "'join ... on'")
        name, _ = self.column_name("'join ... on'")
        return side.value, name

    def union(self, pos: int) -> Union:
        kind, withsource = "outer", None
        while True:
            if self.at_word("kind") and self.at_op("=", 1):
                self.i += 2
                tok = self.peek()
                if tok.kind != "ident" or tok.value not in ("inner", "outer"):
                    raise self.fail("Syntax error in 'union kind='", expected="inner or outer")
                kind = self.advance().value
            elif self.at_word("withsource") and self.at_op("=", 1):
                self.i += 2
                withsource = self.expect_ident("'union withsource='").value
            elif self.at_word("isfuzzy") and self.at_op("=", 1):
                raise self.fail(
                    "Fuzzy resolution of union legs is not allowed by Azure Resource Graph",
                    code="UnsupportedOperator",
                )
            else:
                break
        legs = [self.tabular_operand("'union'")]
        while self.at_op(","):
            self.advance()
            legs.append(self.tabular_operand("'union'"))
        return Union(kind, withsource, legs, pos)

    # -- expressions ---------------------------------------------------------------------
    def expr(self) -> Any:
        return self.or_expr()

    def or_expr(self) -> Any:
        left = self.and_expr()
        while self.at_word("or"):
            tok = self.advance()
            left = Binary("or", left, self.and_expr(), tok.pos)
        return left

    def and_expr(self) -> Any:
        left = self.cmp_expr()
        while self.at_word("and"):
            tok = self.advance()
            left = Binary("and", left, self.cmp_expr(), tok.pos)
        return left

    def cmp_expr(self) -> Any:
        left = self.add_expr()
        tok = self.peek()
        op = tok.value if tok.kind in ("op", "ident") else None
        if op is None:
            return left
        if tok.kind == "op" and op in _CMP_OPS:
            self.advance()
            return Binary(op, left, self.add_expr(), tok.pos)
        if op in _IN_OPS and (tok.kind == "op" or op == "in"):
            self.advance()
            return InList(op, left, self.paren_list(f"'{op}'"), tok.pos)
        if tok.kind == "ident" and op in ("has_any", "has_all"):
            if op == "has_all":
                raise self.fail(
                    "The operator 'has_all' is not supported by the emulator's KQL subset",
                    tok,
                    code="UnsupportedOperator",
                )
            self.advance()
            return InList(op, left, self.paren_list("'has_any'"), tok.pos)
        if (tok.kind == "ident" and op in STRING_OPS) or (
            tok.kind == "op" and op in _NEG_STRING_OPS
        ):
            self.advance()
            return Binary(op, left, self.add_expr(), tok.pos)
        if tok.kind == "ident" and op == "matches" and self.at_word("regex", 1):
            self.i += 2
            return Binary("matches regex", left, self.add_expr(), tok.pos)
        if op in ("between", "!between"):
            raise self.fail(
                f"The operator {op!r} is not supported by the emulator's KQL subset",
                tok,
                code="UnsupportedOperator",
            )
        if tok.kind == "op" and op.startswith("!") and len(op) > 1 and op[1].isalpha():
            raise self.fail("Unknown operator", tok, expected="a string or comparison operator")
        return left

    def paren_list(self, context: str) -> list[Any]:
        self.expect_op("(", context)
        items = [self.expr()]
        while self.at_op(","):
            self.advance()
            items.append(self.expr())
        self.expect_op(")", context)
        return items

    def add_expr(self) -> Any:
        left = self.mul_expr()
        while self.at_op("+") or self.at_op("-"):
            tok = self.advance()
            left = Binary(tok.value, left, self.mul_expr(), tok.pos)
        return left

    def mul_expr(self) -> Any:
        left = self.unary_expr()
        while self.at_op("*") or self.at_op("/") or self.at_op("%"):
            tok = self.advance()
            left = Binary(tok.value, left, self.unary_expr(), tok.pos)
        return left

    def unary_expr(self) -> Any:
        if self.at_op("-") or self.at_op("+"):
            tok = self.advance()
            operand = self.unary_expr()
            if isinstance(operand, Lit) and type(operand.value) in (int, float):
                return Lit(-operand.value if tok.value == "-" else operand.value, tok.pos)
            return Unary(tok.value, operand, tok.pos)
        return self.postfix_expr()

    def postfix_expr(self) -> Any:
        e = self.primary()
        while True:
            if self.at_op("."):
                dot = self.advance()
                tok = self.peek()
                if tok.kind == "ident":
                    self.advance()
                    e = Member(e, tok.value, dot.pos)
                elif self.at_op("["):
                    e = self.bracket(e)
                else:
                    raise self.fail("Syntax error after '.'", expected="a property name")
            elif self.at_op("["):
                e = self.bracket(e)
            else:
                return e

    def bracket(self, base: Any) -> Any:
        tok = self.expect_op("[", "index")
        idx = self.expr()
        self.expect_op("]", "index")
        if isinstance(idx, Lit) and type(idx.value) in (str, int):
            return Member(base, idx.value, tok.pos)
        return Index(base, idx, tok.pos)

    def primary(self) -> Any:
        tok = self.peek()
        if tok.kind in ("str", "int", "real"):
            self.advance()
            return Lit(tok.value, tok.pos)
        if tok.kind == "op" and tok.value == "(":
            self.advance()
            e = self.expr()
            self.expect_op(")", "parenthesized expression")
            return e
        if tok.kind == "op" and tok.value == "[":
            if self.peek(1).kind == "str" and self.at_op("]", 2):
                self.i += 3
                return Col(str(self.peek(-2).value), tok.pos)
            raise self.fail("Syntax error", expected="an expression")
        if tok.kind == "op" and tok.value == "*":
            self.advance()
            return Star(tok.pos)
        if tok.kind != "ident" or tok.value in _RESERVED:
            raise self.fail("Syntax error", expected="an expression")
        self.advance()
        word = tok.value
        if word in ("true", "false"):
            return Lit(word == "true", tok.pos)
        if self.at_op("("):
            if word == "dynamic":
                self.advance()
                value = self.dynamic_value()
                self.expect_op(")", "dynamic literal")
                return Lit(value, tok.pos)
            if word == "typeof":
                self.advance()
                name = self.expect_ident("'typeof'").value
                self.expect_op(")", "'typeof'")
                return TypeOf(name, tok.pos)
            self.advance()
            args: list[Any] = []
            if not self.at_op(")"):
                args.append(self.expr())
                while self.at_op(","):
                    self.advance()
                    args.append(self.expr())
            self.expect_op(")", f"call to {word!r}")
            return Call(word, args, tok.pos)
        if word.startswith("$"):
            raise self.fail("$left and $right may only be used in 'join ... on'", tok)
        return Col(word, tok.pos)

    def dynamic_value(self) -> Any:
        """JSON-like literal inside ``dynamic(...)``."""
        tok = self.peek()
        if tok.kind in ("str", "int", "real"):
            self.advance()
            return tok.value
        if tok.kind == "op" and tok.value == "-" and self.peek(1).kind in ("int", "real"):
            self.advance()
            return -self.advance().value
        if tok.kind == "ident" and tok.value in ("null", "true", "false"):
            self.advance()
            return {"null": None, "true": True, "false": False}[tok.value]
        if self.at_op("["):
            self.advance()
            items: list[Any] = []
            while not self.at_op("]"):
                items.append(self.dynamic_value())
                if not self.at_op(","):
                    break
                self.advance()
            self.expect_op("]", "dynamic array")
            return items
        if self.at_op("{"):
            self.advance()
            bag: dict[str, Any] = {}
            while not self.at_op("}"):
                key = self.peek()
                if key.kind not in ("str", "ident"):
                    raise self.fail("Syntax error in dynamic bag", expected="a string key")
                self.advance()
                self.expect_op(":", "dynamic bag")
                bag[str(key.value)] = self.dynamic_value()
                if not self.at_op(","):
                    break
                self.advance()
            self.expect_op("}", "dynamic bag")
            return bag
        raise self.fail("Syntax error in dynamic literal", expected="a JSON value")


def parse(text: str) -> Pipeline:
    """Parse one query text into its pipeline AST; raises KqlError on syntax errors."""
    return Parser(text).parse()
