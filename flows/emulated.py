"""Run a command against an in-process emulator (``--demo N`` / ``--fleet FILE``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from emulator.config import EmulatorConfig
from emulator.server import Emulator
from tasks.errors import InputError
from tasks.settings import Settings

from .options import with_emulator_principal

DEMO_SUBSCRIPTIONS = 4
DEMO_SEED = 7


def load_fleet_file(path: Path) -> dict:
    from emulator.fleet import FleetError, load_fleet

    try:
        return load_fleet(path)
    except FleetError as err:
        raise InputError(str(err)) from err


def demo_fleet(vms: int, seed: int = DEMO_SEED, subscriptions: int | None = None) -> dict:
    from emulator.generator import generate_fleet

    if vms < 1:
        raise InputError(f"--demo needs a positive number of VMs; got {vms}")
    subs = subscriptions or max(1, min(DEMO_SUBSCRIPTIONS, vms // 50 or 1))
    return generate_fleet(vms=vms, subscriptions=subs, seed=seed)


@contextlib.contextmanager
def emulated(settings: Settings, fleet: dict,
             config: EmulatorConfig | None = None) -> Iterator[tuple[Emulator, Settings]]:
    """Start the emulator over ``fleet``; yield it and settings pointing at it (endpoint, CA,
    emulator credential). The ``cloud`` setting is left as the user set it."""
    with Emulator(fleet, config=config) as emu:
        yield emu, with_emulator_principal(settings, emu.connection_info())
