"""`ccmigrate plan` as a user runs it: assess a hand-written fleet through the emulator, plan
from the stored assessment, and check plan.csv, plan.xlsx, the state store and the printed
summary; bad input exits 2 with one line, writes nothing and never reaches Azure."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import openpyxl
import pytest

from tasks.state import list_plans, load_plan_policies, load_plan_vms, open_store, resolve_plan
from tests.assess.cases import build
from tests.cli.helpers import no_traceback, run_cli
from tests.fleets import SUB_A, make_item, make_policy, make_vault, make_vm

BUSY_POLICIES = 51  # one more source policy than a vault may write in 24 h


def _fleet() -> dict:
    """The assessment cases (every readiness), plus a vault whose crash-consistent target name
    is taken by an app-consistent policy, and a vault needing 51 policy writes."""
    fleet, _ = build()
    resources = fleet["resources"]
    order = {"sized": "1", "two-items": "2"}
    for r in resources:
        if r["type"] == "Microsoft.Compute/virtualMachines" and r["name"] in order:
            r["tags"] = {**r.get("tags", {}), "Criticality": order[r["name"]]}
    taken = make_vault(SUB_A, "rg-backup", "vault-taken")
    source = make_policy(taken, "daily")
    vm, disks = make_vm(SUB_A, "rg-taken", "taken-1", data_disks=0)
    resources += [taken, source, make_policy(taken, "daily-crash"), vm, *disks,
                  make_item(taken, vm, source)]
    busy = make_vault(SUB_A, "rg-backup", "vault-busy")
    resources.append(busy)
    for i in range(BUSY_POLICIES):
        policy = make_policy(busy, f"daily-{i:02d}")
        vm, disks = make_vm(SUB_A, "rg-busy", f"busy-{i:02d}", data_disks=0)
        resources += [policy, vm, *disks, make_item(busy, vm, policy)]
    return fleet


@pytest.fixture(scope="module")
def assessed(prefect_api, tmp_path_factory) -> dict[str, str]:
    """One assessment of the fleet in a state store the module's plans share."""
    root = tmp_path_factory.mktemp("plan-cli")
    fleet = root / "fleet.json"
    fleet.write_text(json.dumps(_fleet()))
    store = f"sqlite:///{root / 'state.db'}"
    proc = run_cli("assess", "--fleet", str(fleet), "--out", str(root / "assess"),
                   "--state-store", store)
    assert proc.returncode == 0, proc.stderr
    return {"fleet": str(fleet), "store": store, "root": str(root)}


def _plan(assessed: dict[str, str], out: Path, *args: str):
    return run_cli("plan", "--assessment", "latest", "--fleet", assessed["fleet"],
                   "--state-store", assessed["store"], "--out", str(out), *args)


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def _latest(store: str):
    engine = open_store(store)
    try:
        record = resolve_plan(engine, "latest")
        return record, load_plan_vms(engine, record.id), load_plan_policies(engine, record.id)
    finally:
        engine.dispose()


