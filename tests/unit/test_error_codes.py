"""The table of Azure error codes: complete for the product's code, every entry sourced or
marked unconfirmed with a message to match, and matching that works on real SDK errors."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tasks.azure import error_codes as ec
from tasks.errors import AzureError

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("tasks", "flows")
OWN = ROOT / "tasks" / "azure" / "error_codes.py"

# What an Azure error code looks like: the Recovery Services prefixes, Entra's AADSTS numbers,
# or CamelCase ending the way ARM's codes end. Our own journal codes are UPPER_SNAKE.
_SHAPE = re.compile(
    r"^(BMSUserError|UserError)[A-Za-z]+$|^AADSTS\d+$|^RateLimiting$|"
    r"^(?:[A-Z][a-z]+){2,}(?:Failed|Throttled|NotFound|AuthenticationToken|Locked|Missing|"
    r"LimitReached|NotSupported|InUse|NullOrEmpty)$")
_OWN_CODE = re.compile(r"^[A-Z0-9_]+$")


def _strings(node: ast.AST) -> list[str]:
    return [n.value for n in ast.walk(node) if isinstance(n, ast.Constant)
            and isinstance(n.value, str)]


def _is_code_expr(node: ast.AST) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr in ("code", "error_code")) or (
        isinstance(node, ast.Name) and (node.id in ("code", "error_code")
                                        or node.id.endswith(("_CODE", "_CODES"))))


def _literal_strings(node: ast.AST) -> list[str]:
    """The strings of a literal (a constant, or a tuple/list/set of them); none for a call."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return [s for elt in node.elts for s in _literal_strings(elt)]
    return []


def _code_literals(path: Path) -> set[str]:
    """String constants in ``path`` that are Azure error codes: any constant of the code shape,
    and any constant compared with (or assigned to) something holding an error code."""
    text = path.read_text(encoding="utf-8")
    tree = ast.parse(text)
    found = {s for s in _strings(tree) if _SHAPE.match(s)}
    found |= set(re.findall(r"AADSTS\d+", text))
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(_is_code_expr(side) for side in sides):
                for side in sides:
                    found |= {s for s in _literal_strings(side) if s and not _OWN_CODE.match(s)}
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(
                node.func, "id", "")) in ("matches", "matches_any"):
            # error_codes.matches(err, "Code"): the code a call site branches on.
            found |= {s for arg in node.args[1:] for s in _literal_strings(arg)}
        elif isinstance(node, ast.Assign) and any(_is_code_expr(t) for t in node.targets):
            found |= {s for s in _literal_strings(node.value)
                      if s and not _OWN_CODE.match(s)}
    return found


def _product_codes() -> dict[str, list[str]]:
    where: dict[str, list[str]] = {}
    for folder in SCANNED:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path == OWN:
                continue
            for code in _code_literals(path):
                where.setdefault(code, []).append(str(path.relative_to(ROOT)))
    return where


def test_every_azure_code_the_product_names_is_in_the_table():
    states = set(ec.ARG_PROTECTION_STATES) | set(ec.ARM_PROTECTION_STATES)
    found = _product_codes()
    missing = {code: files for code, files in found.items()
               if ec.lookup(code) is None and code not in states}
    assert not missing, f"add these to tasks/azure/error_codes.py CODES: {missing}"
    # The scan does see the product's codes (a scan that finds nothing proves nothing).
    assert {"AuthorizationFailed", "BMSUserErrorObjectLocked",
            "BMSUserErrorPolicyWriteLimitReached", "AADSTS7000215"} <= set(found)


def test_every_entry_names_its_source_or_is_unconfirmed_with_a_message_to_match():
    for code, entry in ec.CODES.items():
        assert entry.code == code
        assert entry.kind in ("throttle", "retryable", "refusal", "failure", "absent", "auth")
        assert entry.meaning.strip()
        if entry.confirmed:
            assert entry.source and entry.source.strip(), f"{code}: confirmed but no source"
        else:
            assert entry.message, f"{code}: unconfirmed, so it needs a message pattern"
        if entry.message:
            re.compile(entry.message)
    for status, (kind, meaning, source) in ec.STATUSES.items():
        assert 400 <= status < 500 and kind and meaning and source


