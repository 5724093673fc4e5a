"""--wait MIN[:MAX]: render after MIN of quiet, but never later than MAX after the first
change of a burst (confd has no such thing: a burst of changes is a burst of reloads)."""

from __future__ import annotations

from registrator.durations import seconds
from registrator.errors import ConfigError

DEFAULT_WAIT = "200ms:2s"


def parse_wait(text: str) -> tuple[float, float]:
    """'200ms:2s' -> (0.2, 2.0); MIN alone means MAX = 10 x MIN."""
    low_text, _, high_text = text.partition(":")
    low = seconds(low_text)
    high = seconds(high_text) if high_text else (None if low is None else low * 10)
    if low is None or high is None:
        raise ConfigError(f"--wait {text!r}: expected MIN[:MAX] durations such as 200ms:2s")
    if high < low:
        raise ConfigError(f"--wait {text!r}: MAX is shorter than MIN")
    return low, high


class Debouncer:
    """Pure timing: the caller passes the clock's readings in."""

    def __init__(self, low: float, high: float) -> None:
        self.low, self.high = low, high
        self._first: float | None = None
        self._last = 0.0

    @property
    def pending(self) -> bool:
        return self._first is not None

    def change(self, now: float) -> None:
        if self._first is None:
            self._first = now
        self._last = now

    def now_due(self) -> None:
        """Render at the next look (the first render, a re-read config)."""
        self._first = self._last = float("-inf")

    def deadline(self) -> float | None:
        """When the pending render is due; None when nothing is pending."""
        if self._first is None:
            return None
        return min(self._last + self.low, self._first + self.high)

    def due(self, now: float) -> bool:
        deadline = self.deadline()
        return deadline is not None and now >= deadline

    def done(self) -> None:
        self._first = None
