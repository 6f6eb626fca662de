"""Request, response and routing primitives for the emulator's ARM-style HTTP surface.

Handlers are plain functions ``handler(world, request, **path_params) -> Response``; raising
``ArmError`` produces ARM's error envelope, so handler code reads like the service's contract.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit


@dataclass
class Request:
    """One decoded HTTP request. ``path`` is percent-decoded; ``query`` keys are lower-cased."""

    method: str
    raw_path: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any = None
    principal: str | None = None  # the client id whose bearer token authorised the call

    @classmethod
    def parse(cls, method: str, target: str, headers: dict[str, str], raw_body: bytes) -> Request:
        split = urlsplit(target)
        query = {k.lower(): v for k, v in parse_qsl(split.query, keep_blank_values=True)}
        body: Any = None
        if raw_body:
            ctype = headers.get("content-type", "")
            if "json" in ctype or raw_body[:1] in (b"{", b"["):
                try:
                    body = json.loads(raw_body)
                except ValueError as exc:
                    raise ArmError(
                        400,
                        "InvalidRequestContent",
                        f"The request content was invalid and could not be deserialized: {exc}",
                    ) from exc
            else:
                body = dict(parse_qsl(raw_body.decode("utf-8", "replace"), keep_blank_values=True))
        return cls(method.upper(), split.path, unquote(split.path), query, headers, body)

    @property
    def api_version(self) -> str | None:
        return self.query.get("api-version")


@dataclass
class Response:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    def encode(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        return json.dumps(self.body, separators=(",", ":")).encode()


class ArmError(Exception):
    """An ARM error response: ``{"error": {"code", "message", ...}}`` with status and headers."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        details: list[dict] | None = None,
        extra: dict | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}
        self.details = details
        self.extra = extra or {}

    def response(self) -> Response:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            error["details"] = self.details
        error.update(self.extra)
        return Response(self.status, {"error": error}, dict(self.headers))


Handler = Callable[..., Response]


@dataclass
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    kind: str  # "read", "write", "delete", "arg", "auth", "admin": what throttle/auth applies


class Router:
    """Case-insensitive path routing with ``{name}`` placeholders (one segment each)."""

    def __init__(self) -> None:
        self.routes: list[Route] = []

    def add(self, method: str, template: str, handler: Handler, kind: str) -> None:
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template.rstrip("/"))
        self.routes.append(
            Route(method.upper(), re.compile(f"^{regex}/?$", re.IGNORECASE), handler, kind)
        )

    def route(self, method: str, template: str, kind: str) -> Callable[[Handler], Handler]:
        def deco(fn: Handler) -> Handler:
            self.add(method, template, fn, kind)
            return fn

        return deco

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        allowed = False
        for route in self.routes:
            m = route.pattern.match(path)
            if m:
                if route.method == method:
                    return route, m.groupdict()
                allowed = True
        if allowed:
            raise ArmError(
                405,
                "MethodNotAllowed",
                f"The requested resource does not support http method '{method}'.",
            )
        raise ArmError(
            404,
            "NoRegisteredProviderFound" if "/providers/" in path else "NotFound",
            f"No route for {method} {path} in the emulator. It serves only the Azure "
            "endpoints ccmigrate calls.",
        )


def require_api_version(req: Request) -> str:
    version = req.api_version
    if not version:
        raise ArmError(
            400,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        )
    return version
