"""The seeded fleet generator: valid, deterministic, realistic, and every scenario present.

The generator's truth (what it built each VM to be) comes back separately from the fleet; these
tests check the truth against the ARM objects and the proportions against the brief.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from emulator.fleet import validate_fleet
from emulator.generator import (
    DEFAULT_SPEC_PATH,
    FINDING_RULES,
    RULE_SEVERITY,
    SpecError,
    VmTruth,
    generate_fleet,
    generate_fleet_with_truth,
    load_spec,
    write_fleet,
)
from emulator.skus import SIZES

VM_T = "microsoft.compute/virtualmachines"
DISK_T = "microsoft.compute/disks"
VAULT_T = "microsoft.recoveryservices/vaults"
POLICY_T = "microsoft.recoveryservices/vaults/backuppolicies"
ITEM_T = "microsoft.recoveryservices/vaults/backupfabrics/protectioncontainers/protecteditems"
SQLVM_T = "microsoft.sqlvirtualmachine/sqlvirtualmachines"
READINESS = {"ready", "ready_with_conditions", "not_ready", "already_crash_consistent",
             "not_protected", "unknown"}
EPOCH = "2026-11-01T00:00:00"


class Index:
    """The fleet's resources by type and id, for the checks below."""

    def __init__(self, fleet: dict) -> None:
        self.by_type: dict[str, list[dict]] = {}
        self.by_id: dict[str, dict] = {}
        for res in fleet["resources"]:
            self.by_type.setdefault(res["type"].lower(), []).append(res)
            self.by_id[res["id"].lower()] = res
        self.items_by_vm: dict[str, list[dict]] = {}
        for item in self.of(ITEM_T):
            self.items_by_vm.setdefault(item["properties"]["sourceResourceId"].lower(),
                                        []).append(item)
        self.sqlvm_targets = {r["properties"]["virtualMachineResourceId"].lower()
                              for r in self.of(SQLVM_T)}

    def of(self, arm_type: str) -> list[dict]:
        return self.by_type.get(arm_type, [])

    def active_item(self, vm_id: str) -> dict | None:
        items = [i for i in self.items_by_vm.get(vm_id.lower(), [])
                 if i["properties"]["protectionState"] != "ProtectionStopped"]
        assert len(items) <= 1
        return items[0] if items else None


@pytest.fixture(scope="module")
def generated() -> tuple[dict, dict[str, VmTruth], Index]:
    fleet, truth = generate_fleet_with_truth(2000, 8, seed=11)
    return fleet, truth, Index(fleet)


def disks_of(vm: dict) -> list[dict]:
    sp = vm["properties"]["storageProfile"]
    return [sp["osDisk"], *sp["dataDisks"]]


def vault_of(resource_id: str) -> str:
    return "/".join(resource_id.split("/")[:9]).lower()


# -- shape and validity -----------------------------------------------------------------------

def test_fleet_is_valid_and_has_only_the_contract_keys(generated) -> None:
    fleet, truth, idx = generated
    validate_fleet(fleet, "generated")
    assert list(fleet) == ["subscriptions", "managementGroups", "resources"]
    assert len(idx.of(VM_T)) == 2000
    assert set(truth) == {vm["id"] for vm in idx.of(VM_T)}
    assert all(isinstance(t, VmTruth) for t in truth.values())


def test_subscriptions_and_management_groups(generated) -> None:
    fleet, _, _ = generated
    subs = fleet["subscriptions"]
    assert len(subs) == 8
    assert len({s["tenantId"] for s in subs}) == 1
    assert len({s["subscriptionId"] for s in subs}) == 8
    assert subs[0]["displayName"] == "contoso-prod-01"
    assert all(s["state"] == "Enabled" for s in subs)
    groups = {g["name"]: g["subscriptions"] for g in fleet["managementGroups"]}
    assert set(groups["mg-contoso"]) == {s["subscriptionId"] for s in subs}
    assert {"mg-prod", "mg-nonprod", "mg-platform"} <= set(groups)


