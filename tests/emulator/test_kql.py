"""Behaviour of the emulator's KQL subset: what ARG returns for the queries we and our users run,
and what it rejects (with the code, token and position the HTTP layer turns into ARG's 400)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from emulator.kql import CompiledQuery, KqlError, compile_query

SUB = "00000000-0000-0000-0000-000000000001"
VM_TYPE = "microsoft.compute/virtualmachines"
ITEM_TYPE = "microsoft.recoveryservices/vaults/backupfabrics/protectioncontainers/protecteditems"


def vm_id(name: str, rg: str = "rg-app") -> str:
    return (
        f"/subscriptions/{SUB}/resourceGroups/{rg}/providers/Microsoft.Compute/"
        f"virtualMachines/{name}"
    )


def vm(name: str, size: str | None = "Standard_D2s_v5", **extra: Any) -> dict:
    props: dict[str, Any] = {"storageProfile": {"dataDisks": extra.pop("disks", [])}}
    if size is not None:
        props["hardwareProfile"] = {"vmSize": size}
    row = {
        "id": vm_id(name),
        "name": name,
        "type": VM_TYPE,
        "tenantId": "tenant",
        "kind": "",
        "location": "eastus",
        "resourceGroup": "rg-app",
        "subscriptionId": SUB,
        "managedBy": "",
        "sku": None,
        "plan": None,
        "properties": props,
        "tags": {"env": "prod"},
        "identity": None,
        "zones": None,
        "extendedLocation": None,
    }
    row.update(extra)
    return row


def item(vm_name: str, policy: str = "DefaultPolicy", mgmt: str = "AzureIaasVM") -> dict:
    vault = (
        f"/subscriptions/{SUB}/resourceGroups/rg-bk/providers/Microsoft.RecoveryServices/"
        "vaults/vault1"
    )
    return {
        "id": f"{vault}/backupFabrics/Azure/protectionContainers/c;{vm_name}/protectedItems/"
        f"vm;{vm_name}",
        "name": f"vm;{vm_name}",
        "type": ITEM_TYPE,
        "location": "eastus",
        "resourceGroup": "rg-bk",
        "subscriptionId": SUB,
        "tags": {},
        "properties": {
            "backupManagementType": mgmt,
            # ARG keeps the ARM casing of the source id; queries lower-case it before joining.
            "sourceResourceId": vm_id(vm_name).replace("resourceGroups", "resourcegroups"),
            "policyId": f"{vault}/backupPolicies/{policy}",
            "policyName": policy,
        },
    }


def subscription(sub_id: str, name: str, state: str = "Enabled") -> dict:
    return {
        "id": f"/subscriptions/{sub_id}",
        "name": name,
        "type": "microsoft.resources/subscriptions",
        "subscriptionId": sub_id,
        "resourceGroup": "",
        "location": "",
        "tags": {},
        "properties": {"state": state},
    }


def resource_group(name: str) -> dict:
    return {
        "id": f"/subscriptions/{SUB}/resourceGroups/{name}",
        "name": name,
        "type": "microsoft.resources/subscriptions/resourcegroups",
        "subscriptionId": SUB,
        "resourceGroup": name,
        "location": "eastus",
        "tags": {"owner": f"team-{name}"},
        "properties": {},
    }


@pytest.fixture
def tables() -> dict[str, list[dict]]:
    return {
        "resources": [
            vm("vm-a", disks=[{"lun": 0, "name": "d0"}, {"lun": 1, "name": "d1"}]),
            vm("vm-b", "Standard_E4s_v5", tags={"env": "dev", "Owner": "x"}),
            vm("VM-C", None, tags={}),
            {
                "id": f"/subscriptions/{SUB}/resourceGroups/rg-app/providers/Microsoft.Compute/"
                "disks/vm-a_osdisk",
                "name": "vm-a_osdisk",
                "type": "microsoft.compute/disks",
                "location": "eastus",
                "resourceGroup": "rg-app",
                "subscriptionId": SUB,
                "tags": {},
                "properties": {"diskSizeGB": 128, "diskState": "Attached"},
                "sku": {"name": "Premium_LRS"},
            },
        ],
        "recoveryservicesresources": [item("vm-a"), item("vm-b", "Enhanced", mgmt="AzureIaasVM")],
        "resourcecontainers": [
            subscription(SUB, "Production"),
            subscription("00000000-0000-0000-0000-000000000002", "Dev", "Disabled"),
            resource_group("rg-app"),
        ],
    }


def run(query: str, tables: dict[str, list[dict]]) -> list[dict]:
    return compile_query(query).run(tables)


def rejected(query: str) -> KqlError:
    with pytest.raises(KqlError) as info:
        compile_query(query)
    return info.value


def scalar(expr: str, row: dict | None = None) -> Any:
    """Value of one scalar expression over one row (columns of ``row`` must be ARG columns)."""
    base = {"id": "/x", "name": "n", "type": "t", "properties": {}, "tags": {}}
    base.update(row or {})
    out = compile_query(f"Resources | project v = {expr}").run({"resources": [base]})
    return out[0]["v"]


# ------------------------------------------------------------------ the queries we and users run


def test_backup_doc_query_lists_protected_iaas_vms(tables):
    query = """RecoveryServicesResources
