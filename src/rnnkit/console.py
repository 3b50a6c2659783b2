"""The two rich consoles the front ends write to (results on stdout, progress and logs on stderr), and
the logging set-up that prints log lines through the stderr console."""

from __future__ import annotations

import logging

from rich.console import Console

stdout = Console()
stderr = Console(stderr=True)


class ConsoleHandler(logging.Handler):
    """Log lines through the rich stderr console: they print above a live progress bar, unwrapped."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stderr.print(self.format(record), markup=False, highlight=False, soft_wrap=True)
        except Exception:  # pragma: no cover - logging must never raise
            self.handleError(record)


def setup_logging(quiet: bool = False) -> None:
    """Send every log line, its message only, to :data:`stderr`: INFO and up, or warnings only when
    ``quiet``. Replaces any handlers set before (a front end calls it once per command)."""
    handler = ConsoleHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, handlers=[handler], force=True)
