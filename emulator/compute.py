"""Compute and vault reads: VMs, disks, resource SKUs, Recovery Services vaults (ARM GET/list)."""

from __future__ import annotations

from .http import ArmError, Request, Response, Router, require_api_version
from .state import DISK, VAULT, VM
from .world import World, page_list

router = Router()

P_VM = "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines"
P_DISK = "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/disks"
P_VAULT = "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.RecoveryServices/vaults"


def _get(world: World, sub: str, rid: str, what: str) -> dict:
    world.require_subscription(sub)
    res = world.state.get(rid)
    if res is None:
        rg = rid.split("/")[4]
        raise ArmError(
            404,
            "ResourceNotFound",
            f"The Resource '{what}/{rid.rsplit('/', 1)[-1]}' under resource group "
            f"'{rg}' was not found. For more details please go to "
            "https://aka.ms/ARMResourceNotFoundFix",
        )
    return res


def _list(world: World, req: Request, arm_type: str, sub: str, rg: str | None = None) -> Response:
    require_api_version(req)
    world.require_subscription(sub)
    items = sorted(
        world.state.of_type(arm_type, subscription=sub, resource_group=rg),
        key=lambda r: r["id"].lower(),
    )
    return page_list(world, req, items)


@router.route("GET", "/subscriptions/{sub}/providers/Microsoft.Compute/virtualMachines", "read")
def list_all_vms(world: World, req: Request, sub: str) -> Response:
    return _list(world, req, VM, sub)


@router.route("GET", P_VM, "read")
def list_vms(world: World, req: Request, sub: str, rg: str) -> Response:
    return _list(world, req, VM, sub, rg)


@router.route("GET", P_VM + "/{name}", "read")
def get_vm(world: World, req: Request, sub: str, rg: str, name: str) -> Response:
    require_api_version(req)
    vm = _get(world, sub, req.path, "Microsoft.Compute/virtualMachines")
    if "instanceview" in req.query.get("$expand", "").lower():
        vm = {**vm, "properties": {**vm["properties"], "instanceView": _instance_view(vm)}}
    return Response(200, vm)


@router.route("GET", P_VM + "/{name}/instanceView", "read")
def get_instance_view(world: World, req: Request, sub: str, rg: str, name: str) -> Response:
    require_api_version(req)
    vm = _get(
        world, sub, req.path.rstrip("/").rsplit("/", 1)[0], "Microsoft.Compute/virtualMachines"
    )
    return Response(200, _instance_view(vm))


def _instance_view(vm: dict) -> dict:
    props = vm.get("properties", {})
    stamp = props.get("timeCreated", "2026-11-01T00:00:00+00:00")
    disks = [props.get("storageProfile", {}).get("osDisk", {})]
    disks += props.get("storageProfile", {}).get("dataDisks", [])
    ok = {
        "code": "ProvisioningState/succeeded",
        "level": "Info",
        "displayStatus": "Provisioning succeeded",
        "time": stamp,
    }
    image = props.get("storageProfile", {}).get("imageReference", {})
    view = {
        "computerName": props.get("osProfile", {}).get("computerName", vm["name"]),
        "osName": image.get("offer", ""),
        "osVersion": image.get("sku", ""),
        "vmAgent": {
            "vmAgentVersion": "2.7.41491.1102",
            "statuses": [
                {
                    "code": "ProvisioningState/succeeded",
                    "level": "Info",
                    "displayStatus": "Ready",
                    "message": "GuestAgent is running and processing the extensions.",
                    "time": stamp,
                }
            ],
        },
        "disks": [{"name": d.get("name", ""), "statuses": [ok]} for d in disks if d],
        "hyperVGeneration": "V2",
        "statuses": [
            ok,
            {"code": "PowerState/running", "level": "Info", "displayStatus": "VM running"},
        ],
    }
    # A VM placed in a dedicated host group reports the host it landed on.
    host = (props.get("host") or {}).get("id")
    group = (props.get("hostGroup") or {}).get("id")
    if host or group:
        view["assignedHost"] = host or f"{group}/hosts/host-1"
    return view


@router.route("GET", "/subscriptions/{sub}/providers/Microsoft.Compute/disks", "read")
def list_all_disks(world: World, req: Request, sub: str) -> Response:
    return _list(world, req, DISK, sub)


@router.route("GET", P_DISK, "read")
def list_disks(world: World, req: Request, sub: str, rg: str) -> Response:
    return _list(world, req, DISK, sub, rg)


@router.route("GET", P_DISK + "/{name}", "read")
def get_disk(world: World, req: Request, sub: str, rg: str, name: str) -> Response:
    require_api_version(req)
    return Response(200, _get(world, sub, req.path, "Microsoft.Compute/disks"))


@router.route("GET", "/subscriptions/{sub}/providers/Microsoft.Compute/skus", "read")
def list_skus(world: World, req: Request, sub: str) -> Response:
    """Resource SKUs: the fleet's own list, else the built-in catalogue for the fleet's regions."""
    require_api_version(req)
    world.require_subscription(sub)
    skus = world.services.get("skus")
    if skus is None:
        from .skus import builtin_catalogue  # the catalogue is large; build it on first use

        if world.state.resource_skus is not None:
            skus = world.state.resource_skus
        else:
            locations = sorted(
                {(v.get("location") or "").lower() for v in world.state.of_type(VM)} - {""}
            )
            skus = builtin_catalogue(locations)
        world.services["skus"] = skus
    flt = req.query.get("$filter", "")
    if flt:
        # The only filter the service supports: location eq 'x'.
        location = flt.split("eq", 1)[-1].strip().strip("'\"").lower()
        if not flt.replace(" ", "").lower().startswith("locationeq"):
            raise ArmError(
                400,
                "InvalidFilter",
                f"The $filter '{flt}' is not supported; only \"location eq '<region>'\".",
            )
        skus = [s for s in skus if location in [loc.lower() for loc in s.get("locations", [])]]
    if req.query.get("includeextendedlocations", "").lower() != "true":
        skus = [
            {
                **s,
                "locationInfo": [
                    li for li in s.get("locationInfo", []) if li.get("type") != "EdgeZone"
                ],
            }
            if any(li.get("type") == "EdgeZone" for li in s.get("locationInfo", []))
            else s
            for s in skus
        ]
    return page_list(world, req, skus, page_size=5000)


@router.route("GET", "/subscriptions/{sub}/providers/Microsoft.RecoveryServices/vaults", "read")
def list_all_vaults(world: World, req: Request, sub: str) -> Response:
    return _list(world, req, VAULT, sub)


@router.route("GET", P_VAULT, "read")
def list_vaults(world: World, req: Request, sub: str, rg: str) -> Response:
    return _list(world, req, VAULT, sub, rg)


@router.route("GET", P_VAULT + "/{name}", "read")
def get_vault(world: World, req: Request, sub: str, rg: str, name: str) -> Response:
    require_api_version(req)
    return Response(200, _get(world, sub, req.path, "Microsoft.RecoveryServices/vaults"))
