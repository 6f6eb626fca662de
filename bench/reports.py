"""Reports benchmark: readiness.xlsx and readiness.csv for 10k and 100k VMs.

The rows are real: a demo fleet (2,000 VMs) is assessed once through the emulator, Prefect and
the real clients, and its scored inventory is tiled to the wanted size (each copy gets its own
subscription ids, so ids stay unique and the per-subscription tables grow as they would). Each
size is then written in a fresh child process (so peak memory is that size's alone):

- the report tables (``reports.report_tables.vm_table``, the summary and the cost view),
- readiness.csv (target <= 2 s at 100k VMs),
- readiness.xlsx (target <= 10 s and <= 1 GB peak RSS at 100k VMs),

and prints the time of each step and the child's peak RSS (``ru_maxrss``: the frames in memory
included) and the RSS the workbook added. Writes bench/results/reports.json; copy the table into
BENCHMARKS.md.

Run: python bench/reports.py [--sizes 10000,100000]
"""

from __future__ import annotations

import argparse
import json
import pickle
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# This file is named like the ``reports`` package: keep bench/ off the path so imports find
# the package, and this checkout's code first.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != REPO / "bench"]
sys.path.insert(0, str(REPO))

SEED_VMS = 2000
TARGETS = {100000: {"xlsx_s": 10.0, "csv_s": 2.0, "peak_rss_gb": 1.0}}


def seed_report(workdir: Path) -> Path:
    """Assess the demo fleet once and keep what the reports are drawn from."""
    from flows.assess import run_assessment
    from flows.emulated import demo_fleet, emulated
    from flows.options import build_settings
    from flows.prefect_runtime import prefect_runtime

    settings = build_settings(state_store=f"sqlite:///{workdir / 'state.db'}")
    with emulated(settings, demo_fleet(SEED_VMS, 7)) as (_, emu_settings), prefect_runtime():
        outcome = run_assessment(emu_settings, workdir / "seed")
    path = workdir / "seed.pickle"
    report = outcome.report
    path.write_bytes(pickle.dumps({"scored": report.scored, "disks": outcome.disks,
                                   "policies": report.policies, "summary": report.summary,
                                   "pack": report.pack, "pricing": emu_settings.pricing}))
    return path


