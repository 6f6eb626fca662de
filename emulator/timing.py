"""How long the backup service takes, and the ``Retry-After`` it sends on async answers.

Two profiles (``EmulatorConfig.timing``):

- ``fast`` (the default, for unit tests): every operation and job takes a fraction of a second
  and ``Retry-After`` is 0 for sub-second work, so pollers spin quickly.
- ``azure``: each duration is drawn, seeded, from the range in ``AZURE`` below, grounded in
  Microsoft's docs, REST examples and a maintainer's word (each range names its source; where a
  number is our own inference it says so). Async 202s and running-operation reads carry
  ``Retry-After: 60``, as every Microsoft 202 example for these writes does.

``time_scale`` K divides the *service* durations and the async ``Retry-After`` by K (the latter
rounded up, never below 1 s). It never touches ARM's token buckets, the 429 ``Retry-After``s,
Resource Graph's quota window or what timestamps mean: a job that took 31 s at scale 1 shows
``PT0.52S`` at scale 60, because it really did take that long here.

Explicit values win: ``operation_seconds``, ``job_seconds``, ``backup_job_seconds`` and
``retry_after`` (the serve flags ``--operation-seconds`` / ``--retry-after``) replace what the
profile would draw for that quantity, exactly as given (not scaled), under either profile.
"""

from __future__ import annotations

import math
import random
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config import EmulatorConfig

PROFILES = ("fast", "azure")


@dataclass(frozen=True)
class Span:
    """A duration in seconds (at scale 1): drawn from a triangular distribution between
    ``low`` and ``high`` peaking at ``typical``, with where those numbers come from."""

    low: float
    typical: float
    high: float
    source: str


# Azure's timings, per kind of work. "specs" = Azure/azure-rest-api-specs RecoveryServicesBackup
# examples 2026-11-01 (copied in tests/contract/rest_examples); "MD" = MicrosoftDocs/azure-docs
# articles/backup. Where a number is ours, the source says "inference".
AZURE: dict[str, Span] = {
    # A protected-item PUT (enable protection, change policy) until its operation and its
    # ConfigureBackup job end.
    "item_operation": Span(
        30, 60, 300,
        "Azure/azure-rest-api-specs#4032 (a Microsoft engineer): 'these operations usually take "
        "between 1 min and 5 mins'; specs ListJobs.json: a ConfigureBackup job of PT31.3S. "
        "The 30 s low is inference from that job."),
    # A policy PUT or DELETE until the policy is stored.
    "policy_operation": Span(
        5, 30, 300,
        "inference: no example gives a duration (ProtectionPolicyOperationStatuses_Get.json "
        "has startTime == endTime); the high is azure-rest-api-specs#4032's 5 minutes."),
    # Each ConfigureBackup job a policy edit fans out to an item on it, from the edit's end.
    "policy_item_job": Span(
        30, 31, 300,
        "specs ListJobs.json: ConfigureBackup job PT31.3066291S; the 300 s high is "
        "azure-rest-api-specs#4032's 5 minutes (inference that job and operation take about "
        "as long)."),
    # An on-demand backup POST until its operation succeeded (the Backup job has started).
    "backup_operation": Span(
        1, 5, 60,
        "MD backup-azure-arm-userestapi-backupazurevms.md: the captured trigger's operation "
        "started and ended in the same second; typical and high are inference."),
    # An Azure VM Backup job (snapshot, then transfer to the vault).
    "backup_job": Span(
        600, 1223, 28800,
        "MD backup-azure-arm-userestapi-managejobs.md: a Backup job of 00:20:23 (1223 s); "
        "MD backup-azure-vms-introduction.md: 'at peak times it can take up to eight hours'. "
        "The 10 min low is inference."),
    # A container refresh (discovery of the VMs a vault could protect) until its operation
    # result answers 204.
    "container_refresh": Span(
        5, 20, 120,
        "inference: no example gives a duration (RefreshContainers_OperationResults.json shows "
        "only the 202 and the 204); azure-cli polls it every 5 s (custom_help.py "
        "track_refresh_operation), so seconds rather than minutes."),
    # The Backup job Azure starts itself when an item moves from Standard to Enhanced.
    "enhanced_move_job": Span(
        1223, 3600, 10800,
        "MD backup-azure-vm-migrate-enhanced-policy.md: the migration 'triggers a backup job "
        "... [that] might take up to several hours'; the low is a Backup job's typical "
        "(managejobs.md), 1 h typical and 3 h high are inference."),
}
# Every Microsoft 202 example for item writes, policy writes and backup triggers carries
# Retry-After: 60 (specs ConfigureProtection.json, StopProtection.json, IaaS_v2_hourly.json,
# TriggerBackup_Post.json, ProtectedItemOperationResults.json; a captured 202 in MD
# backup-azure-arm-userestapi-backupazurevms.md). Whether a running operation's *status* carries
# one is unverified (ProtectedItemOperationStatus.json has no headers): the emulator sends the
# same, and ccmigrate works either way (azure-core falls back to its polling interval).
AZURE_RETRY_AFTER = 60

