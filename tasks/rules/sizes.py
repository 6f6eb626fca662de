"""VM size names, parsed with vectorized regexes.

Azure's naming convention is ``Standard_<family><vCPUs>[-<constrained vCPUs>]<feature
letters>[_<accelerator>...][_v<N>]``, e.g. ``Standard_E16-4ds_v6``, ``Standard_NC24ads_A100_v4``,
``Standard_M32ms`` (no ``_vN``: version 1). Feature letters that matter here: ``a`` AMD, ``p``
Arm, ``s`` premium-storage capable. Names are matched case-insensitively.

Sizes repeat a lot in a fleet (hundreds of distinct names for 100k VMs), so the regexes run on
the distinct names only and the result is spread back with ``take``.
"""

from __future__ import annotations

import pandas as pd

from tasks.rules.predicates import objects, per_value

# family letters, vCPUs, optional constrained vCPUs, feature letters (all lower-cased first)
NAME_PATTERN = r"^standard_(?P<family>[a-z]+)(?P<vcpus>\d+)(?:-(?P<constrained>\d+))?" \
               r"(?P<features>[a-z]*)(?:_|$)"
# the version is the last ``_vN`` segment (``_V710`` in ``Standard_NV4ads_V710_v5`` is a GPU)
VERSION_PATTERN = r"_v(?P<version>\d+)(?:_promo)?$"


def parse_sizes(sizes: pd.Series) -> pd.DataFrame:
    """One row per input row: ``family``, ``features`` (strings, ``""`` when the name doesn't
    parse), ``version`` (Int64: 1 when a parsed name has no ``_vN``, <NA> when it doesn't
    parse) and ``parsed`` (bool)."""
    codes, uniques = pd.factorize(objects(sizes))
    # one extra "" name at the end: code -1 (a missing size) picks it
    names = pd.Series([str(u).strip().lower() for u in uniques] + [""], dtype="string")
    parts = names.str.extract(NAME_PATTERN)
    parsed = parts["family"].notna()
    version = names.str.extract(VERSION_PATTERN)["version"].astype("Int64")
    version = version.mask(parsed & version.isna(), 1).where(parsed)
    table = pd.DataFrame({
        "family": parts["family"].fillna(""),
        "features": parts["features"].fillna(""),
        "version": version.astype("Int64"),
        "parsed": parsed.astype(bool),
    })
    out = table.iloc[codes]
    out.index = sizes.index
    return out


def premium_hint(sizes: pd.Series) -> pd.Series:
    """The name heuristic for Premium storage: an ``s`` among the feature letters, or an old
    ``DS``/``GS``-style family. A hint for reports only: the Resource SKU list decides."""
    parts = parse_sizes(sizes)
    hint = (per_value(parts["features"], lambda features: "s" in features)
            | per_value(parts["family"], lambda family: family.endswith("s")))
    return hint.astype("boolean").where(parts["parsed"])