def _tile(frame, copies: int, id_columns: list[str]):
    """``copies`` copies of ``frame``; copy k's subscription GUIDs end in k (hex)."""
    import pandas as pd

    parts = []
    subs = frame["subscription_id"].unique().tolist() if "subscription_id" in frame else []
    for k in range(copies):
        part = frame.copy()
        for sub in subs:
            new = sub[:-4] + f"{k:04x}"
            for column in id_columns:
                if column in part:
                    part[column] = part[column].str.replace(sub, new, regex=False)
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def child(seed: Path, vms: int, out: Path, result: Path) -> None:
    """Build the report inputs for ``vms`` VMs, then time each writer."""
    from reports.cost import cost_view
    from reports.readiness_csv import write_readiness_csv
    from reports.report_tables import vm_table
    from reports.summary import build_summary
    from reports.workbook import ReadinessReport, write_readiness_workbook

    data = pickle.loads(seed.read_bytes())
    copies = -(-vms // len(data["scored"]))
    ids = ["vm_id", "vm_key", "subscription_id", "vault_id", "item_id", "policy_id",
           "other_items"]
    scored = _tile(data["scored"], copies, ids).head(vms)
    disks = _tile(data["disks"], copies, ["vm_key", "disk_key"])
    disks = disks[disks["vm_key"].isin(set(scored["vm_key"]))]
    policies = _tile(data["policies"].assign(subscription_id=data["policies"]["vault_id"]
                                             .str.split("/").str[2]), copies, ["vault_id"])
    old = data["summary"]
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    times: dict[str, float] = {}

    mark = time.perf_counter()
    pack = data["pack"]
    cost = cost_view(scored, pack, data["pricing"])
    summary = build_summary(
        scored, assessment_id=old["assessment_id"], scope={**old["scope"], "subscriptions":
        sorted(scored["subscription_id"].unique())}, pack=pack, cloud=old["cloud"],
        requests=old["requests"], partial_errors=[], timings={}, excluded_vms=0,
        tool_version=old["tool_version"], created_at=old["created_at"],
        cost=cost.to_summary(), changes=None)
    table = vm_table(scored, disks)
    times["tables_s"] = time.perf_counter() - mark

    mark = time.perf_counter()
    write_readiness_csv(table, out / "readiness.csv")
    times["csv_s"] = time.perf_counter() - mark

    report = ReadinessReport(summary=summary, vm_table=table, scored=scored, pack=pack,
                             policies=policies, changes=None, cost=cost)
    rss_mid = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    mark = time.perf_counter()
    write_readiness_workbook(report, out / "readiness.xlsx")
    times["xlsx_s"] = time.perf_counter() - mark
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    result.write_text(json.dumps({
        "vms": len(scored), "columns": len(table.columns), **times,
        "xlsx_bytes": (out / "readiness.xlsx").stat().st_size,
        "csv_bytes": (out / "readiness.csv").stat().st_size,
        "rss_inputs_gb": rss_before / 1e9, "rss_before_xlsx_gb": rss_mid / 1e9,
        "peak_rss_gb": peak / 1e9}))


def table_text(results: list[dict]) -> str:
    lines = ["| VMs | columns | tables s | readiness.csv s | readiness.xlsx s | xlsx MB | "
             "peak RSS GB (inputs) | targets |", "|---|---|---|---|---|---|---|---|"]
    for r in results:
        t = TARGETS.get(r["vms"])
        verdict = "-"
        if t:
            parts = [f"xlsx {r['xlsx_s']:.1f}/{t['xlsx_s']:.0f} s "
                     f"{'met' if r['xlsx_s'] <= t['xlsx_s'] else 'MISSED'}",
                     f"csv {r['csv_s']:.2f}/{t['csv_s']:.0f} s "
                     f"{'met' if r['csv_s'] <= t['csv_s'] else 'MISSED'}",
                     f"RSS {r['peak_rss_gb']:.2f}/{t['peak_rss_gb']:.0f} GB "
                     f"{'met' if r['peak_rss_gb'] <= t['peak_rss_gb'] else 'MISSED'}"]
            verdict = "; ".join(parts)
        lines.append(f"| {r['vms']:,} | {r['columns']} | {r['tables_s']:.2f} | {r['csv_s']:.2f} "
                     f"| {r['xlsx_s']:.1f} | {r['xlsx_bytes'] / 1e6:.1f} | "
                     f"{r['peak_rss_gb']:.2f} ({r['rss_inputs_gb']:.2f}) | {verdict} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--reuse-seed", action="store_true",
                        help="reuse bench/results/reports-seed.pickle from an earlier run")
    parser.add_argument("--child", nargs=4, metavar=("SEED", "VMS", "OUT", "RESULT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        seed, vms, out, result = args.child
        child(Path(seed), int(vms), Path(out), Path(result))
        return
    results_dir = REPO / "bench" / "results"
    results_dir.mkdir(exist_ok=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="ccm-bench-reports-") as tmp:
        work = Path(tmp)
        seed = results_dir / "reports-seed.pickle"
        if not (args.reuse_seed and seed.exists()):
            print(f"assessing a {SEED_VMS}-VM demo fleet for the rows ...", flush=True)
            seed.write_bytes(seed_report(work).read_bytes())
        for vms in (int(s) for s in args.sizes.split(",")):
            out = work / f"out-{vms}"
            out.mkdir()
            result = work / f"result-{vms}.json"
            subprocess.run([sys.executable, __file__, "--child", str(seed), str(vms), str(out),
                            str(result)], check=True, cwd=REPO)
            results.append(json.loads(result.read_text()))
            print(json.dumps(results[-1]), flush=True)
    (results_dir / "reports.json").write_text(json.dumps({"results": results}, indent=2) + "\n")
    print(table_text(results))


if __name__ == "__main__":
    main()
