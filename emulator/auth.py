"""Entra ID on loopback: OpenID metadata and the client-credentials token endpoint, and the
bearer-token check every ARM route applies. Real azure-identity credentials talk to it unchanged.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from datetime import UTC, datetime

from .http import ArmError, Request, Response


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenIssuer:
    """Issues HMAC-signed JWT-shaped tokens for one service principal and validates them."""

    def __init__(
        self, base_url: str, tenant_id: str, client_id: str, client_secret: str, lifetime: float
    ) -> None:
        self.base_url, self.tenant_id = base_url, tenant_id
        self.client_id, self.client_secret, self.lifetime = client_id, client_secret, lifetime
        self._key = secrets.token_bytes(32)

    # -- Entra endpoints ---------------------------------------------------------------------
    def openid_configuration(self, tenant: str) -> Response:
        self._check_tenant(tenant)
        base = f"{self.base_url}/{tenant}"
        return Response(
            200,
            {
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "private_key_jwt",
                    "client_secret_basic",
                ],
                "jwks_uri": f"{base}/discovery/v2.0/keys",
                "response_modes_supported": ["query", "fragment", "form_post"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "issuer": f"{base}/v2.0",
                "request_uri_parameter_supported": False,
                "userinfo_endpoint": f"{self.base_url}/oidc/userinfo",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "http_logout_supported": True,
                "frontchannel_logout_supported": True,
                "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
                "claims_supported": ["sub", "iss", "aud", "exp", "iat", "tid", "oid"],
                "tenant_region_scope": "WW",
                "cloud_instance_name": "emulator",
            },
        )

    def instance_discovery(self) -> Response:
        return Response(
            200,
            {
                "tenant_discovery_endpoint": (
                    f"{self.base_url}/{self.tenant_id}/v2.0/.well-known/openid-configuration"
                ),
                "api-version": "1.1",
                "metadata": [],
            },
        )

    def token(self, tenant: str, form: dict[str, str]) -> Response:
        self._check_tenant(tenant)
        grant = form.get("grant_type", "")
        if grant != "client_credentials":
            return self._oauth_error(
                400,
                "unsupported_grant_type",
                70003,
                f"The app requested an unsupported grant type '{grant}'.",
            )
        if form.get("client_id") != self.client_id:
            return self._oauth_error(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{form.get('client_id')}' was not found in the "
                f"directory '{tenant}'.",
            )
        if not hmac.compare_digest(form.get("client_secret", ""), self.client_secret):
            return self._oauth_error(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is "
                "the client secret value, not the client secret ID, for a secret added to app "
                f"'{self.client_id}'.",
            )
        scope = form.get("scope", "")
        now = int(time.time())
        claims = {
            "aud": scope.split(" ")[0].removesuffix("/.default"),
            "iss": f"{self.base_url}/{self.tenant_id}/",
            "iat": now,
            "nbf": now,
            "exp": now + int(self.lifetime),
            "tid": self.tenant_id,
            "appid": self.client_id,
            "oid": self.client_id,
            "sub": self.client_id,
            "idtyp": "app",
            "uti": uuid.uuid4().hex,
        }
        return Response(
            200,
            {
                "token_type": "Bearer",
                "expires_in": int(self.lifetime),
                "ext_expires_in": int(self.lifetime),
                "access_token": self._sign(claims),
            },
        )

    # -- ARM side ----------------------------------------------------------------------------
    def authorise(self, req: Request, *, force_expired: bool = False) -> str:
        """Return the caller's client id, or raise ARM's 401 envelope."""
        header = req.headers.get("authorization", "")
        if not header:
            raise self._arm_401(
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is missing.",
            )
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise self._arm_401(
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is provided "
                "in an invalid format.",
            )
        claims = self._verify(token)
        if claims is None:
            raise self._arm_401("InvalidAuthenticationToken", "The access token is invalid.")
        now = time.time()
        if force_expired or claims["exp"] <= now:
            # A forced expiry stands for clock skew or a revoked session: report a past expiry.
            expired_at = min(claims["exp"], now - 300)
            exp = datetime.fromtimestamp(expired_at, UTC).strftime("%m/%d/%Y %H:%M:%S")
            cur = datetime.fromtimestamp(now, UTC).strftime("%m/%d/%Y %H:%M:%S")
            raise self._arm_401(
                "ExpiredAuthenticationToken",
                f"The access token expiry UTC time '{exp}' is earlier than current UTC time "
                f"'{cur}'.",
            )
        return claims["appid"]

    def _arm_401(self, code: str, message: str) -> ArmError:
        challenge = (
            f'Bearer authorization_uri="{self.base_url}/{self.tenant_id}", '
            f'error="invalid_token", error_description="{message}"'
        )
        return ArmError(401, code, message, headers={"WWW-Authenticate": challenge})

    def _sign(self, claims: dict) -> str:
        head = _b64(json.dumps({"typ": "JWT", "alg": "HS256"}).encode())
        body = _b64(json.dumps(claims, separators=(",", ":")).encode())
        sig = _b64(hmac.new(self._key, f"{head}.{body}".encode(), hashlib.sha256).digest())
        return f"{head}.{body}.{sig}"

    def _verify(self, token: str) -> dict | None:
        try:
            head, body, sig = token.split(".")
            expected = _b64(hmac.new(self._key, f"{head}.{body}".encode(), hashlib.sha256).digest())
            if not hmac.compare_digest(sig, expected):
                return None
            return json.loads(_unb64(body))
        except (ValueError, json.JSONDecodeError):
            return None

    def _check_tenant(self, tenant: str) -> None:
        if tenant.lower() not in (self.tenant_id.lower(), "organizations", "common"):
            raise _OAuthError(
                self._oauth_error(
                    400,
                    "invalid_request",
                    90002,
                    f"Tenant '{tenant}' not found. Check to make sure you have the correct "
                    "tenant ID "
                    "and are signing into the correct cloud.",
                )
            )

    def _oauth_error(self, status: int, error: str, code: int, text: str) -> Response:
        trace, corr = str(uuid.uuid4()), str(uuid.uuid4())
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        return Response(
            status,
            {
                "error": error,
                "error_description": f"AADSTS{code}: {text} Trace ID: {trace} "
                f"Correlation ID: {corr} "
                f"Timestamp: {stamp}",
                "error_codes": [code],
                "timestamp": stamp,
                "trace_id": trace,
                "correlation_id": corr,
                "error_uri": f"{self.base_url}/error?code={code}",
            },
        )


class _OAuthError(Exception):
    """Carries an OAuth-shaped error response out of a handler (not ARM's envelope)."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.body)
        self.response = response
