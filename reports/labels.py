"""The words reports show people for readiness values: one mapping, so the console, Excel,
Prefect artifacts and diffs never disagree on what a state is called."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

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


def percent(count: int, total: int) -> str:
    """``count / total`` as Excel's ``0.0%`` format shows it (halves round up, decided on the
    exact fraction), so the terminal, the artifacts and the Summary sheet print the same digits:
    Python's float formatting would print 199/2000 as 9.9% where Excel shows 10.0%."""
    if not total:
        return "0.0%"
    exact = Decimal(100 * count) / Decimal(total)
    return f"{exact.quantize(Decimal('0.1'), rounding=ROUND_HALF_UP)}%"
