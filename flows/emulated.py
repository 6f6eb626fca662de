"""Run a command against an in-process emulator (``--demo N`` / ``--fleet FILE``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from emulator.config import EmulatorConfig
from emulator.server import Emulator
from tasks.errors import InputError
from tasks.settings import Settings

from .options import DEFAULT_DEMO_VMS, with_emulator_principal

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


def emulator_config(timing: str = "fast", time_scale: float = 1.0,
                    **values: object) -> EmulatorConfig:
    """An emulator configuration from the timing flags, bad values refused as input errors."""
    from emulator.timing import check

    try:
        check(timing, time_scale)
    except ValueError as exc:
        flag = "--timing" if str(exc).startswith("timing") else "--time-scale"
        raise InputError(f"{flag}: {exc}; e.g. --timing azure --time-scale 60") from exc
    return EmulatorConfig(timing=timing, time_scale=time_scale, **values)  # type: ignore[arg-type]


@contextlib.contextmanager
def emulated(settings: Settings, fleet: dict,
             config: EmulatorConfig | None = None) -> Iterator[tuple[Emulator, Settings]]:
    """Start the emulator over ``fleet``; yield it and settings pointing at it (endpoint, CA,
    emulator credential). The ``cloud`` setting is left as the user set it."""
    with Emulator(fleet, config=config) as emu:
        yield emu, with_emulator_principal(settings, emu.connection_info())


@contextlib.contextmanager
def azure_target(settings: Settings, demo: int | None, fleet: Path | None,
                 config: EmulatorConfig | None = None) -> Iterator[Settings]:
    """Settings for where a command's Azure calls go: an in-process emulator over a generated
    fleet (``--demo``) or a fleet file (``--fleet``), else wherever the settings point."""
    if demo is not None and fleet is not None:
        raise InputError("--demo and --fleet both start an emulator; give only one")
    if demo is None and fleet is None:
        if config is not None and config.timing != "fast":
            raise InputError(f"--timing {config.timing}: it sets the timing of the emulator "
                             "--demo or --fleet starts; add one of them, or drop --timing")
        yield settings
        return
    data = load_fleet_file(fleet) if fleet else demo_fleet(demo or DEFAULT_DEMO_VMS)
    with emulated(settings, data, config) as (_emu, emu_settings):
        yield emu_settings
