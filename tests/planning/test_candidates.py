"""Who may move: ready VMs, conditional ones whose every warning is allowed, Standard-policy VMs
only when opted in; every other VM stays out with a reason that names the fix."""

from __future__ import annotations

import pytest

from tasks.errors import InputError
from tasks.planning import classify, normalize_rule_ids
from tests.planning.frames import frame, vm


def _verdicts(rows, **kwargs) -> dict[str, tuple[bool, bool, str]]:
    vms = frame(rows)
    got = classify(vms, **kwargs)
    return {name: (bool(c), bool(i), r) for name, c, i, r in zip(
        vms["vm_name"], got["candidate"], got["irreversible"], got["reason"], strict=True)}


def test_ready_vms_qualify_and_conditional_ones_need_every_warning_allowed():
    rows = [vm("ready"),
            vm("readwrite", readiness="ready_with_conditions",
               warnings="HOST_CACHING_READWRITE"),
            vm("two", readiness="ready_with_conditions",
               warnings="HOST_CACHING_READWRITE;WORKLOAD_DATABASE")]
    got = _verdicts(rows, allow_warnings=["HOST_CACHING_READWRITE"])
    assert got["ready"] == (True, False, "")
    assert got["readwrite"] == (True, False, "")
    assert got["two"] == (False, False, "warning WORKLOAD_DATABASE not allowed "
                                        "(--allow-warning WORKLOAD_DATABASE)")


def test_refused_warnings_name_the_flags_that_would_allow_them():
    rows = [vm("two", readiness="ready_with_conditions",
               warnings="HOST_CACHING_READWRITE;WORKLOAD_DATABASE")]
    assert _verdicts(rows)["two"][2] == (
        "warnings HOST_CACHING_READWRITE, WORKLOAD_DATABASE not allowed (--allow-warning "
        "HOST_CACHING_READWRITE --allow-warning WORKLOAD_DATABASE)")


def test_standard_policy_vms_need_include_standard_even_when_the_warning_is_allowed():
    rows = [vm("std", policy="standard-daily", readiness="ready_with_conditions",
               warnings="POLICY_STANDARD")]
    refused = _verdicts(rows, allow_warnings=["POLICY_STANDARD"])["std"]
    assert refused[0] is False and "--include-standard" in refused[2]
    assert "can't be undone" in refused[2]
    assert _verdicts(rows, include_standard=True)["std"] == (True, True, "")


def test_standard_plus_another_warning_names_both_fixes():
    rows = [vm("both", readiness="ready_with_conditions",
               warnings="POLICY_STANDARD;HOST_CACHING_READWRITE")]
    reason = _verdicts(rows)["both"][2]
    assert "--allow-warning HOST_CACHING_READWRITE" in reason and "--include-standard" in reason
    assert _verdicts(rows, include_standard=True,
                     allow_warnings=["HOST_CACHING_READWRITE"])["both"] == (True, True, "")


def test_standard_rule_made_info_by_an_override_still_needs_the_opt_in():
    rows = [vm("std", readiness="ready", infos="POLICY_STANDARD")]
    assert "--include-standard" in _verdicts(rows)["std"][2]
    assert _verdicts(rows, include_standard=True)["std"] == (True, True, "")


def test_other_readiness_never_qualifies_whatever_is_allowed():
    rows = [vm("blocked", readiness="not_ready", blockers="ULTRA_DISK;SHARED_DISK"),
            vm("unknown", readiness="unknown", unknowns="SIZE_UNKNOWN"),
            vm("bare", readiness="not_protected"),
            vm("done", readiness="already_crash_consistent"),
            vm("odd", readiness="something_new")]
    got = _verdicts(rows, allow_warnings=["ULTRA_DISK", "SIZE_UNKNOWN"], include_standard=True)
    assert {name: c for name, (c, _, _) in got.items()} == dict.fromkeys(got, False)
    assert got["blocked"][2] == "not ready: ULTRA_DISK, SHARED_DISK"
    assert got["unknown"][2] == "readiness unknown: SIZE_UNKNOWN"
    assert got["bare"][2].startswith("not protected")
    assert got["done"][2] == "already crash-consistent"
    assert "something_new" in got["odd"][2]


def test_a_ready_vm_without_a_recorded_backup_item_stays_out():
    row = vm("ghost")
    row["item_id"] = ""
    assert "assess again" in _verdicts([row])["ghost"][2]


def test_rule_ids_are_checked_and_upper_cased():
    assert normalize_rule_ids(["host_caching_readwrite", " HOST_CACHING_READWRITE "],
                              where="--allow-warning") == ["HOST_CACHING_READWRITE"]
    with pytest.raises(InputError) as err:
        normalize_rule_ids(["NO_SUCH_RULE"], where="--allow-warning")
    assert "--allow-warning: NO_SUCH_RULE is not a rule id" in str(err.value)
    assert "HOST_CACHING_READWRITE" in str(err.value)
