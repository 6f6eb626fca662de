"""A user's mistake ends in one clear line on stderr and exit code 2, never a traceback."""

from __future__ import annotations

import json

from tests.cli.helpers import no_traceback, run_cli
from tests.fleets import small_fleet


def test_bad_credential_flag_exits_2_with_the_allowed_kinds():
    proc = run_cli("discover", "--credential", "password")
    assert proc.returncode == 2
    assert no_traceback(proc)
    assert "credential = 'password'" in proc.stderr
    assert "command-line option --credential" in proc.stderr


def test_bad_environment_value_names_the_variable():
    proc = run_cli("discover", env={"CCMIGRATE_THROTTLES__MAX_PARALLEL": "lots"})
    assert proc.returncode == 2
    assert no_traceback(proc)
    assert "CCMIGRATE_THROTTLES__MAX_PARALLEL" in proc.stderr


def test_bad_settings_file_names_the_file(tmp_path):
    cfg = tmp_path / "settings.toml"
    cfg.write_text('[scope]\nsubscriptions = ["not-a-guid"]\n')
    proc = run_cli("discover", "--config", str(cfg))
    assert proc.returncode == 2
    assert no_traceback(proc)
    assert str(cfg) in proc.stderr and "'not-a-guid' is not a subscription id" in proc.stderr


def test_bad_fleet_file_names_the_resource_and_field(tmp_path):
    fleet = small_fleet()
    vm = next(r for r in fleet["resources"] if r["type"] == "Microsoft.Compute/virtualMachines")
    del vm["properties"]["hardwareProfile"]
    path = tmp_path / "fleet.json"
    path.write_text(json.dumps(fleet))
    proc = run_cli("emulator", "serve", "--fleet", str(path), "--port", "0")
    assert proc.returncode == 2
    assert no_traceback(proc)
    assert vm["id"] in proc.stderr and "hardwareProfile" in proc.stderr


def test_fleet_file_that_is_not_json(tmp_path):
    path = tmp_path / "fleet.json"
    path.write_text("{not json")
    proc = run_cli("discover", "--fleet", str(path))
    assert proc.returncode == 2
    assert no_traceback(proc)
    assert str(path) in proc.stderr


def test_serve_needs_exactly_one_fleet_source():
    proc = run_cli("emulator", "serve", "--port", "0")
    assert proc.returncode == 2
    assert "--fleet" in proc.stderr and "--demo" in proc.stderr


def test_unknown_option_is_a_usage_error():
    proc = run_cli("discover", "--frobnicate")
    assert proc.returncode == 2
    assert no_traceback(proc)


def test_every_command_has_help():
    for args in (["--help"], ["demo", "--help"], ["discover", "--help"],
                 ["emulator", "--help"], ["emulator", "serve", "--help"],
                 ["emulator", "generate", "--help"]):
        proc = run_cli(*args)
        assert proc.returncode == 0, args
        assert "Usage" in proc.stdout
