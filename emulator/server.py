"""The HTTPS server: TLS, dispatch, auth, throttles and fault injection around the route modules.

``Emulator`` is the in-process handle (context manager) used by tests, ``--demo`` and ``--fleet``;
``ccmigrate emulator serve`` runs the same object until a signal arrives.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from . import arg, arm_meta, backup, compute, resource_guard
from .auth import TokenIssuer, _OAuthError
from .config import EmulatorConfig, Faults
from .http import ArmError, Request, Response, Router
from .state import FleetState, subscription_of
from .throttle import BucketSet
from .tls import make_tls
from .world import World

admin = Router()


@admin.route("GET", "/_emulator/state", "admin")
def dump_state(world: World, req: Request) -> Response:
    world.tick()
    return Response(200, world.state.dump())


@admin.route("GET", "/_emulator/faults", "admin")
def get_faults(world: World, req: Request) -> Response:
    return Response(200, world.faults.to_dict())


@admin.route("POST", "/_emulator/faults", "admin")
def set_faults(world: World, req: Request) -> Response:
    if not isinstance(req.body, dict):
        raise ArmError(400, "InvalidRequestContent", "POST a JSON object of fault settings.")
    try:
        world.faults.update(req.body)
    except (KeyError, ValueError) as exc:
        raise ArmError(400, "InvalidFault", str(exc.args[0])) from exc
    return Response(200, world.faults.to_dict())


def _merge(target: dict, patch: dict) -> None:
    """JSON merge patch (RFC 7396): objects merge, ``null`` removes, anything else replaces."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value


@admin.route("POST", "/_emulator/resources", "admin")
def change_resource(world: World, req: Request) -> Response:
    """What someone changes out of band (a VM resized, a disk made shared, a tag added):
    ``{"id": ARM id, "patch": JSON merge patch}``, visible to ARM and Resource Graph alike."""
    body = req.body if isinstance(req.body, dict) else {}
    resource = world.state.get(str(body.get("id", "")))
    if resource is None or not isinstance(body.get("patch"), dict):
        raise ArmError(404 if resource is None else 400, "InvalidResourceChange",
                       "POST {\"id\": an existing resource id, \"patch\": {...}}.")
    changed = json.loads(json.dumps(resource))
    _merge(changed, body["patch"])
    return Response(200, world.state.put(changed))


@admin.route("GET", "/_emulator/stats", "admin")
def stats(world: World, req: Request) -> Response:
    """Requests by kind: ``requests`` those that passed the throttles, ``received`` all of
    them; ``throttled`` the 429s by error code (SubscriptionRequestsThrottled: ARM's buckets;
    ResourceRequestsThrottled: Recovery Services; RateLimiting: Resource Graph;
    TooManyRequests: injected), ``throttled_by_kind`` the same 429s by kind."""
    return Response(200, world.stats())


auth = Router()


@auth.route("GET", "/{tenant}/v2.0/.well-known/openid-configuration", "auth")
def openid(world: World, req: Request, tenant: str) -> Response:
    assert world.issuer
    return world.issuer.openid_configuration(tenant)


@auth.route("GET", "/common/discovery/instance", "auth")
def discovery(world: World, req: Request) -> Response:
    assert world.issuer
    return world.issuer.instance_discovery()


@auth.route("POST", "/{tenant}/oauth2/v2.0/token", "auth")
def token(world: World, req: Request, tenant: str) -> Response:
    assert world.issuer
    form = req.body if isinstance(req.body, dict) else {}
    return world.issuer.token(tenant, {k: str(v) for k, v in form.items()})