| where type == "microsoft.recoveryservices/vaults/backupfabrics/protectioncontainers/protecteditems"
| where properties.backupManagementType == "AzureIaasVM"
| project id, vmId=tolower(tostring(properties.sourceResourceId)), policyId=tostring(properties.policyId)"""  # noqa: E501 (verbatim)
    q = compile_query(query)
    rows = q.run(tables)
    assert [r["vmId"] for r in rows] == [vm_id("vm-a").lower(), vm_id("vm-b").lower()]
    assert list(rows[0]) == ["id", "vmId", "policyId"]
    assert rows[1]["policyId"].endswith("/backupPolicies/Enhanced")
    assert q.projects_id() and q.tables == frozenset({"recoveryservicesresources"})


def test_unprotected_vms_query_joins_resources_to_recovery_services(tables):
    query = (
        "Resources | where type in~ ('microsoft.compute/virtualmachines') | extend "
        "resourceId=tolower(id) | join kind=leftouter (RecoveryServicesResources | where type == "
        '"microsoft.recoveryservices/vaults/backupfabrics/protectioncontainers/protecteditems" | '
        'where properties.backupManagementType == "AzureIaasVM" | project '
        "resourceId=tolower(tostring(properties.sourceResourceId)), backupItemid=id) on "
        "resourceId | where isempty(backupItemid)"
    )
    q = compile_query(query)
    rows = q.run(tables)
    assert [r["name"] for r in rows] == ["VM-C"]
    assert rows[0]["resourceId"] == vm_id("VM-C").lower()
    assert rows[0]["resourceId1"] is None and rows[0]["backupItemid"] is None
    assert q.tables == frozenset({"resources", "recoveryservicesresources"})
    assert q.projects_id()


def test_subscription_query_names_the_dotted_column_like_kusto(tables):
    query = (
        "ResourceContainers | where type == 'microsoft.resources/subscriptions' | project id, "
        "subscriptionId, name, properties.state"
    )
    rows = run(query, tables)
    assert rows == [
        {
            "id": f"/subscriptions/{SUB}",
            "subscriptionId": SUB,
            "name": "Production",
            "properties_state": "Enabled",
        },
        {
            "id": "/subscriptions/00000000-0000-0000-0000-000000000002",
            "subscriptionId": "00000000-0000-0000-0000-000000000002",
            "name": "Dev",
            "properties_state": "Disabled",
        },
    ]


# ------------------------------------------------------------------------------ query shape


def test_table_names_are_case_insensitive(tables):
    for name in ("Resources", "resources", "RESOURCES"):
        assert len(run(f"{name} | where type == 'microsoft.compute/virtualmachines'", tables)) == 3
    assert compile_query("RecoveryServicesResources | count").tables == frozenset(
        {"recoveryservicesresources"}
    )


def test_newlines_and_comments_count_as_whitespace(tables):
    query = """// VMs only
Resources // the default table
| where type == 'microsoft.compute/virtualmachines' // filter
// a whole comment line
| project
    name, // trailing
    size = properties.hardwareProfile.vmSize
