"""One emulator over the contract fleet per read-only contract module."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from emulator.server import Emulator
from tests.contract.fleet_from_examples import running


@pytest.fixture(scope="module")
def world() -> Iterator[tuple[Emulator, Any]]:
    """The emulator and an AzureAccess for it; the modules using it only read."""
    with running() as w:
        yield w
