"""Foundation figures: is the emulator fast enough that Resource Graph's quota, not the emulator,
sets the pace? And what does Prefect cost a CLI run?

Prints, in one run:
- fleet generation time for 10k and 100k VMs;
- for a 100k-VM fleet served over HTTPS: the first page of the VM query (the emulator runs the
  query and snapshots it), a later page (cut from the snapshot), and each as a ratio of the
  quota's pace (15 requests per 5 s = one page every 333 ms; ratio < 1 means the quota rules);
- the private Prefect server's start-up and a trivial flow's cost in this process.
Writes the figures to bench/results/foundation.json; copy the table into BENCHMARKS.md.

Run: python bench/foundation.py [--vms 100000]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

QUERY = ("Resources | where type == 'microsoft.compute/virtualmachines' "
         "| project id, name, location, vmSize = tostring(properties.hardwareProfile.vmSize) "
         "| order by id asc")
QUOTA_PACE = 5 / 15


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--vms", type=int, default=100_000)
    args = parser.parse_args()

    from emulator.generator import generate_fleet
    from emulator.server import Emulator
    from flows.options import with_emulator_principal
    from tasks.azure.clients import AzureAccess
    from tasks.azure.resource_graph import query_page
    from tasks.settings import load_settings

    figures: dict[str, float] = {}
    _, figures["generate_10k_s"] = timed(lambda: generate_fleet(10_000, 10, seed=1))
    fleet, figures["generate_big_s"] = timed(lambda: generate_fleet(args.vms, 40, seed=1))

    with Emulator(fleet) as emu:
        settings = with_emulator_principal(load_settings(environ={}), emu.connection_info())
        client = AzureAccess(settings).resource_graph()
        query_page(client, "ResourceContainers | project id", top=1)  # token, connection
        first, figures["arg_first_page_s"] = timed(lambda: query_page(client, QUERY, top=1000))
        token = first.skip_token
        later, figures["arg_next_page_s"] = timed(
            lambda: query_page(client, QUERY, top=1000, skip_token=token))
        assert first.total_records == args.vms and len(later.rows) == 1000
    figures["arg_first_page_vs_quota_pace"] = figures["arg_first_page_s"] / QUOTA_PACE
    figures["arg_next_page_vs_quota_pace"] = figures["arg_next_page_s"] / QUOTA_PACE

    from flows.prefect_runtime import prefect_runtime

    start = time.perf_counter()
    with prefect_runtime():
        figures["prefect_start_s"] = time.perf_counter() - start
        from prefect import flow

        @flow
        def empty() -> int:
            return 1

        _, figures["prefect_first_flow_s"] = timed(empty)
        _, figures["prefect_next_flow_s"] = timed(empty)

    rounded = {k: round(v, 3) for k, v in figures.items()}
    out = REPO / "bench" / "results" / "foundation.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"vms": args.vms, **rounded}, indent=2) + "\n")
    width = max(map(len, rounded))
    print(f"foundation benchmark, {args.vms} VMs")
    for key, value in rounded.items():
        print(f"  {key:<{width}}  {value}")


if __name__ == "__main__":
    main()
