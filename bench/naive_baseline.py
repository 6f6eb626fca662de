"""The naive baseline many scripts use to gather what the assessment needs, through ARM only.

Per subscription: list every VM (``virtual_machines.list_all``), GET each VM's OS and data disks
(``disks.get``), list the Recovery Services vaults (``vaults.list_by_subscription_id``) and each
vault's VM backup items (``backup_protected_items.list``). Clients come from the project's own
factory (``tasks.azure.clients.AzureAccess``), so the SDK's RetryPolicy (429 + Retry-After) is the
same as ccmigrate's, and the emulator's ARM read throttle (250 burst, 25/s per subscription)
applies. No Resource Graph.

Modes: ``sequential`` (subscriptions one after another, VMs one after another: the typical
script) or ``parallel`` (one thread per subscription, VMs one after another in each; the
per-subscription bucket is then the limit).

Run against a running emulator (``ccmigrate emulator serve ... > emu.json``):
    python bench/naive_baseline.py --connection emu.json [--mode sequential] [--out result.json]
Prints one JSON object: wall_s (first call to last answer, imports and process start excluded),
requests answered, 429s absorbed by the RetryPolicy, VMs, disks, vaults, protected items.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

ITEM_FILTER = "backupManagementType eq 'AzureIaasVM' and itemType eq 'VM'"


class Counter:
    """Every HTTP try the SDK makes (``raw_response_hook`` runs after the RetryPolicy, so it
    sees the 429s the policy then absorbs)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_status: dict[int, int] = {}

    def hook(self, response) -> None:
        status = response.http_response.status_code
        with self.lock:
            self.by_status[status] = self.by_status.get(status, 0) + 1


def _rg_and_name(resource_id: str) -> tuple[str, str]:
    parts = resource_id.split("/")
    return parts[4], parts[-1]


def one_subscription(access, sub: str, counter: Counter) -> dict[str, int]:
    """The naive walk of one subscription; returns counts of what it read."""
    from azure.core.exceptions import ResourceNotFoundError

    hook = {"raw_response_hook": counter.hook}
    compute = access.compute(sub)
    got = {"vms": 0, "disks": 0, "disks_not_found": 0, "unmanaged_disks": 0, "vaults": 0,
           "protected_items": 0}
    for vm in compute.virtual_machines.list_all(**hook):
        got["vms"] += 1
        profile = vm.storage_profile
        disks = [profile.os_disk, *(profile.data_disks or [])] if profile else []
        for disk in disks:
            if disk is None:
                continue
            if disk.managed_disk is None or not disk.managed_disk.id:
                got["unmanaged_disks"] += 1
                continue
            rg, name = _rg_and_name(disk.managed_disk.id)
            try:
                compute.disks.get(rg, name, **hook)
                got["disks"] += 1
            except ResourceNotFoundError:  # the fleet has VMs whose disk is gone, on purpose
                got["disks_not_found"] += 1
    backup = access.backup(sub)
    for vault in access.vaults(sub).vaults.list_by_subscription_id(**hook):
        got["vaults"] += 1
        rg, name = _rg_and_name(vault.id)
        for _item in backup.backup_protected_items.list(name, rg, filter=ITEM_FILTER, **hook):
            got["protected_items"] += 1
    return got


def run(info: dict, mode: str, subscriptions: list[str]) -> dict:
    from flows.options import with_emulator_principal
    from tasks.azure.clients import AzureAccess
    from tasks.settings import load_settings

    settings = with_emulator_principal(load_settings(environ={}), info)
    access = AzureAccess(settings)
    counter = Counter()
    started = time.perf_counter()
    subs = list(subscriptions or [])
    totals: dict[str, int] = {}
    per_sub: dict[str, float] = {}

    def walk(sub: str) -> dict[str, int]:
        t = time.perf_counter()
        got = one_subscription(access, sub, counter)
        per_sub[sub] = round(time.perf_counter() - t, 3)
        return got

    if mode == "sequential":
        results = [walk(s) for s in subs]
    else:
        with ThreadPoolExecutor(max_workers=max(1, len(subs)), thread_name_prefix="sub") as pool:
            results = list(pool.map(walk, subs))
    wall = time.perf_counter() - started
    for got in results:
        for key, value in got.items():
            totals[key] = totals.get(key, 0) + value
    access.close()
    ok = sum(n for s, n in counter.by_status.items() if s != 429)
    return {
        "mode": mode,
        "subscriptions": len(subs),
        "wall_s": round(wall, 3),
        "requests_answered": ok,
        "requests_429": counter.by_status.get(429, 0),
        "requests_by_status": {str(k): v for k, v in sorted(counter.by_status.items())},
        **totals,
        "per_subscription_s": per_sub,
    }


def subscriptions_of(info: dict) -> list[str]:
    """Subscription ids as a script would get them (``az account list``); read once from the
    emulator's admin state endpoint, before the clock starts."""
    import requests

    state = requests.get(f"{info['endpoint']}/_emulator/state", verify=info["ca_bundle"],
                         timeout=600).json()
    return sorted(s["subscriptionId"] for s in state["subscriptions"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connection", type=Path, required=True,
                        help="file holding the JSON line `ccmigrate emulator serve` printed")
    parser.add_argument("--mode", choices=("sequential", "parallel"), default="sequential")
    parser.add_argument("--subscription", action="append", default=None,
                        help="subscription id (repeatable); default: all in the emulator")
    parser.add_argument("--out", type=Path, help="also write the JSON result here")
    args = parser.parse_args()
    info = json.loads(args.connection.read_text().strip().splitlines()[0])
    subs = args.subscription or subscriptions_of(info)
    result = run(info, args.mode, subs)
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
