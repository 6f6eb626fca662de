"""The Resource Graph queries, one ``.kql`` file each, pasteable into Resource Graph Explorer."""

from __future__ import annotations

from functools import cache
from pathlib import Path

HERE = Path(__file__).parent


@cache
def load(name: str) -> str:
    """The text of ``<name>.kql``."""
    return (HERE / f"{name}.kql").read_text(encoding="utf-8")
