"""Helpers for the REST-example contract tests (``tests/contract/test_*.py``).

- ``examples_root`` / ``load_example``: Microsoft's published examples, kept in this repository
  (``tests/contract/rest_examples``, a byte-for-byte copy of the workplace's research folder
  ``azure/rest-examples``); ``INDEX.md`` there (and ``compute/INDEX.md``) names each file's source
  path and commit in Azure/azure-rest-api-specs. ``indexed_examples`` reads those indexes.
- ``contract_fleet``: a fleet built FROM the examples' own response bodies. The examples'
  subscription GUIDs, resource groups, vault and item names are kept where they are valid ARM
  names, so most requests go out exactly as the example shows them; only what cannot exist is
  rewritten (compute's ``{subscription-id}`` placeholder, ids that contradict their own ``name``,
  ids without their ``backupFabrics/Azure`` segment, ``resourceGroups/providers`` ids without a
  group). Filler from ``tests.fleets`` supplies what the examples only reference (the VMs behind
  protected items, more resources than one page).
- ``Wire``: records every HTTP response an SDK call gets (``raw_response_hook``), so tests compare
  the JSON on the wire, not what the SDK chose to deserialise.
- ``missing_keys`` / ``async_header_problems``: the comparison rules.

Comparison rules ("the emulator's response carries every key the example's response carries"):
- objects: every key of the example must be present, recursively; a key whose example value is
  null may be absent; values may differ.
- arrays of objects: EVERY item of the example must be matched by AT LEAST ONE emulator item
  that carries all of that item's keys. So ``ListJobs.json``, which shows an InProgress job and a
  Completed job with ``endTime``, needs both shapes from the emulator, while extra emulator items
  (filler) never fail. An unmatched item is reported as the paths its closest emulator item lacks.
- arrays of scalars and scalars: presence only (plus the JSON kind of objects and arrays).
- maps whose keys are data, not schema (``FREE_FORM_MAPS``: ARM ``tags``, identities'
  ``userAssignedIdentities``, extension ``settings``, a policy operation's ``failedJobsError``):
  presence and kind only; an ARG row's ``tags`` need not hold the example's ``tag1``.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from emulator.config import EmulatorConfig
from emulator.server import Emulator
from flows.options import with_emulator_principal
from tasks.azure.clients import AzureAccess
from tasks.settings import load_settings
from tests.fleets import TENANT, make_item, make_policy, make_vault, make_vm

SERVICES = ("compute", "recoveryservices", "recoveryservicesbackup", "resourcegraph")

# The examples' own subscriptions (all valid GUIDs), kept so requests go out as published.
SUB_COMPUTE = "cfbbd179-59d2-4052-aa06-9270a38aa9d6"  # resourcegraph's; compute's placeholder
SUB_VAULTS = "77777777-b0c6-47a2-b37c-d8e65a629c18"  # recoveryservices examples
SUB_BACKUP = "00000000-0000-0000-0000-000000000000"  # recoveryservicesbackup examples
COMPUTE_PLACEHOLDERS = ("{subscription-id}", "{subscriptionId}")
# ResourcesMgBasicQuery.json's management groups, as names of the fleet's groups.
MANAGEMENT_GROUPS = {"e927f598-c1d4-4f72-8541-95d83a6a4ac8": [SUB_COMPUTE],
                     "ProductionMG": [SUB_VAULTS, SUB_BACKUP]}

BACKUP_LOCATION = "westus"
VM = "Microsoft.Compute/virtualMachines"
DISK = "Microsoft.Compute/disks"
# VirtualMachine_Get's VM also sits on a dedicated host group, like the VM of the instance-view
# example (..._InstanceViewAutoPlacedOnDedicatedHostGroup), so its instance view can name the host.
HOST_GROUP_ID = (f"/subscriptions/{SUB_COMPUTE}/resourceGroups/myResourceGroup/providers/"
                 "Microsoft.Compute/hostGroups/myHostGroup")
MAXSET_GROUP = "rg-maxset"  # VirtualMachine_ListAll_MaximumSet_Gen's {resourceGroupName}
ARG_GROUP = "rg-arg-paging"  # filler named *test* so the paging examples get several pages
RG_COMPUTE = "rgcompute"  # VirtualMachine_List_MinimumSet_Gen's resource group

# Backup examples: vaults (resource group, name) and the VMs their items protect.
NET_VAULT = ("SwaggerTestRg", "NetSDKTestRsVault")
PY_VAULT = ("PythonSDKBackupTestRg", "PySDKBackupTestRsVault")
LINUX_VAULT = ("linuxRsVaultRG", "linuxRsVault")
ITEM_VMS = (("iaasvm-rg", "iaasvm-1"), ("netsdktestrg", "netvmtestv2vm1"),
            ("testrg", "v1win2012r"))


# -- the examples ------------------------------------------------------------------------------

EXAMPLES_ROOT = Path(__file__).resolve().parent / "rest_examples"
# An index line: "- `service/File.json` | src `path` | commit `sha` | ..." (compute/INDEX.md
# names its files without the folder).
_INDEX_LINE = re.compile(r"^- `(?P<file>[^`]+\.json)` \| src `(?P<src>[^`]+)` \| "
                         r"commit `(?P<commit>[0-9a-f]{40})`")


def examples_root() -> Path:
    """The project's copy of the examples (never a folder outside the repository: a clone
    anywhere must run the contract)."""
    return EXAMPLES_ROOT


def example_stems(service: str) -> list[str]:
    """Every example of a service folder (names without ``.json``), sorted: those the index
    names and those on disk. A named file that is missing stays in the list, so its
    parametrised contract test fails on reading it instead of vanishing."""
    named = {Path(name).stem for name in indexed_examples() if name.startswith(f"{service}/")}
    return sorted(named | {p.stem for p in (EXAMPLES_ROOT / service).glob("*.json")})


def indexed_examples() -> dict[str, tuple[str, str]]:
    """``service/File.json`` -> (source path, commit), for every file the indexes name."""
    out: dict[str, tuple[str, str]] = {}
    for index in sorted(EXAMPLES_ROOT.rglob("INDEX.md")):
        folder = index.parent.relative_to(EXAMPLES_ROOT).as_posix()
        for line in index.read_text().splitlines():
            m = _INDEX_LINE.match(line)
            if m:
                name = m["file"] if folder == "." else f"{folder}/{m['file']}"
                out[name] = (m["src"], m["commit"])
    return out


@cache
def _read(service: str, stem: str) -> str:
    return (EXAMPLES_ROOT / service / f"{stem}.json").read_text()


def load_example(service: str, stem: str) -> dict[str, Any]:
    """A fresh copy of one example (callers may edit it)."""
    return json.loads(_read(service, stem))


def body_of(service: str, stem: str, status: str = "200") -> Any:
    return load_example(service, stem)["responses"][status]["body"]


def response_bodies(example: dict[str, Any]) -> dict[str, Any]:
    """Status code -> body, for the responses that have a body."""
    return {code: r["body"] for code, r in example["responses"].items()
            if isinstance(r, dict) and "body" in r}


# -- building the fleet ------------------------------------------------------------------------

def arm_id(sub: str, rg: str, rtype: str, name: str) -> str:
    return f"/subscriptions/{sub}/resourceGroups/{rg}/providers/{rtype}/{name}"


def _replace(value: Any, old: tuple[str, ...], new: str) -> Any:
    if isinstance(value, dict):
        return {k: _replace(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace(v, old, new) for v in value]
    if isinstance(value, str):
        for o in old:
            value = value.replace(o, new)
    return value


def compute_resource(body: dict[str, Any]) -> dict[str, Any]:
    """A compute example body with its ``{subscription-id}`` placeholders made ours."""
    return _replace(copy.deepcopy(body), COMPUTE_PLACEHOLDERS, SUB_COMPUTE)


def rehome(resource: dict[str, Any], sub: str, rg: str, rtype: str,
           name: str | None = None) -> dict[str, Any]:
    """The same resource with an id that names its own type, group and ``name``."""
    out = copy.deepcopy(resource)
    out["name"] = name or out["name"]
    out["type"] = out.get("type") or rtype
    out["id"] = arm_id(sub, rg, rtype, out["name"])
    return out


def create_group(stem: str) -> str:
    """Each ``*_Create_*`` example's resource gets a resource group of its own: the examples all
    create ``myResourceGroup/myVM`` or ``myDisk``, which would collide."""
    return "rg-" + stem.lower().replace("_", "-")


def created_resource(stem: str) -> dict[str, Any]:
    """The resource a ``*_Create_*`` example's 200 response describes, as a fleet resource."""
    rtype = VM if stem.startswith("VirtualMachine_") else DISK
    body = compute_resource(body_of("compute", stem))
    return rehome(body, SUB_COMPUTE, create_group(stem), rtype)