def test_resource_types_and_regions(generated) -> None:
    _, _, idx = generated
    for t in (VM_T, DISK_T, VAULT_T, POLICY_T, ITEM_T, SQLVM_T):
        assert idx.of(t), t
    locations = Counter(vm["location"] for vm in idx.of(VM_T))
    assert len(locations) >= 5
    assert 0 < locations["usgovvirginia"] <= 10  # sovereign: a tiny share
    for vault in idx.of(VAULT_T):
        assert vault["sku"] == {"name": "RS0", "tier": "Standard"}
        assert vault["properties"]["provisioningState"] == "Succeeded"
        assert vault["location"] != "usgovvirginia"


def test_policies_cover_standard_enhanced_hourly_and_crash_consistent(generated) -> None:
    _, _, idx = generated
    kinds = Counter()
    for pol in idx.of(POLICY_T):
        props = pol["properties"]
        sched = props["schedulePolicy"]
        assert pol["id"].lower().startswith(vault_of(pol["id"]) + "/backuppolicies/")
        assert props["backupManagementType"] == "AzureIaasVM"
        assert props["retentionPolicy"]["retentionPolicyType"] == "LongTermRetentionPolicy"
        if props["policyType"] == "V1":
            assert sched["schedulePolicyType"] == "SimpleSchedulePolicy"
            assert "snapshotConsistencyType" not in props
        else:
            assert sched["schedulePolicyType"] == "SimpleSchedulePolicyV2"
        kinds[(props["policyType"], sched["scheduleRunFrequency"],
               props.get("snapshotConsistencyType", "app"))] += 1
    assert {("V1", "Daily", "app"), ("V2", "Daily", "app"), ("V2", "Hourly", "app"),
            ("V2", "Daily", "OnlyCrashConsistent"), ("V2", "Hourly", "OnlyCrashConsistent")} \
        <= set(kinds)


def test_protected_items_point_into_their_own_vault(generated) -> None:
    _, truth, idx = generated
    vm_by_id = {vm["id"].lower(): vm for vm in idx.of(VM_T)}
    dangling = 0
    for item in idx.of(ITEM_T):
        props = item["properties"]
        vm = vm_by_id[props["sourceResourceId"].lower()]
        assert props["virtualMachineId"] == vm["id"]
        assert item["name"] == item["id"].rsplit("/", 1)[1]
        assert item["name"].startswith("VM;iaasvmcontainerv2;")
        vault = idx.by_id[vault_of(item["id"])]
        assert vault["location"] == vm["location"]
        assert vault["id"].split("/")[2] == vm["id"].split("/")[2]
        assert vault_of(props["policyId"]) == vault["id"].lower()
        policy = idx.by_id.get(props["policyId"].lower())
        if policy is None:
            dangling += 1
            assert "PROTECTION_DATA_UNREADABLE" in truth[vm["id"]].rules
            assert props["protectionState"] not in ("ProtectionStopped", "BackupsSuspended")
        else:
            assert props["policyType"] == policy["properties"]["policyType"]
            assert props["policyName"] == policy["name"]
            if props["protectionState"] in ("ProtectionStopped", "BackupsSuspended"):
                # stopped items keep an Enhanced app-consistent policy: nothing can fire on it
                assert props["policyType"] == "V2"
                assert "snapshotConsistencyType" not in policy["properties"]
    assert dangling >= 1


def test_protected_items_count_matches_the_items(generated) -> None:
    _, _, idx = generated
    counts = Counter(i["properties"]["policyId"].lower() for i in idx.of(ITEM_T)
                     if i["properties"]["protectionState"] != "ProtectionStopped")
    for pol in idx.of(POLICY_T):
        assert pol["properties"]["protectedItemsCount"] == counts.get(pol["id"].lower(), 0)
    assert sum(p["properties"]["protectedItemsCount"] for p in idx.of(POLICY_T)) > 1000


def test_some_vms_have_an_old_stopped_item_in_another_vault(generated) -> None:
    _, truth, idx = generated
    doubles = [items for items in idx.items_by_vm.values() if len(items) == 2]
    assert doubles
    for items in doubles:
        states = sorted(i["properties"]["protectionState"] for i in items)
        assert states.count("ProtectionStopped") >= 1
        assert vault_of(items[0]["id"]) != vault_of(items[1]["id"])
    assert sum(t.items == 2 for t in truth.values()) == len(doubles)


