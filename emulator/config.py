"""Knobs of one emulator instance: identity, throttles, operation timing and injected faults."""

from __future__ import annotations

import math
import random
import threading
from dataclasses import asdict, dataclass, field, fields
from typing import Any

DEFAULT_TENANT = "72f988bf-0000-4000-8000-00000000e7e1"
DEFAULT_CLIENT_ID = "c0ffee00-0000-4000-8000-00000000e7e1"
DEFAULT_CLIENT_SECRET = "emulator-secret"


@dataclass
class EmulatorConfig:
    tenant_id: str = DEFAULT_TENANT
    client_id: str = DEFAULT_CLIENT_ID
    client_secret: str = DEFAULT_CLIENT_SECRET
    token_lifetime: float = 3600.0
    # Resource Graph per-user quota (guidance-for-throttled-requests: 15 per 5 s).
    arg_quota: int = 15
    arg_window: float = 5.0
    # Resource Graph paging in a changing estate (emulator/churn.py): before each later page of
    # a query, this share of the fleet's VMs is created, deleted or edited (seeded). 0 = still.
    arg_churn: float = 0.0
    # Subscriptions a tenant-scope / management-group-scope query covers; the cut is signalled
    # by x-ms-tenant-subscription-limit-hit. The docs disagree, so both are settings; defaults are
    # each scope's documented number: 10,000 for tenant scope (MD concepts/
    # guidance-for-throttled-requests.md), 5,000 for a management group (MD concepts/
    # query-language.md, "Query scope").
    arg_tenant_subscription_limit: int = 10_000
    arg_management_group_subscription_limit: int = 5_000
    # ARM per-subscription buckets (request-limits-and-throttling).
    read_capacity: int = 250
    read_refill: float = 25.0
    write_capacity: int = 200
    write_refill: float = 10.0
    # Page size of ARM list responses (nextLink paging).
    list_page_size: int = 200
    # Azure VMs one vault may protect: "1,000 Azure VMs per vault" (Backup FAQ
    # backup-azure-backup-faq.md; support matrix backup-support-matrix.md). A new protection
    # in a vault that holds this many items is refused (the error code is unverified).
    vault_vm_limit: int = 1000
    # How long async operations and jobs take (emulator/timing.py): a profile ("fast" for
    # tests, "azure" for Azure's documented durations) divided by time_scale; the explicit
    # values below, when given, win over the profile for their quantity and are not scaled.
    timing: str = "fast"
    time_scale: float = 1.0
    operation_seconds: float | None = None  # item, policy and backup-trigger operations
    job_seconds: float | None = None  # ConfigureBackup jobs a policy edit fans out
    backup_job_seconds: float | None = None  # Backup jobs (on demand, Standard->Enhanced move)
    retry_after: int | None = None  # fixed Retry-After on async responses
    # Recovery Services limits (Azure Backup FAQ).
    policies_per_vault: int = 200
    policy_writes_per_vault_per_day: int = 50
    # How Resource Graph words ARM's protectionState (None: emulator/state.py's table). The
    # real mapping is undocumented; another one shows a client that trusts it going wrong.
    arg_protection_states: dict[str, str] | None = None
    seed: int = 0
    verbose: bool = False


