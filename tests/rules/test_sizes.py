"""Size-name parsing used by the Azure Boost rule and the Premium-storage hint."""

from __future__ import annotations

import pandas as pd

from tasks.rules.sizes import parse_sizes, premium_hint


def test_size_names_parse_into_family_features_and_version():
    sizes = pd.Series(["Standard_E16-4ds_v6", "Standard_M32ms", "standard_dc2es_v5",
                       "Standard_NV4ads_V710_v5", "Standard_D2_v2_Promo", "Basic_A1", None],
                      index=[5, 6, 7, 8, 9, 10, 11])
    parts = parse_sizes(sizes)
    assert parts.index.tolist() == [5, 6, 7, 8, 9, 10, 11]
    assert parts["family"].tolist() == ["e", "m", "dc", "nv", "d", "", ""]
    assert parts["features"].tolist() == ["ds", "ms", "es", "ads", "", "", ""]
    assert parts["version"].tolist() == [6, 1, 5, 5, 2, pd.NA, pd.NA]
    assert parts["parsed"].tolist() == [True, True, True, True, True, False, False]


def test_premium_hint_is_an_s_feature_letter_or_a_ds_family():
    sizes = pd.Series(["Standard_D4s_v5", "Standard_D4_v5", "Standard_DS2_v2", "Standard_A2_v2",
                       "bogus"])
    assert premium_hint(sizes).tolist() == [True, False, True, False, pd.NA]


def test_empty_series_parses_to_an_empty_frame():
    assert parse_sizes(pd.Series([], dtype="string")).empty
