"""The emulator's world: the fleet's ARM resources, kept as ARM returns them, and its ARG view.

Writes (policy PUT, protected-item changes, jobs) go through ``put``/``delete`` so Resource Graph
queries and ARM GETs see the same state. Stored objects are never mutated in place: a writer
copies, edits and ``put``s, so a response being serialised on another thread stays consistent.
The ARG tables are rebuilt lazily when the state version
changes, so a 100k-VM fleet is reshaped once per change, not once per query.
"""

from __future__ import annotations

import copy
import threading
from collections import defaultdict
from typing import Any

from .arm_types import DISK, ITEM, POLICY, SQL_VM, VAULT, VM  # noqa: F401 - re-exported

SUBSCRIPTION = "microsoft.resources/subscriptions"

# Types ARG serves from `recoveryservicesresources` rather than `resources`.
RECOVERY_TABLE_TYPES = {POLICY, ITEM}

# ARM `protectionState` -> ARG `currentProtectionState` (api-notes 2.5: ARG has its own vocabulary).
# Unverified: no source maps one to the other. EmulatorConfig.arg_protection_states replaces it,
# so tests can show that ccmigrate's verdicts follow ARM's state wherever ARM can be read.
ARG_PROTECTION_STATE = {
    "Protected": "ProtectionConfigured",
    "IRPending": "ConfiguringProtection",
    "ProtectionError": "ProtectionError",
    "ProtectionStopped": "ProtectionStopped",
    "BackupsSuspended": "ProtectionStopped",
    "ProtectionPaused": "ProtectionStopped",
    "Invalid": "ConfiguringProtectionFailed",
}


def parse_id(resource_id: str) -> dict[str, str]:
    """Split an ARM id into ``subscription``, ``resourceGroup`` and provider key/value pairs."""
    parts = resource_id.strip("/").split("/")
    out: dict[str, str] = {}
    for key, value in zip(parts[0::2], parts[1::2], strict=False):
        out[key.lower()] = value
    return out


def subscription_of(resource_id: str) -> str:
    return parse_id(resource_id).get("subscriptions", "").lower()


def resource_group_of(resource_id: str) -> str:
    return parse_id(resource_id).get("resourcegroups", "")


def parent_id(resource_id: str, levels: int = 1) -> str:
    parts = resource_id.rstrip("/").split("/")
    return "/".join(parts[: len(parts) - 2 * levels])