@dataclass
class Faults:
    """Injected failures; rates are probabilities per ARM request, drawn from a seeded RNG."""

    latency_ms: float = 0.0
    rate_429: float = 0.0
    rate_5xx: float = 0.0
    rate_drop: float = 0.0
    retry_after_429: int = 1
    throttle_next: int = 0  # the next N requests answer 429 (then rate_429 applies again)
    stuck_operations: bool = False
    fail_jobs_for: list[str] = field(default_factory=list)  # VM names or ids whose jobs fail
    resource_guard_vaults: list[str] = field(default_factory=list)  # vault names or ids
    # Resource guards (names or ids) on which the principal lacks the Backup MUA Operator role:
    # a critical request naming such a guard answers LinkedAuthorizationFailed
    # (emulator/resource_guard.py).
    mua_operator_missing: list[str] = field(default_factory=list)
    # ARM ids (subscriptions, resource groups, vaults...) the principal has no access to:
    # ARM requests under them get 403, Resource Graph queries naming them get 403.
    forbidden_scopes: list[str] = field(default_factory=list)
    # Subscriptions whose Resource Graph queries (when named in the request) answer 503, for
    # partial-result tests: the scope lists fine, one batch of it cannot be read.
    arg_unavailable_subscriptions: list[str] = field(default_factory=list)
    # VMs (names or ids), or resource groups / subscriptions (ids) holding them, on which the
    # principal lacks Microsoft.Compute/virtualMachines/write: enabling backup needs it
    # (MD backup-rbac-rs-vault.md, "Minimum role requirements for Azure VM backup": Virtual
    # Machine Contributor on the VM). What Azure answers then is unverified; the emulator
    # answers ARM's 403 LinkedAuthorizationFailed on the protected-item PUT.
    vm_write_denied: list[str] = field(default_factory=list)
    # The principal holds only Reader: every ARM write or delete answers 403 AuthorizationFailed.
    read_only: bool = False
    # Refuse a policy PUT that drops snapshotConsistencyType from a crash-consistent policy
    # (whether Azure accepts that revert is undocumented, api-notes 1.4): tests the fallback.
    refuse_consistency_revert: bool = False
    object_locked: bool = True  # BMSUserErrorObjectLocked while an operation runs on the item
    expire_tokens: bool = False  # treat every token as expired (clock skew, revoked session)
    # Shapes Azure allows for our writes that the happy path never shows:
    # a policy PUT answered 200 with the policy, applied at once (ProtectionPolicyResource.tsp:
    # ArmResourceUpdatedResponse | AcceptedResponse).
    policy_put_answers_200: bool = False
    # Policy names (or ids) whose next edit applies, then fails part-way: the policy is stored,
    # the ConfigureBackup jobs of the second half of its items fail, the operation ends Failed.
    # Each name is used once.
    policy_partial_failure: list[str] = field(default_factory=list)
    # VM names or ids whose item change succeeds (operation Succeeded, policy re-pointed) while
    # its ConfigureBackup job fails afterwards.
    jobs_fail_after_operation: list[str] = field(default_factory=list)
    # VM names or ids whose protected item someone deletes (stop protection with delete data,
    # out of band) in the instant its change completes: the change's job says Completed while
    # the item is already gone, the narrowest window a client can meet.
    items_deleted_after_change: list[str] = field(default_factory=list)
    # Recovery Services' own per-action throttling (api-notes section 5: the error code and
    # message from hashicorp/terraform-provider-azurerm #26874; Microsoft publishes no numbers).
    # Answered 429 ResourceRequestsThrottled while the subscription's remaining-requests header
    # stays high. Two ways to get it:
    # - one-shot: the next N requests under Microsoft.RecoveryServices;
    provider_throttle_next: int = 0
    # - as a rate: a token bucket per (subscription, action) for writes (PUT, POST, PATCH)
    #   under Microsoft.RecoveryServices; a protected-item PUT is one action, a policy PUT
    #   another. ``provider_write_rate`` tokens a second (None: off), ``provider_write_burst``
    #   the bucket's size (None: one second's worth, at least 1; our choice, the real shape is
    #   unpublished). Taken after ARM's bucket: a request Recovery Services throttles has
    #   spent ARM's write token (unverified either way). These are faults, not configuration,
    #   so a test can turn them on and off through /_emulator/faults while a wave runs.
    provider_write_rate: float | None = None
    provider_write_burst: int | None = None
    # The Retry-After on ResourceRequestsThrottled, both ways. Unverified: no source shows the
    # value Recovery Services sends. 60 s is the only Retry-After this provider is documented
    # to send (its async 202s, emulator/timing.py's AZURE_RETRY_AFTER), and shorter than a
    # throttle-free wait of two minutes would make a client idle. Not divided by the time scale
    # (no 429 Retry-After is, emulator/timing.py).
    provider_throttle_retry_after: int = 60
    # The global per-subscription bucket shared by every principal (15x the per-principal one,
    # request-limits-and-throttling.md); set these to make other principals' load bind.
    global_capacity: int | None = None
    global_refill: float | None = None

    def __post_init__(self) -> None:
        self._rng = random.Random(0)
        self._lock = threading.Lock()
        self.provider_bucket_size()  # a bad rate is refused when the faults are made

    def reseed(self, seed: int) -> None:
        self._rng = random.Random(seed)

    def take_throttle_next(self) -> bool:
        return self._take_one("throttle_next")

    def take_provider_throttle(self) -> bool:
        return self._take_one("provider_throttle_next")

    def provider_bucket_size(self) -> tuple[int, float] | None:
        """(capacity, refill per second) of Recovery Services' per-action write buckets, or
        None while the rate is off."""
        rate = self.provider_write_rate
        if rate is None:
            return None
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not rate > 0:
            raise ValueError(f"provider_write_rate {rate!r}: a positive rate per second, or None")
        burst = self.provider_write_burst
        if burst is None:
            burst = max(1, math.ceil(rate))
        if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
            raise ValueError(f"provider_write_burst {burst!r}: at least 1 request, or None")
        return int(burst), float(rate)

    def _take_one(self, name: str) -> bool:
        with self._lock:
            left = getattr(self, name)
            if left <= 0:
                return False
            setattr(self, name, left - 1)
            return True

    def roll(self, rate: float) -> bool:
        if rate <= 0:
            return False
        with self._lock:
            return self._rng.random() < rate

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if not k.startswith("_")}

    def update(self, changes: dict[str, Any]) -> None:
        """Apply a partial update (from ``/_emulator/faults`` or flags); unknown keys (KeyError)
        and a bad provider rate (ValueError) are errors and change nothing."""
        known = {f.name: f for f in fields(self)}
        for key in changes:
            if key not in known:
                raise KeyError(f"unknown fault {key!r}; known: {', '.join(sorted(known))}")
        before = {key: getattr(self, key) for key in changes}
        for key, value in changes.items():
            setattr(self, key, value)
        try:
            self.provider_bucket_size()  # a bad rate is refused here, not on the next request
        except (TypeError, ValueError) as exc:
            for key, value in before.items():
                setattr(self, key, value)
            raise ValueError(str(exc)) from exc

    def job_fails_for(self, vm_id: str) -> bool:
        return named_in(vm_id, self.fail_jobs_for)

    def job_fails_after_operation(self, vm_id: str) -> bool:
        return named_in(vm_id, self.jobs_fail_after_operation)

    def item_deleted_after_change(self, vm_id: str) -> bool:
        return named_in(vm_id, self.items_deleted_after_change)

    def vm_write_refused(self, vm_id: str) -> bool:
        """The principal may not write ``vm_id`` (named, or under a named scope)."""
        if named_in(vm_id, self.vm_write_denied):
            return True
        lower = vm_id.lower()
        return any(lower.startswith(scope.lower().rstrip("/") + "/")
                   for scope in self.vm_write_denied)

    def take_partial_failure(self, policy_id: str) -> bool:
        """True once per listed policy: its next edit fails part-way."""
        with self._lock:
            name = policy_id.rstrip("/").rsplit("/", 1)[-1].lower()
            keep = [v for v in self.policy_partial_failure
                    if v.lower() not in (policy_id.lower(), name)]
            hit = len(keep) != len(self.policy_partial_failure)
            self.policy_partial_failure = keep
            return hit

    def forbidden(self, path: str) -> str | None:
        """The forbidden scope that ``path`` falls under, if any."""
        lower = path.lower().rstrip("/")
        for scope in self.forbidden_scopes:
            prefix = scope.lower().rstrip("/")
            if lower == prefix or lower.startswith(prefix + "/"):
                return scope
        return None

    def guarded(self, vault_id: str) -> bool:
        name = vault_id.rstrip("/").rsplit("/", 1)[-1].lower()
        wanted = {v.lower() for v in self.resource_guard_vaults}
        return vault_id.lower() in wanted or name in wanted


def named_in(resource_id: str, wanted: list[str]) -> bool:
    """``resource_id`` is named in ``wanted`` by its full id or its last segment."""
    name = resource_id.rstrip("/").rsplit("/", 1)[-1].lower()
    low = {v.lower() for v in wanted}
    return resource_id.lower() in low or name in low
