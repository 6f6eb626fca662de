"""Which VMs of an assessment a plan looks at: ``--select key=glob`` filters and a ``--vms`` file
of VM ids. Selection only narrows the field; ``candidates`` then decides who qualifies, so a
listed VM that can't move is reported with its reason instead of vanishing.

Filters: the same key given twice is an OR, different keys AND. Globs (``*``, ``?``, ``[..]``)
match the whole value, case-insensitively (Azure names are case-insensitive).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..errors import InputError

# --select key -> the assessment column it matches.
FILTER_COLUMNS = {
    "subscription": "subscription_id",
    "resource_group": "resource_group",
    "location": "location",
    "vault": "vault",
    "policy": "policy_name",
    "vm": "vm_name",
}
TAG_PREFIX = "tag:"
FILTER_KEYS = (*FILTER_COLUMNS, f"{TAG_PREFIX}NAME")
MAX_LISTED = 10  # unknown ids shown in a message


@dataclass(frozen=True)
class Filter:
    """One ``--select``: ``key`` is a ``FILTER_COLUMNS`` key or ``tag:name`` (name folded)."""

    key: str
    pattern: str
    text: str  # as the user wrote it, for messages

    @property
    def tag(self) -> str | None:
        return self.key[len(TAG_PREFIX):] if self.key.startswith(TAG_PREFIX) else None


def _bad_filter(text: str, why: str) -> InputError:
    return InputError(f"--select {text!r}: {why}; write key=glob with key one of "
                      f"{', '.join(FILTER_KEYS)} (e.g. --select vault=vault-prod-* "
                      "--select tag:env=prod)")


def parse_filters(specs: Iterable[str]) -> list[Filter]:
    """``--select`` values as filters; a malformed one or an unknown key is an ``InputError``
    that lists the keys."""
    out: list[Filter] = []
    for text in specs:
        key, sep, pattern = text.partition("=")
        key = key.strip().lower().replace("-", "_")
        if not sep:
            raise _bad_filter(text, "no '='")
        if key.startswith(TAG_PREFIX):
            name = key[len(TAG_PREFIX):].strip()
            if not name:
                raise _bad_filter(text, "the tag has no name")
            key = TAG_PREFIX + name.casefold()
        elif key not in FILTER_COLUMNS:
            raise _bad_filter(text, f"unknown key {key!r}")
        pattern = pattern.strip()
        if not pattern:
            raise _bad_filter(text, "the pattern is empty (use * for any value)")
        out.append(Filter(key, pattern, text))
    return out


def tag_values(vms: pd.DataFrame, name: str) -> pd.Series:
    """Each VM's value of tag ``name`` (names compared case-insensitively, as Azure does);
    <NA> where the VM lacks the tag or the frame has no ``tags`` column."""
    if "tags" not in vms.columns:
        return pd.Series(pd.NA, index=vms.index, dtype="string")
    want = name.casefold()

    def pick(tags: object) -> str | None:
        if not isinstance(tags, dict):
            return None
        for key, value in tags.items():
            if str(key).casefold() == want:
                return "" if value is None else str(value)
        return None

    # Tags are dicts per VM: no column operation reaches inside them.
    return pd.Series([pick(t) for t in vms["tags"].tolist()], index=vms.index, dtype="string")


def _matches(values: pd.Series, pattern: str) -> pd.Series:
    regex = fnmatch.translate(pattern)  # anchored at the end; str.match anchors the start
    return values.astype("string").str.match(regex, case=False, na=False).astype(bool)


def select_mask(vms: pd.DataFrame, filters: Sequence[Filter]) -> pd.Series:
    """True for the VMs every filter key accepts (any of a key's patterns)."""
    mask = pd.Series(True, index=vms.index)
    by_key: dict[str, list[Filter]] = {}
    for f in filters:
        by_key.setdefault(f.key, []).append(f)
    for key, group in by_key.items():
        tag = group[0].tag
        values = tag_values(vms, tag) if tag is not None else vms[FILTER_COLUMNS[key]]
        any_of = pd.Series(False, index=vms.index)
        for f in group:
            any_of |= _matches(values, f.pattern)
        mask &= any_of
    return mask


def describe_filters(filters: Sequence[Filter]) -> str:
    return " ".join(f"--select {f.text}" for f in filters)


# -- --vms FILE --------------------------------------------------------------------------------

def read_vm_ids(path: Path) -> list[str]:
    """VM ids from a CSV or Excel file: the ``vm_id`` column (any case), else the first column;
    a first column without a header row works too (its first cell is an ARM id). Blank cells
    are skipped, repeats dropped, order kept."""
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".xlsx"):
        raise InputError(f"--vms {path}: give a .csv or .xlsx file with a vm_id column (a "
                         "readiness.csv or plan.csv works)")
    try:
        if suffix == ".csv":
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig",
                                skipinitialspace=True)
        else:
            frame = pd.read_excel(path, dtype=str, keep_default_na=False, sheet_name=0)
    except FileNotFoundError:
        raise InputError(f"--vms {path}: no such file") from None
    except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise InputError(f"--vms {path}: cannot read it as {suffix[1:].upper()} ({exc}); give "
                         "a .csv or .xlsx file with a vm_id column") from None
    if frame.columns.empty:
        raise InputError(f"--vms {path} is empty; list VM ids in a vm_id column")
    named = [c for c in frame.columns if str(c).strip().lower() == "vm_id"]
    column = named[0] if named else frame.columns[0]
    values = frame[column].astype(str).str.strip().str.lstrip("'").tolist()
    header = str(column).strip()
    if not named and header.lower().startswith("/subscriptions/"):
        values.insert(0, header)  # a bare list of ids: the "header" is the first id
    ids = list(dict.fromkeys(v for v in values if v))
    if not ids:
        raise InputError(f"--vms {path} lists no VM ids; put ARM VM ids in a vm_id column")
    return ids


def listed_mask(vms: pd.DataFrame, ids: Sequence[str], *, source: str,
                assessment_id: str) -> pd.Series:
    """True for the VMs ``ids`` names (ARM ids, compared case-insensitively). Ids the
    assessment lacks are an ``InputError`` listing up to ten of them."""
    wanted = pd.Series(list(ids), dtype="string")
    keys = wanted.str.lower()
    known = keys.isin(set(vms["vm_key"].tolist()))
    if not known.all():
        unknown = wanted[~known].tolist()
        shown = ", ".join(unknown[:MAX_LISTED])
        more = f" and {len(unknown) - MAX_LISTED} more" if len(unknown) > MAX_LISTED else ""
        raise InputError(
            f"--vms {source}: {len(unknown)} of {len(wanted)} VM id(s) are not in assessment "
            f"{assessment_id}: {shown}{more}. List ARM VM ids as that assessment's "
            "readiness.csv gives them (vm_id column), or assess again if the VMs are new")
    return vms["vm_key"].isin(set(keys.tolist()))


__all__ = [
    "FILTER_COLUMNS",
    "FILTER_KEYS",
    "Filter",
    "describe_filters",
    "listed_mask",
    "parse_filters",
    "read_vm_ids",
    "select_mask",
    "tag_values",
]
