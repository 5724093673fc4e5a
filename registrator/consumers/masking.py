"""Masking values that must not reach a log: every configuration value a template rendered
(a checker that quotes the offending line quotes the value) and whatever else the caller
names (decrypted secrets). Each value is masked in the forms it is commonly written in."""

from __future__ import annotations

import base64
import json
import re
import urllib.parse
from collections.abc import Iterable

from registrator.consumers.quoting import haproxy_quote, nginx_quote

MASK = "***"
# Below this length a value is masked only where it stands alone: masking every "1" or "80"
# inside other words would make the reason unreadable and hides nothing worth hiding.
SHORT = 4


def forms(value: str) -> set[str]:
    """`value` as written raw, JSON-escaped, URL-encoded, base64-encoded, Python-repr'd and
    quoted by the template filters."""
    out = {value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1],
           repr(value)[1:-1], urllib.parse.quote(value, safe=""),
           urllib.parse.quote_plus(value), haproxy_quote(value), nginx_quote(value),
           base64.b64encode(value.encode("utf-8", "surrogateescape")).decode().rstrip("=")}
    return {form for form in out if form}


def masker(values: Iterable[str]) -> re.Pattern[str] | None:
    """One pattern for every form of every value, longest first (a value that holds another
    is masked whole); None when there is nothing to mask."""
    every = {form for value in values if value for form in forms(value)}
    if not every:
        return None
    parts = []
    for form in sorted(every, key=lambda f: (-len(f), f)):
        escaped = re.escape(form)
        parts.append(escaped if len(form) >= SHORT
                     else rf"(?<![A-Za-z0-9]){escaped}(?![A-Za-z0-9])")
    return re.compile("|".join(parts))


def mask(text: str, values: Iterable[str]) -> str:
    """`text` with every form of every value replaced by ***. Overlapping values are masked
    as one run: replacing one match at a time would leave the part of a second value that
    sticks out of the first readable."""
    pattern = masker(values)
    if pattern is None:
        return text
    runs: list[list[int]] = []
    at = 0
    # Searching again one character after each match's start, not after its end, finds the
    # matches that overlap it.
    while (match := pattern.search(text, at)) is not None:
        start, end = match.span()
        if runs and start <= runs[-1][1]:
            runs[-1][1] = max(runs[-1][1], end)
        else:
            runs.append([start, end])
        at = start + 1
    out, done = [], 0
    for start, end in runs:
        out += [text[done:start], MASK]
        done = end
    out.append(text[done:])
    return "".join(out)
