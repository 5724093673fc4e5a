"""Durations as operators write them: 30, 30s, 500ms, 1m (pytimeparse2 does the parsing)."""

from __future__ import annotations

import math

import pytimeparse2


def seconds(text: str) -> float | None:
    """Seconds in `text`, or None when it is not a non-negative duration."""
    stripped = text.strip()
    try:
        value = pytimeparse2.parse(stripped) if stripped else None
    except (ValueError, OverflowError):
        return None
    if value is None or isinstance(value, bool):
        return None
    result = float(value.total_seconds()) if hasattr(value, "total_seconds") else float(value)
    return result if math.isfinite(result) and result >= 0 else None
