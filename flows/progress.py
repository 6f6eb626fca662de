"""Progress on the terminal for long runs: a rich progress bar on a TTY, one plain line per
step otherwise (CI logs, pipes). Thread-safe; tasks report through it."""

from __future__ import annotations

import sys
import threading
from types import TracebackType


class Progress:
    def __init__(self, enabled: bool = True) -> None:
        self._lock = threading.Lock()
        self._bar = None
        self._tasks: dict[str, int] = {}
        self.enabled = enabled
        if enabled and sys.stderr.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(TextColumn("{task.description}"), BarColumn(),
                                     MofNCompleteColumn(), TimeElapsedColumn(), transient=True)

    def __enter__(self) -> Progress:
        if self._bar:
            self._bar.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._bar:
            self._bar.stop()

    def stage(self, key: str, description: str, total: int) -> None:
        with self._lock:
            if self._bar:
                self._tasks[key] = self._bar.add_task(description, total=total)

    def advance(self, key: str, message: str, steps: int = 1) -> None:
        """One step done; ``message`` is the log line for that step."""
        with self._lock:
            if self._bar:
                if key in self._tasks:
                    self._bar.advance(self._tasks[key], steps)
                self._bar.console.log(message)
            elif self.enabled:
                sys.stderr.write(message + "\n")
                sys.stderr.flush()
