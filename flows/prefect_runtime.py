"""Prefect for one CLI run (or one test session).

- ``PREFECT_API_URL`` set: use that server (a real one with UI, workers, schedules).
- Otherwise: start a private local API server (``flows.prefect_server``) over a SQLite database
  under ccmigrate's data folder, point this process at it and stop it on exit. It dies with us
  even on SIGKILL, so a killed run never leaves a server holding the database.
Telemetry is off in both cases.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from tasks.errors import CcmigrateError
from tasks.settings import default_data_dir

QUIET_ENV = {
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_LOGGING_LEVEL": "INFO",  # run logs reach the API; the console shows warnings
    "PREFECT_LOGGING_LOG_PRINTS": "false",
}
STARTUP_TIMEOUT = 90.0


def quiet_environment() -> None:
    """Environment every run gets before Prefect is imported; the user's values win."""
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("PREFECT_HOME", str(default_data_dir() / "prefect"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _healthy(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


class LocalPrefectServer:
    """The private API server; ``url`` is set once it answers /health."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.url: str | None = None
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> str:
        self.home.mkdir(parents=True, exist_ok=True)
        log = (self.home / "server.log").open("ab")
        for _attempt in range(3):
            port = _free_port()
            url = f"http://127.0.0.1:{port}/api"
            env = {**os.environ, "PREFECT_HOME": str(self.home)}
            env.pop("PREFECT_API_URL", None)
            self.process = subprocess.Popen(
                [sys.executable, "-m", "flows.prefect_server", "--port", str(port),
                 "--parent", str(os.getpid())],
                env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                cwd=str(Path(__file__).resolve().parents[1]))
            deadline = time.monotonic() + STARTUP_TIMEOUT
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    break
                if _healthy(url):
                    self.url = url
                    return url
                time.sleep(0.1)
            self.stop()
        raise CcmigrateError(
            f"the local Prefect server did not start; see {self.home / 'server.log'}. "
            "Set PREFECT_API_URL to use a running Prefect server instead.")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


class _HideUserErrors(logging.Filter):
    """Prefect logs every failed run with its traceback; for a user's mistake (a
    ``CcmigrateError``) the CLI prints one clear line instead, so the console drops those
    records. The API handler still sends them to the Prefect server."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, CcmigrateError):
            return False
        return not (record.levelno >= logging.ERROR and "Error(" in record.getMessage()
                    and any(n in record.getMessage() for n in _USER_ERROR_NAMES))


_USER_ERROR_NAMES = ("InputError(", "SettingsError(", "AuthenticationError(",
                     "AuthorizationError(", "AzureError(", "CcmigrateError(")


def _quiet_console() -> None:
    from prefect.logging.configuration import ensure_logging_setup

    ensure_logging_setup()  # Prefect configures logging lazily; do it now, then add our filter

    names = ["prefect", *[n for n in logging.root.manager.loggerDict if n.startswith("prefect")]]
    loggers = [logging.getLogger(), *(logging.getLogger(n) for n in names)]
    for logger in loggers:
        for handler in logger.handlers:
            if isinstance(handler, logging.StreamHandler) and not any(
                    isinstance(f, _HideUserErrors) for f in handler.filters):
                handler.addFilter(_HideUserErrors())
                # Our own progress lines cover the console; Prefect's INFO chatter (task
                # created, finished in state ...) goes to the API only.
                handler.setLevel(max(handler.level, logging.WARNING))


def _drain() -> None:
    """Flush Prefect's log and event workers while the server still answers, so stopping it
    leaves no 'Error logging to API' noise behind."""
    import inspect

    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.utilities.asyncutils import run_coro_as_sync

    async def drain() -> None:
        for call in (lambda: APILogWorker.instance().drain(), EventsWorker.drain_all):
            try:
                result = call()
                if inspect.isawaitable(result):
                    await result
            except RuntimeError:  # a worker that never started
                pass

    run_coro_as_sync(drain())


@contextlib.contextmanager
def prefect_runtime() -> Iterator[str]:
    """Make Prefect usable for the duration of the block; yield the API URL in use."""
    quiet_environment()
    external = os.environ.get("PREFECT_API_URL")
    if external:
        _quiet_console()
        yield external
        return
    server = LocalPrefectServer(Path(os.environ["PREFECT_HOME"]))
    url = server.start()
    os.environ["PREFECT_API_URL"] = url
    try:
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings(updates={PREFECT_API_URL: url}):
            _quiet_console()
            try:
                yield url
            finally:
                _drain()
    finally:
        os.environ.pop("PREFECT_API_URL", None)
        server.stop()
