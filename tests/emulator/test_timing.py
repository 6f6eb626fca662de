"""The emulator's service timing: ``fast`` for unit tests, ``azure`` with the durations and
``Retry-After`` Microsoft documents, divided by a time scale; explicit values win. Checked over
HTTPS through the real SDK clients where a client would notice (the 202's Retry-After, how long
a change and its job take), and on the drawing itself for the ranges."""

from __future__ import annotations

import subprocess

import pytest

from emulator.config import EmulatorConfig
from emulator.server import Emulator
from emulator.timing import AZURE, AZURE_RETRY_AFTER, Timing
from flows.options import with_emulator_principal
from tasks.azure import backup
from tasks.azure.clients import AzureAccess
from tasks.settings import load_settings
from tests.cli.helpers import ccmigrate_argv
from tests.fleets import SUB_A, make_item, make_policy, make_vm, small_fleet

VAULT = (f"/subscriptions/{SUB_A}/resourceGroups/rg-backup/providers/"
         "Microsoft.RecoveryServices/vaults/vault-1111")


def _access(emu: Emulator) -> AzureAccess:
    return AzureAccess(with_emulator_principal(load_settings(environ={}, flags={
        "throttles.polling_interval": 0.05}), emu.connection_info()))


def _item(emu: Emulator, vm_name: str) -> dict:
    return next(r for r in emu.state()["resources"]
                if r["type"].lower().endswith("/protecteditems")
                and r["properties"]["friendlyName"] == vm_name)


def _change_policy(emu: Emulator, vm_name: str, policy: str) -> tuple[dict, backup.ItemOperation]:
    """Start moving ``vm_name`` to ``policy``; the 202's headers and the operation."""
    item = _item(emu, vm_name)
    client = _access(emu).backup(SUB_A)
    headers: dict[str, str] = {}
    ref = backup.item_ref(item["id"])
    original = client.protected_items.begin_create_or_update

    def begin(*args, raw_response_hook, **kwargs):
        def hook(response):
            if not headers and response.http_request.method == "PUT":
                headers.update(response.http_response.headers)
            raw_response_hook(response)
        return original(*args, raw_response_hook=hook, **kwargs)

    client.protected_items.begin_create_or_update = begin
    operation = backup.set_item_policy(client, ref, item["properties"]["sourceResourceId"],
                                       f"{VAULT}/backupPolicies/{policy}")
    return headers, operation


def test_fast_timing_is_the_default_and_lets_pollers_spin():
    with Emulator(small_fleet()) as emu:
        headers, operation = _change_policy(emu, "vm-1111-0", "enhanced-daily-crash")
        assert headers["Retry-After"] == "0"
        assert operation.wait(30)["properties"]["policyName"] == "enhanced-daily-crash"


@pytest.mark.parametrize(("scale", "expected"), [(1, "60"), (30, "2"), (45, "2"),
                                                 (60, "1"), (600, "1")])
def test_azure_timing_sends_microsofts_retry_after_divided_by_the_scale(scale, expected):
    config = EmulatorConfig(timing="azure", time_scale=scale)
    with Emulator(small_fleet(), config=config) as emu:
        headers, _ = _change_policy(emu, "vm-1111-0", "enhanced-daily-crash")
        assert headers["Retry-After"] == expected


def test_azure_durations_stay_in_the_documented_ranges_and_repeat_with_the_seed():
    for kind, span in AZURE.items():
        timing = Timing(EmulatorConfig(timing="azure", seed=3))
        drawn = [timing.seconds(kind) for _ in range(300)]
        assert all(span.low <= d <= span.high for d in drawn), kind
        again = Timing(EmulatorConfig(timing="azure", seed=3))
        assert [again.seconds(kind) for _ in range(300)] == drawn
        scaled = Timing(EmulatorConfig(timing="azure", seed=3, time_scale=60))
        assert [scaled.seconds(kind) for _ in range(300)] == pytest.approx(
            [d / 60 for d in drawn])
    assert AZURE_RETRY_AFTER == 60
    assert Timing(EmulatorConfig(timing="azure", time_scale=1e6)).retry_after(0.1, 0.2) == "1"


