"""Helper processes that must not outlive the ccmigrate process that started them: a CLI killed
with SIGKILL gets no chance to stop them, and a leftover Prefect server or scoring process would
hold files and memory until someone finds it."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time


def die_with_parent(parent: int, *, kernel_signal: bool = True) -> None:
    """Exit as soon as ``parent`` is no longer this process's parent.

    ``kernel_signal`` also asks Linux for SIGTERM when the parent dies (instant), but Linux
    sends it when the *thread* that started the child ends, so only a child started from a
    thread that lives as long as its process may use it; the watchdog, polling the parent's
    pid twice a second, works everywhere.
    """
    if kernel_signal and sys.platform.startswith("linux"):
        try:
            import ctypes

            pr_set_pdeathsig = 1
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
        except OSError:
            pass

    def watch() -> None:
        while True:
            if os.getppid() != parent:
                os._exit(0)
            time.sleep(0.5)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()
    if os.getppid() != parent:  # the parent died before the watchdog started
        os._exit(0)