def _routers() -> list[Router]:
    return [
        admin, auth, arm_meta.router, arg.router, compute.router, backup.router,
        resource_guard.router,
    ]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Headers and body go out as two writes; without TCP_NODELAY, Nagle's algorithm holds
        # the second one for the client's delayed ACK (~40 ms a response).
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, fmt: str, *args: Any) -> None:
        if self.server.world.config.verbose:
            sys.stderr.write(f"emulator: {self.address_string()} {fmt % args}\n")

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_GET

    def _dispatch(self) -> None:
        world = self.server.world
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        route = None
        try:
            req = Request.parse(self.command, self.path, headers, raw)
            route, params = self.server.match(req.method, req.path)
            if route.kind in ("auth", "admin"):
                response = route.handler(world, req, **params)
            else:
                world.count_received(route.kind)
                if self._faults_before(route.kind):
                    return
                req.principal = world.issuer.authorise(
                    req, force_expired=world.faults.expire_tokens
                )
                _check_access(world, req, route.kind)
                world.tick()
                limit_headers = _throttle(world, route.kind, req)
                world.count(route.kind)
                response = route.handler(world, req, **params)
                response.headers.update(limit_headers)
        except ArmError as err:
            response = err.response()
        except _OAuthError as err:
            response = err.response
        except Exception as exc:  # an emulator bug must look like a 500, not a hang
            response = ArmError(
                500, "InternalServerError", f"Emulator error: {type(exc).__name__}: {exc}"
            ).response()
            if world.config.verbose:
                import traceback

                traceback.print_exc()
        if response.status == 429 and route is not None and route.kind not in ("auth", "admin"):
            world.count_throttled(route.kind, _error_code(response))
        self._send(response)

    def _faults_before(self, kind: str) -> bool:
        """Apply injected latency, drops and errors; True when the request was answered."""
        faults = self.server.world.faults
        if faults.latency_ms:
            time.sleep(faults.latency_ms / 1000)
        if faults.roll(faults.rate_drop):
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return True
        if faults.take_throttle_next() or faults.roll(faults.rate_429):
            code = "RateLimiting" if kind == "arg" else "TooManyRequests"
            self.server.world.count_throttled(kind, code)
            self._send(
                ArmError(
                    429,
                    code,
                    "Too many requests (injected by the emulator). "
                    "Retry after the time in the Retry-After header.",
                    headers={"Retry-After": str(faults.retry_after_429)},
                ).response()
            )
            return True
        if faults.roll(faults.rate_5xx):
            status = 503 if faults.roll(0.5) else 500
            code = "ServiceUnavailable" if status == 503 else "InternalServerError"
            self._send(
                ArmError(
                    status,
                    code,
                    "The service is temporarily unavailable (injected by the emulator).",
                ).response()
            )
            return True
        return False

    def _send(self, response: Response) -> None:
        payload = response.encode()
        try:
            self.send_response(response.status)
            request_id = str(uuid.uuid4())
            self.send_header("x-ms-request-id", request_id)
            self.send_header("x-ms-correlation-request-id", request_id)
            if payload:
                self.send_header("Content-Type", "application/json; charset=utf-8")
            for key, value in response.headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if payload and self.command != "HEAD":
                self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


def _check_access(world: World, req: Request, kind: str) -> None:
    """The ``forbidden_scopes`` and ``read_only`` faults: a 403 exactly as ARM words it."""
    scope = world.faults.forbidden(req.path)
    if scope or (world.faults.read_only and kind in ("write", "delete")):
        action = "read" if req.method == "GET" else "write"
        raise ArmError(
            403,
            "AuthorizationFailed",
            f"The client '{req.principal}' with object id '{req.principal}' does not have "
            f"authorization to perform action '{action}' over scope '{req.path}' or the scope "
            "is invalid. If access was recently granted, please refresh your credentials.",
        )


def _error_code(response: Response) -> str:
    body = response.body if isinstance(response.body, dict) else {}
    error = body.get("error")
    return str(error.get("code", "")) if isinstance(error, dict) else ""