def test_item_states(generated) -> None:
    _, _, idx = generated
    states = Counter(i["properties"]["protectionState"] for i in idx.of(ITEM_T))
    assert {"Protected", "IRPending", "ProtectionError", "ProtectionStopped",
            "BackupsSuspended"} <= set(states)
    assert states["Protected"] > 0.8 * sum(states.values())
    for item in idx.of(ITEM_T):
        props = item["properties"]
        if props["protectionState"] == "Protected":
            assert (props["protectionStatus"], props["healthStatus"],
                    props["lastBackupStatus"]) == ("Healthy", "Passed", "Completed")
        if props["protectionState"] == "ProtectionError":
            assert props["lastBackupStatus"] == "Failed"
        assert props["extendedInfo"]["policyInconsistent"] is False
        assert props["isScheduledForDeferredDelete"] is False


def test_disk_references_exist_except_the_deliberate_ones(generated) -> None:
    _, truth, idx = generated
    exact_ids = {d["id"] for d in idx.of(DISK_T)}
    disk_ids = {d.lower() for d in exact_ids}
    referenced: set[str] = set()
    case_mismatch = 0
    for vm in idx.of(VM_T):
        rules = truth[vm["id"]].rules
        missing = 0
        for disk in disks_of(vm):
            md = disk.get("managedDisk")
            if md is None:
                assert "vhd" in disk and "UNMANAGED_DISK" in rules
                assert disk["vhd"]["uri"].startswith("https://")
                continue
            if "id" not in md:
                assert disk.get("diffDiskSettings") == {"option": "Local",
                                                        "placement": "CacheDisk"}
                assert disk["caching"] == "ReadOnly"
                continue
            referenced.add(md["id"].lower())
            # ARM ids are case-insensitive: some VMs spell the resource group differently
            case_mismatch += md["id"] not in exact_ids and md["id"].lower() in disk_ids
            if md["id"].lower() not in disk_ids:
                missing += 1
        assert (missing > 0) == ("DISK_NOT_FOUND" in rules), vm["id"]
    assert disk_ids <= referenced  # every disk belongs to some VM
    assert case_mismatch > 0


def test_disks_are_managed_by_their_vm(generated) -> None:
    _, _, idx = generated
    vm_ids = {vm["id"] for vm in idx.of(VM_T)}
    for disk in idx.of(DISK_T):
        assert disk["managedBy"] in vm_ids
        assert disk["properties"]["diskState"] == "Attached"
        assert disk["sku"]["name"] in {"Premium_LRS", "StandardSSD_LRS", "Premium_ZRS",
                                       "StandardSSD_ZRS", "Standard_LRS", "UltraSSD_LRS",
                                       "PremiumV2_LRS"}


def test_timestamps_are_before_the_fixed_epoch(generated) -> None:
    _, _, idx = generated
    stamps = [vm["properties"]["timeCreated"] for vm in idx.of(VM_T)]
    stamps += [i["properties"]["lastBackupTime"] for i in idx.of(ITEM_T)
               if "lastBackupTime" in i["properties"]]
    assert stamps and all(s < EPOCH for s in stamps)


# -- the truth matches the ARM data -------------------------------------------------------------

def test_every_rule_and_readiness_occurs_at_2000(generated) -> None:
    _, truth, _ = generated
    assert {r for t in truth.values() for r in t.rules} == set(RULE_SEVERITY)
    assert {t.readiness for t in truth.values()} == READINESS


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_every_rule_and_readiness_occurs_from_200_vms(seed: int) -> None:
    fleet, truth = generate_fleet_with_truth(200, 3, seed=seed)
    validate_fleet(fleet)
    assert {r for t in truth.values() for r in t.rules} == set(RULE_SEVERITY)
    assert {t.readiness for t in truth.values()} == READINESS


