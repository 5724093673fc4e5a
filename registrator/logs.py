"""structlog setup: one event per line; JSON when stderr is not a terminal.

Logging must never take a thread down. When stderr's reader goes away (a log shipper
restarted, `| logger` died) a write raises BrokenPipeError, and with stderr closed at start
(`2>&-`) there is no stream at all: both used to kill the daemon's worker or the daemon. Lines
that cannot be written are dropped and counted instead."""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog

LEVELS = ("debug", "info", "warning", "error")


class SafeStream:
    """A text stream whose write and flush never raise."""

    def __init__(self, stream: TextIO | None) -> None:
        self._stream = stream
        self.dropped = 0

    def write(self, text: str) -> int:
        if self._stream is not None:
            try:
                return self._stream.write(text)
            except (OSError, ValueError):  # a dead pipe, a closed file
                pass
        self.dropped += 1
        return len(text)

    def flush(self) -> None:
        if self._stream is not None:
            try:
                self._stream.flush()
            except (OSError, ValueError):
                self.dropped += 1

    def isatty(self) -> bool:
        try:
            return self._stream is not None and self._stream.isatty()
        except (OSError, ValueError):
            return False


def configure(level: str = "info", stream: TextIO | None = None,
              json_output: bool | None = None) -> SafeStream:
    out = SafeStream(stream or sys.stderr)
    if json_output is None:
        json_output = not out.isatty()
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json_output
        else structlog.dev.ConsoleRenderer(colors=False))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            # Tracebacks without local variables: they may hold secrets or untrusted data.
            structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False))
            if json_output else structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(out),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
    return out