def _throttle(world: World, kind: str, req: Request) -> dict[str, str]:
    """ARM's per-subscription read/write buckets, the global per-subscription bucket every
    principal shares, then Recovery Services' own per-action throttling (the
    ``provider_throttle_next`` fault, and ``provider_write_rate``'s bucket per subscription and
    action). ARG has its own quota in its route."""
    if kind not in ("read", "write", "delete"):
        return {}
    sub = subscription_of(req.path)
    if not sub:
        return {}
    buckets = world.reads if kind == "read" else world.writes
    take = buckets.take(sub)
    name = "reads" if kind == "read" else ("writes" if kind == "write" else "deletes")
    header = {f"x-ms-ratelimit-remaining-subscription-{name}": str(take.remaining)}
    ok, wait = take.ok, take.retry_after
    if kind in ("read", "write", "delete"):
        # request-limits-and-throttling.md: a global limit per subscription, 15x the
        # per-principal one, across all principals. Its remaining count rides on real answers
        # (recorded ARM responses in Azure SDK test recordings show ...-subscription-reads 249
        # beside ...-subscription-global-reads 3749, i.e. 15 x 250; scripts read
        # ...-global-deletes too).
        shared = _global_buckets(world, kind).take(sub)
        header[f"x-ms-ratelimit-remaining-subscription-global-{name}"] = str(shared.remaining)
        if not shared.ok:
            ok, wait = False, max(wait, shared.retry_after)
    if not ok:
        seconds = max(1, int(wait + 0.999))
        raise ArmError(
            429,
            "SubscriptionRequestsThrottled",
            f"Number of '{kind}' requests for subscription '{sub}' actor "
            f"'{req.principal}' exceeded. Please try again after "
            f"'{seconds}' seconds after the last request.",
            headers={**header, "Retry-After": str(seconds)},
        )
    if "/providers/microsoft.recoveryservices/" in req.path.lower() and (
            world.faults.take_provider_throttle() or not _provider_allows(world, sub, req, kind)):
        # Recovery Services throttles some actions itself, whatever ARM's buckets say
        # (hashicorp/terraform-provider-azurerm #26874 quotes this code and message). ARM's
        # token is spent by then (unverified: whether ARM counts a request its provider
        # throttled is not documented).
        action = _action_of(req.path, kind)
        raise ArmError(
            429,
            "ResourceRequestsThrottled",
            f"Number of requests for action '{action}' exceeded the limit of the resource "
            "provider. Please try again after some time.",
            headers={**header, "Retry-After": str(world.faults.provider_throttle_retry_after)},
        )
    return header


def _provider_allows(world: World, sub: str, req: Request, kind: str) -> bool:
    """Whether Recovery Services' write bucket for this subscription and action has a token
    (always, while ``provider_write_rate`` is off or the request is not a write)."""
    size = world.faults.provider_bucket_size()
    if size is None or kind != "write":
        return True
    current = world.services.get("provider-writes")
    if current is None or current[0] != size:  # rare: first use, or the faults resized it
        with world.lock:
            current = world.services.get("provider-writes")
            if current is None or current[0] != size:
                current = world.services["provider-writes"] = (size, BucketSet(*size))
    return current[1].take(f"{sub.lower()} {_action_of(req.path, kind).lower()}").ok


def _global_buckets(world: World, kind: str) -> BucketSet:
    """The global bucket set for one kind, rebuilt when the faults resize it."""
    cfg, faults = world.config, world.faults
    capacity = cfg.read_capacity if kind == "read" else cfg.write_capacity
    refill = cfg.read_refill if kind == "read" else cfg.write_refill
    size = (faults.global_capacity or 15 * capacity, faults.global_refill or 15 * refill)
    key = f"global-{kind}"
    current = world.services.get(key)
    if current is None or current[0] != size:  # rare: first use, or the faults resized it
        with world.lock:
            current = world.services.get(key)
            if current is None or current[0] != size:
                current = world.services[key] = (size, BucketSet(*size))
    return current[1]