CREATE_EXAMPLES = (
    "Disk_Create_WithDataAccessAuthMode", "Disk_Create_WithPremiumV2_LRSAccountType",
    "Disk_Create_WithSecurityProfile", "Disk_Create_WithUltraSSD_ReadOnly",
    "VirtualMachine_Create_WithADiffOsDisk",
    "VirtualMachine_Create_WithSecurityTypeConfidentialVMWithNonPersistedTPM",
    "VirtualMachine_Create_WithUefiSettings",
)


def _compute_resources() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    vm = compute_resource(body_of("compute", "VirtualMachine_Get"))
    vm["properties"]["hostGroup"] = {"id": HOST_GROUP_ID}
    out.append(vm)
    maxset = body_of("compute", "VirtualMachine_ListAll_MaximumSet_Gen")["value"]
    out += [rehome(compute_resource(item), SUB_COMPUTE, MAXSET_GROUP, VM, f"maxset-vm-{i}")
            for i, item in enumerate(maxset, 1)]
    out += [created_resource(stem) for stem in CREATE_EXAMPLES]
    out.append(compute_resource(body_of("compute", "Disk_Get")))
    # Disk_ListByResourceGroup shows the same three disks with one (wrong) id for all three;
    # Disk_ListBySubscription's copies have distinct ids.
    out += [compute_resource(d) for d in body_of("compute", "Disk_ListBySubscription")["value"]]
    fillers = [(RG_COMPUTE, f"vm-{RG_COMPUTE}-{i}") for i in (1, 2)]
    fillers += [(ARG_GROUP, f"testvm-{i}") for i in (1, 2, 3, 4)]
    for rg, name in fillers:
        filler, disks = make_vm(SUB_COMPUTE, rg, name, location="eastus")
        out += [filler, *disks]
    return out