def test_a_guard_refusal_is_recognised_whatever_code_azure_gives_it():
    # The wording seen in the wild (terraform-provider-azurerm#31887), under a code nobody chose.
    seen = AzureError("Azure answered 400 SomeOtherCode while changing the policy: ResourceGuard "
                      "Operation requestid is either null or empty", status=400,
                      code="SomeOtherCode")
    assert ec.matches_any(seen, ec.MUA_REFUSAL_CODES)
    assert ec.classify(seen).kind == "refusal"
    # Either code the emulator has used matches by code alone.
    for code in ec.MUA_REFUSAL_CODES:
        assert ec.matches(AzureError("refused", status=403, code=code), code)
    # A throttle is never mistaken for it, whatever its message says.
    throttled = AzureError("resourceGuardOperationRequests", status=429, code="TooManyRequests")
    assert not ec.matches_any(throttled, ec.MUA_REFUSAL_CODES)
    assert ec.is_throttle(throttled)


def test_a_confirmed_code_is_matched_by_its_code_only():
    text = "Another operation is in progress on the selected item."
    assert ec.matches(AzureError(text, status=400, code="BMSUserErrorObjectLocked"),
                      "BMSUserErrorObjectLocked")
    assert not ec.matches(AzureError(text, status=400, code="Other"), "BMSUserErrorObjectLocked")
    assert ec.lookup("bmsusererrorobjectlocked").kind == "retryable"


def test_policy_limit_refusals_are_told_apart_by_their_message():
    writes = ("Creating or editing backup policies is limited to 50 per vault in 24 hours and "
              "vault 'v' has used 50. The next create or edit is allowed in about 3 minutes.")
    count = ("Vault 'v' already has 200 backup policies; a Recovery Services vault can hold at "
             "most 200. Delete unused policies or reuse an existing one.")
    assert ec.classify({"code": "UnknownLimit", "message": writes}).code == \
        "BMSUserErrorPolicyWriteLimitReached"
    assert ec.classify({"code": "UnknownLimit", "message": count}).code == \
        "BMSUserErrorPolicyLimitReached"


def test_a_failed_job_is_matched_by_the_title_of_its_error():
    # A job's errorDetails[].errorCode is numeric (the SDK types it int); the title carries the
    # symbolic code (GetJobDetails / backup-azure-vms-troubleshoot.md).
    detail = {"errorCode": 400124, "errorTitle": "UserErrorVmNotInDesirableState",
              "errorString": "VM 'vm1' is not in a state that allows backups."}
    assert ec.matches(detail, "UserErrorVmNotInDesirableState")
    assert ec.classify(detail).kind == "failure"


def test_an_unknown_name_at_a_call_site_fails_loudly():
    with pytest.raises(KeyError):
        ec.matches(AzureError("x", code="x"), "NoSuchCode")


def test_a_missing_policy_read_through_the_sdk_is_an_absent_resource(emulator):
    from flows.options import with_emulator_principal
    from tasks.azure import backup
    from tasks.azure.clients import AzureAccess
    from tasks.settings import load_settings
    from tests.fleets import SUB_A, vault_id

    access = AzureAccess(with_emulator_principal(load_settings(environ={}),
                                                 emulator.connection_info()))
    try:
        client = access.backup(SUB_A)
        vault = backup.vault_ref(vault_id(SUB_A, "rg-backup", "vault-1111"))
        with pytest.raises(AzureError) as caught:
            backup.get_policy(client, vault, "no-such-policy")
    finally:
        access.close()
    assert ec.matches(caught.value, "ResourceNotFound")
    assert ec.classify(caught.value).kind == "absent"
    assert not ec.is_throttle(caught.value)


def test_the_resource_graph_state_mapping_is_marked_unverified_and_agrees_with_the_inventory():
    from tasks.inventory.build import ARG_TO_ARM_STATE as used

    assert ec.ARG_TO_ARM_STATE_VERIFIED is False
    assert set(ec.ARG_TO_ARM_STATE) <= set(ec.ARG_PROTECTION_STATES)
    assert set(ec.ARG_TO_ARM_STATE.values()) <= set(ec.ARM_PROTECTION_STATES)
    for arg_state, arm_state in used.items():
        assert ec.ARG_TO_ARM_STATE.get(arg_state) == arm_state, arg_state


def test_the_scan_sees_a_code_compared_or_named_even_without_the_usual_shape(tmp_path):
    source = tmp_path / "site.py"
    source.write_text(
        "LOCK_CODE = 'VaultBusyNow'\n"
        "def f(err, detail):\n"
        "    code = detail.get('errorCode') or 'JOB_FAILED'\n"
        "    if err.code in ('SomethingAzureSaid', 'THROTTLED'):\n"
        "        return code\n"
        "    return err.code == 'AnotherOne'\n", encoding="utf-8")
    assert _code_literals(source) == {"VaultBusyNow", "SomethingAzureSaid", "AnotherOne"}