def test_proportions_keep_a_movable_majority(generated) -> None:
    _, truth, idx = generated
    n = len(truth)
    readiness = Counter(t.readiness for t in truth.values())
    assert readiness["ready"] >= 0.30 * n
    candidates = [vm_id for vm_id, t in truth.items()
                  if not t.blockers and t.items == 0 and t.vault_in_region]
    assert len(candidates) >= 0.05 * n
    vault_places = {(v["id"].split("/")[2], v["location"]) for v in idx.of(VAULT_T)}
    for vm_id in candidates:
        vm = idx.by_id[vm_id.lower()]
        assert vm_id.lower() not in idx.items_by_vm
        assert (vm_id.split("/")[2], vm["location"]) in vault_places
    assert 0.06 * n <= readiness["already_crash_consistent"] <= 0.10 * n


def test_vaultless_regions_hold_only_unprotected_vms(generated) -> None:
    _, truth, idx = generated
    vault_places = {(v["id"].split("/")[2], v["location"]) for v in idx.of(VAULT_T)}
    bare = [vm for vm in idx.of(VM_T) if not truth[vm["id"]].vault_in_region]
    assert bare
    for vm in bare:
        assert (vm["id"].split("/")[2], vm["location"]) not in vault_places
        assert truth[vm["id"]].items == 0 and vm["id"].lower() not in idx.items_by_vm


@pytest.mark.parametrize("subscriptions", [1, 3])
def test_candidates_for_new_protection_hold_with_few_subscriptions(subscriptions: int) -> None:
    for seed in range(10):
        _, truth = generate_fleet_with_truth(200, subscriptions, seed=seed)
        candidates = sum(not t.blockers and t.items == 0 and t.vault_in_region
                         for t in truth.values())
        assert candidates >= 10, seed  # 5% of 200


def test_ready_vms_carry_nothing_that_could_hold_them_back(generated) -> None:
    _, truth, idx = generated
    policies = {p["id"].lower(): p for p in idx.of(POLICY_T)}
    ready = [vm for vm in idx.of(VM_T) if truth[vm["id"]].readiness == "ready"]
    for vm in ready:
        props = vm["properties"]
        assert truth[vm["id"]].rules <= {"LINUX_PREPOST_SCRIPTS"}
        size = props["hardwareProfile"]["vmSize"]
        assert SIZES[size]["premium_io"]
        assert vm["location"] != "usgovvirginia"
        assert props.get("securityProfile", {}).get("securityType", "Standard") != \
            "ConfidentialVM"
        assert props["storageProfile"]["imageReference"]["publisher"] not in \
            {"MicrosoftSQLServer", "Oracle"}
        assert vm["id"].lower() not in idx.sqlvm_targets
        assert vm["tags"].get("backup-consistency") != "application"
        for disk in disks_of(vm):
            assert disk["caching"] in ("ReadOnly", "None")
            assert not disk.get("writeAcceleratorEnabled")
            assert disk["managedDisk"]["storageAccountType"] not in ("UltraSSD_LRS",
                                                                     "PremiumV2_LRS")
            res = idx.by_id[disk["managedDisk"]["id"].lower()]
            assert res["properties"].get("maxShares", 1) <= 1
            assert res["properties"].get("dataAccessAuthMode") != "AzureActiveDirectory"
        item = idx.active_item(vm["id"])
        assert item is not None and item["properties"]["protectionState"] == "Protected"
        policy = policies[item["properties"]["policyId"].lower()]
        assert policy["properties"]["policyType"] == "V2"
        assert "snapshotConsistencyType" not in policy["properties"]


