"""Retry with backoff until it works or the daemon is asked to stop (tenacity)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

import structlog
import tenacity

from registrator.errors import ConfigError, RegistratorError, TransientError

log = structlog.get_logger("registrator.daemon")
T = TypeVar("T")


def _backoff(cap: float) -> Callable[[tenacity.RetryCallState], float]:
    """Exponential from 50 ms up to `cap` for outages; errors that retrying is unlikely to
    fix (permissions, bugs) back off to 30 s so they are not logged in a tight loop."""

    def wait(state: tenacity.RetryCallState) -> float:
        outcome = state.outcome
        exc = outcome.exception() if outcome is not None else None
        limit = cap if isinstance(exc, TransientError) else 30.0
        return float(min(limit, 0.05 * 2 ** min(state.attempt_number - 1, 20)))

    return wait


class Retrier:
    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop

    def _sleep(self, seconds: float) -> None:
        self.stop.wait(seconds)  # SIGTERM is never stuck behind a backoff

    def call(self, what: str, func: Callable[[], T],
             retry_on: type[BaseException] = RegistratorError, max_wait: float = 5.0,
             every: bool = True) -> T:
        """Call `func` until it works, with backoff, logging failed attempts (each one, or
        with `every=False` attempts 1, 2, 4, 8... and every 30th); raises Stopped when the
        daemon is asked to stop meanwhile."""

        def log_attempt(state: tenacity.RetryCallState) -> None:
            n = state.attempt_number
            if not every and n & (n - 1) and n % 30:
                return
            exc = state.outcome.exception() if state.outcome else None
            level = log.warning if isinstance(exc, TransientError) else log.error
            level(f"{what} failed; retrying", attempt=state.attempt_number,
                  retry_in=round(state.upcoming_sleep, 2), error=str(exc) or repr(exc))

        retrying = tenacity.Retrying(
            # Configuration problems (another daemon holds this host name) never heal.
            retry=tenacity.retry_if_exception(
                lambda exc: isinstance(exc, retry_on) and not isinstance(exc, ConfigError)),
            wait=_backoff(max_wait),
            stop=lambda _state: self.stop.is_set(),
            sleep=self._sleep,
            before_sleep=log_attempt,
            reraise=True,
        )
        try:
            return retrying(func)
        except retry_on:
            if self.stop.is_set():
                raise Stopped from None
            raise


class Stopped(Exception):  # noqa: N818 - internal control flow, not an error
    """The daemon was asked to stop while waiting to retry."""
