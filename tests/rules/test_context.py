"""The rule context: what the settings tell the checks (cloud, opt-out tag)."""

from __future__ import annotations

import numpy as np
import pytest

from tasks.errors import SettingsError
from tasks.rules.engine import RuleContext, _joined, parse_opt_out_tag
from tasks.settings import load_settings


def test_default_settings_give_the_public_cloud_and_the_default_opt_out_tag():
    ctx = RuleContext.from_settings(load_settings(environ={}))
    assert ctx == RuleContext(cloud="public",
                              opt_out_tag=("backup-consistency", "application"))


def test_endpoint_flag_does_not_change_the_cloud():
    settings = load_settings(environ={}, flags={"endpoint": "https://127.0.0.1:8443",
                                                "cloud": "usgov"})
    assert RuleContext.from_settings(settings).cloud == "usgov"
    settings = load_settings(environ={}, flags={"endpoint": "https://127.0.0.1:8443"})
    assert RuleContext.from_settings(settings).cloud == "public"


def test_opt_out_tag_comes_from_the_environment(tmp_path):
    settings = load_settings(environ={"CCMIGRATE_RULES__OPT_OUT_TAG": " Keep = App "})
    assert RuleContext.from_settings(settings).opt_out_tag == ("Keep", "App")


@pytest.mark.parametrize(("text", "expected"), [
    ("backup-consistency=application", ("backup-consistency", "application")),
    ("no-crash=", ("no-crash", "")),
    ("a=b=c", ("a", "b=c")),
])
def test_opt_out_tag_parses_name_and_value(text, expected):
    assert parse_opt_out_tag(text) == expected


@pytest.mark.parametrize("text", ["backup-consistency", "=application", " =x", ""])
def test_opt_out_tag_without_a_name_is_a_settings_error(text):
    with pytest.raises(SettingsError, match=r"rules.opt_out_tag = .*write 'name=value'"):
        parse_opt_out_tag(text)


def test_more_rules_of_one_severity_than_bits_in_a_code_still_join_in_order():
    ids = [f"R{i}" for i in range(70)]
    fired = np.zeros((3, 70), dtype=bool)
    fired[0, [0, 65]] = True
    fired[1, [66, 69]] = True
    fired[2, [1]] = True
    assert _joined(fired, ids).tolist() == ["R0;R65", "R66;R69", "R1"]