| order by name asc"""
    assert run(query, tables)[0] == {"name": "VM-C", "size": None}


def test_double_slash_inside_a_string_is_not_a_comment(tables):
    rows = run("Resources | where id contains '/subscriptions/' // real comment\n| count", tables)
    assert rows == [{"Count": 4}]
    assert scalar("'https://x' == \"https://x\"") is True


def test_legacy_and_synonym_operator_spellings(tables):
    assert run("Resources | filter name <> 'vm-a' | count", tables) == [{"Count": 3}]
    rows = run(
        "Resources | where name == 'vm-a' | mvexpand properties.storageProfile.dataDisks "
        "| project lun = properties_storageProfile_dataDisks.lun",
        tables,
    )
    assert rows == [{"lun": 0}, {"lun": 1}]


def test_query_without_table_reads_resources(tables):
    q = compile_query("where type =~ 'Microsoft.Compute/virtualMachines' | count")
    assert q.tables == frozenset({"resources"})
    assert q.run(tables) == [{"Count": 3}]
    assert run("summarize count() by type | order by type asc", tables)[0]["count_"] == 1


def test_unknown_table_is_rejected_naming_it():
    err = rejected("Resourcez | where name == 'x'")
    assert err.code == "DisallowedLogicalTableName"
    assert "Resourcez" in err.message and err.token == "Resourcez"
    assert (err.line, err.column, err.position) == (1, 0, 0)


def test_table_the_emulator_does_not_serve_is_rejected_at_run(tables):
    q = compile_query("AdvisorResources | count")
    with pytest.raises(KqlError) as info:
        q.run(tables)
    assert info.value.code == "DisallowedLogicalTableName"
    assert "AdvisorResources" in info.value.message


def test_compiled_query_can_be_rerun_and_does_not_modify_the_tables(tables):
    before = copy.deepcopy(tables)
    q = compile_query(
        "Resources | extend x = 1 | mv-expand d = properties.storageProfile.dataDisks "
        "| project-away tags | join kind=leftouter (ResourceContainers | project "
        "subscriptionId, subName = name) on subscriptionId | order by name asc"
    )
    first = q.run(tables)
    assert q.run(tables) == first
    assert tables == before
    assert isinstance(q, CompiledQuery)


# ------------------------------------------------------------------------------------- where


def test_equality_is_case_sensitive_and_tilde_equality_is_not(tables):
    assert [r["name"] for r in run("Resources | where name == 'VM-C'", tables)] == ["VM-C"]
    assert run("Resources | where name == 'vm-c'", tables) == []
    assert [r["name"] for r in run("Resources | where name =~ 'vm-c'", tables)] == ["VM-C"]
    names = [
        r["name"]
        for r in run(
            "Resources | where name !~ 'vm-c' and type == 'microsoft.compute/virtualmachines'",
            tables,
        )
    ]
    assert names == ["vm-a", "vm-b"]


def test_comparisons_involving_null_are_false(tables):
    # VM-C has no hardwareProfile: neither == nor != matches it
    eq = run("Resources | where properties.hardwareProfile.vmSize == 'Standard_D2s_v5'", tables)
    ne = run("Resources | where properties.hardwareProfile.vmSize != 'Standard_D2s_v5'", tables)
    assert [r["name"] for r in eq] == ["vm-a"]
    assert [r["name"] for r in ne] == ["vm-b"]
    assert run("Resources | where properties.missing > 1 or properties.missing < 1", tables) == []
    assert scalar("dynamic(null) == dynamic(null)") is False


def test_string_operators_treat_null_as_empty_string(tables):
    rows = run("Resources | where properties.hardwareProfile.vmSize !contains 'D2s'", tables)
    assert [r["name"] for r in rows] == ["vm-b", "VM-C", "vm-a_osdisk"]
    assert scalar("properties.nothing =~ ''") is True
    assert scalar("tostring(properties.nothing) == ''") is True


def test_in_and_not_in_are_case_sensitive(tables):
    rows = run("Resources | where name in ('vm-a', 'VM-B', 'VM-C')", tables)
    assert [r["name"] for r in rows] == ["vm-a", "VM-C"]
    rows = run(
        "Resources | where type == 'microsoft.compute/virtualmachines' and name !in ('vm-a')",
        tables,
    )
    assert [r["name"] for r in rows] == ["vm-b", "VM-C"]
    assert scalar("properties.disk in (128, 256)", {"properties": {"disk": 128}}) is True
    assert scalar("properties.disk in (dynamic([1, 128]))", {"properties": {"disk": 128}}) is True


def test_in_tilde_and_not_in_tilde_ignore_case(tables):
    rows = run("Resources | where name in~ ('VM-A', 'vm-c')", tables)
    assert [r["name"] for r in rows] == ["vm-a", "VM-C"]
    rows = run(
        "Resources | where type == 'microsoft.compute/virtualmachines' and "
        "name !in~ ('VM-A', 'vm-c')",
        tables,
    )
    assert [r["name"] for r in rows] == ["vm-b"]


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("name contains 'VM'", True),
        ("name !contains 'VM'", False),
        ("name contains_cs 'VM'", False),
        ("name contains_cs 'vm'", True),
        ("name !contains_cs 'VM'", True),
        ("name startswith 'VM-'", True),
        ("name !startswith 'VM-'", False),
        ("name startswith_cs 'VM'", False),
        ("name endswith 'A'", True),
        ("name !endswith 'A'", False),
        ("name endswith_cs 'A'", False),
        ("id has 'virtualMachines'", True),
        ("id has 'virtual'", False),
        ("id !has 'virtual'", True),
        ("id has '/providers/microsoft.compute/'", True),
        ("id has_cs 'virtualmachines'", False),
        ("id has_any ('nothing', 'RG-APP')", True),
        ("id has_any ('nothing', 'resource')", False),
        ("id has 'rg'", True),  # '-' separates terms
        ("name matches regex '^vm-[a-z]$'", True),
        ("name matches regex '^VM'", False),
        ("id hasprefix 'virt'", True),
    ],
)
def test_string_operators(expr, expected):
    assert scalar(expr, {"name": "vm-a", "id": vm_id("vm-a")}) is expected


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("properties.n > 5", True),
        ("properties.n >= 10", True),
        ("properties.n < 10.5", True),
        ("properties.n <= 9", False),
        ("properties.n > '5'", False),  # a number never compares with a string
        ("name < 'o'", True),  # strings compare as strings (ISO timestamps sort this way)
        ("properties.t > '2024-01-01T00:00:00Z'", True),
        ("properties.n + 1", 11),
        ("properties.n - 2.5", 7.5),
        ("properties.n * 3", 30),
        ("properties.n / 4", 2),  # long / long is an integer division, as in Kusto
        ("-7 / 2", -3),
        ("properties.n / 4.0", 2.5),
        ("properties.n % 3", 1),
        ("properties.n / 0", None),
        ("properties.missing + 1", None),
        ("name + 1", None),
        ("-properties.n", -10),
        ("(properties.n + 2) * 2", 24),
        ("1 + 2 * 3", 7),
    ],
)
def test_numeric_and_string_comparisons_and_arithmetic(expr, expected):
    value = scalar(expr, {"name": "n", "properties": {"n": 10, "t": "2024-05-01T10:00:00Z"}})
    assert value == expected and type(value) is type(expected)


def test_and_or_not_follow_precedence(tables):
    rows = run("Resources | where name == 'vm-a' or name == 'vm-b' and tags.env == 'prod'", tables)
    assert [r["name"] for r in rows] == ["vm-a"]  # and binds tighter than or
    rows = run(
        "Resources | where (name == 'vm-a' or name == 'vm-b') and not(tags.env == 'prod')", tables
    )
    assert [r["name"] for r in rows] == ["vm-b"]
    assert scalar("not(properties.missing)") is None


def test_dynamic_member_access_and_indexing():
    row = {"properties": {"a": {"b": [10, {"c": "deep"}]}, "odata.type": "T"}, "tags": {"k": 1}}
    assert scalar("properties.a.b[0]", row) == 10
    assert scalar("properties['a']['b'][1].c", row) == "deep"
    assert scalar('properties["a"].b[-1]["c"]', row) == "deep"
    assert scalar("properties.['odata.type']", row) == "T"
    assert scalar("properties.a.b[5]", row) is None
    assert scalar("properties.a.missing.x", row) is None
    assert scalar("properties.a.b.c", row) is None  # a name on an array
    assert scalar("properties.a[0]", row) is None  # an index on a bag
    assert scalar("tags[strcat('', 'k')]", row) == 1
    assert scalar("['tags'].k", row) == 1


def test_literals_strings_numbers_and_dynamic():
    assert scalar("'it\\'s'") == "it's"
    assert scalar('"say \\"hi\\"\\n"') == 'say "hi"\n'
    assert scalar("@'C:\\temp'") == "C:\\temp"
    assert scalar("1.5e2") == 150.0
    assert scalar("true") is True and scalar("false") is False
    assert scalar("dynamic(null)") is None
    assert scalar("dynamic([1, 'a', {\"k\": null}])") == [1, "a", {"k": None}]
    assert scalar("dynamic({'k': [true]})") == {"k": [True]}


# -------------------------------------------------------------------------- scalar functions


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("isempty('')", True),
        ("isempty(properties.missing)", True),
        ("isempty('x')", False),
        ("isempty(dynamic([]))", False),
        ("isnotempty(properties.missing)", False),
        ("isnotempty(name)", True),
        ("isnull(properties.missing)", True),
        ("isnull('')", False),
        ("isnotnull(properties.obj)", True),
        ("tostring(properties.missing)", ""),
        ("tostring(properties.obj)", '{"a":1,"b":[true,null]}'),
        ("tostring(properties.n)", "42"),
        ("tostring(2.0)", "2"),
        ("tostring(true)", "true"),
        ("tolower('AbC')", "abc"),
        ("toupper(properties.missing)", ""),
        ("toint('17')", 17),
        ("toint('x')", None),
        ("tolong(' 9 ')", 9),
        ("toint(2.9)", 2),
        ("todouble('2.5')", 2.5),
        ("toreal(3)", 3.0),
        ("todouble('nope')", None),
        ("tobool('true')", True),
        ("tobool('False')", False),
        ("tobool(0)", False),
        ("tobool('maybe')", None),
        ("array_length(properties.arr)", 3),
        ("array_length(properties.obj)", None),
        ("array_length(properties.missing)", None),
        ("iff(properties.n > 40, 'big', 'small')", "big"),
        ("iif(properties.missing > 1, 'big', 'small')", "small"),
        ("case(properties.n < 10, 'low', properties.n < 50, 'mid', 'high')", "mid"),
        ("case(false, 1, 2)", 2),
        ("coalesce(properties.missing, '', 'fallback')", "fallback"),
        ("coalesce(properties.missing, properties.n)", 42),
        ("coalesce(properties.missing)", None),
        ("strcat('a', 1, properties.missing, true)", "a1true"),
        ("split('a/b/c', '/')", ["a", "b", "c"]),
        ("split('a/b/c', '/', 1)", ["b"]),
        ("split('a/b/c', '/', 9)", []),
        ("split(id, '/')[2]", "sub"),
        ("strlen('hello')", 5),
        ("strlen(properties.missing)", 0),
        ("substring('abcdef', 2)", "cdef"),
        ("substring('abcdef', 1, 3)", "bcd"),
        ("substring('abcdef', -2, 1)", "e"),
        ("extract('vaults/([^/]+)', 1, id)", "v1"),
        ("extract('nomatch(x)', 1, id)", ""),
        ("extract('[0-9]+', 0, 'abc123def')", "123"),
        ("todynamic('{\"a\": [1]}')", {"a": [1]}),
        ("parse_json('[1, 2]')[1]", 2),
        ("parse_json('not json')", "not json"),
        ("parse_json(properties.obj).a", 1),
        ("bag_keys(properties.obj)", ["a", "b"]),
        ("bag_keys(properties.arr)", None),
        ("pack_array(1, 'a', properties.missing)", [1, "a", None]),
        ("strcat_array(properties.arr, '-')", "1-2-3"),
        ("indexof('abcabc', 'ca')", 2),
        ("replace_string('a.b.c', '.', '/')", "a/b/c"),
    ],
)
def test_scalar_functions(expr, expected):
    row = {
        "id": "/subscriptions/sub/resourceGroups/rg/providers/Microsoft.RecoveryServices/vaults/v1",
        "properties": {"n": 42, "obj": {"a": 1, "b": [True, None]}, "arr": [1, 2, 3]},
    }
    value = scalar(expr, row)
    assert value == expected and type(value) is type(expected)


def test_now_returns_an_iso_utc_timestamp():
    value = scalar("now()")
    assert value.endswith("Z") and value[:2] == "20" and "T" in value


def test_unknown_function_is_rejected_naming_it():
    err = rejected("Resources | where tolowerr(name) == 'x'")
    assert err.code == "UnknownFunction"
    assert "tolowerr" in err.message and err.token == "tolowerr"
    assert (err.line, err.column) == (1, 18)


def test_function_with_wrong_argument_count_is_rejected():
    err = rejected("Resources | project iff(name == 'a', 1)")
    assert err.code == "InvalidArgumentCount" and "iff" in err.message


def test_aggregation_outside_summarize_is_rejected():
    err = rejected("Resources | extend n = count()")
    assert err.code == "UnknownFunction" and "count" in err.message and err.token == "count"


# ---------------------------------------------------------------------------- extend, project


def test_extend_adds_replaces_and_chains_columns(tables):
    rows = run(
        "Resources | where name == 'vm-a' | extend name = toupper(name), size = "
        "properties.hardwareProfile.vmSize, big = strcat(size, '!')",
        tables,
    )
    row = rows[0]
    assert row["name"] == "VM-A" and row["size"] == "Standard_D2s_v5"
    assert row["big"] == "Standard_D2s_v5!"
    assert list(row)[:2] == ["id", "name"]  # a replaced column keeps its place
    assert list(row)[-2:] == ["size", "big"]


def test_unnamed_extend_columns_get_fresh_column_names(tables):
    q = compile_query(
        "Resources | extend tolower(name) | extend strcat(name, '!'), "
        "tostring(properties.hardwareProfile.vmSize)"
    )
    assert q.columns[-3:] == ("Column1", "Column2", "properties_hardwareProfile_vmSize")
    row = q.run(tables)[0]
    assert (row["Column1"], row["Column2"]) == ("vm-a", "vm-a!")


def test_project_names_columns_like_kusto(tables):
    q = compile_query(
        "Resources | where name == 'vm-a' | project properties.hardwareProfile.vmSize, "
        "tags['env'], tostring(properties.hardwareProfile.vmSize), strlen(name), tolower(name), "
        "strcat(name, 'x'), properties.storageProfile.dataDisks[0]"
    )
    assert q.columns == (
        "properties_hardwareProfile_vmSize",
        "tags_env",
        "properties_hardwareProfile_vmSize1",
        "strlen_name",
        "Column1",
        "Column2",
        "properties_storageProfile_dataDisks_0",
    )
    row = q.run(tables)[0]
    assert row["properties_hardwareProfile_vmSize"] == "Standard_D2s_v5"
    assert row["tags_env"] == "prod" and row["strlen_name"] == 4 and row["Column1"] == "vm-a"
    assert row["properties_storageProfile_dataDisks_0"] == {"lun": 0, "name": "d0"}


def test_project_rejects_a_duplicate_explicit_name():
    err = rejected("Resources | project a = name, a = id")
    assert err.code == "DuplicateColumn" and "'a'" in err.message


def test_project_away_keep_and_rename(tables):
    row = run(
        "Resources | where name == 'vm-a' | project-away properties, tags, *Location", tables
    )[0]
    assert "properties" not in row and "tags" not in row and "extendedLocation" not in row
    assert "id" in row and "location" in row
    row = run("Resources | where name == 'vm-a' | project-keep name, resource*", tables)[0]
    assert row == {"name": "vm-a", "resourceGroup": "rg-app"}
    row = run(
        "Resources | where name == 'vm-a' | project-rename vmName = name | project vmName", tables
    )[0]
    assert row == {"vmName": "vm-a"}
    assert rejected("Resources | project-away nosuch").code == "UnknownColumn"


def test_unknown_column_is_rejected_naming_it():
    err = rejected("Resources\n| where type == 'x'\n| project nme")
    assert err.code == "UnknownColumn"
    assert "nme" in err.message and err.token == "nme"
    assert (err.line, err.column) == (3, 10)
    assert rejected("Resources | project n = name | where name == 'x'").code == "UnknownColumn"
    assert rejected("Resources | where Name == 'x'").code == "UnknownColumn"  # case-sensitive


# ----------------------------------------------------------------------- order, top, take


def test_order_by_defaults_to_descending(tables):
    rows = run("Resources | order by name", tables)
    assert [r["name"] for r in rows] == ["vm-b", "vm-a_osdisk", "vm-a", "VM-C"]
    rows = run("Resources | sort by name asc", tables)
    assert [r["name"] for r in rows] == ["VM-C", "vm-a", "vm-a_osdisk", "vm-b"]


def test_order_puts_nulls_first_ascending_and_last_descending(tables):
    asc = run(
        "Resources | order by tostring(properties.hardwareProfile.vmSize) asc, name asc "
        "| project name",
        tables,
    )
    assert [r["name"] for r in asc] == ["VM-C", "vm-a_osdisk", "vm-a", "vm-b"]  # "" sorts first
    asc = run("Resources | order by properties.hardwareProfile.vmSize asc | project name", tables)
    assert [r["name"] for r in asc][-2:] == ["vm-a", "vm-b"]
    desc = run("Resources | order by properties.hardwareProfile.vmSize desc | project name", tables)
    assert [r["name"] for r in desc][:2] == ["vm-b", "vm-a"]
    last = run(
        "Resources | order by properties.hardwareProfile.vmSize asc nulls last | project name",
        tables,
    )
    assert [r["name"] for r in last][:2] == ["vm-a", "vm-b"]
    first = run(
        "Resources | order by properties.hardwareProfile.vmSize desc nulls first | project name",
        tables,
    )
    assert [r["name"] for r in first][-2:] == ["vm-b", "vm-a"]


def test_order_by_several_keys_with_mixed_directions(tables):
    rows = run("Resources | order by type asc, name desc | project name", tables)
    assert [r["name"] for r in rows] == ["vm-a_osdisk", "vm-b", "vm-a", "VM-C"]


def test_order_by_numbers_sorts_numerically():
    rows = [{"id": str(i), "properties": {"n": n}} for i, n in enumerate([10, 9, 100, 2.5])]
    out = compile_query("Resources | order by properties.n asc | project id").run(
        {"resources": rows}
    )
    assert [r["id"] for r in out] == ["3", "1", "0", "2"]


def test_take_and_limit_cut_rows_and_disable_skip(tables):
    q = compile_query("Resources | order by name asc | take 2")
    assert [r["name"] for r in q.run(tables)] == ["VM-C", "vm-a"]
    assert q.has_limit
    assert len(run("Resources | limit 3", tables)) == 3
    assert compile_query("Resources | join (Resources | limit 1) on id").has_limit
    assert not compile_query("Resources | top 1 by name").has_limit
    assert not compile_query("Resources | where name == 'x'").has_limit


def test_top_sorts_then_cuts(tables):
    rows = run("Resources | top 2 by name", tables)
    assert [r["name"] for r in rows] == ["vm-b", "vm-a_osdisk"]
    rows = run("Resources | top 1 by name asc", tables)
    assert [r["name"] for r in rows] == ["VM-C"]


# ------------------------------------------------------------------- summarize, distinct, count


def test_summarize_counts_by_column(tables):
    rows = run("Resources | summarize count() by type | order by type asc", tables)
    assert rows == [
        {"type": "microsoft.compute/disks", "count_": 1},
        {"type": VM_TYPE, "count_": 3},
    ]


def test_summarize_default_aggregate_names(tables):
    q = compile_query(
        "Resources | extend n = array_length(properties.storageProfile.dataDisks) | summarize "
        "count(), countif(n > 0), dcount(location), sum(n), min(n), max(n), avg(n), any(name), "
        "take_any(location), make_list(name), make_set(location) by type"
    )
    assert q.columns == (
        "type",
        "count_",
        "countif_",
        "dcount_location",
        "sum_n",
        "min_n",
        "max_n",
        "avg_n",
        "any_name",
        "location",
        "list_name",
        "set_location",
    )
    vms = next(r for r in q.run(tables) if r["type"] == VM_TYPE)
    assert vms["count_"] == 3 and vms["countif_"] == 1 and vms["dcount_location"] == 1
    assert (vms["sum_n"], vms["min_n"], vms["max_n"]) == (2, 0, 2)
    assert vms["avg_n"] == pytest.approx(2 / 3)
    assert vms["any_name"] == "vm-a" and vms["location"] == "eastus"
    assert vms["list_name"] == ["vm-a", "vm-b", "VM-C"] and vms["set_location"] == ["eastus"]


def test_make_set_flattens_arrays_and_make_list_honours_max_size(tables):
    rows = run(
        "Resources | summarize zones = make_set(zones), names = make_list(name, 2)",
        {
            "resources": [
                {"name": "a", "zones": ["1", "2"]},
                {"name": "b", "zones": ["2", "3"]},
                {"name": "c", "zones": None},
            ]
        },
    )
    assert rows == [{"zones": ["1", "2", "3"], "names": ["a", "b"]}]
    assert rejected("Resources | summarize make_list(name, 0)").code == "InvalidArgument"


def test_summarize_by_expression_takes_the_inner_column_name(tables):
    # ARG's documented example: summarize count() by tostring(properties.extended...)
    rows = run(
        "Resources | where type == 'microsoft.compute/virtualmachines' | summarize count() by "
        "tostring(properties.hardwareProfile.vmSize) | order by count_ desc, "
        "properties_hardwareProfile_vmSize asc",
        tables,
    )
    assert rows[0] == {"properties_hardwareProfile_vmSize": "", "count_": 1}
    assert {r["properties_hardwareProfile_vmSize"] for r in rows} == {
        "",
        "Standard_D2s_v5",
        "Standard_E4s_v5",
    }


def test_summarize_named_aggregates_and_groups(tables):
    rows = run(
        "Resources | summarize vms = countif(type == 'microsoft.compute/virtualmachines'), "
        "names = make_list(name) by rg = tolower(resourceGroup), subscriptionId",
        tables,
    )
    assert rows == [
        {
            "rg": "rg-app",
            "subscriptionId": SUB,
            "vms": 3,
            "names": ["vm-a", "vm-b", "VM-C", "vm-a_osdisk"],
        }
    ]


def test_summarize_without_by_returns_one_row_even_for_no_input(tables):
    rows = run("Resources | where name == 'none' | summarize count(), sum(properties.n)", tables)
    assert rows == [{"count_": 0, "sum_properties_n": None}]
    assert run("Resources | where name == 'none' | summarize count() by type", tables) == []


def test_summarize_arg_max_returns_the_whole_winning_row(tables):
    rows = run("Resources | summarize arg_max(name, *) by type | order by type asc", tables)
    assert [r["name"] for r in rows] == ["vm-a_osdisk", "vm-b"]
    assert list(rows[1])[:3] == ["type", "name", "id"]
    rows = run("Resources | summarize arg_min(name, id) by type | order by type asc", tables)
    assert rows[1] == {"type": VM_TYPE, "name": "VM-C", "id": vm_id("VM-C")}


def test_summarize_rejects_non_aggregates():
    err = rejected("Resources | summarize tolower(name) by type")
    assert err.code == "UnknownFunction" and "tolower" in err.message
    assert rejected("Resources | summarize percentile(x, 5)").code == "UnknownFunction"


def test_distinct_keeps_first_of_each_combination(tables):
    rows = run("Resources | distinct type, location | order by type asc", tables)
    assert rows == [
        {"type": "microsoft.compute/disks", "location": "eastus"},
        {"type": VM_TYPE, "location": "eastus"},
    ]
    assert len(run("Resources | project tags | distinct *", tables)) == 3


def test_count_operator_returns_one_row(tables):
    assert run("Resources | count", tables) == [{"Count": 4}]
    assert run("Resources | where name == 'none' | count", tables) == [{"Count": 0}]
    assert not compile_query("Resources | count").projects_id()


# ----------------------------------------------------------------------------------- mv-expand


def test_mv_expand_emits_a_row_per_array_element(tables):
    rows = run(
        "Resources | where name == 'vm-a' | mv-expand disk = properties.storageProfile.dataDisks "
        "| project name, lun = toint(disk.lun), diskName = tostring(disk.name)",
        tables,
    )
    assert rows == [
        {"name": "vm-a", "lun": 0, "diskName": "d0"},
        {"name": "vm-a", "lun": 1, "diskName": "d1"},
    ]


def test_mv_expand_keeps_null_rows_and_drops_empty_arrays():
    rows = [
        {"id": "a", "properties": {"xs": [1, 2]}},
        {"id": "b", "properties": {"xs": []}},
        {"id": "c", "properties": {}},
        {"id": "d", "properties": {"xs": "scalar"}},
    ]
    out = compile_query("Resources | mv-expand x = properties.xs | project id, x").run(
        {"resources": rows}
    )
    assert out == [
        {"id": "a", "x": 1},
        {"id": "a", "x": 2},
        {"id": "c", "x": None},
        {"id": "d", "x": "scalar"},
    ]


def test_mv_expand_of_a_column_replaces_it_and_bags_expand_by_kind(tables):
    rows = run("Resources | where name == 'vm-b' | mv-expand tags | project tags", tables)
    assert rows == [{"tags": {"env": "dev"}}, {"tags": {"Owner": "x"}}]
    rows = run(
        "Resources | where name == 'vm-b' | mv-expand kind=array tags | project tags", tables
    )
    assert rows == [{"tags": ["env", "dev"]}, {"tags": ["Owner", "x"]}]


def test_mv_expand_typeof_itemindex_and_limits():
    rows = [{"id": "a", "properties": {"xs": [1, "two", 3]}}]
    out = compile_query(
        "Resources | mv-expand with_itemindex=i x = properties.xs to typeof(long) | project i, x"
    ).run({"resources": rows})
    assert out == [{"i": 0, "x": 1}, {"i": 1, "x": None}, {"i": 2, "x": 3}]
    out = compile_query("Resources | mv-expand x = properties.xs limit 2 | project x").run(
        {"resources": rows}
    )
    assert out == [{"x": 1}, {"x": "two"}]
    many = [{"id": "a", "properties": {"xs": list(range(1000))}}]
    # ARG: RowLimit defaults to 128 and is at most 400
    assert len(compile_query("Resources | mv-expand properties.xs").run({"resources": many})) == 128
    q = compile_query("Resources | mv-expand properties.xs limit 1000")
    assert len(q.run({"resources": many})) == 400
    assert q.columns[-1] == "properties_xs"


def test_mv_expand_several_arrays_in_parallel():
    rows = [{"id": "a", "properties": {"xs": [1, 2, 3], "ys": ["a"]}}]
    out = compile_query(
        "Resources | mv-expand x = properties.xs, y = properties.ys | project x, y"
    ).run({"resources": rows})
    assert out == [{"x": 1, "y": "a"}, {"x": 2, "y": None}, {"x": 3, "y": None}]


def test_three_mv_expands_are_allowed_and_a_fourth_is_rejected():
    three = "Resources" + " | mv-expand tags" * 3
    compile_query(three)
    err = rejected(three + " | mv-expand zones")
    assert err.code == "TooManyMvExpand"
    assert "mv-expand" in err.message and "3" in err.message and err.token == "mv-expand"
    nested = (
        "Resources | mv-expand tags | mv-expand zones | join (Resources | mv-expand "
        "tags | mv-expand zones) on id"
    )
    assert rejected(nested).code == "TooManyMvExpand"


# ---------------------------------------------------------------------------------------- join


def test_inner_join_suffixes_clashing_right_columns_with_1(tables):
    q = compile_query(
        "Resources | where type == 'microsoft.compute/virtualmachines' | project id, name, "
        "subscriptionId | join kind=inner (ResourceContainers | where type == "
        "'microsoft.resources/subscriptions' | project subscriptionId, name) on subscriptionId"
    )
    assert q.columns == ("id", "name", "subscriptionId", "subscriptionId1", "name1")
    rows = q.run(tables)
    assert len(rows) == 3 and {r["name1"] for r in rows} == {"Production"}
    assert rows[0]["subscriptionId1"] == SUB


def test_join_with_a_bare_table_name_appends_all_its_columns(tables):
    # the subscription and its resource group both carry the subscriptionId
    rows = run(
        "Resources | where name == 'vm-a' | join ResourceContainers on subscriptionId", tables
    )
    assert [(r["name"], r["name1"], r["type1"]) for r in rows] == [
        ("vm-a", "Production", "microsoft.resources/subscriptions"),
        ("vm-a", "rg-app", "microsoft.resources/subscriptions/resourcegroups"),
    ]
    assert rows[0]["id1"] == f"/subscriptions/{SUB}" and rows[0]["id"] == vm_id("vm-a")


def test_default_join_is_innerunique_and_dedupes_the_left_side(tables):
    query = (
        "Resources | project subscriptionId, name | join (ResourceContainers | where type "
        "== 'microsoft.resources/subscriptions' | project subscriptionId, subName = name) on "
        "subscriptionId"
    )
    assert len(run(query, tables)) == 1  # four left rows share one key
    assert len(run(query.replace("| join", "| join kind=inner"), tables)) == 4


def test_join_on_left_and_right_columns_with_different_names(tables):
    rows = run(
        "Resources | where type == 'microsoft.compute/virtualmachines' | extend rg = "
        "tolower(resourceGroup) | join kind=leftouter (ResourceContainers | where type == "
        "'microsoft.resources/subscriptions/resourcegroups' | project rgName = name, rgTags = "
        "tags, rgSub = subscriptionId) on $left.rg == $right.rgName, $right.rgSub == "
        "$left.subscriptionId | project name, rgTags",
        tables,
    )
    assert [r["rgTags"] for r in rows] == [{"owner": "team-rg-app"}] * 3
    rows = run(
        "Resources | join kind=inner (ResourceContainers | where type == "
        "'microsoft.resources/subscriptions' | project sub = subscriptionId) on "
        "$left.subscriptionId == $right.sub and $left.subscriptionId == $right.sub | count",
        tables,
    )
    assert rows == [{"Count": 4}]


def test_join_condition_must_compare_left_with_right():
    err = rejected("Resources | join (Resources) on $left.id == $left.id")
    assert err.code == "ParserFailure" and "$left" in err.message


def test_fullouter_join_keeps_unmatched_rows_from_both_sides(tables):
    rows = run(
        "Resources | where type == 'microsoft.compute/virtualmachines' | project vm = tolower(id) "
        "| join kind=fullouter (RecoveryServicesResources | project vm = "
        "tolower(tostring(properties.sourceResourceId)), item = name) on vm | extend vm1 = "
        "tostring(vm1) | order by vm asc",
        tables,
    )
    assert len(rows) == 3
    assert [r["item"] for r in rows] == ["vm;vm-a", "vm;vm-b", None]


@pytest.mark.parametrize("kind", ["leftanti", "rightanti", "leftsemi", "rightsemi", "rightouter"])
def test_join_flavors_arg_does_not_allow_are_rejected(kind):
    err = rejected(f"Resources | join kind={kind} (Resources) on id")
    assert err.code == "UnsupportedJoinFlavor"
    assert kind in err.message and err.token == kind
    assert err.column == len("Resources | join kind=")


def test_join_hints_are_rejected():
    err = rejected("Resources | join hint.strategy=broadcast (Resources) on id")
    assert err.code == "UnsupportedOperator" and "hint.strategy" in err.message


def test_join_key_must_exist_on_both_sides():
    err = rejected("Resources | join (ResourceContainers | project name) on subscriptionId")
    assert err.code == "UnknownColumn" and "subscriptionId" in err.message
    assert "right" in err.message


def test_three_joins_are_allowed_and_a_fourth_is_rejected():
    join = " | join kind=leftouter (Resources | project id) on id"
    compile_query("Resources" + join * 3)
    err = rejected("Resources" + join * 4)
    assert err.code == "TooManyJoins" and "at most 3" in err.message and err.token == "join"
    nested = "Resources | join (Resources | join (Resources | join (Resources) on id) on id) on id"
    compile_query(nested)
    err = rejected("Resources" + join + " | join (Resources" + join * 2 + ") on id")
    assert err.code == "TooManyJoins"


def test_only_one_cross_table_join_unless_all_are_resources_and_containers():
    rs = " | join kind=leftouter (RecoveryServicesResources | project id) on id"
    rc = " | join kind=leftouter (ResourceContainers | project subscriptionId) on subscriptionId"
    compile_query("Resources" + rs)  # one cross-table join: allowed
    compile_query("Resources" + rc * 3)  # Resources <-> ResourceContainers: 3 allowed
    err = rejected("Resources" + rc + rs)
    assert err.code == "TooManyJoins" and "cross-table" in err.message
    assert rejected("Resources" + rs + rs).code == "TooManyJoins"
    # joins within one table are not cross-table
    compile_query("Resources" + rs + " | join kind=leftouter (Resources | project id) on id")


# --------------------------------------------------------------------------------------- union


def test_union_appends_legs_and_can_name_the_source(tables):
    rows = run(
        "Resources | where type == 'microsoft.compute/virtualmachines' | project id, name | "
        "union withsource=src (ResourceContainers | project id, name, subscriptionId)",
        tables,
    )
    assert len(rows) == 3 + 3
    assert rows[0]["src"] == "Resources" and rows[-1]["src"] == "ResourceContainers"
    assert next(iter(rows[0])) == "src"
    q = compile_query(
        "Resources | project id, name | union kind=inner (ResourceContainers "
        "| project id, subscriptionId)"
    )
    assert q.columns == ("id",)
    assert all(list(r) == ["id"] for r in q.run(tables))


def test_union_limits_follow_arg():
    compile_query("Resources | union Resources, ResourceContainers, Resources")
    err = rejected("Resources | union Resources, Resources | union Resources, Resources")
    assert err.code == "TooManyUnionLegs" and "3" in err.message
    err = rejected("Resources | union RecoveryServicesResources")
    assert err.code == "DisallowedUnion" and "RecoveryServicesResources" in err.message


# -------------------------------------------------------------------------------------- errors


def test_syntax_error_reports_line_position_and_token():
    err = rejected("Resources\n| where name == 'a' and\n| project id")
    assert err.code == "ParserFailure"
    assert (err.line, err.column, err.token) == (3, 0, "|")
    assert "line 3, position 0" in err.message and "'|'" in err.message
    assert err.position == len("Resources\n| where name == 'a' and\n")


@pytest.mark.parametrize(
    ("query", "token"),
    [
        ("Resources | where name == 'a", "'a"),
        ("Resources | project (name", "<end of query>"),
        ("Resources | where name ==", "<end of query>"),
        ("Resources | take x", "x"),
        ("Resources | order name", "name"),
        ("Resources | where x == 1d", "1d"),
        ("Resources | where name == 'a' )", ")"),
        ("Resources | where name # 'a'", "#"),
        ("Resources | summarize", "<end of query>"),
        ("| where name == 'a'", "|"),
    ],
)
def test_syntax_errors_are_parser_failures_naming_the_token(query, token):
    err = rejected(query)
    assert err.code == "ParserFailure"
    assert err.token == token and token in err.message
    assert err.line == 1 and err.column is not None


def test_unknown_operator_is_a_parser_failure_naming_it():
    err = rejected("Resources | wher name == 'a'")
    assert err.code == "ParserFailure" and "wher" in err.message
    assert (err.token, err.column) == ("wher", 12)


@pytest.mark.parametrize(
    ("query", "token"),
    [
        ("Resources | parse id with * '/' x", "parse"),
        ("Resources | make-series count() on x", "make-series"),
        ("Resources | evaluate bag_unpack(tags)", "evaluate"),
        ("Resources | lookup (Resources) on id", "lookup"),
        ("let x = 1; Resources", "let"),
        ("Resources | where name between (1 .. 2)", "between"),
    ],
)
def test_kusto_operators_outside_the_subset_are_rejected(query, token):
    err = rejected(query)
    assert err.code == "UnsupportedOperator"
    assert token in err.message and err.token == token


def test_empty_query_is_rejected():
    assert rejected("   ").code == "ParserFailure"
    assert rejected("// only a comment").code == "ParserFailure"


def test_keywords_and_functions_are_case_sensitive():
    assert rejected("Resources | WHERE name == 'a'").code == "ParserFailure"
    assert rejected("Resources | project ToLower(name)").code == "UnknownFunction"


# ----------------------------------------------------------------------------------- interface


def test_projects_id_follows_the_output_columns():
    assert compile_query("Resources").projects_id()
    assert compile_query("Resources | where name == 'x' | order by id asc").projects_id()
    assert compile_query("Resources | project id, name").projects_id()
    assert not compile_query("Resources | project name").projects_id()
    assert not compile_query("Resources | project-away id").projects_id()
    assert not compile_query("Resources | summarize count() by type").projects_id()
    assert compile_query("Resources | summarize count() by id").projects_id()
    assert compile_query("Resources | project vmId = id, id = name").projects_id()


def test_error_is_json_serialisable_for_the_http_layer():
    err = rejected("Resources | where foo == 1")
    detail = {
        "code": err.code,
        "message": err.message,
        "line": err.line,
        "characterPositionInLine": err.column,
        "token": err.token,
    }
    assert json.loads(json.dumps(detail))["characterPositionInLine"] == 18
    assert str(err).startswith("UnknownColumn: ")