def test_findings_have_their_arm_signature(generated) -> None:
    fleet, truth, idx = generated
    spec = load_spec(DEFAULT_SPEC_PATH)
    by_rule: dict[str, list[dict]] = {}
    for vm in idx.of(VM_T):
        for rule in truth[vm["id"]].rules:
            by_rule.setdefault(rule, []).append(vm)

    def data_disk_resources(vm: dict) -> list[dict]:
        return [idx.by_id[d["managedDisk"]["id"].lower()] for d in disks_of(vm)
                if d.get("managedDisk", {}).get("id", "").lower() in idx.by_id]

    for vm in by_rule["ULTRA_DISK"]:
        assert any(d["managedDisk"]["storageAccountType"] == "UltraSSD_LRS"
                   for d in vm["properties"]["storageProfile"]["dataDisks"])
        assert vm["properties"]["additionalCapabilities"]["ultraSSDEnabled"] is True
    for vm in by_rule["PREMIUM_SSD_V2_DISK"]:
        assert any(d["sku"]["name"] == "PremiumV2_LRS" for d in data_disk_resources(vm))
    for vm in by_rule["SHARED_DISK"]:
        assert any(2 <= d["properties"].get("maxShares", 1) <= 5 for d in data_disk_resources(vm))
    for vm in by_rule["DISK_DATA_ACCESS_AUTH"]:
        assert any(d["properties"].get("dataAccessAuthMode") == "AzureActiveDirectory"
                   for d in data_disk_resources(vm))
    for vm in by_rule["WRITE_ACCELERATOR"]:
        assert vm["properties"]["hardwareProfile"]["vmSize"].startswith("Standard_M")
    for vm in by_rule["CONFIDENTIAL_VM"]:
        assert vm["properties"]["securityProfile"]["securityType"] == "ConfidentialVM"
    for vm in by_rule["SIZE_UNKNOWN"]:
        assert vm["properties"]["hardwareProfile"]["vmSize"] not in SIZES
    for vm in by_rule["SIZE_NOT_PREMIUM_CAPABLE"]:
        assert SIZES[vm["properties"]["hardwareProfile"]["vmSize"]]["premium_io"] is False
        assert all(not d["sku"]["name"].startswith("Premium") for d in data_disk_resources(vm))
    for vm in by_rule["SIZE_AZURE_BOOST"]:
        assert vm["properties"]["hardwareProfile"]["vmSize"] in spec["sizes"]["azure_boost"]
    for vm in by_rule["REGION_NOT_SUPPORTED"]:
        assert vm["location"].startswith("usgov")
        assert truth[vm["id"]].readiness == "not_protected"
    for vm in by_rule["POLICY_STANDARD"]:
        assert idx.active_item(vm["id"])["properties"]["policyType"] == "V1"
    for vm in by_rule["PROTECTION_UNHEALTHY"]:
        assert idx.active_item(vm["id"])["properties"]["protectionState"] in \
            ("IRPending", "ProtectionError")
    databases = by_rule["WORKLOAD_DATABASE"]
    publishers = Counter(vm["properties"]["storageProfile"]["imageReference"]["publisher"]
                         for vm in databases)
    assert {"MicrosoftSQLServer", "Oracle", "SUSE", "RedHat"} <= set(publishers)
    # SQL VM resources: on SQL images and on plain Windows images
    sql_hosts = [idx.by_id[t] for t in idx.sqlvm_targets]
    hosts = {vm["properties"]["storageProfile"]["imageReference"]["publisher"]
             for vm in sql_hosts}
    assert {"MicrosoftSQLServer", "MicrosoftWindowsServer"} <= hosts
    assert all(truth[vm["id"]].rules >= {"WORKLOAD_DATABASE"} for vm in sql_hosts)
    assert len(fleet["resources"]) > 4 * 2000


@pytest.mark.parametrize(("rule", "has_it"), [
    ("HOST_CACHING_READWRITE",
     lambda vm: any(d["caching"] == "ReadWrite" for d in disks_of(vm))),
    ("EPHEMERAL_OS_DISK",
     lambda vm: vm["properties"]["storageProfile"]["osDisk"].get("diffDiskSettings", {})
     .get("option") == "Local"),
    ("UNMANAGED_DISK", lambda vm: any("vhd" in d for d in disks_of(vm))),
    ("WRITE_ACCELERATOR", lambda vm: any(d.get("writeAcceleratorEnabled") for d in disks_of(vm))),
    ("CONFIDENTIAL_VM",
     lambda vm: vm["properties"].get("securityProfile", {}).get("securityType")
     == "ConfidentialVM"),
    ("OPTED_OUT", lambda vm: vm["tags"].get("backup-consistency") == "application"),
    ("LINUX_PREPOST_SCRIPTS",
     lambda vm: vm["properties"]["storageProfile"]["osDisk"]["osType"] == "Linux"),
])
def test_truth_is_exact_for_vm_level_rules(generated, rule, has_it) -> None:
    _, truth, idx = generated
    for vm in idx.of(VM_T):
        assert has_it(vm) == (rule in truth[vm["id"]].rules), (rule, vm["id"])


