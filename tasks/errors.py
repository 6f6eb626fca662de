"""One exception hierarchy for everything a user can act on.

The CLI turns these into one message and an exit code (2 = bad input, 1 = the job failed);
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class CcmigrateError(Exception):
    """Base: ``str(err)`` is the whole user-facing message (what, where, how to fix)."""

    exit_code = 1


class InputError(CcmigrateError):
    """The user's input is wrong (settings, flags, files, scope). Nothing was changed in Azure."""

    exit_code = 2


class SettingsError(InputError):
    """A settings value is invalid; the message names the key, the value and its source."""


class AzureError(CcmigrateError):
    """Azure (or the emulator) refused or failed a call; the message says what and what to do."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.code = status, code


class AuthenticationError(AzureError):
    """No usable token: wrong secret, expired session, unreachable authority."""

    exit_code = 2


class AuthorizationError(AzureError):
    """The identity lacks access to a scope (403)."""