# The fast profile: what the emulator always did before it had profiles.
FAST: dict[str, float] = {
    "item_operation": 0.3,
    "policy_operation": 0.3,
    "policy_item_job": 0.3,
    "backup_operation": 0.3,
    "backup_job": 0.5,
    "enhanced_move_job": 0.5,
    "container_refresh": 0.3,
}
# Which explicit EmulatorConfig field replaces which kind.
_OVERRIDES = {
    "item_operation": "operation_seconds",
    "policy_operation": "operation_seconds",
    "backup_operation": "operation_seconds",
    "policy_item_job": "job_seconds",
    "backup_job": "backup_job_seconds",
    "enhanced_move_job": "backup_job_seconds",
    "container_refresh": "operation_seconds",
}


def check(profile: str, scale: float) -> None:
    """Raise ValueError for a profile or scale the emulator cannot use."""
    if profile not in PROFILES:
        raise ValueError(f"timing {profile!r}: use one of {', '.join(PROFILES)}")
    if not (scale > 0 and math.isfinite(scale)):
        raise ValueError(f"time scale {scale!r}: a positive number, e.g. 60")
    if profile == "fast" and scale != 1:
        raise ValueError(f"time scale {scale:g} scales Azure's durations: use it with the "
                         "azure timing (the fast one is sub-second already)")


class Timing:
    """Draws durations for one emulator instance (seeded, thread-safe)."""

    def __init__(self, config: EmulatorConfig) -> None:
        check(config.timing, config.time_scale)
        self.config = config
        self.profile = config.timing
        self.scale = float(config.time_scale)
        self._rng = random.Random(f"timing-{config.seed}")
        self._lock = threading.Lock()

    def seconds(self, kind: str) -> float:
        """The duration of one operation or job of ``kind``, in real seconds here."""
        explicit = getattr(self.config, _OVERRIDES[kind])
        if explicit is not None:
            return max(0.0, float(explicit))
        if self.profile == "fast":
            return FAST[kind]
        span = AZURE[kind]
        with self._lock:
            drawn = self._rng.triangular(span.low, span.high, span.typical)
        return drawn / self.scale

    def retry_after(self, remaining: float, duration: float) -> str:
        """``Retry-After`` for an async answer about work with ``remaining`` of ``duration``
        seconds left."""
        if self.config.retry_after is not None:
            return str(self.config.retry_after)
        if self.profile == "azure":
            return str(max(1, math.ceil(AZURE_RETRY_AFTER / self.scale)))
        if duration < 1:
            return "0"
        return str(max(1, math.ceil(remaining)))

    def describe(self) -> str:
        """One line for logs and the demo: which timing is in force."""
        if self.profile == "fast":
            return "fast (sub-second operations and jobs, Retry-After 0)"
        return (f"azure at time scale {self.scale:g} (durations from Microsoft's docs and "
                f"examples divided by {self.scale:g}, Retry-After "
                f"{max(1, math.ceil(AZURE_RETRY_AFTER / self.scale))} s)")
