"""SIGINT/SIGTERM as a flag the training loop checks between steps (a checkpoint is saved, then the
run stops); a second Ctrl-C stops at once."""

from __future__ import annotations

import contextlib
import signal
from typing import Any


class Signals:
    """Turn SIGINT/SIGTERM into a flag the loop checks between steps; restores handlers on exit."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> Signals:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C stops at once
        self.received = signum

    def __exit__(self, *exc) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)