def test_plan_writes_csv_workbook_and_state_store_and_prints_a_summary(assessed, tmp_path):
    out = tmp_path / "plan"
    proc = _plan(assessed, out, "--select", "vault=vault-east", "--include-standard",
                 "--allow-warning", "host_caching_readwrite", "--ramp", "2,50%",
                 "--order-by", "tag:criticality")
    assert proc.returncode == 0, proc.stderr
    record, vms, policies = _latest(assessed["store"])

    rows = _csv(out / "plan.csv")
    assert list(rows[0])[:7] == ["wave", "vm_id", "vm_name", "vault", "source_policy",
                                 "target_policy", "irreversible"]
    assert [r["vm_id"] for r in rows] == vms["vm_id"].tolist()
    assert [int(r["wave"]) for r in rows] == vms["wave"].tolist()
    names = [r["vm_name"] for r in rows]
    # Ready VMs, the allowed HOST_CACHING_READWRITE one and the Standard one; ordered by the
    # criticality tag (stored by assess), untagged VMs after.
    assert names[:2] == ["sized", "two-items"]
    assert {"ready-win", "ready-linux", "readwrite", "std-policy"} <= set(names)
    assert not {"sql-image", "ultra", "crash", "unprotected"} & set(names)
    std = next(r for r in rows if r["vm_name"] == "std-policy")
    assert (std["irreversible"], std["target_policy"], std["rollback_policy"]) == (
        "true", "standard-daily-crash", "standard-daily-enh")
    # Sizes: canary 1, then 2, then 50% of the plan's VMs (rounded up), then the rest.
    sizes = vms.groupby("wave").size().tolist()
    assert sizes[:3] == [1, 2, -(-len(vms) // 2)] and sum(sizes) == len(vms)

    assert set(policies["policy_name"]) == {"enhanced-daily-crash", "standard-daily-crash",
                                            "standard-daily-enh"}
    assert record.options["include_standard"] is True
    assert record.options["select"] == ["vault=vault-east"]
    assert record.summary["assessment_id"] == record.assessment_id

    book = openpyxl.load_workbook(out / "plan.xlsx", read_only=True)
    assert book.sheetnames == ["Plan", "Waves", "Policies", "Excluded", "Limits"]
    excluded = [r for r in book["Excluded"].iter_rows(min_row=4, values_only=True) if r[0]]
    reasons = {r[1]: r[5] for r in excluded}
    assert reasons["sql-image"] == ("warning WORKLOAD_DATABASE not allowed (--allow-warning "
                                    "WORKLOAD_DATABASE)")
    assert reasons["ultra"] == "not ready: ULTRA_DISK"

    text = proc.stdout
    assert f"Plan {record.id} from assessment {record.assessment_id}: {len(vms)} VMs in " \
           f"{record.wave_count} waves" in text
    assert "Policies: 3 to create, 0 to reuse" in text
    assert "Irreversible: 1 VM(s) on a Standard policy" in text and "copy: std-policy" in text
    assert re.search(r"Excluded: \d+ VM\(s\)", text)
    assert str(out / "plan.csv") in text and str(out / "plan.xlsx") in text


def test_a_taken_target_name_is_a_conflict_that_leaves_its_vms_out(assessed, tmp_path):
    proc = _plan(assessed, tmp_path / "p", "--select", "vault=vault-taken",
                 "--select", "vault=vault-east", "--select", "vm=taken-*",
                 "--select", "vm=ready-*")
    assert proc.returncode == 0, proc.stderr
    assert "1 in conflict (their VMs are left out; see Policies)" in proc.stdout
    assert "Conflict: policy 'daily-crash' in vault vault-taken exists with other settings " \
           "(snapshotConsistencyType: (not set) in Azure" in proc.stdout
    names = [r["vm_name"] for r in _csv(tmp_path / "p" / "plan.csv")]
    assert sorted(names) == ["ready-linux", "ready-win"]


def test_more_than_50_policy_writes_split_the_plan_and_say_so(assessed, tmp_path):
    proc = _plan(assessed, tmp_path / "p", "--select", "vault=vault-busy", "--wave-size", "20")
    assert proc.returncode == 0, proc.stderr
    rows = _csv(tmp_path / "p" / "plan.csv")
    waiting = [r for r in rows if r["not_before"]]
    assert [r["vm_name"] for r in waiting] == [f"busy-{BUSY_POLICIES - 1:02d}"]
    fiftieth = next(r["wave"] for r in rows if r["vm_name"] == "busy-49")
    assert waiting[0]["not_before"] == f"24h after wave {fiftieth} ends"
    assert int(waiting[0]["wave"]) == int(rows[-2]["wave"]) + 1  # a wave of its own
    assert f"Split: vault vault-busy needs {BUSY_POLICIES} policy writes" in proc.stdout
    assert f"wave {waiting[0]['wave']} after wave {fiftieth} ends + 24 h" in proc.stdout
    record, _, _ = _latest(assessed["store"])
    assert record.summary["splits"][0]["writes"] == BUSY_POLICIES


def test_a_vm_list_narrows_the_plan_and_reports_listed_vms_that_cannot_move(assessed,
                                                                             tmp_path):
    readiness = _csv(Path(assessed["root"]) / "assess" / "readiness.csv")
    ids = {r["vm_name"]: r["vm_id"] for r in readiness}
    listed = tmp_path / "wave.csv"
    listed.write_text("vm_id\n" + "\n".join(ids[n] for n in ("ready-win", "ultra")) + "\n")
    proc = _plan(assessed, tmp_path / "p", "--vms", str(listed))
    assert proc.returncode == 0, proc.stderr
    assert [r["vm_name"] for r in _csv(tmp_path / "p" / "plan.csv")] == ["ready-win"]
    assert "Candidates: 1 of 2 selected VMs" in proc.stdout
    assert "not ready: ULTRA_DISK" in proc.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["--assessment", "19990101-000000-dead"], "no assessment '19990101-000000-dead'"),
    (["--ramp", "1,five"], "invalid setting waves.ramp = '1,five' in command-line option --ramp"),
    (["--select", "colour=red"], "unknown key 'colour'"),
    (["--select", "vm=no-such-vm-*"], "matched none of the"),
    (["--select", "vm=ultra"], "no VM qualifies: 1 excluded, top reasons: not ready: ULTRA_DISK"),
    (["--allow-warning", "NOT_A_RULE"], "--allow-warning: NOT_A_RULE is not a rule id"),
    (["--order-by", "name"], "invalid setting waves.order_by"),
])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(assessed, tmp_path, args, message):
    engine = open_store(assessed["store"])
    try:
        before = len(list_plans(engine, 1000))
    finally:
        engine.dispose()
    out = tmp_path / "out"
    proc = _plan(assessed, out, *args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert no_traceback(proc)
    assert message in proc.stderr
    assert proc.stderr.startswith("ccmigrate: error:") and proc.stderr.count("\n") == 1
    assert not out.exists()
    engine = open_store(assessed["store"])
    try:
        assert len(list_plans(engine, 1000)) == before
    finally:
        engine.dispose()


def test_unknown_vm_ids_in_the_list_exit_2_naming_them(assessed, tmp_path):
    listed = tmp_path / "vms.csv"
    listed.write_text("vm_id\n/subscriptions/x/resourceGroups/r/providers/Microsoft.Compute/"
                      "virtualMachines/ghost\n")
    proc = _plan(assessed, tmp_path / "out", "--vms", str(listed))
    assert proc.returncode == 2 and no_traceback(proc)
    assert "1 of 1 VM id(s) are not in assessment" in proc.stderr
    assert "virtualMachines/ghost" in proc.stderr


def test_planning_from_an_empty_state_store_says_to_assess_first(tmp_path):
    proc = run_cli("plan", "--state-store", f"sqlite:///{tmp_path / 'empty.db'}",
                   "--out", str(tmp_path / "out"))
    assert proc.returncode == 2 and no_traceback(proc)
    assert "run `ccmigrate assess` first" in proc.stderr
