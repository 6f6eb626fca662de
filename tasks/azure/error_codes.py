"""Every Azure error code and HTTP status ccmigrate branches on, with where each is documented.

Why a table: several codes the product branched on were chosen by the emulator, not taken from
Azure. Each entry here names its source (doc path, spec path, SDK/CLI code, or public issue URL).
An entry no public source confirms has ``confirmed=False`` and a ``message`` regex, and
:func:`matches` then accepts the error by its message as well, so a call site works whichever
code the real service sends.

Paths: ``MD`` = MicrosoftDocs/azure-docs ``articles/...``; ``specs`` =
Azure/azure-rest-api-specs ``specification/...``.

``kind`` says what the error means for ccmigrate:

- ``throttle``: wait for ``Retry-After`` and send again; never a VM failure.
- ``retryable``: nothing is wrong with the VM; the change was not made; a later run retries.
- ``refusal``: Azure refused the request as a matter of rights or rules (missing role, guard
  approval, a vault limit); nothing changed; the operator must act, then re-run.
- ``failure``: the change (or its job) failed for this VM or policy.
- ``absent``: the thing read is not there (a normal answer for "does it exist yet").
- ``auth``: no usable token; stop, nothing was sent that changed anything.

The ARM-to-Resource-Graph protection state mapping at the end is **unverified**: no source maps
Recovery Services' ``protectionState`` to Resource Graph's ``currentProtectionState``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

Kind = Literal["throttle", "retryable", "refusal", "failure", "absent", "auth"]


@dataclass(frozen=True)
class AzureErrorCode:
    """One Azure error code: what it is, what ccmigrate does with it, and who says so."""

    code: str
    status: int | None  # HTTP status it arrives with; None inside an operation status or job
    kind: Kind
    meaning: str  # what it means for ccmigrate
    source: str | None  # doc path, spec path, SDK/CLI path or issue URL; None when none found
    confirmed: bool  # a public source shows Azure sending this code
    message: str | None = None  # regex over the error message (case-insensitive)
    where: str = "arm"  # arm | recoveryservices | resourcegraph | entra | job

    def message_matches(self, text: str) -> bool:
        return bool(self.message) and re.search(self.message, text, re.IGNORECASE) is not None


def _entries(*items: AzureErrorCode) -> Mapping[str, AzureErrorCode]:
    table = {item.code: item for item in items}
    assert len(table) == len(items), "duplicate code in the table"
    return MappingProxyType(table)


_ARM_ERRORS = "MD azure-resource-manager/troubleshooting/common-deployment-errors.md (Error codes)"

CODES: Mapping[str, AzureErrorCode] = _entries(
    # -- throttling ------------------------------------------------------------------------
    AzureErrorCode(
        "SubscriptionRequestsThrottled", 429, "throttle",
        "ARM's per-subscription token bucket is empty: wait Retry-After (seconds), resend.",
        "https://learn.microsoft.com/troubleshoot/azure/azure-kubernetes/"
        "error-code-toomanyrequestsreceived-subscriptionrequeststhrottled; "
        "https://github.com/velero-io/velero/issues/9171 (real body); "
        "MD azure-resource-manager/management/request-limits-and-throttling.md",
        True,
        r"Number of '?\w*'? ?requests for subscription .* exceeded",
    ),
    AzureErrorCode(
        "ResourceRequestsThrottled", 429, "throttle",
        "A resource provider's own per-action limit (Recovery Services has one): Retry-After can "
        "be minutes while the subscription's remaining-requests header is still high; pace that "
        "action, not the whole subscription.",
        "https://github.com/hashicorp/terraform-provider-azurerm/issues/26874 "
        "(Microsoft.RecoveryServices protectedItems/read); Azure/azqr troubleshooting docs "
        "(\"exceeded the limit of '50' for time interval '00:05:00'. Please try again after "
        "'372' seconds\")",
        True,
        r"Number of requests for action '.*' exceeded the limit",
    ),
    AzureErrorCode(
        "RateLimiting", 429, "throttle",
        "Resource Graph's per-user quota (x-ms-user-quota-remaining) is spent: wait "
        "x-ms-user-quota-resets-after / Retry-After.",
        "https://github.com/Azure/azure-cli-extensions/issues/3325 (body with details[].code "
        "RateLimiting); MD governance/resource-graph/concepts/guidance-for-throttled-requests.md",
        True,
        r"Client application has been throttled|resourcegraph-throttling",
        where="resourcegraph",
    ),
    # -- authentication (401) and Entra ----------------------------------------------------
    AzureErrorCode(
        "ExpiredAuthenticationToken", 401, "auth",
        "The bearer token expired (or the clock is skewed): get a new token and run again.",
        "https://github.com/microsoft/vscode-azureappservice/issues/2483; "
        "https://github.com/microsoft/foundry-dev-tools/issues/461 (real ARM 401 bodies)",
        True,
        r"access token expiry UTC time .* is earlier than current UTC time",
    ),
    AzureErrorCode(
        "InvalidAuthenticationToken", 401, "auth",
        "ARM rejected the token (wrong tenant, audience or signature): check the credential.",
        "https://github.com/Azure/azure-sdk-for-java/issues/1714; "
        "https://github.com/Azure/Azure-Landing-Zones/issues/3412",
        True,
        r"access token is invalid|received access token is not valid",
    ),
    AzureErrorCode(
        "AADSTS7000215", None, "auth",
        "Entra ID refused the client secret at the token endpoint (before any ARM call): fix "
        "the secret (its value, not its id).",
        "Microsoft Entra error code reference "
        "(https://learn.microsoft.com/entra/identity-platform/reference-error-codes, "
        "InvalidClientSecretProvided); message seen in many public client logs",
        True,
        r"AADSTS7000215|Invalid client secret (is )?provided",
        where="entra",
    ),
    # -- authorization (403) ---------------------------------------------------------------
    AzureErrorCode(
        "AuthorizationFailed", 403, "refusal",
        "The identity lacks the action on the scope (e.g. Backup Contributor): every VM of the "
        "wave would meet it, so the wave stops; nothing changed.",
        _ARM_ERRORS, True,
        r"does not have authorization to perform action",
    ),
    AzureErrorCode(
        "LinkedAuthorizationFailed", 403, "refusal",
        "ARM's check on a linked scope failed; for a guarded vault, the caller lacks a role "
        "(Backup MUA Operator) on the Resource Guard named in the request (that use for "
        "Resource Guards is unverified).",
        _ARM_ERRORS, True,
        r"does not have permission to perform action\(s\) .* on the linked scope",
    ),
    # -- not found (404) -------------------------------------------------------------------
    AzureErrorCode(
        "ResourceNotFound", 404, "absent",
        "The resource (item, policy, job, VM) is not there: for a read-before-write this is an "
        "answer, not an error.",
        _ARM_ERRORS, True,
        r"was not found|ARMResourceNotFoundFix",
    ),
    AzureErrorCode(
        "ResourceGroupNotFound", 404, "absent",
        "The resource group named in the path does not exist in that subscription.",
        _ARM_ERRORS, True,
        r"Resource group '.*' could not be found",
    ),
    AzureErrorCode(
        "SubscriptionNotFound", 404, "absent",
        "The subscription does not exist or the identity cannot see it: drop it from the scope.",
        _ARM_ERRORS, True,
        r"subscription '.*' could not be found",
    ),
    # -- Recovery Services: item changes ---------------------------------------------------
    AzureErrorCode(
        "BMSUserErrorObjectLocked", 400, "retryable",
        "Another operation runs on the item: nothing changed; retry once it ends.",
        "MD backup/troubleshoot-azure-files.md (\"Common policy modification errors\"); "
        "Azure/azure-powershell RecoveryServices AzureBackupOperationErrorCode (retried)",
        True,
        r"Another operation is in progress on the selected item",
        where="recoveryservices",
    ),
    AzureErrorCode(
        "BMSUserErrorConflictingProtectionOperation", 400, "retryable",
        "Another configure-protection (policy change) runs on the item: nothing changed; retry "
        "later.",
        "MD backup/troubleshoot-azure-files.md (\"Common policy modification errors\")",
        True,
        r"Another configure protection operation is in progress",
        where="recoveryservices",
    ),
    AzureErrorCode(
        "BMSUserErrorInvalidConfigureProtectionRequest", 400, "failure",
        "The protected-item PUT was malformed (container or item name, body).",
        "https://github.com/hashicorp/terraform-provider-azurerm/issues/2207",
        True,
        r"Input for configure protection is not in proper format",
        where="recoveryservices",
    ),
    AzureErrorCode(
        "UserErrorEnhancedToStandardPolicyChangeNotSupported", 400, "refusal",
        "An item on an Enhanced (V2) policy cannot go back to a Standard (V1) one (a rollback of "
        "a Standard-to-Enhanced move is impossible). Code chosen by the emulator; the rule is "
        "documented, the code and message are not.",
        "rule: MD backup/backup-azure-vm-migrate-enhanced-policy.md (\"you can't change the "
        "backup policy back to standard policy\"); code: none found",
        False,
        r"(enhanced|V2)\b.*\b(standard|V1)\b.*(not supported|can't|cannot)|"
        r"(can't|cannot|not) .*back to standard",
        where="recoveryservices",
    ),
    # -- Recovery Services: policies -------------------------------------------------------
    AzureErrorCode(
        "BMSUserErrorInvalidPolicyInput", 400, "failure",
        "The policy body was rejected as malformed.",
        "https://github.com/hashicorp/terraform-provider-azurerm/issues/27619; "
        "https://github.com/Azure/azure-sdk-for-go/issues/2822",
        True,
        r"Input for create or update policy is not in proper format",
        where="recoveryservices",
    ),
    AzureErrorCode(
        "BMSUserErrorPolicyWriteLimitReached", 400, "refusal",
        "The vault's 50 policy creates-or-edits in 24 hours are used up: nothing written; retry "
        "when the oldest write ages out. The limit is documented, the code is the emulator's.",
        "limit: MD backup/backup-azure-backup-faq.md (50 per vault in 24 hours); code: none "
        "found (emulator/backup_policies.py chose it)",
        False,
        r"polic\w*\b.*\b(limit\w*|exceed\w*|maximum)\b.*\b(24 hours|per day|a day)\b",
        where="recoveryservices",
    ),
    AzureErrorCode(
        "BMSUserErrorPolicyLimitReached", 400, "refusal",
        "The vault already holds the most policies allowed (200): nothing written; delete "
        "unused policies. The limit is documented, the code is the emulator's.",
        "limit: MD backup/backup-azure-backup-faq.md, backup/backup-support-matrix.md (200 "
        "policies per vault); code: none found (emulator/backup_policies.py chose it)",
        False,
        r"^(?!.*\b(24 hours|per day|a day)\b).*(\b(at most|maximum|max)\b.*\bpolic|"
        r"\bpolic\w*\b.*\b(at most|maximum|max)\b)",
        where="recoveryservices",
    ),
    AzureErrorCode(
        "BMSUserErrorPolicyObjectInUse", 400, "refusal",
        "A policy still used by protected items cannot be deleted.",
        None, False,
        r"polic\w*\b.*\b(in use|still use|associated)\b",
        where="recoveryservices",
    ),
    # -- Multi-user authorization (Resource Guard) -----------------------------------------
    AzureErrorCode(
        "ResourceGuardOperationRequestsMissing", 403, "refusal",
        "A critical operation on a guarded vault came without the guard's request: nothing "
        "changed; the operator requests Backup MUA Operator on the guard, then re-runs. Code "
        "invented by the emulator; kept so call sites written against it still match.",
        "message: https://github.com/hashicorp/terraform-provider-azurerm/issues/31887 "
        "(\"ResourceGuard Operation requestid is either null or empty\"); code: none found",
        False,
        r"ResourceGuard Operation requestid is either null or empty|"
        r"resourceGuardOperationRequests",
        where="recoveryservices",
    ),
    AzureErrorCode(
        "UserErrorResourceGuardOperationRequestNullOrEmpty", 400, "refusal",
        "Same refusal as above, as the emulator now sends it (status 400 and code are guesses "
        "after the service's other UserError codes; emulator/resource_guard.py).",
        "message: https://github.com/hashicorp/terraform-provider-azurerm/issues/31887; code "
        "and status: none found",
        False,
        r"ResourceGuard Operation requestid is either null or empty|"
        r"resourceGuardOperationRequests",
        where="recoveryservices",
    ),
    # -- job errorDetails[] (errorCode is numeric in the SDK; the symbolic code is the title) --
    AzureErrorCode(
        "UserErrorVmNotInDesirableState", None, "failure",
        "The VM's state blocks the backup job (e.g. deallocating, failed provisioning).",
        "MD backup/backup-azure-vms-troubleshoot.md",
        True,
        r"VM\b.*\bis not in a state that allows backups",
        where="job",
    ),
    AzureErrorCode(
        "UserErrorCrashConsistentSnapshotNotSupported", None, "failure",
        "The VM is outside the agentless crash-consistent support matrix; its ConfigureBackup "
        "job fails. Code chosen by the emulator (emulator/jobs.py).",
        None, False,
        r"crash[- ]consistent .*not supported|OnlyCrashConsistent",
        where="job",
    ),
)

# HTTP statuses ccmigrate branches on by number (tasks/migration/move.py, policies.py,
# rescore.py, compute.py, tasks/azure/errors.py, pacing.py, resource_graph.py).
STATUSES: Mapping[int, tuple[Kind, str, str]] = MappingProxyType({
    401: ("auth", "ARM refused the token",
          "ARM 401 bodies cited under ExpiredAuthenticationToken and InvalidAuthenticationToken"),
    403: ("refusal", "the identity may not do this (AuthorizationFailed and kin)", _ARM_ERRORS),
    404: ("absent", "not there (ResourceNotFound, SubscriptionNotFound, ...)", _ARM_ERRORS),
    409: ("retryable", "conflicting state or operation (Conflict, AnotherOperationInProgress)",
          _ARM_ERRORS),
    429: ("throttle", "throttled: honour Retry-After",
          "MD azure-resource-manager/management/request-limits-and-throttling.md"),
})

# Codes that name the same Multi-user-authorization refusal: match any of them, and the message.
MUA_REFUSAL_CODES = ("UserErrorResourceGuardOperationRequestNullOrEmpty",
                     "ResourceGuardOperationRequestsMissing")

_BY_LOWER = {code.lower(): entry for code, entry in CODES.items()}


def lookup(code: str | None) -> AzureErrorCode | None:
    """The table entry for ``code`` (case-insensitive), or None."""
    return _BY_LOWER.get(code.lower()) if code else None


def _parts(error: Any) -> tuple[str | None, int | None, str]:
    """(code, status, message) from an AzureError, an azure-core HttpResponseError, an ARM
    error dict (``{"code", "message"}``), a job ``errorDetails`` entry (``errorTitle``,
    ``errorString``; ``errorCode`` is numeric) or a bare code string."""
    if error is None:
        return None, None, ""
    if isinstance(error, str):
        return error, None, ""
    if isinstance(error, Mapping):
        inner = error.get("error") if isinstance(error.get("error"), Mapping) else error
        code = inner.get("code") or inner.get("errorTitle")
        if code is None and isinstance(inner.get("errorCode"), str):
            code = inner.get("errorCode")
        message = inner.get("message") or inner.get("errorString") or ""
        return (str(code) if code is not None else None), None, str(message)
    code = getattr(error, "code", None)
    status = getattr(error, "status", None)
    if status is None:
        status = getattr(error, "status_code", None)
    if code is None and hasattr(error, "response"):  # azure-core HttpResponseError
        from .errors import error_code

        code = error_code(error)
    return (str(code) if code else None), (int(status) if status else None), str(error)


def matches(error: Any, name: str) -> bool:
    """True when ``error`` is the table's ``name``: by code; for an entry no source confirms,
    also by its message pattern (the real service may send another code for the same refusal).
    Raises KeyError for a name not in the table, so a typo at a call site fails loudly."""
    entry = CODES[name]
    code, status, message = _parts(error)
    if code and code.lower() == entry.code.lower():
        return True
    if entry.confirmed or not message:
        return False
    # The status of an unconfirmed code is a guess too: any client error but a throttle will do.
    if status is not None and not (400 <= status < 500 and status != 429):
        return False
    return entry.message_matches(message)


def matches_any(error: Any, names: Iterable[str]) -> bool:
    return any(matches(error, name) for name in names)


def classify(error: Any) -> AzureErrorCode | None:
    """The entry ``error`` belongs to: by its code first, then by message for unconfirmed
    entries; None when the table does not know it."""
    code, _, _ = _parts(error)
    entry = lookup(code)
    if entry is not None:
        return entry
    for candidate in CODES.values():
        if not candidate.confirmed and matches(error, candidate.code):
            return candidate
    return None


def is_throttle(error: Any) -> bool:
    """A 429 of any origin, or a code the table knows as a throttle."""
    code, status, _ = _parts(error)
    entry = lookup(code)
    return status == 429 or (entry is not None and entry.kind == "throttle")


# -- protection states (Recovery Services ARM vs Resource Graph) ---------------------------

# ARM ``protectionState`` of a protected item: azure-mgmt-recoveryservicesbackup 11.2.0
# ``models/_enums.py`` class ProtectionState (specs recoveryservicesbackup ProtectionState).
ARM_PROTECTION_STATES = ("Invalid", "IRPending", "Protected", "ProtectionError",
                         "ProtectionStopped", "ProtectionPaused", "BackupsSuspended")

# Resource Graph ``currentProtectionState`` values. The ARG docs list the first six; the same
# names, plus the rest, form Data Protection's ``CurrentProtectionState`` enum (specs
# dataprotection; SDK docs "KnownCurrentProtectionState"), so ARG may send those too.
ARG_PROTECTION_STATES = ("ConfiguringProtection", "ProtectionConfigured",
                         "ConfiguringProtectionFailed", "ProtectionStopped", "SoftDeleted",
                         "ProtectionError", "UpdatingProtection", "SoftDeleting",
                         "BackupSchedulesSuspended", "RetentionSchedulesSuspended",
                         "NotProtected", "Invalid")

# ARG currentProtectionState -> ARM protectionState. **Unverified**: no doc, spec or issue maps
# one onto the other; this is our reading of the names. Verdicts must use ARM's
# ``protectionState`` wherever ARM can be read, and treat this only as a fallback.
ARG_TO_ARM_STATE_VERIFIED = False
ARG_TO_ARM_STATE: Mapping[str, str] = MappingProxyType({
    "ProtectionConfigured": "Protected",
    "ConfiguringProtection": "IRPending",
    "UpdatingProtection": "Protected",
    "ProtectionError": "ProtectionError",
    "ConfiguringProtectionFailed": "ProtectionError",
    "ProtectionStopped": "ProtectionStopped",
    "SoftDeleted": "ProtectionStopped",
    "SoftDeleting": "ProtectionStopped",
    "BackupSchedulesSuspended": "BackupsSuspended",
    "RetentionSchedulesSuspended": "BackupsSuspended",
})


__all__ = [
    "ARG_PROTECTION_STATES",
    "ARG_TO_ARM_STATE",
    "ARG_TO_ARM_STATE_VERIFIED",
    "ARM_PROTECTION_STATES",
    "CODES",
    "MUA_REFUSAL_CODES",
    "STATUSES",
    "AzureErrorCode",
    "Kind",
    "classify",
    "is_throttle",
    "lookup",
    "matches",
    "matches_any",
]