def test_truth_readiness_follows_protection(generated) -> None:
    _, truth, idx = generated
    for vm_id, t in truth.items():
        item = idx.active_item(vm_id)
        if t.readiness == "not_protected":
            assert item is None or item["properties"]["protectionState"] == "BackupsSuspended"
        else:
            assert item is not None
        if t.readiness == "already_crash_consistent":
            policy = idx.by_id[item["properties"]["policyId"].lower()]
            assert policy["properties"]["snapshotConsistencyType"] == "OnlyCrashConsistent"


def test_decoys_that_must_not_fire_are_present(generated) -> None:
    _, truth, idx = generated
    vms = idx.of(VM_T)
    clean = [vm for vm in vms if truth[vm["id"]].finding == "none"]
    security = Counter(vm["properties"].get("securityProfile", {}).get("securityType", "absent")
                       for vm in clean)
    assert {"TrustedLaunch", "Standard", "absent"} <= set(security)
    sizes = {vm["properties"]["hardwareProfile"]["vmSize"] for vm in clean}
    assert {"Standard_D4as_v6", "Standard_D4ps_v6"} & sizes  # AMD v6 / Arm: not Boost
    assert any(vm["properties"].get("additionalCapabilities", {}).get("ultraSSDEnabled")
               for vm in clean)
    assert any(vm["tags"].get("backup-consistency") == "crash" for vm in clean)
    assert any(vm["properties"]["storageProfile"]["imageReference"]["offer"] == "sles-15-sp5"
               for vm in clean)


# -- determinism and output ------------------------------------------------------------------

def test_same_seed_same_bytes_and_different_seed_different(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "c.json"
    write_fleet(generate_fleet(300, 3, seed=5), a)
    write_fleet(generate_fleet(300, 3, seed=5), b)
    write_fleet(generate_fleet(300, 3, seed=6), c)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


def test_write_fleet_is_compact_json(tmp_path: Path) -> None:
    fleet = generate_fleet(50, 2, seed=1, spec={"fleet": {"organisation": "fabrikam-ø"}})
    path = tmp_path / "fleet.json"
    write_fleet(fleet, path)
    expected = json.dumps(fleet, separators=(",", ":"), ensure_ascii=False).encode()
    assert path.read_bytes() == expected
    assert json.loads(path.read_text(encoding="utf-8")) == fleet
    assert fleet["subscriptions"][0]["displayName"] == "fabrikam-ø-prod-01"


def test_small_and_empty_fleets(tmp_path: Path) -> None:
    for vms in (0, 1, 10):
        fleet, truth = generate_fleet_with_truth(vms, 2, seed=3)
        validate_fleet(fleet)
        assert len(truth) == vms
    assert len(generate_fleet(5, 1, seed=0)["subscriptions"]) == 1


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="vms must be"):
        generate_fleet(-1, 1, seed=0)
    with pytest.raises(ValueError, match="subscriptions must be"):
        generate_fleet(10, 0, seed=0)


# -- the spec ----------------------------------------------------------------------------------

def test_default_spec_loads_and_documents_every_key() -> None:
    spec = load_spec(DEFAULT_SPEC_PATH)
    assert set(spec["findings"]) == set(FINDING_RULES)
    text = DEFAULT_SPEC_PATH.read_text()
    sections = ("fleet", "shape", "protection", "item_state", "findings", "extras",
                "workload_database", "opt_out", "disks")
    for section in sections:
        for key in spec[section]:
            line = next(ln for ln in text.splitlines() if ln.startswith(f"{key} ="))
            before = text[:text.index(line)].rstrip().splitlines()[-1]
            assert before.startswith("#") or "#" in line, f"[{section}] {key} is undocumented"
    first_policy = text[text.index("[[policies]]"):]
    first_policy = first_policy[:first_policy.index("[[policies]]", 1)]
    for key in spec["policies"][0]:
        assert f"{key} = " in first_policy and "#" in next(
            ln for ln in first_policy.splitlines() if ln.startswith(f"{key} =")), key


