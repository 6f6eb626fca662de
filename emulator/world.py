"""Everything one emulator instance knows, shared by the route modules."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .auth import TokenIssuer
from .config import EmulatorConfig, Faults
from .http import ArmError, Request, Response
from .state import VM, FleetState
from .throttle import BucketSet, QuotaWindow


@dataclass
class World:
    state: FleetState
    config: EmulatorConfig
    faults: Faults
    base_url: str = ""
    issuer: TokenIssuer | None = None
    reads: BucketSet = field(init=False)
    writes: BucketSet = field(init=False)
    arg_quota: QuotaWindow = field(init=False)
    # Callbacks run before every ARM request: completes operations and jobs that are due, so
    # state changes become visible exactly when the operation's time is up.
    tickers: list[Callable[[], None]] = field(default_factory=list)
    services: dict[str, Any] = field(default_factory=dict)
    # Requests that passed the throttles, by kind (read, write, delete, arg...).
    request_count: dict[str, int] = field(default_factory=dict)
    # Every request of those kinds that reached the emulator (throttled and faulted ones too),
    # and the 429s among them by error code and by kind: a benchmark's share of requests
    # answered 429 is sum(throttled) / sum(received).
    received: dict[str, int] = field(default_factory=dict)
    throttled: dict[str, int] = field(default_factory=dict)
    throttled_by_kind: dict[str, int] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)
    # Lower ids of the VMs present when the emulator started: what every vault has discovered
    # before its first container refresh (emulator/backup_discovery.py).
    vms_at_start: set[str] = field(init=False)

    def __post_init__(self) -> None:
        self.vms_at_start = {vm["id"].lower() for vm in self.state.of_type(VM)}
        cfg = self.config
        self.reads = BucketSet(cfg.read_capacity, cfg.read_refill)
        self.writes = BucketSet(cfg.write_capacity, cfg.write_refill)
        self.arg_quota = QuotaWindow(cfg.arg_quota, cfg.arg_window)
        self.faults.reseed(cfg.seed)

    def tick(self) -> None:
        for ticker in self.tickers:
            ticker()

    def count(self, kind: str) -> None:
        with self.lock:
            self.request_count[kind] = self.request_count.get(kind, 0) + 1

    def count_received(self, kind: str) -> None:
        with self.lock:
            self.received[kind] = self.received.get(kind, 0) + 1

    def count_throttled(self, kind: str, code: str) -> None:
        with self.lock:
            self.throttled[code] = self.throttled.get(code, 0) + 1
            self.throttled_by_kind[kind] = self.throttled_by_kind.get(kind, 0) + 1

    def stats(self) -> dict[str, dict[str, int]]:
        """What ``/_emulator/stats`` answers."""
        with self.lock:
            return {"requests": dict(self.request_count), "received": dict(self.received),
                    "throttled": dict(self.throttled),
                    "throttled_by_kind": dict(self.throttled_by_kind)}

    def require_subscription(self, subscription_id: str) -> None:
        if not self.state.subscription_exists(subscription_id):
            raise ArmError(
                404,
                "SubscriptionNotFound",
                f"The subscription '{subscription_id}' could not be found.",
            )


def new_id() -> str:
    return str(uuid.uuid4())


def page_list(
    world: World,
    req: Request,
    items: list[dict],
    *,
    page_size: int | None = None,
    next_key: str = "$skiptoken",
) -> Response:
    """ARM list paging: ``{"value": [...], "nextLink": ...}`` with an offset skip token."""
    size = page_size or world.config.list_page_size
    try:
        start = int(req.query.get(next_key.lower(), "0") or 0)
    except ValueError as exc:
        raise ArmError(
            400,
            "InvalidSkipToken",
            f"The skip token '{req.query.get(next_key.lower())}' is not valid for this list.",
        ) from exc
    chunk = items[start : start + size]
    body: dict[str, Any] = {"value": chunk}
    if start + size < len(items):
        params = [f"{k}={v}" for k, v in req.query.items() if k != next_key.lower()]
        params.append(f"{next_key}={start + size}")
        body["nextLink"] = f"{world.base_url}{req.raw_path}?{'&'.join(params)}"
    return Response(200, body)