def _vault_resources() -> list[dict[str, Any]]:
    return [body_of("recoveryservices", "GETVault"),
            *body_of("recoveryservices", "ListBySubscriptionIds")["value"]]


def vault_path(vault: tuple[str, str]) -> str:
    return arm_id(SUB_BACKUP, vault[0], "Microsoft.RecoveryServices/vaults", vault[1])


def vm_path(rg: str, name: str) -> str:
    return arm_id(SUB_BACKUP, rg, VM, name)


def item_path(vault: tuple[str, str], rg: str, vm: str) -> str:
    """The protected item of an Azure VM, named as ConfigureProtection.json names it."""
    return (f"{vault_path(vault)}/backupFabrics/Azure/protectionContainers/"
            f"IaasVMContainer;iaasvmcontainerv2;{rg};{vm}/protectedItems/"
            f"VM;iaasvmcontainerv2;{rg};{vm}")


NET_ITEM_ID = item_path(NET_VAULT, "netsdktestrg", "netvmtestv2vm1")


def _backup_resources() -> list[dict[str, Any]]:
    net = make_vault(SUB_BACKUP, *NET_VAULT, location=BACKUP_LOCATION)
    py = make_vault(SUB_BACKUP, *PY_VAULT, location=BACKUP_LOCATION)
    linux = make_vault(SUB_BACKUP, *LINUX_VAULT, location=BACKUP_LOCATION)
    out = [net, py, linux]
    # NetSDKTestRsVault's policies, exactly as the examples show them (ids keep "/Subscriptions").
    out += [body_of("recoveryservicesbackup", "BackupPolicies_List")["value"][0],  # DefaultPolicy
            body_of("recoveryservicesbackup", "ProtectionPolicies_Get"),  # testPolicy1
            body_of("recoveryservicesbackup", "v2-List-Policies")["value"][2],  # v2-daily-policy
            body_of("recoveryservicesbackup", "v2-Get-Policy")]  # v2-daily-sample
    py_policy = make_policy(py, "testPolicy1")  # the V2 policy Compute_ProtectedItem_Get names
    linux_policy = make_policy(linux, "DefaultPolicy")
    out += [py_policy, linux_policy]
    vms = {}
    for rg, name in ITEM_VMS:
        vm, disks = make_vm(SUB_BACKUP, rg, name, location=BACKUP_LOCATION)
        vms[name] = vm
        out += [vm, *disks]

    # Compute_ProtectedItem_Get: its VM id has no resource group ("resourceGroups/providers").
    item = body_of("recoveryservicesbackup", "Compute_ProtectedItem_Get")
    item["properties"]["sourceResourceId"] = vms["iaasvm-1"]["id"]
    item["properties"]["virtualMachineId"] = vms["iaasvm-1"]["id"]
    out.append(item)
    # BackupProtectedItems_List: a classic VM's item; its id lacks "backupFabrics/Azure".
    listed = body_of("recoveryservicesbackup", "BackupProtectedItems_List")["value"][0]
    listed["id"] = listed["id"].replace("/protectionContainers/",
                                        "/backupFabrics/Azure/protectionContainers/")
    classic = arm_id(SUB_BACKUP, "iaasvm-rg", "Microsoft.ClassicCompute/virtualMachines",
                     "iaasvm-1")
    listed["properties"]["sourceResourceId"] = classic
    listed["properties"]["virtualMachineId"] = classic
    out.append(listed)
    # netvmtestv2vm1 protected in NetSDKTestRsVault by DefaultPolicy: the state
    # ConfigureProtection.json leaves behind (its 200 body, which names another vault).
    net_item = body_of("recoveryservicesbackup", "ConfigureProtection")
    net_item["id"] = NET_ITEM_ID
    net_item["properties"]["policyId"] = f"{vault_path(NET_VAULT)}/backupPolicies/DefaultPolicy"
    out.append(net_item)
    out.append(make_item(linux, vms["v1win2012r"], linux_policy))
    return out