def test_a_partial_spec_overrides_the_default() -> None:
    _, truth = generate_fleet_with_truth(1000, 2, seed=1,
                                         spec={"protection": {"unprotected": 0.5}})
    share = sum(t.readiness == "not_protected" for t in truth.values()) / 1000
    assert 0.5 <= share <= 0.6


def test_epoch_may_be_a_string_and_moves_every_timestamp() -> None:
    fleet = generate_fleet(20, 1, seed=1, spec={"fleet": {"epoch": "2030-01-01T00:00:00Z"}})
    stamps = [r["properties"]["timeCreated"] for r in fleet["resources"]
              if r["type"] == "Microsoft.Compute/virtualMachines"]
    assert max(stamps) < "2030-01-01" and max(stamps) > EPOCH


def test_spec_with_resource_skus(tmp_path: Path) -> None:
    fleet = generate_fleet(20, 1, seed=1, spec={"fleet": {"include_resource_skus": True}})
    validate_fleet(fleet)
    locations = {vm["location"] for vm in fleet["resources"]
                 if vm["type"] == "Microsoft.Compute/virtualMachines"}
    assert {s["locations"][0] for s in fleet["resourceSkus"]} == locations


@pytest.mark.parametrize(("spec", "message"), [
    ({"protection": {"unprotectd": 0.1}}, r"unknown key \[protection\] unprotectd"),
    ({"protectoin": {}}, r"unknown section \[protectoin\]"),
    ({"protection": {"unprotected": 1.5}}, r"\[protection\] unprotected is 1.5; expected a number "
                                           r"between 0 and 1"),
    ({"protection": {"unprotected": 0.6, "standard_policy": 0.6}}, "add up to more than 1"),
    ({"sizes": {"general": {"Standard_Q1": 1}}}, r"\[sizes.general\] Standard_Q1 is not in the "
                                                 r"built-in SKU catalogue"),
    ({"sizes": {"unknown": {"Standard_D4s_v5": 1}}}, "unknown sizes must be in no catalogue"),
    ({"shape": {"regions_per_subscription": [3, 1]}}, r"expected \[min, max\]"),
    ({"policies": [{"name": "p", "kind": "standard-daily"}]}, r"\[\[policies\]\] #1 time"),
    ({"protection": 0.3}, r"\[protection\] must be a table"),
    ({"policies": ["DefaultPolicy"]}, r"\[\[policies\]\] #1 must be a table"),
    ({"images": {"general": [{"publisher": "Canonical"}]}}, r"#1 offer must be a string"),
    ({"fleet": {"epoch": "yesterday"}}, r"\[fleet\] epoch is 'yesterday'; expected a date-time"),
])
def test_bad_specs_name_the_key(spec: dict, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        generate_fleet(10, 1, seed=0, spec=spec)


def test_load_spec_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[protection\nunprotected = 0.1\n")
    with pytest.raises(SpecError, match=rf"demo fleet spec {bad}: not valid TOML"):
        load_spec(bad)
    with pytest.raises(SpecError, match="no such file"):
        load_spec(tmp_path / "missing.toml")
    partial = tmp_path / "partial.toml"
    partial.write_text("[findings]\nultra_disk = 0.5\n[regions]\neastus = 1\n")
    spec = load_spec(partial)
    assert spec["findings"]["ultra_disk"] == 0.5 and spec["regions"] == {"eastus": 1}
    fleet = generate_fleet(100, 2, seed=1, spec=spec)
    assert {r["location"] for r in fleet["resources"] if r["type"].endswith("virtualMachines")} \
        <= {"eastus", "usgovvirginia"}


@pytest.mark.slow
def test_100k_vms_generate_and_validate() -> None:
    fleet, truth = generate_fleet_with_truth(100_000, 50, seed=2026)
    validate_fleet(fleet, "100k")
    assert len(truth) == 100_000
    assert sum(t.readiness == "ready" for t in truth.values()) >= 30_000