def test_explicit_values_win_over_the_profile_and_are_not_scaled():
    timing = Timing(EmulatorConfig(timing="azure", time_scale=60, operation_seconds=2.0,
                                   backup_job_seconds=7.0, retry_after=5))
    assert timing.seconds("item_operation") == 2.0
    assert timing.seconds("backup_job") == 7.0
    assert timing.retry_after(1.0, 2.0) == "5"
    span = AZURE["policy_item_job"]  # job_seconds not given: still the profile's, scaled
    assert span.low / 60 <= timing.seconds("policy_item_job") <= span.high / 60


def test_a_policy_change_under_azure_timing_takes_azures_time_scaled():
    scale = 600
    config = EmulatorConfig(timing="azure", time_scale=scale, seed=11)
    with Emulator(small_fleet(), config=config) as emu:
        _, operation = _change_policy(emu, "vm-1111-0", "enhanced-daily-crash")
        item = operation.wait(60)
        assert item["properties"]["policyName"] == "enhanced-daily-crash"
        client = _access(emu).backup(SUB_A)
        status = backup.item_operation_status(client, operation.ref, operation.operation_id)
        job = backup.get_job(client, backup.vault_ref(VAULT), status["properties"]["jobId"])
        props = job["properties"]
        assert props["operation"] == "ConfigureBackup" and props["status"] == "Completed"
        span = AZURE["item_operation"]
        took = _seconds(props["duration"])
        # The job starts with the operation (a moment after it, on a busy box) and ends with it.
        assert span.low / scale - 0.25 <= took <= span.high / scale + 0.25


def _seconds(duration: str) -> float:
    """``PT1M2.5S`` -> 62.5."""
    import re

    m = re.fullmatch(r"PT(?:(\d+)H)?(?:(\d+)M)?(?:([\d.]+)S)?", duration)
    assert m, duration
    h, mi, s = (float(g) if g else 0.0 for g in m.groups())
    return h * 3600 + mi * 60 + s


def test_moving_from_standard_to_enhanced_starts_a_backup_job_azure_runs_itself():
    fleet = small_fleet()
    vault = next(r for r in fleet["resources"] if r["name"] == "vault-1111")
    standard = make_policy(vault, "standard-daily", v1=True)
    vm, disks = make_vm(SUB_A, "rg-app", "vm-std-0")
    fleet["resources"] += [standard, vm, *disks, make_item(vault, vm, standard)]
    with Emulator(fleet, config=EmulatorConfig(operation_seconds=0.1,
                                               backup_job_seconds=30)) as emu:
        _, operation = _change_policy(emu, "vm-std-0", "enhanced-daily")
        operation.wait(30)
        client = _access(emu).backup(SUB_A)
        running = [j for j in backup.list_jobs(client, backup.vault_ref(VAULT),
                                                "operation eq 'Backup'")
                   if j["properties"]["entityFriendlyName"] == "vm-std-0"]
        assert len(running) == 1
        assert running[0]["properties"]["status"] == "InProgress"
        assert running[0]["properties"]["isUserTriggered"] is False


@pytest.mark.parametrize(("flags", "named"), [
    (["--timing", "slow"], "--timing"),
    (["--timing", "azure", "--time-scale", "0"], "--time-scale"),
    (["--time-scale", "60"], "--time-scale"),  # without --timing azure it would do nothing
])
def test_serve_refuses_a_bad_timing_flag_with_exit_2(flags, named):
    proc = subprocess.run([*ccmigrate_argv(), "emulator", "serve", "--demo", "10", *flags],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert named in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr


def test_retry_after_is_rounded_up_and_never_below_one_second():
    expected = {7: "9", 59: "2", 60: "1", 61: "1", 1000: "1"}
    for scale, want in expected.items():
        got = Timing(EmulatorConfig(timing="azure", time_scale=scale)).retry_after(10, 20)
        assert got == want, scale


def test_timing_without_an_emulator_to_start_is_refused_with_exit_2():
    proc = subprocess.run([*ccmigrate_argv(), "discover", "--timing", "azure", "--time-scale",
                           "60"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "--demo or --fleet" in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr
