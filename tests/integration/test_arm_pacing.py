"""ARM pacing end to end: the real SDK clients over HTTPS against the emulator's ARM buckets.

Every test runs with ``http_retries = 0``, so a single 429 surfaces as a failed call instead of
being absorbed: "every call succeeded" means the emulator sent no 429 at all. Buckets are small
(reads 20, refilled 20 a second; writes 4, refilled 8 a second) to keep the tests short.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor, wait

import pytest
from azure.core.exceptions import HttpResponseError

from emulator.config import EmulatorConfig
from emulator.server import Emulator
from flows.options import with_emulator_principal
from tasks.azure.backup import item_ref, trigger_backup
from tasks.azure.clients import AzureAccess
from tasks.settings import load_settings
from tests.fleets import SUB_A, SUB_B, small_fleet

READS, READ_REFILL = 20, 20.0
WRITES, WRITE_REFILL = 4, 8.0
VMS_PER_SUB = 12
THREADS = 16


@pytest.fixture
def emu():
    config = EmulatorConfig(read_capacity=READS, read_refill=READ_REFILL,
                            write_capacity=WRITES, write_refill=WRITE_REFILL)
    with Emulator(small_fleet(vms_per_sub=VMS_PER_SUB), config=config) as emulator:
        yield emulator


def _access(emu: Emulator, *, pacing: bool = True) -> AzureAccess:
    flags = {"throttles.arm_pacing": pacing, "throttles.http_retries": 0,
             "throttles.arm_reads_per_s": READ_REFILL, "throttles.arm_read_burst": READS,
             "throttles.arm_writes_per_s": WRITE_REFILL, "throttles.arm_write_burst": WRITES}
    settings = with_emulator_principal(load_settings(environ={}, flags=flags),
                                       emu.connection_info())
    return AzureAccess(settings)


def _vm_names(sub: str) -> list[str]:
    return [f"vm-{sub[:4]}-{i}" for i in range(VMS_PER_SUB)]


def _read_vm(access: AzureAccess, sub: str, i: int) -> str:
    names = _vm_names(sub)
    return access.compute(sub).virtual_machines.get("rg-app", names[i % len(names)]).name


def _parallel_reads(access: AzureAccess, sub: str, count: int) -> tuple[int, int, list]:
    """``count`` VM reads from ``THREADS`` threads: (succeeded, 429s, other errors)."""
    ok = throttled = 0
    others: list[BaseException] = []
    with ThreadPoolExecutor(THREADS) as pool:
        futures = [pool.submit(_read_vm, access, sub, i) for i in range(count)]
        for future in futures:
            try:
                future.result()
                ok += 1
            except HttpResponseError as err:
                if err.status_code == 429:
                    throttled += 1
                else:
                    others.append(err)
    return ok, throttled, others


def test_paced_parallel_reads_get_no_429(emu):
    access = _access(emu)
    count = 3 * READS
    started = time.monotonic()
    ok, throttled, others = _parallel_reads(access, SUB_A, count)
    elapsed = time.monotonic() - started
    assert (ok, throttled, others) == (count, 0, [])
    assert emu.stats().get("read") == count  # each read accepted on its one and only try
    stats = access.pacing_stats()
    assert stats["reads"]["requests"] == count and stats["reads"]["throttled"] == 0
    # ARM's bucket admits at most READS at once and READ_REFILL a second after that.
    assert elapsed >= (count - READS) / READ_REFILL


def test_unpaced_parallel_reads_get_429s(emu):
    access = _access(emu, pacing=False)
    ok, throttled, others = _parallel_reads(access, SUB_A, 3 * READS)
    assert others == []
    assert throttled > 0 and ok + throttled == 3 * READS
    assert access.pacing_stats() == {"enabled": False}


def test_subscriptions_are_paced_independently(emu):
    access = _access(emu)
    with ThreadPoolExecutor(THREADS) as pool:
        busy = [pool.submit(_read_vm, access, SUB_A, i) for i in range(3 * READS)]
        # Wait until SUB_A's bucket is empty and its requests queue in the pacer ...
        deadline = time.monotonic() + 30  # a guard against hanging, not a timing claim
        while access.pacing_stats()["subscriptions"].get(SUB_A, {}).get(
                "reads", {}).get("waited", 0) == 0:
            assert time.monotonic() < deadline, "SUB_A's reads never had to wait"
            time.sleep(0.01)
        # ... then SUB_B's reads go straight through.
        names = [_read_vm(access, SUB_B, i) for i in range(READS // 2)]
        wait(busy)
    assert len(names) == READS // 2
    assert all(f.exception() is None for f in busy)
    subs = access.pacing_stats()["subscriptions"]
    assert subs[SUB_A]["reads"]["waited"] > 0 and subs[SUB_A]["reads"]["throttled"] == 0
    assert subs[SUB_B]["reads"] == {"requests": READS // 2, "waited": 0, "wait_s": 0.0,
                                    "throttled": 0}


def test_pacer_follows_the_servers_remaining_header(emu):
    access = _access(emu)
    # Token and connection ready beforehand (a read of another subscription's bucket), so our
    # first SUB_A read follows the other client's closely and little refills in between.
    access.compute(SUB_B).virtual_machines.get("rg-app", _vm_names(SUB_B)[0])
    # Another client of the same principal spends most of SUB_A's read bucket first (in
    # parallel, so little refills meanwhile).
    other = _access(emu, pacing=False)
    assert _parallel_reads(other, SUB_A, READS - 4)[0] == READS - 4
    seen: dict[str, str] = {}
    access.compute(SUB_A).virtual_machines.get(
        "rg-app", _vm_names(SUB_A)[0],
        raw_response_hook=lambda r: seen.update(r.http_response.headers))
    remaining = int(seen["x-ms-ratelimit-remaining-subscription-reads"])
    burst = READS - 4  # what our own count alone would send at once (READS less headroom)
    assert remaining < burst - 2, f"the server refilled to {remaining} before the test began"
    ok, throttled, others = _parallel_reads(access, SUB_A, burst)
    assert (ok, throttled, others) == (burst, 0, [])
    # Fewer requests than the bucket holds, so without the header nothing would have waited.
    reads = access.pacing_stats()["subscriptions"][SUB_A]["reads"]
    assert reads["requests"] == burst + 1 < READS
    assert reads["waited"] > 0 and reads["throttled"] == 0


def test_writes_and_reads_are_separate_buckets(emu):
    access = _access(emu)
    backup = access.backup(SUB_A)
    vault = f"/subscriptions/{SUB_A}/resourceGroups/rg-backup/providers/" \
            f"Microsoft.RecoveryServices/vaults/vault-{SUB_A[:4]}"
    items = [item_ref(f"{vault}/backupFabrics/Azure/protectionContainers/"
                      f"IaasVMContainer;iaasvmcontainerv2;rg-app;{name}/protectedItems/"
                      f"VM;iaasvmcontainerv2;rg-app;{name}") for name in _vm_names(SUB_A)]
    started = time.monotonic()
    with ThreadPoolExecutor(THREADS) as pool:
        writes = [pool.submit(trigger_backup, backup, ref, "2030-01-01T00:00:00Z")
                  for ref in items]
        reads = [pool.submit(_read_vm, access, SUB_A, i) for i in range(READS // 2)]
        wait(writes + reads)
    elapsed = time.monotonic() - started
    assert all(f.exception() is None for f in writes + reads)
    assert all(f.result() for f in writes)  # each backup started: an operation id came back
    stats = access.pacing_stats()
    # Three times the write bucket waited for write tokens; the reads never did.
    assert stats["writes"]["requests"] == len(items) and stats["writes"]["waited"] > 0
    assert stats["reads"]["requests"] == READS // 2 and stats["reads"]["waited"] == 0
    assert stats["writes"]["throttled"] == stats["reads"]["throttled"] == 0
    assert elapsed >= (len(items) - WRITES) / WRITE_REFILL
