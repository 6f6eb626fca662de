"""Shared fixtures: an HTTPS emulator per test module over a small fleet, and SDK wiring."""

from __future__ import annotations

import os

import pytest

from emulator.server import Emulator
from tests.fleets import small_fleet

# Telemetry off and no stray proxy for loopback, for every test process.
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ["NO_PROXY"] = "127.0.0.1,localhost"


@pytest.fixture(scope="module")
def emulator():
    """A running emulator over ``tests.fleets.small_fleet()``; state persists within a module."""
    with Emulator(small_fleet()) as emu:
        yield emu


@pytest.fixture
def fresh_emulator():
    """A running emulator whose state no other test has touched."""
    with Emulator(small_fleet()) as emu:
        yield emu


@pytest.fixture(scope="session")
def prefect_api():
    """One Prefect API server for the whole test session (start-up costs seconds). CLI runs in
    subprocesses inherit ``PREFECT_API_URL`` and use it instead of starting their own."""
    from flows.prefect_runtime import prefect_runtime

    with prefect_runtime() as url:
        yield url
