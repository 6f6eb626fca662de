"""A Prefect API server that dies with the process that started it.

Prefect's own ephemeral server is a plain subprocess: if the CLI is SIGKILLed, it lives on, holds
its SQLite database and breaks the next run (prefect-notes section 1). This wrapper runs the same
app under uvicorn, asks Linux to SIGTERM it when its parent dies, and also polls the parent's pid
so it exits within a second on any platform.

Run as ``python -m flows.prefect_server --port P --parent PID``.
"""

from __future__ import annotations

import argparse
import os

from tasks.lifetime import die_with_parent


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--parent", type=int, required=True)
    args = parser.parse_args(argv)
    die_with_parent(args.parent)
    # Same switches Prefect's SubprocessASGIServer sets: API only, ephemeral service set.
    os.environ.update({"PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1",
                       "PREFECT__SERVER_FINAL": "1"})
    import uvicorn

    uvicorn.run("prefect.server.api.server:create_app", factory=True, host="127.0.0.1",
                port=args.port, log_level="error", lifespan="on")


if __name__ == "__main__":
    main()
