"""Target policy names: always a name Azure accepts for a backup policy, never the source's."""

from __future__ import annotations

import pytest

from tasks.errors import SettingsError
from tasks.policies.naming import target_policy_name, valid_policy_name
from tasks.rules.engine import RuleContext, load_pack, score
from tasks.settings import Rules
from tests.rules.inventory import frames, vm


@pytest.mark.parametrize(("source", "template", "expected"), [
    ("DailyPolicy", "{source}-crash", "DailyPolicy-crash"),
    ("EnhancedPolicy-1", "{source}-crash", "EnhancedPolicy-1-crash"),
    ("Gold", "crash-{source}", "crash-Gold"),
    ("Gold", "cc{source}v2", "ccGoldv2"),
    ("Gold", "{source}{source}", "GoldGold"),
])
def test_valid_sources_are_used_as_they_are(source, template, expected):
    assert target_policy_name(source, template) == expected


def test_empty_source_has_no_target():
    assert target_policy_name("", "{source}-crash") == ""


def test_long_source_is_cut_to_150_characters_and_stays_distinct():
    a = "P" + "a" * 148 + "1"
    b = "P" + "a" * 148 + "2"
    name_a = target_policy_name(a, "{source}-crash")
    name_b = target_policy_name(b, "{source}-crash")
    assert len(name_a) == 150 and valid_policy_name(name_a)
    assert name_a.endswith("-crash") and name_a != name_b


def test_source_at_the_length_limit_minus_the_suffix_is_kept_whole():
    source = "P" + "a" * 143  # 144 + len("-crash") == 150
    assert target_policy_name(source, "{source}-crash") == f"{source}-crash"


@pytest.mark.parametrize("source", ["My_Policy", "My Policy", "Politique-été", "9am-daily"])
def test_sources_outside_the_documented_characters_are_cleaned_and_hashed(source):
    name = target_policy_name(source, "{source}-crash")
    assert valid_policy_name(name), name
    assert name.endswith("-crash")


def test_cleaned_sources_that_look_alike_still_get_different_names():
    assert target_policy_name("a_b-policy", "{source}-crash") != \
        target_policy_name("a-b-policy", "{source}-crash")


def test_digit_first_source_is_fine_behind_a_letter_prefix():
    assert target_policy_name("9am-daily", "crash-{source}") == "crash-9am-daily"


@pytest.mark.parametrize(("template", "why"), [
    ("{source}", "source policy's own name"),
    ("crash", "must contain {source}"),
    ("{policy}-crash", "only field allowed is {source}"),
    ("{source!r}-crash", "without a conversion or format spec"),
    ("{source:>10}-crash", "without a conversion or format spec"),
    ("{source}_crash", "only letters, digits and hyphens"),
    ("{source} crash", "only letters, digits and hyphens"),
    ("-{source}", "must start with a letter"),
    ("1{source}", "must start with a letter"),
    ("{source}-", "can't end with a hyphen"),
    ("{source", "not a valid template"),
    ("x" * 145 + "{source}", "leaves 5 of the 150 characters"),
])
def test_template_that_cannot_give_a_valid_new_name_is_a_settings_error(template, why):
    with pytest.raises(SettingsError, match=r"rules.target_policy_template = .*"
                                            + why.replace("{", r"\{").replace("}", r"\}")):
        target_policy_name("Gold", template)


def test_score_refuses_a_bad_template_even_with_no_vm_to_move():
    v, d = frames([vm(tags={"backup-consistency": "application"})])
    with pytest.raises(SettingsError, match="target_policy_template"):
        score(v, d, load_pack(Rules()), RuleContext(), "{source}")


def test_vms_on_the_same_source_policy_share_one_target():
    v, d = frames([vm("a", policy_name="Gold"), vm("b", policy_name="Gold"),
                   vm("c", policy_name="Silver")])
    out = score(v, d, load_pack(Rules()), RuleContext())
    assert out["target_policy"].tolist() == ["Gold-crash", "Gold-crash", "Silver-crash"]