def contract_fleet() -> dict[str, Any]:
    """The fleet every contract test starts from (a fresh deep copy each call)."""
    subs = [(SUB_COMPUTE, "contract-compute"), (SUB_VAULTS, "contract-vaults"),
            (SUB_BACKUP, "contract-backup")]
    skus = body_of("compute", "ListAvailableResourceSkusWithExtendedLocations")["value"]
    return {
        "subscriptions": [{"subscriptionId": s, "displayName": n, "tenantId": TENANT,
                           "state": "Enabled"} for s, n in subs],
        "managementGroups": [{"name": n, "subscriptions": s}
                             for n, s in MANAGEMENT_GROUPS.items()],
        "resources": [*_compute_resources(), *_vault_resources(), *_backup_resources()],
        "resourceSkus": skus,
    }


def without(fleet: dict[str, Any], *resource_ids: str) -> dict[str, Any]:
    """The fleet minus some resources (e.g. an item a test wants to create)."""
    drop = {r.lower() for r in resource_ids}
    out = copy.deepcopy(fleet)
    out["resources"] = [r for r in out["resources"] if r["id"].lower() not in drop]
    return out


# -- emulator and SDK access --------------------------------------------------------------------

def contract_config(**overrides: Any) -> EmulatorConfig:
    """Fast operations, no Resource Graph quota in the way, and two items a page so every ARM
    list pages (several examples show a ``nextLink``)."""
    values: dict[str, Any] = {"operation_seconds": 0.05, "job_seconds": 0.05,
                              "backup_job_seconds": 0.05, "arg_quota": 10_000,
                              "list_page_size": 2, **overrides}
    return EmulatorConfig(**values)


def access_for(emu: Emulator) -> AzureAccess:
    """The project's own client factory, pointed at the emulator with its service principal."""
    settings = with_emulator_principal(load_settings(environ={}), emu.connection_info())
    settings = settings.model_copy(update={
        "throttles": settings.throttles.model_copy(update={"polling_interval": 0})})
    return AzureAccess(settings)


@contextmanager
def running(fleet: dict[str, Any] | None = None,
            **config: Any) -> Iterator[tuple[Emulator, AzureAccess]]:
    """An emulator over ``fleet`` (default: the contract fleet) and an ``AzureAccess`` for it."""
    with Emulator(fleet or contract_fleet(), config=contract_config(**config)) as emu:
        access = access_for(emu)
        try:
            yield emu, access
        finally:
            access.close()


class Wire:
    """Every HTTP response an SDK call receives: pass ``**wire.hook`` to the call."""

    def __init__(self) -> None:
        self.responses: list[Any] = []  # azure.core HttpResponse objects, in order

    def __call__(self, pipeline_response: Any) -> None:
        self.responses.append(pipeline_response.http_response)

    @property
    def hook(self) -> dict[str, Any]:
        return {"raw_response_hook": self}

    def first(self, method: str | None = None) -> Any:
        for response in self.responses:
            if method is None or response.request.method == method:
                return response
        raise AssertionError(f"the SDK made no {method or ''} request")

    def json(self, method: str | None = None) -> Any:
        return self.first(method).json()

    def pages(self) -> dict[str, Any]:
        """A paged list as one body: the first page's top-level keys (``nextLink``) with the
        items of every page."""
        bodies = [r.json() for r in self.responses]
        assert bodies, "the SDK fetched no page"
        return {**bodies[0], "value": [item for b in bodies for item in b.get("value", [])]}

    def sent(self, method: str | None = None) -> Any:
        """The JSON body the SDK put on the wire."""
        return _sent_body(self.first(method).request)


