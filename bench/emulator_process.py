"""The emulator in a process of its own, for the benchmarks: started from a command that prints
its connection line (``ccmigrate emulator serve`` or a benchmark's own ``--serve``), asked for
its request counters, measured with psutil, stopped with SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path


def serve_flags(*, arg_churn: float = 0.0, timing: str | None = None,
                time_scale: float | None = None, provider_write_rate: float | None = None,
                provider_write_burst: int | None = None) -> list[str]:
    """``ccmigrate emulator serve`` flags a benchmark passes through: ``--arg-churn`` (VMs
    changing between Resource Graph pages), ``--timing`` and ``--time-scale``,
    ``--provider-write-rate`` and ``--provider-write-burst`` (Recovery Services' own write
    throttling), each left out when not given, so the emulator's defaults apply and the
    benchmark says which it used."""
    out: list[str] = []
    if provider_write_rate is not None:
        out += ["--provider-write-rate", str(provider_write_rate)]
    if provider_write_burst is not None:
        out += ["--provider-write-burst", str(provider_write_burst)]
    if arg_churn:
        out += ["--arg-churn", str(arg_churn)]
    if timing:
        out += ["--timing", timing]
    if time_scale is not None:
        out += ["--time-scale", str(time_scale)]
    return out


def add_serve_arguments(parser, *, provider: bool = False) -> None:
    """The pass-through flags of ``serve_flags`` on a benchmark's argparse parser; the
    provider-throttling ones only where the benchmark passes them on (``provider``)."""
    parser.add_argument("--arg-churn", type=float, default=0.0,
                        help="emulator: share of VMs created, deleted or edited between two "
                        "Resource Graph pages of one query (default 0: a still estate)")
    parser.add_argument("--timing", choices=("fast", "azure"), default=None,
                        help="emulator timing profile (default: the emulator's, fast)")
    parser.add_argument("--time-scale", type=float, default=None,
                        help="emulator: divide Azure's service durations by K")
    if not provider:
        return
    parser.add_argument("--provider-write-rate", type=float, default=None,
                        help="emulator: Recovery Services' own throttling, writes per second "
                        "per subscription and action (default: off)")
    parser.add_argument("--provider-write-burst", type=int, default=None,
                        help="emulator: that bucket's burst (default: one second's worth)")


class EmulatorProcess:
    def __init__(self, argv: list[str], log: Path, cwd: Path) -> None:
        self.argv, self.log, self.cwd = argv, log, cwd
        self.proc: subprocess.Popen | None = None
        self.info: dict = {}
        self.line = ""
        self.load_s = 0.0  # from start until the connection line arrived

    def __enter__(self) -> EmulatorProcess:
        start = time.perf_counter()
        err = self.log.open("wb")
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=err,
                                     stdin=subprocess.DEVNULL, cwd=str(self.cwd))
        assert self.proc.stdout is not None
        self.line = self.proc.stdout.readline().decode()
        if not self.line.strip():
            self.proc.wait()
            raise SystemExit(f"the emulator did not start (exit {self.proc.returncode}); see "
                             f"{self.log}")
        self.load_s = time.perf_counter() - start
        self.info = json.loads(self.line)
        return self

    def stats(self) -> dict[str, int]:
        import requests

        resp = requests.get(f"{self.info['endpoint']}/_emulator/stats",
                            verify=self.info["ca_bundle"], timeout=60)
        resp.raise_for_status()
        return resp.json()["requests"]

    def all_stats(self) -> dict[str, dict[str, int]]:
        """The whole ``/_emulator/stats`` answer: requests passed, received, and the 429s by
        code and by kind."""
        import requests

        resp = requests.get(f"{self.info['endpoint']}/_emulator/stats",
                            verify=self.info["ca_bundle"], timeout=60)
        resp.raise_for_status()
        return resp.json()

    def cpu_s(self) -> float:
        import psutil

        assert self.proc is not None
        t = psutil.Process(self.proc.pid).cpu_times()
        return t.user + t.system

    def rss(self) -> int:
        import psutil

        assert self.proc is not None
        return psutil.Process(self.proc.pid).memory_info().rss

    def __exit__(self, *exc: object) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
