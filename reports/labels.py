"""The words reports show people for readiness values: one mapping, so the console, Excel,
Prefect artifacts and diffs never disagree on what a state is called."""

from __future__ import annotations

from tasks.inventory.schema import READINESS_VALUES

# Ordered like READINESS_VALUES: reports list readiness states in this order.
READINESS_LABELS: dict[str, str] = {
    "ready": "Ready",
    "ready_with_conditions": "Ready with conditions",
    "not_ready": "Not ready",
    "already_crash_consistent": "Already crash-consistent",
    "not_protected": "Not protected",
    "unknown": "Unknown",
}
assert tuple(READINESS_LABELS) == READINESS_VALUES, "a readiness value lacks a label"


def readiness_label(value: str) -> str:
    """The label for ``value``; an unlabelled value (from a newer tool) is shown as stored."""
    return READINESS_LABELS.get(value, value)
