"""Turn Azure SDK exceptions into messages a user can act on.

Used at the edge of every Azure call site (``with azure_call("listing VMs in sub X"):``), so a
wrong secret, an expired session, a missing permission or an unreachable endpoint ends in one
clear line instead of a traceback.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)

from ..errors import AuthenticationError, AuthorizationError, AzureError


def error_code(exc: HttpResponseError) -> str | None:
    """The ARM error code, whether the SDK parsed the envelope or not."""
    err = getattr(exc, "error", None)
    code = getattr(err, "code", None)
    if code:
        return code
    try:
        body = exc.response.json() if exc.response is not None else None
    except Exception:
        return None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return body["error"].get("code")
    return None


def error_message(exc: HttpResponseError) -> str:
    err = getattr(exc, "error", None)
    message = getattr(err, "message", None)
    if message:
        return message
    try:
        body = exc.response.json() if exc.response is not None else None
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            return body["error"].get("message") or str(exc)
    except Exception:
        pass
    return exc.message if hasattr(exc, "message") else str(exc)


TLS_HINT = ("the server's TLS certificate is not trusted: check --ca-bundle (for the emulator, "
            "the ca_bundle path it printed)")


def _tls_failure(text: str) -> bool:
    return "CERTIFICATE_VERIFY_FAILED" in text or "SSLError" in text or "[SSL" in text


def _from_arm(exc: HttpResponseError) -> bool:
    """True for ARM's 401s; False for failures of the credential itself (token endpoint,
    CLI, managed identity), which the SDK raises as the same exception type."""
    response = getattr(exc, "response", None)
    if response is None:
        return False
    url = getattr(getattr(response, "request", None), "url", "") or ""
    return "/oauth2/" not in url and error_code(exc) is not None


def translate(exc: Exception, what: str) -> AzureError:
    """Map one SDK exception to our hierarchy; ``what`` says what we were doing."""
    if isinstance(exc, ClientAuthenticationError) and not _from_arm(exc):
        text = str(exc.message if hasattr(exc, "message") else exc).split(" Trace ID:")[0]
        if "7000215" in text:
            hint = "check the client secret (AADSTS7000215 means the secret is wrong)"
        elif _tls_failure(text):
            hint = TLS_HINT
        else:
            hint = "sign in again (`az login`) or check the credential settings"
        return AuthenticationError(f"could not get an Azure token while {what}: "
                                   f"{text.splitlines()[0]} -> {hint}")
    if isinstance(exc, HttpResponseError):
        status = exc.status_code
        code = error_code(exc)
        message = error_message(exc).splitlines()[0] if error_message(exc) else ""
        if status == 401:
            hint = ("the token expired; run again (or `az login` again)"
                    if code == "ExpiredAuthenticationToken" else
                    "the token was rejected; check --credential and --endpoint")
            return AuthenticationError(f"Azure refused our token while {what}: {code}: "
                                       f"{message} -> {hint}", status=status, code=code)
        if status == 403:
            return AuthorizationError(
                f"access denied while {what}: {code}: {message} -> grant the identity Reader "
                "(and Backup Contributor for migrations) on that scope, or drop it from the scope",
                status=status, code=code)
        return AzureError(f"Azure answered {status} {code or ''} while {what}: {message}".replace(
            "  ", " "), status=status, code=code)
    if isinstance(exc, ServiceRequestError | ServiceResponseError):
        hint = TLS_HINT if _tls_failure(str(exc)) else "check --endpoint and the network"
        return AzureError(f"could not reach Azure while {what}: {str(exc).splitlines()[0]} "
                          f"-> {hint}")
    return AzureError(f"unexpected error while {what}: {type(exc).__name__}: {exc}")


@contextlib.contextmanager
def azure_call(what: str) -> Iterator[None]:
    try:
        yield
    except AzureError:
        raise
    except (HttpResponseError, ServiceRequestError, ServiceResponseError,
            ClientAuthenticationError) as exc:
        raise translate(exc, what) from exc
