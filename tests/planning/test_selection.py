"""--select filters and --vms files: what a user names is what the plan looks at."""

from __future__ import annotations

import pandas as pd
import pytest
from openpyxl import Workbook

from tasks.errors import InputError
from tasks.planning import listed_mask, parse_filters, read_vm_ids, select_mask, tag_values
from tests.fleets import SUB_B
from tests.planning.frames import frame, vm


@pytest.fixture
def vms() -> pd.DataFrame:
    return frame([
        vm("web-1", vault="vault-prod", tags={"Env": "prod", "tier": "1"}),
        vm("web-2", vault="vault-prod", location="westeurope", tags={"env": "dev"}),
        vm("db-1", vault="vault-data", policy="sql-daily", rg="rg-data"),
        vm("app-1", vault="vault-b", sub=SUB_B, tags={"env": "Prod"}),
    ])


def _names(vms: pd.DataFrame, *specs: str) -> list[str]:
    return vms.loc[select_mask(vms, parse_filters(specs)), "vm_name"].tolist()


def test_no_filter_selects_every_vm(vms):
    assert _names(vms) == ["web-1", "web-2", "db-1", "app-1"]


def test_globs_match_the_whole_value_case_insensitively(vms):
    assert _names(vms, "vm=WEB-*") == ["web-1", "web-2"]
    assert _names(vms, "vm=web") == []
    assert _names(vms, "vault=vault-?rod") == ["web-1", "web-2"]
    assert _names(vms, "policy=sql-*") == ["db-1"]
    assert _names(vms, "resource_group=rg-data") == ["db-1"]
    assert _names(vms, f"subscription={SUB_B[:8]}*") == ["app-1"]


def test_same_key_ors_and_different_keys_and(vms):
    assert _names(vms, "vm=web-1", "vm=db-1") == ["web-1", "db-1"]
    assert _names(vms, "vault=vault-prod", "location=westeurope") == ["web-2"]
    assert _names(vms, "vm=web-1", "vm=db-1", "vault=vault-data") == ["db-1"]


def test_tag_filters_match_names_case_insensitively_and_skip_untagged_vms(vms):
    assert _names(vms, "tag:env=prod") == ["web-1", "app-1"]
    assert _names(vms, "tag:ENV=*") == ["web-1", "web-2", "app-1"]
    assert _names(vms, "tag:tier=1", "tag:env=prod") == ["web-1"]
    assert tag_values(vms, "TIER").tolist() == ["1", pd.NA, pd.NA, pd.NA]


@pytest.mark.parametrize(("spec", "expected"), [
    ("colour=red", "unknown key 'colour'"),
    ("vault", "no '='"),
    ("tag:=x", "the tag has no name"),
    ("vm=", "the pattern is empty"),
])
def test_bad_filters_are_input_errors_listing_the_keys(spec, expected):
    with pytest.raises(InputError) as err:
        parse_filters([spec])
    message = str(err.value)
    assert expected in message and repr(spec) in message
    assert "subscription, resource_group, location, vault, policy, vm, tag:NAME" in message


def test_vm_list_from_csv_vm_id_column_any_case(tmp_path, vms):
    path = tmp_path / "vms.csv"
    ids = vms["vm_id"].tolist()
    path.write_text("name,VM_ID\nx," + ids[0].upper() + "\ny," + ids[2] + "\nz,\n",
                    encoding="utf-8")
    assert read_vm_ids(path) == [ids[0].upper(), ids[2]]
    mask = listed_mask(vms, read_vm_ids(path), source=str(path), assessment_id="A1")
    assert vms.loc[mask, "vm_name"].tolist() == ["web-1", "db-1"]


def test_vm_list_without_header_or_vm_id_column_uses_the_first_column(tmp_path, vms):
    ids = vms["vm_id"].tolist()
    bare = tmp_path / "bare.csv"
    bare.write_text(f"{ids[1]}\n{ids[3]}\n{ids[1]}\n", encoding="utf-8")
    assert read_vm_ids(bare) == [ids[1], ids[3]]
    other = tmp_path / "other.csv"
    other.write_text(f"id,owner\n{ids[0]},me\n", encoding="utf-8")
    assert read_vm_ids(other) == [ids[0]]


def test_vm_list_from_xlsx(tmp_path, vms):
    book = Workbook()
    ws = book.active
    ws.append(["vm_name", "vm_id"])
    ws.append(["web-2", vms["vm_id"][1]])
    path = tmp_path / "vms.xlsx"
    book.save(path)
    assert read_vm_ids(path) == [vms["vm_id"][1]]


def test_unknown_vm_ids_are_listed_up_to_ten(vms):
    unknown = [f"/subscriptions/x/resourceGroups/r/providers/Microsoft.Compute/"
               f"virtualMachines/gone-{i:02d}" for i in range(12)]
    with pytest.raises(InputError) as err:
        listed_mask(vms, [vms["vm_id"][0], *unknown], source="list.csv", assessment_id="A1")
    message = str(err.value)
    assert "12 of 13 VM id(s) are not in assessment A1" in message
    assert "gone-09" in message and "gone-10" not in message and "and 2 more" in message


@pytest.mark.parametrize(("name", "content", "expected"), [
    ("vms.txt", "x", "give a .csv or .xlsx file"),
    ("missing.csv", None, "no such file"),
    ("empty.csv", "vm_id\n\n", "lists no VM ids"),
    ("broken.xlsx", "not a workbook", "cannot read it as XLSX"),
])
def test_unreadable_vm_lists_are_input_errors_naming_the_file(tmp_path, name, content,
                                                              expected):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(InputError) as err:
        read_vm_ids(path)
    assert str(path) in str(err.value) and expected in str(err.value)