def _action_of(path: str, kind: str) -> str:
    """``Microsoft.RecoveryServices/vaults/.../protectedItems/read`` for a request path."""
    parts = path.strip("/").split("/")
    lower = [p.lower() for p in parts]
    at = lower.index("providers") + 1 if "providers" in lower else 0
    words = [parts[at], *parts[at + 1::2]]
    return "/".join(words) + ("/read" if kind == "read" else
                               "/delete" if kind == "delete" else "/write")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], world: World, tls_context) -> None:
        super().__init__(address, _Handler)
        self.world = world
        self.routers = _routers()
        self.socket = tls_context.wrap_socket(
            self.socket, server_side=True, do_handshake_on_connect=False
        )

    def match(self, method: str, path: str):
        last: ArmError | None = None
        for router in self.routers:
            try:
                return router.match(method, path)
            except ArmError as err:
                if err.status == 405 or last is None:
                    last = err if last is None or err.status == 405 else last
        assert last is not None
        raise last

    def handle_error(self, request, client_address) -> None:
        if self.world.config.verbose:
            super().handle_error(request, client_address)


class Emulator:
    """An HTTPS emulator on loopback; use as a context manager or call start()/stop()."""

    def __init__(
        self,
        fleet: dict,
        *,
        port: int = 0,
        config: EmulatorConfig | None = None,
        faults: Faults | None = None,
        workdir: Path | None = None,
    ) -> None:
        self.config = config or EmulatorConfig()
        self.world = World(FleetState(fleet), self.config, faults or Faults())
        if self.config.arg_protection_states is not None:
            self.world.state.arg_state_map = dict(self.config.arg_protection_states)
        self._port = port
        self._workdir = workdir
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> Emulator:
        self._own_dir = None
        if self._workdir is None:
            self._own_dir = Path(tempfile.mkdtemp(prefix="ccmigrate-emulator-"))
        tls = make_tls(self._workdir or self._own_dir)
        self.ca_bundle = tls.ca_bundle
        server = _Server(("127.0.0.1", self._port), self.world, tls.context)
        self._server = server
        port = server.server_address[1]
        self.endpoint = f"https://127.0.0.1:{port}"
        self.world.base_url = self.endpoint
        cfg = self.config
        self.world.issuer = TokenIssuer(
            self.endpoint, cfg.tenant_id, cfg.client_id, cfg.client_secret, cfg.token_lifetime
        )
        self._thread = threading.Thread(
            target=server.serve_forever,
            name="ccmigrate-emulator",
            kwargs={"poll_interval": 0.2},
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if getattr(self, "_own_dir", None):
            shutil.rmtree(self._own_dir, ignore_errors=True)  # the CA file lives there
            self._own_dir = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- handy facts -------------------------------------------------------------------------
    @property
    def tenant_id(self) -> str:
        return self.config.tenant_id

    @property
    def client_id(self) -> str:
        return self.config.client_id

    @property
    def client_secret(self) -> str:
        return self.config.client_secret

    def connection_info(self) -> dict[str, str]:
        """The JSON line ``ccmigrate emulator serve`` prints once ready."""
        return {
            "endpoint": self.endpoint,
            "ca_bundle": str(self.ca_bundle),
            "tenant_id": self.tenant_id,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
        }

    def state(self) -> dict:
        self.world.tick()
        return self.world.state.dump()

    def timing_description(self) -> str:
        """Which service timing this emulator runs (``emulator/timing.py``)."""
        from .timing import Timing

        return Timing(self.config).describe()

    def stats(self) -> dict[str, int]:
        """Requests that passed the throttles, by kind."""
        return dict(self.world.request_count)

    def all_stats(self) -> dict[str, dict[str, int]]:
        """What ``/_emulator/stats`` answers: passed, received and throttled requests."""
        return self.world.stats()


def connection_line(emulator: Emulator) -> str:
    return json.dumps(emulator.connection_info())