def plain(value: Any) -> Any:
    """An SDK hybrid model (a mapping of the wire JSON) as builtin dicts and lists."""
    if isinstance(value, Mapping):
        return {k: plain(value[k]) for k in value}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


# -- comparison ---------------------------------------------------------------------------------

def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", type(None): "null"}.get(type(value),
                                                                          type(value).__name__)


FREE_FORM_MAPS = frozenset({"tags", "userAssignedIdentities", "settings", "protectedSettings",
                            "failedJobsError"})


def missing_keys(example: Any, actual: Any, path: str = "") -> list[str]:
    """Paths of the example's keys that ``actual`` lacks (rules in the module docstring)."""
    if isinstance(example, dict):
        if not isinstance(actual, dict):
            return [f"{path or '<body>'} (expected an object, got {_kind(actual)})"]
        if path.rsplit(".", 1)[-1] in FREE_FORM_MAPS:
            return []
        out: list[str] = []
        for key, value in example.items():
            where = f"{path}.{key}" if path else key
            if key not in actual:
                if value is not None:
                    out.append(where)
            elif value is not None:
                out += missing_keys(value, actual[key], where)
        return out
    if isinstance(example, list):
        if not isinstance(actual, list):
            return [f"{path} (expected an array, got {_kind(actual)})"]
        out = []
        for i, item in enumerate(example):
            if not isinstance(item, dict | list):
                continue
            if not actual:
                out.append(f"{path}[{i}] (the emulator's array is empty)")
                continue
            gaps = min((missing_keys(item, candidate, f"{path}[{i}]") for candidate in actual),
                       key=len)
            out += gaps
        return out
    return []


def _keywords(url: str) -> list[str]:
    """An ARM URL's path as its keyword segments (``subscriptions``, ``vaults``, ...)."""
    parts = unquote(urlsplit(url).path).strip("/").split("/")
    return [p.lower() for p in parts[0::2]]


def async_header_problems(example_headers: Mapping[str, Any], headers: Mapping[str, str],
                          endpoint: str) -> list[str]:
    """The example's 202 headers must be present; URLs absolute on the emulator, with the
    example's path shape and an api-version; Retry-After a number of seconds."""
    out: list[str] = []
    for name, value in example_headers.items():
        got = headers.get(name)
        if got is None:
            out.append(f"header {name} is missing")
            continue
        if isinstance(value, str) and value.startswith("http"):
            if not got.startswith(endpoint + "/"):
                out.append(f"header {name} is not an absolute URL on the emulator: {got}")
            if _keywords(got) != _keywords(value):
                out.append(f"header {name} has path {'/'.join(_keywords(got))}, the example "
                           f"{'/'.join(_keywords(value))}")
            if "api-version=" not in urlsplit(got).query:
                out.append(f"header {name} has no api-version: {got}")
        elif isinstance(value, int) and not got.strip().isdigit():
            out.append(f"header {name} is {got!r}, not a number of seconds")
    return out


def compare(label: str, example: Any, actual: Any) -> list[str]:
    """``missing_keys``, each path prefixed with what was compared (e.g. ``GET 200``)."""
    return [f"{label}: missing {p}" for p in missing_keys(example, actual)]


def request_problems(response: Any, *, query: Mapping[str, Any] | None = None,
                     body: Any = None, path: tuple[str, ...] = ()) -> list[str]:
    """What the SDK put on the wire must be the example's request: its query parameters (besides
    api-version: the SDK sends its own), every key of its body, the names in its path."""
    request = response.request
    split = urlsplit(request.url)
    sent = {k.lower(): v for k, v in parse_qsl(split.query, keep_blank_values=True)}
    out = [f"request: query {k}={v!r} not sent (sent {sent.get(k.lower())!r})"
           for k, v in (query or {}).items() if sent.get(k.lower()) != str(v)]
    url_path = unquote(split.path).lower()
    out += [f"request: path lacks {name!r}" for name in path if name.lower() not in url_path]
    if body is not None:
        out += [f"request body: missing {p}" for p in missing_keys(body, _sent_body(request))]
    return out


def _sent_body(request: Any) -> Any:
    """A request's JSON body (azure.core's ``rest`` requests call it ``content``)."""
    raw = getattr(request, "content", None) or getattr(request, "body", None)
    if isinstance(raw, bytes):
        raw = raw.decode()
    return json.loads(raw) if raw else None