class FleetState:
    """Thread-safe store of ARM resources, subscriptions and management groups."""

    def __init__(self, fleet: dict[str, Any]) -> None:
        self.lock = threading.RLock()
        self.version = 0
        self.subscriptions: dict[str, dict] = {
            s["subscriptionId"].lower(): s for s in fleet.get("subscriptions", [])
        }
        self.management_groups: dict[str, list[str]] = {
            mg["name"].lower(): [s.lower() for s in mg.get("subscriptions", [])]
            for mg in fleet.get("managementGroups", [])
        }
        self._mg_names = {
            mg["name"].lower(): mg["name"] for mg in fleet.get("managementGroups", [])
        }
        self.resource_skus: list[dict] | None = fleet.get("resourceSkus")
        self.tenant_id = next(iter(self.subscriptions.values()), {}).get("tenantId", "")
        self._resources: dict[str, dict] = {}
        self._by_parent: dict[str, dict[str, dict]] = defaultdict(dict)
        self._by_type: dict[str, dict[str, dict]] = defaultdict(dict)
        for res in fleet.get("resources", []):
            self._index(res)
        self._arg_cache: tuple[int, dict[str, list[dict]]] | None = None
        self.arg_state_map: dict[str, str] = ARG_PROTECTION_STATE

    # -- reads -------------------------------------------------------------------------------
    def get(self, resource_id: str) -> dict | None:
        return self._resources.get(resource_id.lower())

    def of_type(
        self, arm_type: str, *, subscription: str | None = None, resource_group: str | None = None
    ) -> list[dict]:
        arm_type = arm_type.lower()
        sub = subscription.lower() if subscription else None
        rg = resource_group.lower() if resource_group else None
        with self.lock:
            out = []
            for key, res in self._by_type.get(arm_type, {}).items():
                if sub and not key.startswith(f"/subscriptions/{sub}/"):
                    continue
                if rg and resource_group_of(key) != rg:
                    continue
                out.append(res)
            return out

    def children(self, parent: str, arm_type: str | None = None) -> list[dict]:
        """Direct or nested children recorded under ``parent`` (e.g. a vault's policies)."""
        with self.lock:
            kids = list(self._by_parent.get(parent.lower(), {}).values())
        if arm_type:
            kids = [k for k in kids if k["type"].lower() == arm_type.lower()]
        return kids

    def subscription_exists(self, subscription_id: str) -> bool:
        return subscription_id.lower() in self.subscriptions

    def management_group_subscriptions(self, name: str) -> list[str] | None:
        return self.management_groups.get(name.lower())

    # -- writes ------------------------------------------------------------------------------
    def put(self, resource: dict) -> dict:
        with self.lock:
            self._index(resource)
            self.version += 1
        return resource

    def delete(self, resource_id: str) -> None:
        with self.lock:
            res = self._resources.pop(resource_id.lower(), None)
            if res is not None:
                self._by_type[res["type"].lower()].pop(resource_id.lower(), None)
                self._by_parent[self._vault_of(res["id"])].pop(resource_id.lower(), None)
                self.version += 1

    def _index(self, res: dict) -> None:
        key = res["id"].lower()
        self._resources[key] = res
        rtype = res["type"].lower()
        self._by_type[rtype][key] = res
        if rtype.startswith(VAULT + "/"):
            self._by_parent[self._vault_of(res["id"])][key] = res

    @staticmethod
    def _vault_of(resource_id: str) -> str:
        lower = resource_id.lower()
        marker = "/providers/microsoft.recoveryservices/vaults/"
        i = lower.find(marker)
        if i < 0:
            return ""
        rest = lower[i + len(marker) :]
        return lower[: i + len(marker)] + rest.split("/", 1)[0]

    # -- Resource Graph view -----------------------------------------------------------------
    def arg_tables(self) -> dict[str, list[dict]]:
        """Rows of ``resources``, ``resourcecontainers`` and ``recoveryservicesresources``."""
        with self.lock:
            if self._arg_cache and self._arg_cache[0] == self.version:
                return self._arg_cache[1]
            resources: list[dict] = []
            recovery: list[dict] = []
            for res in self._resources.values():
                row = self._arg_row(res)
                (recovery if row["type"] in RECOVERY_TABLE_TYPES else resources).append(row)
            containers = [self._subscription_row(s) for s in self.subscriptions.values()]
            tables = {
                "resources": resources,
                "resourcecontainers": containers,
                "recoveryservicesresources": recovery,
            }
            self._arg_cache = (self.version, tables)
            return tables

    def _arg_row(self, res: dict) -> dict:
        rid = res["id"]
        rtype = res["type"].lower()
        props = res.get("properties") or {}
        if rtype == ITEM:
            props = self._arg_item_properties(res)
        return {
            "id": rid,
            "name": res.get("name", ""),
            "type": rtype,
            "tenantId": self.tenant_id,
            "kind": res.get("kind", ""),
            "location": (res.get("location") or "").lower(),
            "resourceGroup": resource_group_of(rid).lower(),
            "subscriptionId": subscription_of(rid),
            "managedBy": res.get("managedBy", ""),
            "sku": res.get("sku"),
            "plan": res.get("plan"),
            "properties": props,
            "tags": res.get("tags") or {},
            "identity": res.get("identity"),
            "zones": res.get("zones"),
            "extendedLocation": res.get("extendedLocation"),
        }

    def _arg_item_properties(self, res: dict) -> dict:
        """ARG's protected-item shape: ARM properties, ARG's ``currentProtectionState`` instead
        of ``protectionState``, and the ``policyInfo`` / ``dataSourceInfo`` blocks."""
        props = dict(res.get("properties") or {})
        state = props.pop("protectionState", None)
        current = self.arg_state_map.get(state or "", "ConfiguringProtectionFailed")
        if props.get("isScheduledForDeferredDelete"):
            current = "SoftDeleted"
        props["currentProtectionState"] = current
        policy_id = props.get("policyId") or ""
        props["policyName"] = policy_id.rsplit("/", 1)[-1] if policy_id else ""
        props["policyInfo"] = {"policyId": policy_id, "name": props["policyName"]}
        source = props.get("sourceResourceId") or ""
        vm = self.get(source) if source else None
        props["dataSourceInfo"] = {
            "resourceID": source,
            "resourceLocation": (vm or {}).get("location", ""),
            "datasourceType": "Microsoft.Compute/virtualMachines",
            "resourceName": source.rsplit("/", 1)[-1],
        }
        return props

    def _subscription_row(self, sub: dict) -> dict:
        sid = sub["subscriptionId"]
        mgs = [
            self._mg_names[n] for n, subs in self.management_groups.items() if sid.lower() in subs
        ]
        return {
            "id": f"/subscriptions/{sid}",
            "name": sub.get("displayName", sid),
            "type": SUBSCRIPTION,
            "tenantId": sub.get("tenantId", self.tenant_id),
            "kind": "",
            "location": "",
            "resourceGroup": "",
            "subscriptionId": sid,
            "managedBy": "",
            "sku": None,
            "plan": None,
            "properties": {
                "state": sub.get("state", "Enabled"),
                "managementGroupAncestorsChain": [{"name": m, "displayName": m} for m in mgs],
            },
            "tags": sub.get("tags") or {},
            "identity": None,
            "zones": None,
            "extendedLocation": None,
        }

    # -- dump --------------------------------------------------------------------------------
    def dump(self) -> dict[str, Any]:
        """The whole current state as a fleet file (DESIGN.md format)."""
        with self.lock:
            out: dict[str, Any] = {
                "subscriptions": list(self.subscriptions.values()),
                "managementGroups": [
                    {"name": self._mg_names[n], "subscriptions": subs}
                    for n, subs in self.management_groups.items()
                ],
                "resources": copy.deepcopy(list(self._resources.values())),
            }
            if self.resource_skus is not None:
                out["resourceSkus"] = self.resource_skus
            return out
