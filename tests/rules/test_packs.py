"""Rule packs: what each contains, the user's overrides, and clear messages for bad packs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tasks.errors import InputError, SettingsError
from tasks.rules.checks import CHECKS
from tasks.rules.engine import PACK_DIR, RuleContext, load_pack, score
from tasks.settings import Rules, load_settings
from tests.rules.inventory import disk, frames, vm

GA_ONLY = {"SIZE_AZURE_BOOST", "CONFIDENTIAL_VM", "UNMANAGED_DISK", "DISK_DATA_ACCESS_AUTH"}
SPEC_SEVERITY = {
    "POLICY_STANDARD": "warning", "REGION_NOT_SUPPORTED": "blocker",
    "SIZE_NOT_PREMIUM_CAPABLE": "blocker", "SIZE_UNKNOWN": "unknown",
    "SIZE_AZURE_BOOST": "blocker", "ULTRA_DISK": "blocker", "PREMIUM_SSD_V2_DISK": "blocker",
    "EPHEMERAL_OS_DISK": "blocker", "SHARED_DISK": "blocker", "WRITE_ACCELERATOR": "blocker",
    "UNMANAGED_DISK": "blocker", "CONFIDENTIAL_VM": "blocker", "DISK_DATA_ACCESS_AUTH": "blocker",
    "DISK_NOT_FOUND": "unknown", "HOST_CACHING_READWRITE": "warning",
    "WORKLOAD_DATABASE": "warning", "PROTECTION_UNHEALTHY": "warning",
    "PROTECTION_DATA_UNREADABLE": "unknown", "OPTED_OUT": "blocker",
    "LINUX_PREPOST_SCRIPTS": "info",
}


def test_every_rule_id_has_one_check_module_named_after_it():
    assert set(CHECKS) == set(SPEC_SEVERITY)
    for rule_id, spec in CHECKS.items():
        assert spec.module == f"tasks.rules.checks.{rule_id.lower()}"


def test_ga_pack_is_the_default_and_holds_every_rule_with_the_spec_severity():
    pack = load_pack(Rules())
    assert pack.name == "ga-2025-07"
    assert {r.id: r.severity for r in pack.rules} == SPEC_SEVERITY
    assert pack.overrides == []
    assert "2025-07-25" in pack.doc_version


def test_preview_pack_lacks_the_rows_the_2024_table_did_not_have():
    pack = load_pack(Rules(pack="preview-2024-03"))
    assert pack.name == "preview-2024-03"
    assert set(pack.ids()) == set(SPEC_SEVERITY) - GA_ONLY
    assert {r.id: r.severity for r in pack.rules} == {
        k: v for k, v in SPEC_SEVERITY.items() if k not in GA_ONLY}
    assert "2024-03-13" in pack.doc_version


@pytest.mark.parametrize("name", ["ga-2025-07", "preview-2024-03"])
def test_every_rule_has_metadata_a_user_can_act_on(name):
    pack = load_pack(Rules(pack=name))
    assert pack.sources and pack.description
    for rule in pack.rules:
        assert rule.title and rule.rationale and rule.remediation, rule.id
        assert rule.doc_link.startswith("https://learn.microsoft.com/azure/"), rule.id


def test_preview_pack_does_not_fire_boost_for_a_v6_size():
    v, d = frames([vm(vm_size="Standard_D4s_v6")])
    ga = score(v, d, load_pack(Rules()), RuleContext())
    preview = score(v, d, load_pack(Rules(pack="preview-2024-03")), RuleContext())
    assert (ga.at[0, "readiness"], ga.at[0, "blockers"]) == ("not_ready", "SIZE_AZURE_BOOST")
    assert (preview.at[0, "readiness"], preview.at[0, "blockers"]) == ("ready", "")


def test_pack_can_be_given_as_a_path(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text((PACK_DIR / "ga-2025-07.yaml").read_text())
    assert load_pack(Rules(pack=str(path))).path == path


def test_unknown_pack_name_lists_the_packs():
    with pytest.raises(SettingsError, match=r"rules.pack = 'ga-2099'.*ga-2025-07.*preview"):
        load_pack(Rules(pack="ga-2099"))


def test_missing_pack_file_is_named(tmp_path):
    with pytest.raises(SettingsError, match=r"rules.pack .*nope.yaml.*no such file"):
        load_pack(Rules(pack=str(tmp_path / "nope.yaml")))


# -- overrides ------------------------------------------------------------------------------

def test_severity_override_changes_readiness_and_is_reported():
    v, d = frames([vm()], [disk(caching="ReadWrite")])
    before = score(v, d, load_pack(Rules()), RuleContext())
    pack = load_pack(Rules(severity={"HOST_CACHING_READWRITE": "info"}))
    after = score(v, d, pack, RuleContext())
    assert before.at[0, "readiness"] == "ready_with_conditions"
    assert (after.at[0, "readiness"], after.at[0, "warnings"], after.at[0, "infos"]) == (
        "ready", "", "HOST_CACHING_READWRITE")
    rule = pack.rule("HOST_CACHING_READWRITE")
    assert (rule.severity, rule.default_severity) == ("info", "warning")
    assert pack.overrides == [{"rule": "HOST_CACHING_READWRITE",
                               "change": "severity warning -> info"}]


def test_blocker_lowered_to_info_stops_blocking():
    v, d = frames([vm(tags={"backup-consistency": "application"})])
    pack = load_pack(Rules(severity={"OPTED_OUT": "info"}))
    out = score(v, d, pack, RuleContext())
    assert (out.at[0, "readiness"], out.at[0, "infos"]) == ("ready", "OPTED_OUT")
    assert pack.overrides == [{"rule": "OPTED_OUT", "change": "severity blocker -> info"}]


def test_warning_raised_to_blocker_blocks():
    v, d = frames([vm(os_type="Linux")])
    out = score(v, d, load_pack(Rules(severity={"LINUX_PREPOST_SCRIPTS": "blocker"})),
                RuleContext())
    assert (out.at[0, "readiness"], out.at[0, "blockers"]) == ("not_ready",
                                                               "LINUX_PREPOST_SCRIPTS")


def test_override_to_the_same_severity_is_not_listed():
    assert load_pack(Rules(severity={"SIZE_UNKNOWN": "unknown"})).overrides == []


def test_disabled_rule_never_fires_nor_appears():
    v, d = frames([vm(vm_size="Standard_D4s_v6")])
    pack = load_pack(Rules(disabled=["SIZE_AZURE_BOOST"]))
    out = score(v, d, pack, RuleContext())
    assert "SIZE_AZURE_BOOST" not in [r.id for r in pack.enabled()]
    assert not pack.rule("SIZE_AZURE_BOOST").enabled
    assert pack.overrides == [{"rule": "SIZE_AZURE_BOOST", "change": "disabled"}]
    assert (out.at[0, "readiness"], out.at[0, "blockers"]) == ("ready", "")
    assert "SIZE_AZURE_BOOST" not in out.columns


def test_override_ids_ignore_case():
    pack = load_pack(Rules(disabled=["opted_out"], severity={"host_caching_readwrite": "info"}))
    assert [o["rule"] for o in pack.overrides] == ["HOST_CACHING_READWRITE", "OPTED_OUT"]


def test_unknown_id_in_severity_overrides_is_named():
    with pytest.raises(SettingsError, match=r"rules.severity: rule id\(s\) HOST_CACHE not in"):
        load_pack(Rules(severity={"HOST_CACHE": "info"}))


def test_unknown_ids_in_disabled_are_all_named():
    with pytest.raises(SettingsError, match=r"rules.disabled: rule id\(s\) FOO, BAR not in"):
        load_pack(Rules(disabled=["FOO", "BAR"]))


def test_ga_only_id_with_the_preview_pack_says_it_is_in_another_pack():
    with pytest.raises(SettingsError, match=r"SIZE_AZURE_BOOST exist\(s\) but not in this pack"):
        load_pack(Rules(pack="preview-2024-03", disabled=["SIZE_AZURE_BOOST"]))


def test_overrides_from_a_settings_file_reach_the_pack(tmp_path):
    config = tmp_path / "ccmigrate.toml"
    config.write_text('[rules]\npack = "preview-2024-03"\ndisabled = ["OPTED_OUT"]\n'
                      '[rules.severity]\nHOST_CACHING_READWRITE = "info"\n')
    pack = load_pack(load_settings(config, environ={}).rules)
    assert pack.name == "preview-2024-03"
    assert pack.overrides == [
        {"rule": "HOST_CACHING_READWRITE", "change": "severity warning -> info"},
        {"rule": "OPTED_OUT", "change": "disabled"}]


# -- bad packs ------------------------------------------------------------------------------

def _pack_file(tmp_path: Path, mutate) -> Path:
    data = yaml.safe_load((PACK_DIR / "ga-2025-07.yaml").read_text())
    mutate(data)
    path = tmp_path / "custom.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _load(path: Path):
    return load_pack(Rules(pack=str(path)))


def test_bad_yaml_names_the_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nrules: [\n")
    with pytest.raises(InputError, match=r"rule pack .*broken.yaml is not valid YAML"):
        _load(path)


def test_missing_pack_field_names_file_and_field(tmp_path):
    path = _pack_file(tmp_path, lambda d: d.pop("doc_version"))
    with pytest.raises(InputError, match=r"custom.yaml lacks the field 'doc_version'"):
        _load(path)


def test_missing_rule_field_names_file_rule_and_field(tmp_path):
    path = _pack_file(tmp_path, lambda d: d["rules"][5].pop("remediation"))
    with pytest.raises(InputError,
                       match=r"custom.yaml, rule ULTRA_DISK lacks the field 'remediation'"):
        _load(path)


def test_unknown_rule_id_is_named_with_the_known_ids(tmp_path):
    path = _pack_file(tmp_path, lambda d: d["rules"][0].update(id="NEW_RULE"))
    with pytest.raises(InputError, match=r"rule #1: unknown rule id 'NEW_RULE'; known ids: "):
        _load(path)


def test_bad_severity_is_named(tmp_path):
    path = _pack_file(tmp_path, lambda d: d["rules"][1].update(severity="fatal"))
    with pytest.raises(InputError, match=r"rule REGION_NOT_SUPPORTED: field 'severity' is "
                                         r"'fatal'; use one of blocker, warning, unknown, info"):
        _load(path)


def test_misspelt_rule_field_is_refused(tmp_path):
    path = _pack_file(tmp_path, lambda d: d["rules"][0].update(remedation="typo"))
    with pytest.raises(InputError, match=r"rule POLICY_STANDARD has unknown field\(s\) "
                                         r"remedation"):
        _load(path)


def test_missing_param_is_named(tmp_path):
    path = _pack_file(tmp_path, lambda d: d["rules"][1]["params"].pop("location_prefixes"))
    with pytest.raises(InputError, match=r"rule REGION_NOT_SUPPORTED: field 'params' lacks "
                                         r"'location_prefixes'"):
        _load(path)


def test_param_of_the_wrong_type_is_named(tmp_path):
    path = _pack_file(tmp_path, lambda d: d["rules"][4]["params"].update(intel_min_version="6"))
    with pytest.raises(InputError, match=r"rule SIZE_AZURE_BOOST: params.intel_min_version "
                                         r"must be of type int, not str"):
        _load(path)


def test_duplicate_rule_is_refused(tmp_path):
    path = _pack_file(tmp_path, lambda d: d["rules"].append(dict(d["rules"][0])))
    with pytest.raises(InputError, match=r"rule POLICY_STANDARD: the id appears twice"):
        _load(path)


def test_pack_may_leave_rules_out_and_change_params(tmp_path):
    def mutate(data):
        data["rules"] = [r for r in data["rules"] if r["id"] == "REGION_NOT_SUPPORTED"]
        data["rules"][0]["params"]["location_prefixes"].append("germany")
    pack = _load(_pack_file(tmp_path, mutate))
    v, d = frames([vm("a", location="germanywestcentral"), vm("b")])
    out = score(v, d, pack, RuleContext())
    assert out["blockers"].tolist() == ["REGION_NOT_SUPPORTED", ""]


# -- billing --------------------------------------------------------------------------------

def test_ga_pack_bills_a_full_instance_on_half_the_provisioned_size():
    billing = load_pack(Rules()).billing
    assert (billing.pi_basis_fraction, billing.pi_fee_fraction) == (0.5, 1.0)
    assert "2025-07-25" in billing.note and "50 percent" in billing.note


def test_preview_pack_bills_half_an_instance_on_the_full_size():
    billing = load_pack(Rules(pack="preview-2024-03")).billing
    assert (billing.pi_basis_fraction, billing.pi_fee_fraction) == (1.0, 0.5)
    assert "ef9233b" in billing.note and "0.5 protected instance" in billing.note


def test_pack_without_billing_bills_a_full_instance_on_the_full_size(tmp_path):
    billing = _load(_pack_file(tmp_path, lambda d: d.pop("billing"))).billing
    assert (billing.pi_basis_fraction, billing.pi_fee_fraction, billing.note) == (1.0, 1.0, "")


@pytest.mark.parametrize("value", [0, 1.5, -0.5, "half", True, float("nan")])
def test_billing_fraction_outside_0_to_1_names_file_and_field(tmp_path, value):
    path = _pack_file(tmp_path, lambda d: d["billing"].update(pi_basis_fraction=value))
    with pytest.raises(InputError, match=r"custom.yaml: billing.pi_basis_fraction is .*; use a "
                                         r"number greater than 0 and at most 1"):
        _load(path)


def test_misspelt_billing_field_is_refused(tmp_path):
    path = _pack_file(tmp_path, lambda d: d["billing"].update(pi_fee=0.5))
    with pytest.raises(InputError, match=r"custom.yaml: field 'billing' has unknown field\(s\) "
                                         r"pi_fee; allowed: pi_basis_fraction, pi_fee_fraction"):
        _load(path)
