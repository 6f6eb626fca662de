"""Settings: precedence, and one clear message (key, value, allowed, source) for bad values."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.errors import SettingsError
from tasks.settings import load_settings

REPO = Path(__file__).resolve().parents[2]


def test_example_settings_file_is_valid_and_matches_defaults():
    from_file = load_settings(REPO / "config" / "ccmigrate.example.toml", environ={})
    defaults = load_settings(environ={})
    assert from_file.model_dump() == defaults.model_dump()


def test_flags_beat_environment_beat_file(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('credential = "cli"\n[throttles]\nmax_parallel = 4\n')
    env = {"CCMIGRATE_THROTTLES__MAX_PARALLEL": "8", "CCMIGRATE_CREDENTIAL": "managed-identity"}
    settings = load_settings(cfg, environ=env, flags={"credential": "emulator"})
    assert settings.throttles.max_parallel == 8
    assert settings.credential == "emulator"


def test_config_path_can_come_from_environment(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('cloud = "usgov"\n')
    assert load_settings(environ={"CCMIGRATE_CONFIG": str(cfg)}).cloud == "usgov"


def test_bad_value_in_file_names_key_value_allowed_and_file(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[throttles]\nmax_parallel = 0\n')
    with pytest.raises(SettingsError) as err:
        load_settings(cfg, environ={})
    message = str(err.value)
    assert "throttles.max_parallel" in message
    assert "0" in message
    assert "greater than or equal to 1" in message
    assert str(cfg) in message


def test_bad_credential_kind_lists_the_allowed_kinds():
    with pytest.raises(SettingsError) as err:
        load_settings(environ={"CCMIGRATE_CREDENTIAL": "password"})
    message = str(err.value)
    assert "'password'" in message
    assert "'default', 'cli', 'managed-identity' or 'emulator'" in message
    assert "environment variable CCMIGRATE_CREDENTIAL" in message


def test_bad_cloud_from_flag_names_the_flag():
    with pytest.raises(SettingsError) as err:
        load_settings(environ={}, flags={"cloud": "mars"})
    assert "command-line option --cloud" in str(err.value)
    assert "public, usgov, china or an https:// ARM endpoint" in str(err.value)


def test_unknown_key_lists_known_keys(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[throttles]\nmax_paralel = 3\n")
    with pytest.raises(SettingsError) as err:
        load_settings(cfg, environ={})
    assert "unknown setting 'throttles.max_paralel'" in str(err.value)
    assert "max_parallel" in str(err.value)


def test_subscription_must_be_a_guid():
    with pytest.raises(SettingsError) as err:
        load_settings(environ={}, flags={"scope.subscriptions": ["prod-sub"]})
    assert "'prod-sub' is not a subscription id" in str(err.value)
    assert "--subscriptions" in str(err.value)


def test_subscriptions_and_management_groups_are_exclusive():
    with pytest.raises(SettingsError, match="not both"):
        load_settings(environ={}, flags={
            "scope.subscriptions": ["11111111-1111-4111-8111-111111111111"],
            "scope.management_groups": ["mg"]})


def test_endpoint_must_be_https():
    with pytest.raises(SettingsError, match="https://"):
        load_settings(environ={"CCMIGRATE_ENDPOINT": "http://127.0.0.1:8080"})


def test_missing_ca_bundle_file_is_reported(tmp_path):
    with pytest.raises(SettingsError) as err:
        load_settings(environ={"CCMIGRATE_CA_BUNDLE": str(tmp_path / "nope.pem")})
    assert "ca_bundle" in str(err.value) and "no such file" in str(err.value)


def test_missing_and_invalid_settings_files(tmp_path):
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(tmp_path / "missing.toml", environ={})
    bad = tmp_path / "bad.toml"
    bad.write_text("cloud = \n")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings(bad, environ={})


def test_comma_separated_environment_lists():
    env = {"CCMIGRATE_SCOPE__EXCLUDE_TAGS": "env=sandbox,owner=",
           "CCMIGRATE_SCOPE__EXCLUDE_RESOURCE_GROUPS": "rg-temp"}
    scope = load_settings(environ=env).scope
    assert scope.exclude_tags == ["env=sandbox", "owner="]
    assert scope.exclude_resource_groups == ["rg-temp"]


def test_client_secret_never_shows_in_repr():
    settings = load_settings(environ={"CCMIGRATE_CLIENT_SECRET": "hunter2"})
    assert "hunter2" not in repr(settings)
    assert settings.client_secret.get_secret_value() == "hunter2"


def test_default_state_store_is_sqlite_in_user_data_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    url = load_settings(environ={}).state_store_url()
    assert url == f"sqlite:///{tmp_path}/ccmigrate/state.db"


# -- pricing --------------------------------------------------------------------------------

def test_no_pricing_table_means_units_only():
    pricing = load_settings(environ={}).pricing
    assert not pricing.configured
    assert (pricing.currency, pricing.small_instance, pricing.per_500gb) == (None, None, None)


def test_pricing_table_with_a_region_override_from_a_file(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[pricing]\ncurrency = "eur"\nsmall_instance = 4.5\nper_500gb = 9\n'
                   '[pricing.regions."West Europe"]\nper_500gb = 10.25\n')
    pricing = load_settings(cfg, environ={}).pricing
    assert pricing.configured
    assert (pricing.currency, pricing.small_instance, pricing.per_500gb) == ("EUR", 4.5, 9.0)
    assert list(pricing.regions) == ["westeurope"]  # as Resource Graph names the location
    assert pricing.regions["westeurope"].per_500gb == 10.25
    assert pricing.regions["westeurope"].small_instance is None


def test_pricing_from_the_environment_down_to_a_region():
    env = {"CCMIGRATE_PRICING__CURRENCY": "USD", "CCMIGRATE_PRICING__SMALL_INSTANCE": "5",
           "CCMIGRATE_PRICING__PER_500GB": "10",
           "CCMIGRATE_PRICING__REGIONS__NORTHEUROPE__SMALL_INSTANCE": "6"}
    pricing = load_settings(environ=env).pricing
    assert pricing.configured and pricing.regions["northeurope"].small_instance == 6.0


def test_environment_adds_a_region_to_the_files_pricing_table(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[pricing]\ncurrency = "USD"\nsmall_instance = 5\nper_500gb = 10\n'
                   '[pricing.regions.westeurope]\nsmall_instance = 5.5\n')
    env = {"CCMIGRATE_PRICING__REGIONS__EASTUS__PER_500GB": "9"}
    regions = load_settings(cfg, environ=env).pricing.regions
    assert {name: (r.small_instance, r.per_500gb) for name, r in regions.items()} == {
        "westeurope": (5.5, None), "eastus": (None, 9.0)}


def test_partial_pricing_names_the_missing_keys_and_where_the_rest_came_from(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[pricing]\ncurrency = "EUR"\n')
    with pytest.raises(SettingsError) as err:
        load_settings(cfg, environ={"CCMIGRATE_PRICING__PER_500GB": "9"})
    message = str(err.value)
    assert message.startswith("invalid setting pricing = ")
    assert "lacks small_instance;" in message
    assert "set currency, small_instance and per_500gb together" in message
    assert f"settings file {cfg}" in message
    assert "environment variable CCMIGRATE_PRICING__PER_500GB" in message


def test_region_prices_without_the_table_prices_are_refused(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[pricing.regions.westeurope]\nsmall_instance = 5\n')
    with pytest.raises(SettingsError, match=r"lacks currency, small_instance, per_500gb"):
        load_settings(cfg, environ={})


def test_negative_region_price_names_the_full_variable():
    env = {"CCMIGRATE_PRICING__REGIONS__WESTEUROPE__SMALL_INSTANCE": "-1"}
    with pytest.raises(SettingsError) as err:
        load_settings(environ=env)
    assert str(err.value) == (
        "invalid setting pricing.regions.westeurope.small_instance = '-1' in environment "
        "variable CCMIGRATE_PRICING__REGIONS__WESTEUROPE__SMALL_INSTANCE: must be greater than "
        "or equal to 0")


@pytest.mark.parametrize(("line", "expected"), [
    ("per_500gb = nan", "must be a finite number"),
    ('currency = "euro"', "three-letter code"),
    ('small_instance = "cheap"', "must be a valid number"),
])
def test_bad_pricing_values_say_what_is_allowed(tmp_path, line, expected):
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"[pricing]\n{line}\n")
    with pytest.raises(SettingsError, match=expected):
        load_settings(cfg, environ={})


def test_misspelt_region_price_lists_the_region_keys(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[pricing.regions.westeurope]\nsmall = 5\n')
    with pytest.raises(SettingsError) as err:
        load_settings(cfg, environ={})
    assert "unknown setting 'pricing.regions.westeurope.small'" in str(err.value)
    assert "known keys here: per_500gb, small_instance" in str(err.value)


def test_empty_region_table_is_refused_naming_the_file(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[pricing.regions.westeurope]\n')
    with pytest.raises(SettingsError) as err:
        load_settings(cfg, environ={})
    assert "pricing.regions.westeurope" in str(err.value)
    assert "give small_instance, per_500gb or both" in str(err.value)
    assert f"settings file {cfg}" in str(err.value)


# -- [waves] -----------------------------------------------------------------------------------

def test_wave_defaults():
    waves = load_settings(environ={}).waves
    assert (waves.wave_size, waves.canary, waves.ramp) == (50, 1, [5])
    assert waves.allow_warnings == [] and waves.include_standard is False
    assert waves.order_by == "" and waves.rollback_policy_template == "{source}-enh"
    assert (waves.max_failures, waves.cumulative_max_failures) == ("10%", "5%")
    assert (waves.verify, waves.lease_ttl_s, waves.irreversible_timeout_s) == ("job", 60, 14400)


def test_ramp_takes_counts_and_percentages_from_file_environment_and_flag(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[waves]\nramp = [2, "10%", 40]\n')
    assert load_settings(cfg, environ={}).waves.ramp == [2, "10%", 40]
    env = {"CCMIGRATE_WAVES__RAMP": "1,5,25%"}
    assert load_settings(environ=env).waves.ramp == [1, 5, "25%"]
    assert load_settings(environ=env, flags={"waves.ramp": "3, 12.5%"}).waves.ramp == [3, "12.5%"]
    assert load_settings(environ={"CCMIGRATE_WAVES__RAMP": "7"}).waves.ramp == [7]


@pytest.mark.parametrize(("ramp", "expected"), [
    ("0", "0 is below the minimum of 1"),
    ("1,x", "'x' is neither a whole number nor a percentage"),
    ("150%", "at most 100%"),
    ("0%", "above 0%"),
])
def test_bad_ramp_step_names_the_flag_and_what_is_allowed(ramp, expected):
    with pytest.raises(SettingsError) as err:
        load_settings(environ={}, flags={"waves.ramp": ramp})
    message = str(err.value)
    assert "waves.ramp" in message and "command-line option --ramp" in message
    assert expected in message


def test_failure_thresholds_are_counts_or_percentages():
    waves = load_settings(environ={"CCMIGRATE_WAVES__MAX_FAILURES": "0",
                                   "CCMIGRATE_WAVES__CUMULATIVE_MAX_FAILURES": "2.5%"}).waves
    assert (waves.max_failures, waves.cumulative_max_failures) == (0, "2.5%")
    with pytest.raises(SettingsError, match=r"waves\.max_failures"):
        load_settings(environ={"CCMIGRATE_WAVES__MAX_FAILURES": "ten"})


def test_allowed_warnings_are_rule_ids_upper_cased_once():
    env = {"CCMIGRATE_WAVES__ALLOW_WARNINGS": "host_caching_readwrite,HOST_CACHING_READWRITE"}
    assert load_settings(environ=env).waves.allow_warnings == ["HOST_CACHING_READWRITE"]
    with pytest.raises(SettingsError, match="is not a rule id"):
        load_settings(environ={}, flags={"waves.allow_warnings": ["host caching"]})


def test_order_by_is_empty_or_a_tag():
    assert load_settings(environ={}, flags={"waves.order_by": "TAG: criticality"}).waves \
        .order_by == "tag:criticality"
    with pytest.raises(SettingsError, match="'tag:NAME'"):
        load_settings(environ={}, flags={"waves.order_by": "name"})


def test_rollback_template_follows_the_policy_name_rules(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[waves]\nrollback_policy_template = "{source}"\n')
    with pytest.raises(SettingsError) as err:
        load_settings(cfg, environ={})
    message = str(err.value)
    assert "waves.rollback_policy_template" in message and str(cfg) in message
    assert "source policy's own name" in message and "'{source}-enh'" in message


def test_runner_keys_are_validated():
    with pytest.raises(SettingsError, match="'job' or 'backup'"):
        load_settings(environ={"CCMIGRATE_WAVES__VERIFY": "snapshot"})
    with pytest.raises(SettingsError, match=r"waves\.lease_ttl_s"):
        load_settings(environ={"CCMIGRATE_WAVES__LEASE_TTL_S": "1"})


def test_arm_pacing_rate_must_be_positive():
    with pytest.raises(SettingsError) as err:
        load_settings(environ={"CCMIGRATE_THROTTLES__ARM_READS_PER_S": "0"})
    message = str(err.value)
    assert "throttles.arm_reads_per_s" in message
    assert "greater than 0" in message
    assert "environment variable CCMIGRATE_THROTTLES__ARM_READS_PER_S" in message


def test_arm_pacing_defaults_mirror_arm_and_can_be_switched_off():
    throttles = load_settings(environ={}).throttles
    assert throttles.arm_pacing is True
    assert (throttles.arm_read_burst, throttles.arm_reads_per_s) == (250, 25)
    assert (throttles.arm_write_burst, throttles.arm_writes_per_s) == (200, 10)
    off = load_settings(environ={"CCMIGRATE_THROTTLES__ARM_PACING": "false"}).throttles
    assert off.arm_pacing is False
