"""How long the backup service takes, and the ``Retry-After`` it sends on async answers.

Two profiles (``EmulatorConfig.timing``):

- ``fast`` (the default, for unit tests): every operation and job takes a fraction of a second
  and ``Retry-After`` is 0 for sub-second work, so pollers spin quickly.
- ``azure``: each duration is drawn, seeded, from the range in ``AZURE`` below, grounded in
  Microsoft's docs and REST examples (each range names its source; where the range is our own
  inference from a single example it says so). Async 202s and running-operation reads carry
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
    """A duration range in seconds (at scale 1), drawn uniformly, and where it comes from."""

    low: float
    high: float
    source: str


# Azure's timings. The kinds:
# - item_operation: a protected-item PUT (enable protection, change policy) until its operation
#   and its ConfigureBackup job end (the job is what the operation waits for).
# - policy_operation: a policy PUT or DELETE until the policy is stored.
# - policy_item_job: each ConfigureBackup job a policy edit fans out to an item on the policy,
#   counted from the end of the policy operation.
# - backup_operation: an on-demand backup POST until the Backup job has started.
# - backup_job: an on-demand (or scheduled) Azure VM Backup job, snapshot and transfer.
# - enhanced_move_job: the Backup job Azure starts itself when an item moves from a Standard
#   (V1) to an Enhanced (V2) policy.
AZURE: dict[str, Span] = {
    "item_operation": Span(
        20, 90,
        "ListJobs.json (specs, RecoveryServicesBackup 2026-11-01 Common): a ConfigureBackup job "
        "of PT31.3066291S; the 202's Retry-After: 60 (ConfigureProtection.json) says Azure "
        "itself expects to need about a minute. The 20-90 s spread around them is our "
        "inference."),
    "policy_operation": Span(
        10, 60,
        "IaaS_v2_hourly.json / ProtectionPolicies_CreateOrUpdate_*.json: 202 with Retry-After: "
        "60; no published duration, so the range below one Retry-After is our inference."),
    "policy_item_job": Span(
        20, 90,
        "How-to (backup-azure-vms-agentless-multi-disk-crash-consistent.md): editing a policy "
        "creates one ConfigureBackup job per associated VM; same range as item_operation "
        "(ListJobs.json's 31 s job)."),
    "backup_operation": Span(
        2, 20,
        "TriggerBackup_Post.json: 202 with Retry-After: 60 and the job id in the operation "
        "status (backup-azure-arm-userestapi-backupazurevms.md); how soon the job starts is "
        "not published: our inference."),
    "backup_job": Span(
        15 * 60, 3 * 3600,
        "backup-azure-vms-introduction.md and backup-azure-vms-troubleshoot.md: the snapshot "
        "phase takes minutes, the transfer to the vault from minutes to hours depending on "
        "changed data; GetJobDetails.json shows a Backup job InProgress (Take Snapshot, "
        "Transfer data to vault). 15 min - 3 h is our reading of those."),
    "enhanced_move_job": Span(
        30 * 60, 4 * 3600,
        "backup-azure-vm-migrate-enhanced-policy.md: moving a VM from Standard to Enhanced "
        "triggers a backup job that 'might take up to several hours'."),
}
# Every Microsoft 202 example for item writes, policy writes and backup triggers carries
# Retry-After: 60 (ConfigureProtection.json, IaaS_v2_hourly.json, TriggerBackup_Post.json,
# ProtectedItemOperationResults.json).
AZURE_RETRY_AFTER = 60

# The fast profile: what the emulator always did before it had profiles.
FAST: dict[str, float] = {
    "item_operation": 0.3,
    "policy_operation": 0.3,
    "policy_item_job": 0.3,
    "backup_operation": 0.3,
    "backup_job": 0.5,
    "enhanced_move_job": 0.5,
}
# Which explicit EmulatorConfig field replaces which kind.
_OVERRIDES = {
    "item_operation": "operation_seconds",
    "policy_operation": "operation_seconds",
    "backup_operation": "operation_seconds",
    "policy_item_job": "job_seconds",
    "backup_job": "backup_job_seconds",
    "enhanced_move_job": "backup_job_seconds",
}


def check(profile: str, scale: float) -> None:
    """Raise ValueError for a profile or scale the emulator cannot use."""
    if profile not in PROFILES:
        raise ValueError(f"timing {profile!r}: use one of {', '.join(PROFILES)}")
    if not (scale > 0 and math.isfinite(scale)):
        raise ValueError(f"time scale {scale!r}: a positive number, e.g. 60")


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
            drawn = self._rng.uniform(span.low, span.high)
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
